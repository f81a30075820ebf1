"""Execute the lessons headless and write an offline HTML book to build/html (`make course`).

    python tools/build_course.py              # every lesson (5+ minutes on a 2-core CPU)
    python tools/build_course.py 05 06        # lessons 05 and 06 only; the index lists those
    python tools/build_course.py --help

The book reads without a network: MathJax 3 is copied from the `django-static-mathjax`
package into build/html/mathjax and every page loads it by a relative path; nothing comes
from a CDN (no require.js, no widget manager, no mermaid). A widget cannot run in a static
page, so where a lesson displays one the page shows a note saying so (a finished progress bar
becomes its text line, a hidden one disappears as it does in JupyterLab). index.html links
the lessons in course order with the status from the README's lessons table and the time
each took to execute; a lesson that failed says so there, with the error's type and message
(an assert's message says what was measured against what) and no terminal colour codes. The
lessons run with $COURSE_WIDGETS=0, so code that would display a widget draws its static
figure instead (the codebook explorer of lesson 05). `tools/check_book.py` (`make check-book`)
opens every page in headless Chromium with the network off and checks it.
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
MATHJAX_DIR = "mathjax"                       # under the book's folder
MATHJAX_ENTRY = "tex-svg-full.js"             # TeX input, SVG output, every TeX package
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE_CLASS = "course-widget-note"
ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")    # terminal colours, cursor moves

# The lab template without anything fetched from a CDN. MathJax 3 finds the same delimiters
# nbconvert's MathJax 2 set-up does and draws SVG, whose glyphs are paths: no web font to load.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/javascript">
window.MathJax = {
  tex: {
    inlineMath: [['$', '$'], ['\\(', '\\)']],
    displayMath: [['$$', '$$'], ['\\[', '\\]']],
    processEscapes: true,
    processEnvironments: true,
    tags: 'ams'
  },
  svg: {fontCache: 'global'}
};
</script>
<script type="text/javascript" src="{{ resources.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block extra_css -%}
<style type="text/css">
.course-widget-note {
  margin: 0.5em 0; padding: 0.6em 1em; border-left: 4px solid #e0a800;
  background: #fff8e1; color: #4a3b00; font-family: var(--jp-ui-font-family);
}
</style>
{%- endblock extra_css -%}
"""

INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<title>Generative recommendation: the course</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
       color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 0.4em 0.6em; border-bottom: 1px solid #ddd;
         vertical-align: top; }}
.time {{ text-align: right; white-space: nowrap; }}
.failed {{ color: #b00020; }}
</style>
</head>
<body>
<h1>Generative recommendation, from SASRec to semantic IDs</h1>
<p>The lessons in course order, executed headless (profile {profile}). Widgets are
interactive only in JupyterLab (<code>make lab</code>); here each lesson shows its static
figures.</p>
<table>
<tr><th>#</th><th>lesson</th><th>status</th><th class="time">executed in</th></tr>
{rows}
</table>
</body>
</html>
"""


@dataclass
class Page:
    """One lesson of the book: where its notebook and page are, and how its run went."""
    number: str
    notebook: Path
    title: str
    status: str                      # from the README's lessons table
    seconds: float | None = None     # execution time; None if it was not executed
    error: str | None = None         # the failing cell's error (type: message), if any

    @property
    def html_name(self) -> str:
        return self.notebook.stem + ".html"


def lesson_statuses(readme: Path) -> dict[str, str]:
    """{"00": "ready", ...} from the `| # | lesson | status |` table under "## Lessons"."""
    text = readme.read_text()
    if "## Lessons" not in text:
        raise ValueError(f"{readme} has no '## Lessons' table; the index needs it for the status")
    table = text.split("## Lessons", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d\d)\s*\|[^|]*\|\s*([^|]+?)\s*\|\s*$", table, flags=re.M)
    return dict(rows)


def lesson_title(nb) -> str:
    """The notebook's first level-1 heading, without the "Lesson NN ·" prefix."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return re.sub(r"^Lesson\s+\d+\s*·\s*", "", match.group(1)).strip()
    return "(untitled)"


def strip_ansi(text: str) -> str:
    """`text` without terminal escape codes (IPython colours its tracebacks)."""
    return ANSI_CODE.sub("", text)


def error_summary(err: CellExecutionError) -> str:
    """"AssertionError: <its message>" for the index; an assert without a message is named by
    its source line, taken from the traceback's arrow."""
    name = strip_ansi(err.ename or type(err).__name__)
    message = strip_ansi(err.evalue or "").strip()
    if message:
        return f"{name}: {message}"
    arrows = [line.split("---->", 1)[1] for line in strip_ansi(err.traceback or "").splitlines()
              if "---->" in line]
    failing = re.sub(r"^\s*\d+\s*", "", arrows[-1]).strip() if arrows else ""
    return f"{name} (no message) at: {failing}" if failing else name


def execute(nb, folder: Path, timeout: int = 1800) -> tuple[float, str | None]:
    """Run `nb` in place with `folder` as the working directory; (seconds, error or None).

    A failing cell stops the run but not the book: its page shows the outputs up to the
    error, and `error_summary` of it is returned for the index. The kernel runs with
    $COURSE_WIDGETS=0: a static page cannot run widgets, so lessons draw static figures.
    """
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, resources={"metadata": {"path": str(folder)}})
    widgets = os.environ.get("COURSE_WIDGETS")
    os.environ["COURSE_WIDGETS"] = "0"                 # the kernel inherits the environment
    try:
        client.execute()
        error = None
    except CellExecutionError as err:
        error = error_summary(err)
    finally:
        if widgets is None:
            os.environ.pop("COURSE_WIDGETS")
        else:
            os.environ["COURSE_WIDGETS"] = widgets
    return time.perf_counter() - start, error


def _model_state(widgets: dict, ref: str) -> dict:
    return widgets.get(ref.removeprefix("IPY_MODEL_"), {}).get("state", {})


def _is_hidden(widgets: dict, state: dict) -> bool:
    layout = _model_state(widgets, state.get("layout", ""))
    return layout.get("visibility") == "hidden" or layout.get("display") == "none"


def _progress_line(widgets: dict, state: dict) -> str | None:
    """tqdm's notebook bar (an HBox of HTML, FloatProgress, HTML) as its terminal line."""
    children = [widgets.get(ref.removeprefix("IPY_MODEL_"), {})
                for ref in state.get("children", [])]
    names = [child.get("model_name") for child in children]
    if names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (child["state"] for child in children)
    filled = int(10 * bar.get("value", 0) / bar["max"]) if bar.get("max") else 0
    text = f"{left.get('value', '')}|{'█' * filled}{' ' * (10 - filled)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def _controls(widgets: dict, state: dict) -> list[str]:
    """The descriptions of the controls inside a widget (e.g. "level", "colour by")."""
    found = [state["description"]] if state.get("description") else []
    for ref in state.get("children", []):
        found += _controls(widgets, _model_state(widgets, ref))
    return found


def widget_note(controls: list[str]) -> str:
    """The visible note a static page shows where a lesson displays a widget."""
    named = f" ({', '.join(html.escape(c) for c in controls)})" if controls else ""
    return (f'<div class="{WIDGET_NOTE_CLASS}" role="note"><strong>Interactive in '
            f"JupyterLab</strong>{named}: open the lesson with <code>make lab</code> to use "
            "it. This offline book cannot run widgets; the static figure above shows the "
            "same.</div>")


def replace_widget_views(nb) -> int:
    """Swap every widget output for what a static page can show; the number swapped.

    A visible widget becomes a note (`widget_note`), a tqdm bar its text line, and a widget
    hidden or closed by the time the cell ended disappears. The stored widget state goes too:
    nothing in the page could use it.
    """
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    swapped = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            swapped += 1
            state = widgets.get(view.get("model_id"), {}).get("state")
            if state is None or _is_hidden(widgets, state):
                continue
            line = _progress_line(widgets, state)
            data = ({"text/plain": line} if line is not None else
                    {"text/html": widget_note(_controls(widgets, state))})
            outputs.append(nbformat.v4.new_output("display_data", data=data))
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)
    return swapped


def mathjax_source() -> Path:
    """MathJax 3's browser build (es5/) as the `django-static-mathjax` package ships it."""
    try:
        import mathjax
    except ImportError:
        raise RuntimeError("the offline book bundles MathJax from the `django-static-mathjax` "
                           "package; install it: pip install django-static-mathjax") from None
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_ENTRY).is_file():
        raise RuntimeError(f"no {MATHJAX_ENTRY} in {es5}; reinstall django-static-mathjax")
    return es5


def bundle_mathjax(out_dir: Path) -> str:
    """Copy MathJax into out_dir/mathjax and return the page-relative URL of its entry file.

    The other combined builds beside the entry (tex-chtml.js, ...) are left out; the folders
    of components it may load later (menu, accessibility) come along.
    """
    source = mathjax_source()
    unused = {p.name for p in source.glob("*.js")} - {MATHJAX_ENTRY}
    shutil.copytree(source, out_dir / MATHJAX_DIR, dirs_exist_ok=True,
                    ignore=lambda folder, names: unused if Path(folder) == source else ())
    return f"{MATHJAX_DIR}/{MATHJAX_ENTRY}"


def export_html(nb, mathjax_url: str = f"{MATHJAX_DIR}/{MATHJAX_ENTRY}") -> str:
    """The executed notebook as one page that needs nothing but MathJax at `mathjax_url`
    (relative to the page; figures are embedded)."""
    replace_widget_views(nb)
    exporter = HTMLExporter(extra_loaders=[DictLoader({"course_book.html.j2": TEMPLATE})],
                            template_file="course_book.html.j2")
    exporter.mathjax_url = mathjax_url
    body, _ = exporter.from_notebook_node(nb)
    return body


def write_index(out_dir: Path, pages: list[Page], profile: str) -> Path:
    """index.html: every lesson in course order, linked, with its status and run time."""
    rows = []
    for page in pages:
        status = html.escape(page.status)
        if page.error:
            status += f' <span class="failed">(failed: {html.escape(page.error)})</span>'
        seconds = "" if page.seconds is None else f"{page.seconds:.0f} s"
        rows.append(f'<tr><td>{page.number}</td><td><a href="{page.html_name}">'
                    f"{html.escape(page.title)}</a></td><td>{status}</td>"
                    f'<td class="time">{seconds}</td></tr>')
    target = out_dir / "index.html"
    target.write_text(INDEX_TEMPLATE.format(rows="\n".join(rows), profile=profile),
                      encoding="utf-8")
    return target


def build_book(notebooks: list[Path], out_dir: Path, statuses: dict[str, str],
               profile: str = "quick", log=print) -> list[Page]:
    """Execute `notebooks` in the order given and write their pages, MathJax and index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mathjax_url = bundle_mathjax(out_dir)
    pages = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        number = path.name[:2]
        page = Page(number, path, lesson_title(nb), statuses.get(number, "not in the README"))
        page.seconds, page.error = execute(nb, path.parent)
        (out_dir / page.html_name).write_text(export_html(nb, mathjax_url), encoding="utf-8")
        outcome = f"FAILED: {page.error}" if page.error else "ok"
        log(f"{path.name}: {page.seconds:.1f} s, {outcome} -> {out_dir / page.html_name}")
        pages.append(page)
    write_index(out_dir, pages, profile)
    return pages


def chosen_lessons(numbers: list[str], folder: Path = ROOT / "notebooks") -> list[Path]:
    """The lessons named by their numbers ("05", "5" or "05_rqvae_hourglass"), in course
    order; every lesson when none is named. Unknown numbers raise with the known ones."""
    lessons = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not numbers:
        return lessons
    by_number = {path.name[:2]: path for path in lessons}
    digits = [re.match(r"\d*", n.strip()).group() for n in numbers]
    wanted = {d.zfill(2) if d else n for d, n in zip(digits, numbers)}
    unknown = sorted(wanted - set(by_number))
    if unknown:
        raise ValueError(f"no lesson {', '.join(unknown)} in {folder}; the lessons are "
                         f"{', '.join(sorted(by_number))}")
    return [by_number[n] for n in sorted(wanted)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Execute the course's lessons headless and write an offline HTML book "
                    "(MathJax bundled, no CDN, an index with each lesson's status and run "
                    "time). Then check it in a browser: python tools/check_book.py.",
        epilog="examples: build_course.py (every lesson); build_course.py 05 06 (lessons 05 "
               "and 06 only). The profile comes from $COURSE_PROFILE (quick on a CPU).")
    parser.add_argument("lessons", nargs="*", metavar="NN",
                        help="lesson numbers to build, e.g. 05 06 (default: every lesson)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "html",
                        help="the book's folder (default: build/html)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from course_lib.device import get_profile

    try:
        notebooks = chosen_lessons(args.lessons)
    except ValueError as err:
        print(f"build_course: {err}", file=sys.stderr)
        return 2
    out_dir = args.out
    pages = build_book(notebooks, out_dir, lesson_statuses(ROOT / "README.md"),
                       profile=get_profile().name)
    failed = [page.notebook.name for page in pages if page.error]
    print(f"{len(pages)} lessons -> {out_dir / 'index.html'}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
