"""Drive the codebook explorer in JupyterLab in headless Chromium: time it, screenshot it.

Starts JupyterLab on a copy of a notebook (lesson 05 by default) in a temporary folder, runs
every cell, then works the explorer as a learner would: each colouring, each level, a picked
code. It reports
* whether the map is drawn once (the widget, no static copy above it) and, for every colouring
  at every level, whether the figure has a legend or colour bar beside the map and clear of its
  points (`legend_layout`, measured in the live kernel by a cell appended to the copy: the page
  itself only shows the figure as a PNG);
* how long every redraw took, from the click to the new figure on screen;
* after a page reload, when each stage came back (JupyterLab's shell, the notebook, the kernel's
  replies the widgets wait for, the static figures, the widget), what the kernel sent, how long
  the page's main thread was blocked and in which scripts.
Needs Debian's `chromium` and `chromium-driver` and selenium, like tools/check_book.py.

    python tools/check_explorer.py                                  # lesson 05
    python tools/check_explorer.py --screenshots /tmp/shots --prefix after_
    python tools/check_explorer.py --notebook my.ipynb --json report.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import numpy as np
from matplotlib.transforms import Bbox

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_book  # noqa: E402  (find_browser and the same Chromium set-up)

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "05_rqvae_hourglass.ipynb"
WINDOW = (1600, 1200)
RUN_TIMEOUT = 900                     # seconds: lesson 05 on a busy 2-core CPU, UMAP uncached
WIDGET = ".jp-OutputArea-output .widget-vbox"
# The kernel messages a reloaded page needs before it can draw a widget (ipywidgets 8).
RESTORE_MESSAGES = ("kernel_info_reply", "comm_info_reply", "comm_msg update_states",
                    "comm_open")

# The widget app's state, read in the page: its controls and the figure's signature.
APP_STATE = r"""
const app = document.querySelector(arguments[0]);
if (!app) return null;
const img = app.querySelector('.widget-output img');
const box = img && img.getBoundingClientRect();
return {
  now: performance.now(),
  buttons: Array.from(app.querySelectorAll('.widget-toggle-button')).map(b => b.textContent.trim()),
  pressed: Array.from(app.querySelectorAll('.widget-toggle-button.mod-active'))
      .map(b => b.textContent.trim()),
  options: Array.from(app.querySelectorAll('select option')).map(o => o.textContent),
  figure: img && img.complete && box.width > 0 ? img.src.length + ':' + img.src.slice(-48) : null,
  figure_size: img ? [img.naturalWidth, img.naturalHeight] : null,
};
"""

# Resolves when the widget's figure differs from `before` and is laid out; the page's clock.
FIGURE_CHANGED = r"""
const [selector, before, done] = arguments;
function look() {
  const img = document.querySelector(selector + ' .widget-output img');
  const sig = img && img.complete && img.getBoundingClientRect().width > 0
      ? img.src.length + ':' + img.src.slice(-48) : null;
  if (sig && sig !== before) done(performance.now()); else requestAnimationFrame(look);
}
look();
"""

# The figures a cell (arguments[0]) shows outside any widget.
STATIC_FIGURES = r"""
const figures = Array.from(arguments[0].querySelectorAll('.jp-OutputArea-output > img'))
    .filter(img => !img.closest('.jupyter-widgets'));
"""

# Installed before any page script: the time each stage of a (re)loaded page first shows, and
# every kernel message the page receives (msg_type, comm method, bytes) with its time.
TIMELINE = r"""
window.__timeline = {stages: {}, messages: [], busy: []};
new PerformanceObserver(list => list.getEntries().forEach(e => window.__timeline.busy.push(
  [e.startTime, e.duration]))).observe({type: 'longtask', buffered: true});
const decoder = new TextDecoder();
function record(data) {
  let header, content = {}, size;
  try {
    if (typeof data === 'string') {
      size = data.length;
      const msg = JSON.parse(data);
      header = msg.header; content = msg.content || {};
    } else {                              // v1.kernel.websocket.jupyter.org: offsets, parts
      size = data.byteLength;
      const view = new DataView(data);
      const offset = i => Number(view.getBigUint64(8 * i, true));
      const part = i => JSON.parse(decoder.decode(data.slice(offset(i), offset(i + 1))));
      header = part(2);
      if (header.msg_type.startsWith('comm')) content = part(5);
    }
  } catch (err) { return; }
  window.__timeline.messages.push({t: performance.now(), type: header.msg_type, size: size,
                                   method: (content.data || {}).method || null});
}
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Native(...args);
  const stages = window.__timeline.stages;
  stages['first websocket opened'] = stages['first websocket opened'] || performance.now();
  ws.addEventListener('message', event => record(event.data));
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
const shown = el => !!el && el.getBoundingClientRect().height > 0;
const drawn = img => !!img && img.complete && img.naturalWidth > 0 && shown(img);
const STAGES = {
  "JupyterLab shell": () => shown(document.querySelector('#jp-main-dock-panel')),
  "notebook opened": () => shown(document.querySelector('.jp-NotebookPanel .jp-Cell')),
  "static figures": () => Array.from(document.querySelectorAll('.jp-OutputArea-output img'))
      .some(img => !img.closest('.jupyter-widgets') && drawn(img)),
  "widget controls": () => shown(document.querySelector(WIDGET + ' .widget-toggle-buttons')),
  "widget figure": () => drawn(document.querySelector(WIDGET + ' .widget-output img')),
};
function tick() {
  for (const [name, seen] of Object.entries(STAGES)) {
    const stages = window.__timeline.stages;
    if (!(name in stages) && seen()) stages[name] = performance.now();
  }
  if (!('widget figure' in window.__timeline.stages)) requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
"""

@dataclass
class Report:
    """What one drive of the explorer measured."""
    notebook: str
    run_seconds: float = 0.0
    redraws: dict[str, float] = field(default_factory=dict)      # action -> seconds
    reload_stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds after reload
    reload_messages: dict[str, int] = field(default_factory=dict)  # kernel msg_type -> count
    reload_bytes: int = 0                                          # websocket bytes received
    reload_cpu: dict[str, float] = field(default_factory=dict)     # script -> main-thread seconds
    reload_busy: list[tuple[float, float]] = field(default_factory=list)  # long tasks (start, s)
    widgets_on_page: int = 0                                        # widget views in the notebook
    figures: int = 0                     # static figures in the cell of the widget
    layouts: list[dict] = field(default_factory=list)                  # legend_layout per figure
    problems: list[str] = field(default_factory=list)
    shots: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.notebook}: all cells ran in {self.run_seconds:.1f} s; "
               f"{self.widgets_on_page} widget apps, {self.figures} static figures in their cell"]
        out += [f"  legend beside the map, clear of it: {len(self.layouts)} figures checked "
                f"(every colouring at every level)"] if self.layouts else []
        out += [f"  redraw {name}: {s:.2f} s" for name, s in self.redraws.items()]
        out += [f"  after reload, {name}: {s:.1f} s" for name, s in self.reload_stages.items()]
        if self.reload_messages:
            out.append(f"  reload received {self.reload_bytes / 1e3:.0f} kB over the kernel's "
                       f"websocket: {dict(self.reload_messages)}")
        if self.reload_busy:
            out.append(f"  reload: main thread blocked {sum(s for _, s in self.reload_busy):.1f} s "
                       "before the widget's figure, in tasks of >50 ms starting at (s, length): "
                       + ", ".join(f"{t:.1f}+{s:.2f}" for t, s in self.reload_busy))
        if self.reload_cpu:
            out.append("  reload main-thread time by script: " + ", ".join(
                f"{name} {s:.1f} s" for name, s in self.reload_cpu.items()))
        out += [f"  screenshot {s}" for s in self.shots]
        out.append("  " + ("ok" if not self.problems else "FAIL: " + "; ".join(self.problems)))
        return out


def legend_layout(fig) -> dict:
    """Where an explorer figure's key sits: is there a legend or colour bar beside the map,
    and does it overlap the map or the box around its points? Measured in display pixels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax_map = next(ax for ax in fig.axes if ax.get_title().startswith("UMAP"))
    offsets = np.concatenate([c.get_offsets() for c in ax_map.collections])     # (N, 2)
    corners = ax_map.transData.transform(offsets)
    points = Bbox([corners.min(0), corners.max(0)])
    keys = [ax.get_legend().get_window_extent(renderer) for ax in fig.axes
            if ax is not ax_map and ax.get_legend() is not None]
    keys += [child.get_window_extent(renderer) for ax in fig.axes for child in ax.child_axes]
    return {"title": ax_map.get_title().split("\n")[-1],
            "legend": len(keys) > 0,
            "over map": any(box.overlaps(ax_map.get_window_extent(renderer)) for box in keys),
            "over points": any(box.overlaps(points) for box in keys),
            "map legend": ax_map.get_legend() is not None}


def explorer_layouts(explorer) -> list[dict]:
    """legend_layout of the widget's figure for every colouring at every level."""
    import matplotlib.pyplot as plt

    found = []
    for level in range(1, explorer.n_levels + 1):
        for colour in explorer.COLOURS:
            try:
                fig = explorer.figure(level, colour)
            except ValueError:                       # a colouring the explorer was not given
                continue
            found.append({"level": level, **legend_layout(fig)})
            plt.close(fig)
    return found


# Appended to the notebook's copy: measures, in the live kernel, the figures its explorer draws.
LAYOUT_CELL = f"""import json, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from check_explorer import explorer_layouts
from course_lib.viz import CodebookExplorer
print("EXPLORER-LAYOUT " + json.dumps([explorer_layouts(value) for value in list(globals().values())
                                      if isinstance(value, CodebookExplorer)]))"""


def layout_problems(layouts: list[dict]) -> list[str]:
    """What is unreadable in explorer_layouts' answer."""
    problems = []
    for found in layouts:
        where = f"level {found['level']}, {found['title']}"
        if not found["legend"]:
            problems.append(f"{where}: no legend or colour bar")
        if found["over map"] or found["over points"] or found["map legend"]:
            problems.append(f"{where}: the legend covers the map")
    return problems


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int) -> subprocess.Popen:
    """JupyterLab serving `folder` on localhost without a token; news and workspaces kept in
    `folder` so nothing of the user's set-up is read or changed."""
    settings = folder / ".lab" / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(folder / ".lab" / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".lab" / "workspaces")}
    env.pop("MPLBACKEND", None)                         # the kernel draws inline, as in `make lab`
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
               f"--port={port}", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=",
               "--ServerApp.password=", f"--ServerApp.root_dir={folder}",
               "--ServerApp.disable_check_xsrf=True"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    lab = subprocess.Popen(command, env=env, cwd=folder, stdout=subprocess.DEVNULL,
                           stderr=open(folder / "lab.log", "wb"))
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
            return lab
        except OSError:
            time.sleep(0.5)
    lab.terminate()
    raise RuntimeError(f"JupyterLab did not start in 120 s; see {folder / 'lab.log'}")


def open_browser():
    """Headless Chromium at 1600x1200 (the size issue 30 was measured at), fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = check_book.find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--user-data-dir={tempfile.mkdtemp(prefix='explorer-chrome-')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_script_timeout(RUN_TIMEOUT)
    return chrome


def wait_for(chrome, script: str, timeout: float, *args, poll: float = 0.05):
    """Poll `script` until it returns something truthy; that value (TimeoutError after)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = chrome.execute_script(script, *args)
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"nothing after {timeout:.0f} s: {script[:80]!r}")


def kernel_ready(port: int, timeout: float = 120) -> None:
    """Wait until the server runs a kernel for the notebook and it is idle."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernels", timeout=5) as r:
            kernels = json.load(r)
        if kernels and all(k["execution_state"] == "idle" for k in kernels):
            time.sleep(2)                           # the page connects to it
            return
        time.sleep(0.5)
    raise RuntimeError(f"no idle kernel after {timeout:.0f} s")


def run_all_cells(chrome) -> float:
    """Run every cell through JupyterLab's menu; seconds until the kernel is idle again."""
    from selenium.webdriver.common.by import By

    start = time.perf_counter()
    next(item for item in chrome.find_elements(By.CSS_SELECTOR, "li.lm-MenuBar-item")
         if item.text == "Run").click()
    wait_for(chrome, "return document.querySelector(\"li[data-command='runmenu:run-all']\")",
             10).click()
    queued = "return Array.from(document.querySelectorAll('.jp-InputArea-prompt'))" \
             ".some(p => p.textContent.includes('*'))"
    wait_for(chrome, queued, 30)
    wait_for(chrome, queued.replace("return ", "return !"), RUN_TIMEOUT, poll=1)
    return time.perf_counter() - start


def redraw(chrome, name: str, act, report: Report, shots: Path | None, prefix: str) -> None:
    """Do `act` on the widget and time it until its new figure is on screen."""
    before = chrome.execute_script(APP_STATE, WIDGET)
    act()
    try:
        done = chrome.execute_async_script(FIGURE_CHANGED, WIDGET, before["figure"])
        report.redraws[name] = (done - before["now"]) / 1e3
    except Exception as err:                                     # noqa: BLE001 (a report)
        report.problems.append(f"{name}: no new figure ({type(err).__name__})")
        return
    if shots is not None:
        report.shots.append(str(shot(chrome, WIDGET, shots / f"{prefix}{name}.png")))


def shot(chrome, selector: str, target: Path, index: int = 0) -> Path:
    """Screenshot of one element, scrolled into view."""
    from selenium.webdriver.common.by import By

    element = chrome.find_elements(By.CSS_SELECTOR, selector)[index]
    chrome.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    time.sleep(0.3)
    target.parent.mkdir(parents=True, exist_ok=True)
    element.screenshot(str(target))
    return target


def cpu_by_script(profile: dict, top: int = 6) -> dict[str, float]:
    """Seconds of main-thread samples per script file (a CDP Profiler profile)."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    seconds = Counter()
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"]):
        frame = nodes[node_id]["callFrame"]
        name = frame["url"].rsplit("/", 1)[-1].split("?")[0] or frame["functionName"] or "(idle)"
        seconds[name] += delta / 1e6
    return {name: round(s, 2) for name, s in seconds.most_common(top)}


def save_notebook(chrome, timeout: float = 60) -> None:
    """Save through JupyterLab's File menu; wait until the tab shows no unsaved changes."""
    from selenium.webdriver.common.by import By

    next(item for item in chrome.find_elements(By.CSS_SELECTOR, "li.lm-MenuBar-item")
         if item.text == "File").click()
    wait_for(chrome, "return document.querySelector(\"li[data-command='docmanager:save']\")",
             10).click()
    wait_for(chrome, "return !document.querySelector('.lm-TabBar-tab.jp-mod-dirty')", timeout)


def reload_page(chrome, report: Report, timeout: float = 120) -> None:
    """Save, reload, and note when each stage shows, what the kernel sent until the widget's
    figure was back, and where the page's main thread spent its time."""
    save_notebook(chrome)             # as autosave would: a reload shows what is on disk
    script = chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
        "source": f"const WIDGET = {json.dumps(WIDGET)};\n" + TIMELINE})
    chrome.execute_cdp_cmd("Profiler.enable", {})
    chrome.execute_cdp_cmd("Profiler.setSamplingInterval", {"interval": 2000})
    chrome.execute_cdp_cmd("Profiler.start", {})
    chrome.refresh()
    try:
        timeline = wait_for(chrome, "const t = window.__timeline; return t && "
                            "'widget figure' in t.stages && t", timeout, poll=0.5)
    except TimeoutError:
        timeline = (chrome.execute_script("return window.__timeline")
                    or {"stages": {}, "messages": []})
        report.problems.append(f"after a reload, the widget's figure was not back in "
                               f"{timeout:.0f} s")
    profile = chrome.execute_cdp_cmd("Profiler.stop", {})["profile"]
    chrome.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", script)
    report.reload_cpu = cpu_by_script(profile)
    report.reload_stages = {name: round(t / 1e3, 2) for name, t in
                            sorted(timeline["stages"].items(), key=lambda kv: kv[1])}
    end = timeline["stages"].get("widget figure", float("inf"))
    until = [m for m in timeline["messages"] if m["t"] <= end]
    report.reload_messages = dict(Counter(
        m["type"] + (f" {m['method']}" if m["method"] else "") for m in until).most_common())
    report.reload_bytes = sum(m["size"] for m in until)
    report.reload_busy = [(round(start / 1e3, 2), round(length / 1e3, 2))
                          for start, length in timeline.get("busy", []) if start <= end]
    for m in until:                   # when the kernel's answers the widgets wait for came
        kind = m["type"] + (f" {m['method']}" if m["method"] else "")
        if kind in RESTORE_MESSAGES:
            report.reload_stages.setdefault(f"{kind} received", round(m["t"] / 1e3, 2))
    report.reload_stages = dict(sorted(report.reload_stages.items(), key=lambda kv: kv[1]))


def drive(notebook: Path, shots: Path | None = None, prefix: str = "", log=print) -> Report:
    """Run `notebook` in JupyterLab and work its explorer; the report."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    report = Report(notebook.name)
    folder = Path(tempfile.mkdtemp(prefix="explorer-lab-"))
    copy = nbformat.read(notebook, as_version=4)
    copy.cells.append(nbformat.v4.new_code_cell(LAYOUT_CELL))
    nbformat.write(copy, folder / notebook.name)
    lab = start_lab(folder, port := free_port())
    chrome = open_browser()
    try:
        chrome.get(f"http://127.0.0.1:{port}/lab/tree/{notebook.name}")
        wait_for(chrome, "return document.querySelector('.jp-NotebookPanel .jp-Cell')", 120)
        kernel_ready(port)
        report.run_seconds = run_all_cells(chrome)
        log(f"{notebook.name}: ran in {report.run_seconds:.0f} s")
        printed = chrome.execute_script(
            "return Array.from(document.querySelectorAll('.jp-OutputArea-output pre'))"
            ".map(p => p.textContent).filter(t => t.startsWith('EXPLORER-LAYOUT '))")
        report.layouts = [found for explorer in json.loads(printed[-1].split(" ", 1)[1])
                          for found in explorer] if printed else []
        report.problems += layout_problems(report.layouts) if printed else [
            "the layout cell printed nothing"]
        report.widgets_on_page = len(chrome.find_elements(By.CSS_SELECTOR, WIDGET))
        if report.widgets_on_page == 0:
            report.problems.append("no explorer widget on the page")
            return report
        wait_for(chrome, APP_STATE.replace("return {", "return app.querySelector("
                 "'.widget-output img') && {"), 60, WIDGET)
        cell = chrome.execute_script(
            "return arguments[0].closest('.jp-Cell')",
            chrome.find_element(By.CSS_SELECTOR, WIDGET))
        report.figures = chrome.execute_script(STATIC_FIGURES + "return figures.length;", cell)
        if report.figures:
            report.problems.append(f"the map is drawn twice: {report.figures} static figure(s) "
                                   "above the widget, which draws it again")
        if shots is not None:
            if report.figures:
                report.shots.append(str(shot(chrome, ".jp-OutputArea-output > img",
                                             shots / f"{prefix}static.png",
                                             _index_in_cell(chrome, cell))))
            report.shots.append(str(shot(chrome, WIDGET, shots / f"{prefix}code_level1.png")))

        def toggle(label):
            return lambda: chrome.find_element(
                By.XPATH, f"//div[contains(@class,'widget-vbox')]"
                          f"//button[normalize-space()='{label}']").click()

        def slider_right():
            handle = chrome.find_element(By.CSS_SELECTOR, f"{WIDGET} .noUi-handle")
            handle.send_keys(Keys.ARROW_RIGHT)

        def pick(index):
            return lambda: Select(chrome.find_element(By.CSS_SELECTOR, f"{WIDGET} select")
                                  ).select_by_index(index)

        for name, act in [("category", toggle("category")), ("popularity", toggle("popularity")),
                          ("code_level1_again", toggle("code")), ("code_level2", slider_right),
                          ("code_level3", slider_right), ("highlight_level3", pick(1))]:
            redraw(chrome, name, act, report, shots, prefix)
        reload_page(chrome, report)
        if shots is not None and "widget figure" in report.reload_stages:
            report.shots.append(str(shot(chrome, WIDGET, shots / f"{prefix}after_reload.png")))
        return report
    finally:
        shut_down(chrome, lab, folder)


def _index_in_cell(chrome, cell) -> int:
    """Index, among the page's figures, of the first static one in `cell`."""
    return chrome.execute_script(
        STATIC_FIGURES + "return Array.from(document.querySelectorAll("
        "'.jp-OutputArea-output > img')).indexOf(figures[0]);", cell)


def shut_down(chrome, lab, folder) -> None:
    """Close the browser, stop JupyterLab (killed if it has not ended in 20 s) and remove the
    server's folder."""
    chrome.quit()
    lab.terminate()
    try:
        lab.wait(timeout=20)
    except subprocess.TimeoutExpired:
        lab.kill()
    shutil.rmtree(folder, ignore_errors=True)


def command_line(drive, name: str, argv: list[str] | None, notebook_help: str,
                 notebook: Path | None = None, prefix: str = "") -> int:
    """The command line both browser checks share: drive(notebook, screenshots, prefix) ->
    a report with .lines() and .problems; exit 0 (no problems), 1 (problems) or 2 (could not
    run)."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.split("\n\n")[0])
    parser.add_argument("--notebook", type=Path, default=notebook, help=notebook_help)
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save screenshots of the explorer into DIR")
    parser.add_argument("--prefix", default=prefix, help="prefix of the screenshots' names")
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = drive(args.notebook, args.screenshots, args.prefix)
    except RuntimeError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=1))
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    return command_line(drive, "check-explorer", argv, notebook=LESSON,
                        notebook_help="the notebook whose explorer to drive (default: lesson 05)")


if __name__ == "__main__":
    sys.exit(main())
