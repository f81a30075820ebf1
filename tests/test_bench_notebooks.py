"""bench/notebooks.py reads each lesson's promised run time from its **Time:** line."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_notebooks", ROOT / "bench" / "notebooks.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def lesson_with(tmp_path, time_line):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# Lesson\n\n{time_line}")])
    path = tmp_path / "lesson.ipynb"
    path.write_text(nbformat.writes(nb))
    return path


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_lesson_states_a_run_time_the_bench_can_read(path):
    words, seconds = bench.budget(path)
    assert "default" not in words, f"{path.name} should say how long its code runs"
    assert 10 <= seconds <= 300


@pytest.mark.parametrize("line, words, seconds", [
    ("the code runs in about 20 s on a laptop", "about 20 s", 25.0),
    ("The code runs in about a minute and a\nhalf on a 2-core CPU", "about a minute and a half", 112.5),
    ("the code runs in well under a minute on a laptop", "well under a minute", 60.0),
    ("the code runs in under 3 minutes on a laptop", "under 3 minutes", 180.0),
])
def test_the_stated_time_is_the_budget_and_about_allows_a_quarter_more(tmp_path, line, words, seconds):
    assert bench.budget(lesson_with(tmp_path, f"**Time:** an hour; {line}.")) == (words, seconds)


def test_a_notebook_without_a_run_time_gets_the_course_default(tmp_path):
    assert bench.budget(lesson_with(tmp_path, "**Time:** about 45 minutes.")) == ("about a minute (default)", 75.0)


def test_an_unreadable_run_time_is_refused_with_the_accepted_forms(tmp_path):
    with pytest.raises(ValueError, match="cannot read the run time 'a little while'"):
        bench.budget(lesson_with(tmp_path, "the code runs in about a little while on a laptop"))
