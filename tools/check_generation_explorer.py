"""Drive the beam-search explorer in JupyterLab in headless Chromium: work every control, time
every redraw, point at things, check that it reads at a glance, screenshot it.

Starts JupyterLab on a notebook that shows a `BeamExplorer` (by default a demo: the quick
profile's world, RQ-KMeans IDs and a TIGER trained as lesson 06 trains it), runs every cell,
then works the explorer as a learner would: the beam width, k, free decoding, the cold cap,
every temperature, the position slider, a random user, a user typed into the search box and an
edited history. It reports
* how long every redraw took, from the change to the new view on screen (the kernel's search
  and drawing, the message and the browser's layout);
* what pointing does: a prefix shows its tip and its items on the map, a list row rings its
  item on the map and its path in the tree, an item on the map lights its row;
* readability: overlapping texts in the tree and on the map, the smallest text on screen,
  overlapping markers, and whether the markers' colours are told apart (CIE76 distance);
* the browser's console errors.
It shares JupyterLab's and Chromium's set-up with tools/check_explorer.py (the codebook
explorer's check).

    python tools/check_generation_explorer.py --screenshots /tmp/shots
    python tools/check_generation_explorer.py --notebook notebooks/zz_copy.ipynb --json r.json
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_explorer  # noqa: E402  (JupyterLab, Chromium and the waits, shared)
from check_explorer import free_port, kernel_ready, open_browser, run_all_cells, start_lab, \
    wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ".beam-explorer"
VIEW = APP + " .bx"
WINDOW = (1600, 2000)        # tall enough to screenshot the whole app at once
BUDGET = 0.3                 # seconds a redraw may take (issue 29), on a 2-core CPU
MIN_TEXT_PX = 9.0            # the smallest text a learner should have to read
MIN_COLOUR_DISTANCE = 25.0   # CIE76 between two markers' colours: clearly different

DEMO = """\
import numpy as np
from course_lib import get_profile, seed_everything
from course_lib.data.datasets import load_dataset, standardise
from course_lib.data.sequences import next_item_examples
from course_lib.models.baselines import Popularity
from course_lib.models.tiger import TIGER, TIGERConfig
from course_lib.quantize.kmeans import rq_kmeans
from course_lib.quantize.residual import residual_quantize
from course_lib.quantize.semantic_ids import SemanticIds
from course_lib.train import constant_then_inverse_sqrt, fit
from course_lib.viz import BeamExplorer, umap_embedding

profile = get_profile()
seed_everything(0)
data = load_dataset("world")
test = data.split.evaluation("test")
unseen = Popularity(data.split.train, data.n_items).counts == 0
unseen[0] = False
x = standardise(data.content[1:])
K = 2 ** round(np.log2(data.n_items) / 2 + 0.5)
codebooks = rq_kmeans(x[~unseen[1:]], n_levels=3, codebook_size=K, seed=0).codebooks
codes = residual_quantize(x, codebooks).codes
semantic_ids = SemanticIds.from_codes(codes, [K] * 3)
config = TIGERConfig(**profile.tiger)
tiger = TIGER(semantic_ids, config)
fit(tiger, lambda epoch: next_item_examples(data.split.train, config.max_items, 256, seed=epoch),
    steps=profile.tiger_steps, lr=1e-2, optimizer="adamw", schedule=constant_then_inverse_sqrt(10),
    progress=False)
explorer = BeamExplorer(tiger.eval(), test, umap_embedding(data.content[1:], seed=0),
                        labels=data.items, cold_items=unseen, title="the world's items")
explorer.show()"""


def demo_notebook() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(DEMO)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


# Resolves when the view's data-drawn differs from `before` and a frame has been painted.
VIEW_CHANGED = r"""
const [selector, before, done] = arguments;
function look() {
  const view = document.querySelector(selector);
  const now = view && view.getAttribute('data-drawn');
  if (now && now !== before) requestAnimationFrame(() => done(performance.now()));
  else requestAnimationFrame(look);
}
look();
"""

# Installed before JupyterLab loads: the time every kernel message with a comm update arrives,
# so a redraw splits into the round trip to the kernel and the page's own work after it.
MESSAGES = r"""
window.__beamMessages = [];
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const ws = new Native(...args);
  ws.addEventListener('message', event => {
    const size = typeof event.data === 'string' ? event.data.length : event.data.byteLength;
    if (size > 2000) window.__beamMessages.push([performance.now(), size]);
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
window.__beamActions = [];             // when the page got a key, click or typed text
for (const kind of ['keydown', 'mousedown', 'input'])
  document.addEventListener(kind, () => window.__beamActions.push(performance.now()), true);
"""

VIEW_STATE = r"""
const view = document.querySelector(arguments[0]);
return view && {now: performance.now(), drawn: view.getAttribute('data-drawn'),
                text: view.querySelector('.bx-note') && view.querySelector('.bx-note').textContent};
"""

# What a learner must be able to read: texts that overlap, the smallest text, markers that
# overlap. Measured on screen (client rectangles), tips (hidden until pointed at) left out.
READABILITY = r"""
const root = document.querySelector(arguments[0]);
const visible = el => getComputedStyle(el).visibility !== 'hidden' && !el.closest('.tip, .reg')
    && el.getBoundingClientRect().width > 0;
const texts = Array.from(root.querySelectorAll('svg text')).filter(visible);
const boxes = texts.map(t => t.getBoundingClientRect());
const overlaps = [];
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i], b = boxes[j];
  const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
  const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
  if (w > 1 && h > 1) overlaps.push([texts[i].textContent, texts[j].textContent]);
}
const size = el => {
  const svg = el.ownerSVGElement;
  const scale = svg ? svg.getBoundingClientRect().width / svg.viewBox.baseVal.width : 1;
  return parseFloat(getComputedStyle(el).fontSize) * scale;
};
const html = Array.from(root.querySelectorAll('td, th, .bx-note, .key, .hc'));
const sizes = texts.map(size).concat(html.map(el => parseFloat(getComputedStyle(el).fontSize)));
const marks = Array.from(root.querySelectorAll('.mk circle')).map(c => c.getBoundingClientRect());
let touching = 0;
for (let i = 0; i < marks.length; i++) for (let j = i + 1; j < marks.length; j++) {
  const a = marks[i], b = marks[j];
  const dx = (a.left + a.right - b.left - b.right) / 2;
  const dy = (a.top + a.bottom - b.top - b.bottom) / 2;
  if (Math.hypot(dx, dy) < 0.8 * (a.width + b.width) / 2) touching++;
}
const tree = root.querySelector('.bx-tree').getBoundingClientRect();
const map = root.querySelector('.bx-map').getBoundingClientRect();
return {width: root.getBoundingClientRect().width, texts: texts.length,
        overlaps: overlaps.slice(0, 10), n_overlaps: overlaps.length,
        smallest_px: Math.min(...sizes), markers: marks.length, overlapping_markers: touching,
        tree: [tree.width, tree.height], map: [map.width, map.height],
        side_by_side: map.left >= tree.right - 1};
"""

# Which things light up while the mouse rests on one: computed styles of the linked elements.
LINKED = r"""
const [root, tip, region, row, marker, path] = arguments;
const q = s => s && document.querySelector(root + ' ' + s);
const style = (s, prop) => q(s) ? getComputedStyle(q(s))[prop] : null;
return {tip: style(tip, 'visibility'), region: style(region, 'visibility'),
        row: style(row, 'backgroundColor'), marker: style(marker, 'stroke'),
        path: style(path, 'stroke')};
"""


# Appended to the notebook and run again at the end: the explorer's own redraw times.
KERNEL_TIMES = """import json
from course_lib.viz import BeamExplorer
print("BEAM-REDRAWS " + json.dumps([value.redraw_seconds for value in list(globals().values())
                                    if isinstance(value, BeamExplorer)]))"""


@dataclass
class Report:
    """What one drive of the beam explorer measured."""
    notebook: str
    run_seconds: float = 0.0
    apps: int = 0
    redraws: dict[str, float] = field(default_factory=dict)       # control -> seconds, from
                                                                   # the key or click in the page
    driven: dict[str, float] = field(default_factory=dict)        # the same, with the driver's
                                                                   # own time to send it
    page_seconds: dict[str, float] = field(default_factory=dict)  # from the view's message on
    kernel_seconds: list[float] = field(default_factory=list)      # the same redraws, in Python
    redraw_cpu: dict[str, float] = field(default_factory=dict)     # page main thread, by script
    hovers: dict[str, dict] = field(default_factory=dict)         # what lit up, per pointing
    readability: list[dict] = field(default_factory=list)         # per screenshot
    colours: dict[str, float] = field(default_factory=dict)       # smallest distances
    console: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    shots: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.notebook}: all cells ran in {self.run_seconds:.1f} s; {self.apps} beam "
               "explorer(s) on the page"]
        out += [f"  redraw {name}: {s:.3f} s" for name, s in self.redraws.items()]
        if self.redraws:
            values = sorted(self.redraws.values())
            out.append(f"  redraws: median {values[len(values) // 2]:.3f} s, max "
                       f"{values[-1]:.3f} s (budget {BUDGET} s; over it: "
                       f"{sum(v > BUDGET for v in values)} of {len(values)})")
        if self.driven:
            driven = sorted(self.driven.values())
            out.append(f"  the same with selenium's time to send the key or click: median "
                       f"{driven[len(driven) // 2]:.3f} s, max {driven[-1]:.3f} s")
        if self.page_seconds:
            page = sorted(self.page_seconds.values())
            out.append(f"  of which in the page (from the new view's message to the screen): "
                       f"median {page[len(page) // 2]:.3f} s, max {page[-1]:.3f} s")
        if self.kernel_seconds:
            kernel = sorted(self.kernel_seconds)
            out.append(f"  of which in the kernel (search and HTML): median "
                       f"{kernel[len(kernel) // 2]:.3f} s, max {kernel[-1]:.3f} s")
        if self.redraw_cpu:
            out.append("  page main thread during 6 redraws, by script: " + ", ".join(
                f"{name} {s:.2f} s" for name, s in self.redraw_cpu.items()))
        out += [f"  pointing at {name}: {found}" for name, found in self.hovers.items()]
        if self.readability:
            worst = max(self.readability, key=lambda r: r["n_overlaps"])
            out.append(f"  readability: {len(self.readability)} views, at most "
                       f"{worst['n_overlaps']} overlapping texts, smallest text "
                       f"{min(r['smallest_px'] for r in self.readability):.1f} px, at most "
                       f"{max(r['overlapping_markers'] for r in self.readability)} overlapping "
                       f"markers; tree and map side by side: "
                       f"{all(r['side_by_side'] for r in self.readability)}")
        if self.colours:
            pair, distance = min(self.colours.items(), key=lambda kv: kv[1])
            out.append(f"  closest marker colours: {pair} at CIE76 {distance:.0f}")
        out.append(f"  console errors: {len(self.console)}")
        out += [f"    {line}" for line in self.console[:5]]
        out += [f"  screenshot {s}" for s in self.shots]
        out.append("  " + ("ok" if not self.problems else "FAIL: " + "; ".join(self.problems)))
        return out


def colour_distances() -> dict[str, float]:
    """CIE76 distance between every two marker colours of the explorer (sRGB -> Lab, D65)."""
    from matplotlib.colors import to_rgb

    from course_lib.viz.generation import COLOURS

    def lab(colour):
        rgb = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
        x = (0.4124 * rgb[0] + 0.3576 * rgb[1] + 0.1805 * rgb[2]) / 0.95047
        y = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
        z = (0.0193 * rgb[0] + 0.1192 * rgb[1] + 0.9505 * rgb[2]) / 1.08883
        f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
        return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])

    markers = ["listed", "cold", "target", "history", "region", "hover"]
    found = {}
    for i, a in enumerate(markers):
        for b in markers[i + 1:]:
            la, lb = lab(COLOURS[a]), lab(COLOURS[b])
            found[f"{a}/{b}"] = round(sum((p - q) ** 2 for p, q in zip(la, lb)) ** 0.5, 1)
    return found


def _control(chrome, label: str):
    """The widget whose description reads `label`."""
    from selenium.webdriver.common.by import By

    for box in chrome.find_elements(By.CSS_SELECTOR, f"{APP} .widget-inline-hbox"):
        labels = box.find_elements(By.CSS_SELECTOR, ".widget-label")
        if labels and labels[0].text.strip() == label:
            return box
    raise RuntimeError(f"no control labelled {label!r} in the beam explorer")


def drive(notebook: Path | None = None, shots: Path | None = None, prefix: str = "beam_",
          log=print) -> Report:
    """Run `notebook` (default: the demo) in JupyterLab and work its beam explorer."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    folder = Path(tempfile.mkdtemp(prefix="beam-lab-"))
    name = notebook.name if notebook else "beam_explorer_demo.ipynb"
    report = Report(name)
    copy = nbformat.read(notebook, as_version=4) if notebook else demo_notebook()
    copy.cells.append(nbformat.v4.new_code_cell(KERNEL_TIMES))
    nbformat.write(copy, folder / name)
    lab = start_lab(folder, port := free_port())
    chrome = open_browser()
    chrome.set_window_size(*WINDOW)
    chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": MESSAGES})
    try:
        chrome.get(f"http://127.0.0.1:{port}/lab/tree/{name}")
        wait_for(chrome, "return document.querySelector('.jp-NotebookPanel .jp-Cell')", 120)
        kernel_ready(port)
        chrome.get_log("browser")                               # JupyterLab's start-up noise
        report.run_seconds = run_all_cells(chrome)
        log(f"{name}: ran in {report.run_seconds:.0f} s")
        report.apps = len(chrome.find_elements(By.CSS_SELECTOR, APP))
        if report.apps != 1:
            report.problems.append(f"expected one beam explorer on the page, found {report.apps}")
            return report
        wait_for(chrome, f"return document.querySelector('{VIEW}')", 60)
        report.colours = colour_distances()
        close = {pair: d for pair, d in report.colours.items() if d < MIN_COLOUR_DISTANCE}
        if close:
            report.problems.append(f"marker colours too alike: {close}")

        def rest() -> None:               # the mouse off the view: nothing is pointed at
            ActionChains(chrome).move_to_element(chrome.find_element(
                By.CSS_SELECTOR, f"{APP} .widget-button")).perform()

        def look(shot_name: str) -> None:
            rest()
            found = chrome.execute_script(READABILITY, VIEW)
            found["view"] = shot_name
            report.readability.append(found)
            if found["n_overlaps"]:
                report.problems.append(f"{shot_name}: {found['n_overlaps']} overlapping texts, "
                                       f"e.g. {found['overlaps'][:3]}")
            if found["smallest_px"] < MIN_TEXT_PX:
                report.problems.append(f"{shot_name}: text of {found['smallest_px']:.1f} px")
            if found["overlapping_markers"]:
                report.problems.append(f"{shot_name}: {found['overlapping_markers']} markers "
                                       "overlap on the map")
            if shots is not None:
                report.shots.append(str(check_explorer.shot(chrome, APP, shots /
                                                             f"{prefix}{shot_name}.png")))

        def timed(label: str, act, shot_name: str | None = None) -> None:
            before = chrome.execute_script(VIEW_STATE, VIEW)
            act()
            try:
                done = chrome.execute_async_script(VIEW_CHANGED, VIEW, before["drawn"])
                report.driven[label] = round((done - before["now"]) / 1e3, 3)
                acted = chrome.execute_script("return window.__beamActions.filter(t => "
                                              "t > arguments[0] && t < arguments[1]);",
                                              before["now"], done)
                start = acted[-1] if acted else before["now"]    # the last key of a typed value
                report.redraws[label] = round((done - start) / 1e3, 3)
                arrived = chrome.execute_script(
                    "return window.__beamMessages.filter(m => m[0] > arguments[0] && "
                    "m[0] < arguments[1]).map(m => m[0]);", before["now"], done)
                if arrived:               # the biggest message is the view; the last to come
                    report.page_seconds[label] = round((done - max(arrived)) / 1e3, 3)
            except Exception as err:                             # noqa: BLE001 (a report)
                report.problems.append(f"{label}: no new view ({type(err).__name__})")
                return
            if shot_name:
                look(shot_name)

        def key(label: str, keys: str):
            return lambda: _control(chrome, label).find_element(
                By.CSS_SELECTOR, ".noUi-handle").send_keys(keys)

        def button(text: str):
            return lambda: next(b for b in chrome.find_elements(By.CSS_SELECTOR, f"{APP} button")
                                if b.text.strip() == text).click()

        def typed(label: str, text: str):
            def act():
                field_ = _control(chrome, label).find_element(By.CSS_SELECTOR, "input")
                field_.send_keys(Keys.CONTROL, "a")
                field_.send_keys(text + Keys.ENTER)
            return act

        look("initial")
        taus = [el.text.strip() for el in chrome.find_elements(
            By.CSS_SELECTOR, f"{APP} .widget-label") if el.text.strip().startswith("\u03c4")]
        timed("beam W 20 -> 19", key("beam W", Keys.ARROW_LEFT))
        timed("k 10 -> 9", key("k", Keys.ARROW_LEFT))
        timed("free decoding", button("free"), "free")
        timed("constrained again", button("constrained"))
        timed("cold cap 1 -> 0.95", key("\u03b5 cold cap", Keys.ARROW_LEFT))
        for i, tau in enumerate(taus):
            timed(f"{tau} x 1.19", key(tau, Keys.ARROW_RIGHT), "tau_first" if i == 0 else None)
        timed("positions shown M -> M-1", key("show positions", Keys.ARROW_LEFT), "up_to_position")
        timed("positions shown back to M", key("show positions", Keys.ARROW_RIGHT))
        timed("random user", button("random user"), "random_user")
        users = chrome.execute_script(
            f"return Array.from(document.querySelectorAll('{APP} datalist option'))"
            ".map(o => o.value)")
        timed("user typed in the search box", typed("user", users[3]))
        current = chrome.execute_script(
            f"return document.querySelector('{APP} .widget-text input').value")
        timed("history edited", typed("history", (current + " " + current.split()[0]).strip()),
              "edited_history")
        timed("user typed again", typed("user", users[5]))

        def point(target_selector: str, what: dict, shot_name: str) -> None:
            found = chrome.find_elements(By.CSS_SELECTOR, f"{VIEW} {target_selector}")
            if not found:
                report.hovers[shot_name] = {}
                report.problems.append(f"{shot_name}: nothing to point at ({target_selector})")
                return
            element = found[0]
            app = chrome.find_element(By.CSS_SELECTOR, APP)
            chrome.execute_script("arguments[0].scrollIntoView({block: 'start'});", app)
            time.sleep(0.3)                       # scrolled first: the mouse stays where it points
            ActionChains(chrome).move_to_element(element).perform()
            time.sleep(0.3)
            found = chrome.execute_script(LINKED, VIEW, what.get("tip"), what.get("region"),
                                          what.get("row"), what.get("marker"), what.get("path"))
            report.hovers[shot_name] = {k: v for k, v in found.items() if v is not None}
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                app.screenshot(str(shots / f"{prefix}{shot_name}.png"))
                report.shots.append(str(shots / f"{prefix}{shot_name}.png"))

        listed = chrome.execute_script(
            f"return Array.from(document.querySelectorAll('{VIEW} .mk')).map(m => Array.from("
            "m.classList).find(c => c.startsWith('m-')).slice(2))")
        beam = listed[-1] if listed else "0"
        point(".node.n-1-0 > rect", {"tip": ".t-1-0", "region": ".g-1-0"}, "point_prefix")
        point(f".row.r-{beam}", {"marker": f".m-{beam} circle", "path": f".b-{beam} > rect"},
              "point_row")
        point(f".mk.m-{beam} circle", {"row": f".r-{beam}", "path": f".b-{beam} > rect"},
              "point_map")
        lit = {name: report.hovers.get(name, {}) for name in ("point_prefix", "point_row",
                                                               "point_map")}
        if {lit["point_prefix"].get("tip"), lit["point_prefix"].get("region")} != {"visible"}:
            report.problems.append(f"pointing at a prefix shows no tip or region: "
                                   f"{lit['point_prefix']}")
        orange = "rgb(255, 127, 0)"
        if lit["point_row"].get("marker") != orange or lit["point_row"].get("path") != orange:
            report.problems.append(f"pointing at a row lights nothing: {lit['point_row']}")
        if lit["point_map"].get("row") in (None, "rgba(0, 0, 0, 0)") or \
                lit["point_map"].get("path") != orange:
            report.problems.append(f"pointing at an item on the map lights nothing: "
                                   f"{lit['point_map']}")
        chrome.execute_cdp_cmd("Profiler.enable", {})
        chrome.execute_cdp_cmd("Profiler.setSamplingInterval", {"interval": 1000})
        chrome.execute_cdp_cmd("Profiler.start", {})
        for i in range(6):
            timed(f"profiled {i}", key("beam W", Keys.ARROW_LEFT if i % 2 else Keys.ARROW_RIGHT))
        profile = chrome.execute_cdp_cmd("Profiler.stop", {})["profile"]
        report.redraw_cpu = check_explorer.cpu_by_script(profile, top=8)
        report.kernel_seconds = _kernel_times(chrome)
        slow = {k: v for k, v in report.redraws.items() if v > BUDGET}
        if slow:
            log(f"redraws over {BUDGET} s: {slow}")
        report.console = [f"{e['level']} {e['message'][:200]}" for e in chrome.get_log("browser")
                          if e["level"] == "SEVERE"]
        if report.console:
            report.problems.append(f"{len(report.console)} console errors")
        return report
    finally:
        check_explorer.shut_down(chrome, lab, folder)


def _kernel_times(chrome) -> list[float]:
    """Run the appended cell again (the explorer's redraw times so far) and read its output."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cells = chrome.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")
    prompt = cells[-1].find_element(By.CSS_SELECTOR, ".jp-InputArea-prompt")
    chrome.execute_script("arguments[0].scrollIntoView({block: 'center'});", prompt)
    ActionChains(chrome).move_to_element(prompt).click().key_down(Keys.SHIFT).send_keys(
        Keys.ENTER).key_up(Keys.SHIFT).perform()
    script = ("const out = Array.from(document.querySelectorAll('.jp-OutputArea-output pre'))"
              ".map(p => p.textContent).filter(t => t.startsWith('BEAM-REDRAWS ')); "
              "return out.length && out[out.length - 1];")
    deadline = time.time() + 60
    while time.time() < deadline:
        text = chrome.execute_script(script)
        if text:
            found = json.loads(text.split(" ", 1)[1])
            if found and len(found[0]) > 1:
                return [round(s, 4) for s in found[0][1:]]      # the first draws the app
        time.sleep(0.5)
    return []


def main(argv: list[str] | None = None) -> int:
    return check_explorer.command_line(
        drive, "check-generation-explorer", argv, prefix="beam_",
        notebook_help="a notebook that shows one BeamExplorer (default: the demo)")


if __name__ == "__main__":
    sys.exit(main())
