"""Notebook outputs stay out of git: in a clone set up the way `make lab` sets one up
(tools/git_notebook_outputs.sh install), executing a notebook changes nothing git would commit,
`refresh` makes `git status` say so too, and a real edit still shows and commits without its
outputs. Each test builds a small repository in tmp_path; the filter runs this interpreter."""
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

pytest.importorskip("nbstripout")
pytestmark = pytest.mark.skipif(shutil.which("git") is None,
                                reason="git is not installed: there is no clone to keep clean")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "git_notebook_outputs.sh"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def setup_outputs_filter(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), *args], cwd=repo, check=True,
                          capture_output=True, text=True)


def lesson() -> nbformat.NotebookNode:
    """A notebook as the course commits them: outputs stripped, ids kept, the kernel named."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                  "name": "python3"},
                   "language_info": {"name": "python"}}
    nb.cells = [nbformat.v4.new_markdown_cell("# A lesson", id="intro"),
                nbformat.v4.new_code_cell("print(1 + 1)", id="sum"),
                nbformat.v4.new_code_cell("import matplotlib", id="plot")]
    return nb


def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What a run in JupyterLab or `nbconvert --execute --inplace` adds to a notebook."""
    nb.metadata.language_info.update(
        codemirror_mode={"name": "ipython", "version": 3}, file_extension=".py",
        mimetype="text/x-python", nbconvert_exporter="python", pygments_lexer="ipython3",
        version="3.11.7")
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for count, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = count + 1
        cell.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n"),
                        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0K" * 500,
                                                                     "text/plain": "<Figure>"})]
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.write_text(nbformat.writes(nb) + "\n")


@pytest.fixture
def clone(tmp_path):
    """A repository with the committed .gitattributes and one lesson, the filter installed."""
    repo = tmp_path / "course"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    write(lesson(), repo / "notebooks" / "00_lesson.ipynb")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=course", "-c", "user.email=course@example.org",
        "-c", "commit.gpgsign=false", "commit", "-q", "-m", "lessons")
    setup_outputs_filter(repo, "install", sys.executable)
    return repo


def test_executing_a_notebook_leaves_nothing_to_diff(clone):
    path = clone / "notebooks" / "00_lesson.ipynb"
    write(execute(nbformat.read(path, as_version=4)), path)
    assert '"outputs": []' not in path.read_text()            # the outputs are on disk
    assert git(clone, "diff") == ""


def test_refresh_makes_status_clean_after_a_notebook_was_only_executed(clone):
    path = clone / "notebooks" / "00_lesson.ipynb"
    write(execute(nbformat.read(path, as_version=4)), path)
    # git sees the size change before asking the filter: listed until refreshed
    assert git(clone, "status", "--porcelain") == " M notebooks/00_lesson.ipynb\n"
    setup_outputs_filter(clone, "refresh")
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "diff", "--cached") == ""                # nothing new staged
    on_disk = nbformat.read(path, as_version=4)
    assert sum(len(c.outputs) for c in on_disk.cells if c.cell_type == "code") == 4  # kept


def course_contents_manager(root: Path):
    """The contents manager JupyterLab's server uses in the course's environment, as
    tools/jupyter_server_config.py configures it."""
    pytest.importorskip("jupyter_server")
    config = Config()
    exec((ROOT / "tools" / "jupyter_server_config.py").read_text(),
         {"get_config": lambda: config})
    return config.ServerApp.contents_manager_class(root_dir=str(root), config=config)


def test_jupyterlab_saving_a_run_notebook_leaves_git_status_clean(clone):
    """What a session in JupyterLab does: the server saves the executed notebook through its
    contents manager, whose post-save hook (tools/jupyter_server_config.py) refreshes git."""
    (clone / "tools").mkdir()
    shutil.copy(SCRIPT, clone / "tools" / SCRIPT.name)
    manager = course_contents_manager(clone)
    path = "notebooks/00_lesson.ipynb"
    executed = execute(nbformat.read(clone / path, as_version=4))
    asyncio.run(manager.save({"type": "notebook", "format": "json", "content": executed}, path))
    assert "image/png" in (clone / path).read_text()           # saved with its outputs
    deadline = time.monotonic() + 60                           # the hook runs in the background
    while git(clone, "status", "--porcelain", "-uno") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert git(clone, "status", "--porcelain", "-uno") == ""      # no tracked file modified


def test_jupyterlab_receives_a_lesson_with_the_kernels_language_info_so_opening_changes_nothing(
        clone):
    """JupyterLab writes the kernel's language_info into a notebook when its kernel starts and
    marks the notebook unsaved if that changed anything: the server hands it over filled in."""
    ipkernel = pytest.importorskip("ipykernel.ipkernel")
    model = asyncio.run(course_contents_manager(clone).get("notebooks/00_lesson.ipynb"))
    assert model["content"]["metadata"]["language_info"] == ipkernel.IPythonKernel.language_info
    assert model["content"]["metadata"]["kernelspec"] == lesson().metadata["kernelspec"]
    on_disk = nbformat.read(clone / "notebooks" / "00_lesson.ipynb", as_version=4)
    assert on_disk.metadata == lesson().metadata                # the file is untouched


def test_a_real_edit_stays_modified_after_refresh_and_commits_without_outputs(clone):
    path = clone / "notebooks" / "00_lesson.ipynb"
    nb = execute(nbformat.read(path, as_version=4))
    nb.cells[1].source = "print(2 + 2)"
    write(nb, path)
    setup_outputs_filter(clone, "refresh")
    assert git(clone, "status", "--porcelain") == " M notebooks/00_lesson.ipynb\n"
    assert "+    \"print(2 + 2)\"" in git(clone, "diff")
    git(clone, "add", "notebooks/00_lesson.ipynb")
    committed = nbformat.reads(git(clone, "show", ":notebooks/00_lesson.ipynb"), as_version=4)
    assert [c.get("outputs") for c in committed.cells] == [None, [], []]
    assert [c.get("execution_count") for c in committed.cells] == [None, None, None]
    assert [c.id for c in committed.cells] == ["intro", "sum", "plot"]
    assert committed.metadata == lesson().metadata            # no versions, no widget state


def test_setup_outside_a_git_clone_says_so_and_succeeds(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no clone above
    result = setup_outputs_filter(tmp_path, "install", sys.executable)
    assert "not a git clone" in result.stdout


def test_setup_with_an_unknown_command_says_how_to_call_it(clone):
    result = subprocess.run(["sh", str(SCRIPT), "strip"], cwd=clone, capture_output=True,
                            text=True)
    assert result.returncode == 2
    assert "usage: sh tools/git_notebook_outputs.sh install [PYTHON] | refresh" in result.stderr


def test_refresh_can_be_limited_to_the_notebooks_given(clone):
    for name in ("00_lesson.ipynb", "01_lesson.ipynb"):
        write(lesson(), clone / "notebooks" / name)
    git(clone, "add", ".")
    git(clone, "-c", "user.name=course", "-c", "user.email=course@example.org",
        "-c", "commit.gpgsign=false", "commit", "-q", "-m", "second lesson")
    for name in ("00_lesson.ipynb", "01_lesson.ipynb"):
        path = clone / "notebooks" / name
        write(execute(nbformat.read(path, as_version=4)), path)
    setup_outputs_filter(clone, "refresh", str(clone / "notebooks" / "01_lesson.ipynb"))
    assert git(clone, "status", "--porcelain") == " M notebooks/00_lesson.ipynb\n"
