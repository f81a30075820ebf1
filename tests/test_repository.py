"""Promises of the repository itself: dependencies mirrored, notebooks clean, exercises in sync."""
import json
import re
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_exercises  # noqa: E402

CONDA_NAMES = {"pytorch": "torch"}            # conda name -> PyPI name


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pypi = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    conda = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^\s{2}- ([A-Za-z0-9_.-]+)|^\s{6}- ([A-Za-z][A-Za-z0-9_.-]*)$", line)
        if m and (m.group(1) or m.group(2)) not in ("python", "pip"):
            name = _name(m.group(1) or m.group(2))
            conda.add(CONDA_NAMES.get(name, name))
    assert conda == pypi, f"only in pyproject: {pypi - conda}; only in environment.yml: {conda - pypi}"


def test_torch_is_pinned_in_the_constraints_file():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()


NOTEBOOKS = sorted(p for folder in ("notebooks", "solutions", "exercises")
                   for p in (ROOT / folder).glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells)
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


def test_every_solution_has_an_exercise_and_a_lesson():
    for solution in (ROOT / "solutions").glob("*.ipynb"):
        assert (ROOT / "exercises" / solution.name).exists()
        assert (ROOT / "notebooks" / solution.name).exists() or list(
            (ROOT / "notebooks").glob(solution.name[:3] + "*.ipynb"))


def test_committed_exercises_and_solution_metadata_equal_the_generated_ones():
    stale = [str(p.relative_to(ROOT)) for p, text in make_exercises.expected_files().items()
             if not p.exists() or p.read_text() != text]
    assert not stale, f"out of date, run `make exercises`: {stale}"


def _notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s, id=f"c{i}") for i, s in enumerate(sources)]
    return nb


SOLVED = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"


def test_nbgrader_metadata_marks_answers_tests_and_locked_cells():
    nb = make_exercises.annotate(_notebook("import torch", SOLVED, "checks.check_double(double)"))
    kinds = [(m["grade_id"], m["solution"], m["grade"], m["locked"], m.get("points"))
             for m in (c.metadata["nbgrader"] for c in nb.cells)]
    assert kinds == [("cell-c0", False, False, True, None),
                     ("double", True, False, False, None),
                     ("check_double", False, True, True, 1)]


def test_a_teachers_points_survive_regeneration():
    nb = _notebook(SOLVED, "checks.check_double(double)")
    nb.cells[1].metadata["nbgrader"] = {"points": 3}
    assert make_exercises.annotate(nb).cells[1].metadata["nbgrader"]["points"] == 3


@pytest.mark.parametrize("sources, phrase", [
    ((SOLVED, "print(1)"), "has no check cell after it"),
    ((SOLVED, SOLVED, "checks.check_double(double)"), "has no check cell after it"),
    (("checks.check_double(double)",), "follows no solution cell"),
    ((SOLVED, "check_double(double)\ncheck_half(half)"), "give each check its own cell"),
])
def test_notebooks_nbgrader_cannot_grade_are_refused(sources, phrase):
    with pytest.raises(ValueError, match=phrase):
        make_exercises.annotate(_notebook(*sources))


def test_generator_replaces_solution_blocks_at_their_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\nprint(f)"
    assert make_exercises.stub_source(source) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f)")


@pytest.mark.parametrize("source, phrase", [
    ("### BEGIN SOLUTION\nx = 1", "without a matching"),
    ("x = 1\n### END SOLUTION", "without a ### BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_generator_rejects_broken_markers(source, phrase):
    with pytest.raises(ValueError, match=phrase):
        make_exercises.stub_source(source)


def test_solutions_contain_solution_blocks_and_exercises_do_not():
    for solution in (ROOT / "solutions").glob("*.ipynb"):
        assert "### BEGIN SOLUTION" in solution.read_text()
        assert "### BEGIN SOLUTION" not in (ROOT / "exercises" / solution.name).read_text()
