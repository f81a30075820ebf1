"""The HTML book reads offline: built by tools/build_course.py from two tiny lessons, one with
formulas and one with widgets, it bundles MathJax, names no CDN, shows a note where a widget
was, and (where Chromium and its driver are installed) passes tools/check_book.py with the
network off."""
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import headless_browser
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_course  # noqa: E402
import check_book  # noqa: E402

FORMULAS = new_notebook(cells=[
    new_markdown_cell("# Lesson 00 · Formulas\n\nThe loss $\\mathcal{L} = -\\log p(x)$, "
                      "summed:\n\n$$\\hat y = \\sum_i w_i x_i$$"),
    new_code_cell("1 + 1"),
])
WIDGETS = new_notebook(cells=[
    new_markdown_cell("# Lesson 01 · Widgets\n\nA slider and two progress bars."),
    new_code_cell("from tqdm.auto import tqdm\n"
                  "for _ in tqdm(range(3), desc='hidden bar', leave=False): pass\n"
                  "for _ in tqdm(range(3), desc='kept bar'): pass"),
    new_code_cell("import ipywidgets\nipywidgets.IntSlider(3, description='level')"),
])


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The two lessons executed and written as a book; (book folder, pages)."""
    tmp = tmp_path_factory.mktemp("book")
    lessons = tmp / "notebooks"                 # kept apart from the book's folder
    lessons.mkdir()
    paths = []
    for name, nb in (("00_formulas.ipynb", FORMULAS), ("01_widgets.ipynb", WIDGETS)):
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, lessons / name)
        paths.append(lessons / name)
    out = tmp / "html"
    pages = build_course.build_book(paths, out, {"00": "ready", "01": "draft"},
                                    log=lambda line: None)
    return out, pages


def test_readme_lessons_table_gives_every_lesson_a_status():
    statuses = build_course.lesson_statuses(ROOT / "README.md")
    lessons = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(statuses) == lessons
    assert all(statuses.values())


def test_lessons_execute_without_error(book):
    _, pages = book
    assert [(p.number, p.error) for p in pages] == [("00", None), ("01", None)]
    assert all(p.seconds > 0 for p in pages)


def test_pages_name_nothing_to_fetch_from_the_network(book):
    out, _ = book
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert check_book.external_resources(text) == [], page.name
        assert "require.js" not in text and "widget-state+json" not in text, page.name


def test_mathjax_is_bundled_and_loaded_by_a_relative_path(book):
    out, pages = book
    assert (out / build_course.MATHJAX_DIR / build_course.MATHJAX_ENTRY).is_file()
    for page in pages:
        assert f'src="{build_course.MATHJAX_DIR}/{build_course.MATHJAX_ENTRY}"' in (
            out / page.html_name).read_text(encoding="utf-8")


def test_a_widget_becomes_a_visible_note_and_a_progress_bar_its_text(book):
    out, _ = book
    text = (out / "01_widgets.html").read_text(encoding="utf-8")
    assert text.count(f'class="{build_course.WIDGET_NOTE_CLASS}"') == 1
    assert "(level)" in text                           # the slider's control is named
    assert "kept bar: 100%|██████████| 3/3" in text
    assert "hidden bar:" not in text                   # leave=False: gone, as in JupyterLab
    assert build_course.WIDGET_VIEW not in text


def test_index_links_the_lessons_in_order_with_their_status(book):
    out, _ = book
    text = (out / "index.html").read_text(encoding="utf-8")
    first, second = text.index('href="00_formulas.html"'), text.index('href="01_widgets.html"')
    assert first < second
    assert ">Formulas</a></td><td>ready</td>" in text
    assert ">Widgets</a></td><td>draft</td>" in text


FAILING = new_notebook(cells=[
    new_markdown_cell("# Lesson 02 · Failing"),
    new_code_cell("import os\nprint('widgets', os.environ.get('COURSE_WIDGETS'))"),
    new_code_cell("measured = 0.41\nassert measured < 0.35, f'error {measured}, expected < 0.35'"),
])


def test_a_failed_lesson_shows_in_the_index_with_its_assert_message_and_no_colour_codes(tmp_path):
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    FAILING.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}
    nbformat.write(FAILING, lessons / "02_failing.ipynb")
    (page,) = build_course.build_book([lessons / "02_failing.ipynb"], tmp_path / "html",
                                      {"02": "ready"}, log=lambda line: None)
    assert page.error == "AssertionError: error 0.41, expected < 0.35"
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert "(failed: AssertionError: error 0.41, expected &lt; 0.35)" in index
    assert "\x1b" not in index and "[31m" not in index
    assert "widgets 0" in (tmp_path / "html" / "02_failing.html").read_text(encoding="utf-8")


def test_an_assert_without_a_message_is_named_by_its_failing_line():
    from nbclient.exceptions import CellExecutionError
    traceback = ("\x1b[31m----------\x1b[39m\n\x1b[31mAssertionError\x1b[39m  Traceback\n"
                 "\x1b[32m----> 3\x1b[39m \x1b[38;5;28;01massert\x1b[39;00m vae_error < 0.35\n"
                 "\x1b[31mAssertionError\x1b[39m: ")
    err = CellExecutionError(traceback, "AssertionError", "")
    assert build_course.error_summary(err) == \
        "AssertionError (no message) at: assert vae_error < 0.35"


def test_chosen_lessons_come_in_course_order_and_an_unknown_one_is_named(tmp_path):
    for name in ("00_a.ipynb", "05_b.ipynb", "06_c.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in build_course.chosen_lessons(["06", "5"], tmp_path)] == \
        ["05_b.ipynb", "06_c.ipynb"]
    assert len(build_course.chosen_lessons([], tmp_path)) == 3
    with pytest.raises(ValueError, match="no lesson 07 .* the lessons are 00, 05, 06"):
        build_course.chosen_lessons(["07"], tmp_path)


def test_the_builder_explains_itself_with_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_course.parse_args(["--help"])
    assert exit_.value.code == 0
    assert "build_course.py 05 06" in capsys.readouterr().out


@pytest.fixture(scope="module")
def chrome():
    yield from headless_browser()


def test_every_page_passes_the_offline_browser_check(book, chrome):
    out, _ = book
    reports = {page.name: check_book.check_page(chrome, page) for page in out.glob("*.html")}
    assert {name: r.problems for name, r in reports.items()} == {
        "00_formulas.html": [], "01_widgets.html": [], "index.html": []}
    assert reports["00_formulas.html"].formulas == 2
    assert reports["01_widgets.html"].notes == 1


def test_browser_check_fails_a_page_that_needs_the_cdn(book, chrome, tmp_path):
    out, _ = book
    stock = tmp_path / "stock.html"                    # nbconvert's default: MathJax by CDN
    stock.write_text(HTMLExporter().from_notebook_node(FORMULAS)[0], encoding="utf-8")
    problems = " | ".join(check_book.check_page(chrome, stock).problems)
    assert "from the network" in problems
    assert "console error" in problems
    assert "raw TeX" in problems
