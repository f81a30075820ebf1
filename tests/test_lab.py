"""`make lab` as a learner meets it, and `make teach` as a teacher does. Every server here is
started with the command the Makefile runs (read with `make -n`, never retyped), plus a free
port and a token:

* the server is rooted at the clone: the contents API serves notebooks/ and exercises/, and
  the first page is lesson 00;
* a learner's JupyterLab has no nbgrader (no menu, Validate button or Create Assignment
  sidebar, no formgrader) and its log no warnings about it; `make teach` has all of it;
* in headless Chromium (where Debian's chromium and chromium-driver are installed), lesson 00
  and exercise 06 open without being marked unsaved, and run: the lesson with Run All and no
  error, the exercise cell by cell, as a learner works through it, where every error is an
  unfinished task's NotImplementedError and nothing else; the browser logs no error.

The browser test runs the `make lab` command in a scratch copy of notebooks/ and exercises/, so
what JupyterLab saves or a lesson writes stays out of the clone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from conftest import headless_browser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_book  # noqa: E402  (the one headless Chromium set-up)

LESSON = "notebooks/00_data_and_evaluation.ipynb"
EXERCISE = "exercises/06_tiger.ipynb"
UNFINISHED = {"NotImplementedError", "NotImplementedYet"}     # what an exercise stub raises
TOKEN = "course-test-token"
RUN_TIMEOUT = 600                     # seconds for a notebook's cells, on a busy 2-core CPU

pytestmark = [
    pytest.mark.skipif(shutil.which("make") is None,
                       reason="make is not installed: there is no `make lab` to run"),
    pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "jupyter").exists(),
                       reason="no .venv/bin/jupyter for `make lab` to run: set it up with "
                              "`make test` (conda users: these tests need the Makefile's venv)"),
]


def make_command(target: str) -> str:
    """The shell command `make <target>` runs, setup left out (-o: the stamp counts as done)."""
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")               # set when `make test` runs us
    env = {k: v for k, v in os.environ.items() if k not in outer}
    lines = subprocess.run(["make", "-s", "-n", "-o", ".venv/.installed", target], cwd=ROOT,
                           env=env, check=True, capture_output=True, text=True).stdout.splitlines()
    assert len(lines) == 1, f"`make {target}` should run one command, runs {lines}"
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server started in `folder` by `make <target>`'s command. Its log, settings
    and workspaces live in `scratch`, so the user's own JupyterLab set-up is neither read nor
    changed."""

    def __init__(self, target: str, folder: Path, scratch: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = scratch / f"lab-{target}.log"
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(scratch / "lab-settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "lab-workspaces")}
        env.pop("MPLBACKEND", None)              # the kernel draws inline, as in `make lab`
        command = (f"{make_command(target)} --no-browser --ServerApp.ip=127.0.0.1 "
                   f"--port={self.port} --ServerApp.port_retries=0 "
                   f"--IdentityProvider.token={TOKEN}")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, shell=True, cwd=folder, env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def wait_until_up(self, timeout: float = 60) -> Lab:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self.get("/api/status")
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"JupyterLab did not start:\n{self.log.read_text()[-3000:]}")

    def get(self, path: str, follow: bool = True) -> tuple[int, str, dict]:
        """(status, body, headers) of GET path with the token."""
        sep = "&" if "?" in path else "?"
        request = urllib.request.Request(f"{self.url}{path}{sep}token={TOKEN}")
        opener = (urllib.request.build_opener() if follow
                  else urllib.request.build_opener(NoRedirect))
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), dict(err.headers)

    def json(self, path: str):
        status, body, _ = self.get(path)
        assert status == 200, f"GET {path}: {status}"
        return json.loads(body)

    def page_config(self) -> dict:
        """The configuration JupyterLab's page starts from (disabled extensions among it)."""
        _, body, _ = self.get("/lab")
        found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                          body, flags=re.S)
        return json.loads(found.group(1))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """`make lab` and `make teach`, both in the clone, started side by side."""
    scratch = tmp_path_factory.mktemp("lab")
    labs = {target: Lab(target, ROOT, scratch) for target in ("lab", "teach")}
    try:
        yield {target: lab.wait_until_up() for target, lab in labs.items()}
    finally:
        for lab in labs.values():
            lab.stop()


# --- the server's root, and what a learner sees of nbgrader ----------------------------------

def test_make_lab_serves_the_lessons_and_the_exercises(servers):
    lab = servers["lab"]
    assert {"notebooks", "exercises"} <= {e["name"] for e in lab.json("/api/contents")["content"]}
    assert Path(LESSON).name in {e["name"] for e in lab.json("/api/contents/notebooks")["content"]}
    assert Path(EXERCISE).name in {e["name"] for e in lab.json("/api/contents/exercises")["content"]}
    assert lab.json(f"/api/contents/{EXERCISE}")["type"] == "notebook"


def test_make_lab_opens_lesson_00(servers):
    status, _, headers = servers["lab"].get("/", follow=False)
    assert status == 302
    assert headers["Location"].split("?")[0].endswith(f"/lab/tree/{LESSON}")


def test_a_learners_jupyterlab_has_no_nbgrader_and_its_log_no_warning_about_it(servers):
    lab = servers["lab"]
    assert "@jupyter/nbgrader" in lab.page_config()["disabledExtensions"]
    assert lab.get("/formgrader")[0] == 404
    log = lab.log.read_text()
    assert "nbgrader" not in log
    assert "Overriding existing post_save_hook" not in log


def test_make_teach_has_nbgrader(servers):
    teach = servers["teach"]
    assert "@jupyter/nbgrader" not in teach.page_config()["disabledExtensions"]
    assert teach.get("/formgrader", follow=False)[0] in (200, 302)


# --- lesson 00 and exercise 06 in a real browser ---------------------------------------------

@pytest.fixture(scope="module")
def chrome():
    yield from headless_browser(local_server=True)


@pytest.fixture(scope="module")
def learner_lab(tmp_path_factory):
    """`make lab` in a scratch copy of the clone's notebooks and exercises (the command runs
    .venv/bin/jupyter: a link to the clone's)."""
    folder = tmp_path_factory.mktemp("clone")
    for name in ("notebooks", "exercises"):
        shutil.copytree(ROOT / name, folder / name)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    lab = Lab("lab", folder, folder).wait_until_up()
    lab.folder = folder
    yield lab
    lab.stop()


def wait_for(condition, timeout: float, what: str, poll: float = 0.2):
    """Poll `condition()` until it is truthy; that value, or a TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s")


def kernel_idle(lab: Lab, path: str) -> bool:
    """The notebook's kernel is started and idle (the server's view)."""
    sessions = [s for s in lab.json("/api/sessions") if s["path"] == path]
    return bool(sessions) and sessions[0]["kernel"]["execution_state"] == "idle"


PROMPTS = ("return Array.from(document.querySelectorAll("
           "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt'))"
           ".map(p => p.textContent.trim())")
KERNEL_STATUS = ("return (document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
                 ".jp-Notebook-ExecutionIndicator') || {dataset: {}}).dataset.status")
DIRTY = ("return Array.from(document.querySelectorAll('.lm-TabBar-tab.jp-mod-dirty'))"
         ".map(t => t.textContent.trim())")


def open_notebook(chrome, lab: Lab, path: str) -> None:
    """Open `path` in JupyterLab, as its file browser does, and wait for its kernel."""
    chrome.get(f"{lab.url}/lab/tree/{path}?token={TOKEN}")
    wait_for(lambda: chrome.execute_script(PROMPTS), 120, f"{path} shown")
    # The page shows "idle" before it has a kernel: the server's word first, then the page's.
    wait_for(lambda: kernel_idle(lab, path), 120, f"{path}'s kernel started")
    wait_for(lambda: chrome.execute_script(KERNEL_STATUS) == "idle", 60, f"{path} connected")
    time.sleep(1)                       # what JupyterLab does on connecting, done


def run_all(chrome, lab: Lab, path: str) -> None:
    """Run > Run All Cells, then wait until no cell is running or queued."""
    from selenium.webdriver.common.by import By

    chrome.find_element(By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')]"
                                  "[.//div[text()='Run']]").click()
    wait_for(lambda: chrome.find_elements(
        By.CSS_SELECTOR, ".lm-Menu li[data-command='runmenu:run-all']"), 10,
        "the Run menu open")[0].click()
    wait_for(lambda: any(p == "[*]:" or re.fullmatch(r"\[\d+\]:", p)
                         for p in chrome.execute_script(PROMPTS)), 30, f"{path} started")
    wait_for(lambda: "[*]:" not in chrome.execute_script(PROMPTS) and kernel_idle(lab, path),
             RUN_TIMEOUT, f"{path} run to the end", poll=1)


def run_cell_by_cell(chrome, lab: Lab, path: str) -> None:
    """Select each code cell in turn and run it (Ctrl+Enter), each to its end."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cells = chrome.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) "
                                                  ".jp-CodeCell .jp-InputPrompt")
    for i, prompt in enumerate(cells):
        prompt.click()
        ActionChains(chrome).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(
            Keys.CONTROL).perform()
        wait_for(lambda: re.fullmatch(r"\[\d+\]:", chrome.execute_script(PROMPTS)[i])
                 and kernel_idle(lab, path), RUN_TIMEOUT, f"{path}, code cell {i} run")


def save(chrome, lab: Lab, path: str) -> nbformat.NotebookNode:
    """File > Save (Ctrl+S); the notebook as JupyterLab wrote it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    file = lab.folder / path
    before = file.stat().st_mtime_ns
    ActionChains(chrome).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    wait_for(lambda: file.stat().st_mtime_ns != before and not chrome.execute_script(DIRTY),
             30, f"{path} saved")
    return nbformat.read(file, as_version=4)


def errors_in(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    return [(i, out["ename"], out["evalue"][:120]) for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for out in cell.outputs if out["output_type"] == "error"]


def console_errors(chrome) -> list[str]:
    return [entry["message"][:300] for entry in chrome.get_log("browser")
            if entry["level"] == "SEVERE"]


def test_lesson_00_opens_unchanged_and_runs_in_jupyterlab_without_an_error(chrome, learner_lab):
    chrome.get_log("browser")                                  # start from an empty log
    open_notebook(chrome, learner_lab, LESSON)
    assert chrome.execute_script(DIRTY) == [], "opening the lesson marked it unsaved"
    menus = chrome.execute_script("return Array.from(document.querySelectorAll("
                                  "'.lm-MenuBar-itemLabel')).map(m => m.textContent)")
    assert "Run" in menus and "Nbgrader" not in menus
    run_all(chrome, learner_lab, LESSON)
    nb = save(chrome, learner_lab, LESSON)
    assert errors_in(nb) == []
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "a cell never ran"
    assert console_errors(chrome) == []


def test_exercise_06_runs_in_jupyterlab_with_only_its_unfinished_tasks_failing(chrome,
                                                                                learner_lab):
    chrome.get_log("browser")
    open_notebook(chrome, learner_lab, EXERCISE)
    assert chrome.execute_script(DIRTY) == [], "opening the exercise marked it unsaved"
    run_cell_by_cell(chrome, learner_lab, EXERCISE)
    nb = save(chrome, learner_lab, EXERCISE)
    errors = errors_in(nb)
    assert errors, "the exercise's stubs raised nothing: are the solutions in exercises/?"
    assert [e for e in errors if e[1] not in UNFINISHED] == []
    assert console_errors(chrome) == []
