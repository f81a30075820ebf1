"""Open every page of the HTML book in headless Chromium, network off (`make check-book`).

A page passes when it names nothing to fetch from the network, the browser logs no error
(console severity SEVERE: a failed script or font, a JavaScript exception, a blocked
request), MathJax has typeset every formula (each one laid out with a width, none a TeX
error, no `$...$`, `\\(`, `\\[` left as plain text in a markdown cell), and no widget area is
left empty. Needs Debian's `chromium` and `chromium-driver` (apt-get install -y chromium
chromium-driver) and selenium from PyPI.

    python tools/check_book.py build/html
    python tools/check_book.py build/html --screenshots /tmp/shots --pages 00,05
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from selenium.common.exceptions import TimeoutException

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1280, 1000)
SCRIPT_TIMEOUT = 120                  # seconds MathJax may take to typeset one page

# Resolved once MathJax has typeset the page: a summary of what a reader sees.
INSPECT_PAGE = r"""
const done = arguments[arguments.length - 1];
function inspect() {
  const formulas = Array.from(document.querySelectorAll('mjx-container'));
  const raw = [];             // markdown text outside code and typeset math
  document.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown').forEach(cell => {
    const text = cell.cloneNode(true);
    text.querySelectorAll('code, pre, script, mjx-container').forEach(el => el.remove());
    const left = text.textContent.match(/\$[^$]+\$|\$\$|\\\(|\\\[/);
    if (left) raw.push(left[0].slice(0, 80));
  });
  done({
    mathjax: window.MathJax && MathJax.version || null,
    formulas: formulas.length,
    unlaid: formulas.filter(el => el.getBoundingClientRect().width < 1).length,
    errors: document.querySelectorAll('[data-mml-node="merror"], mjx-merror').length,
    raw: raw,
    empty_widgets: Array.from(document.querySelectorAll('.jupyter-widgets'))
      .filter(el => el.getBoundingClientRect().height < 1).length,
    notes: document.querySelectorAll('.course-widget-note').length,
  });
}
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(inspect, error => done({failed: String(error)}));
} else {
  inspect();
}
"""


# What a page may not load from elsewhere: a script, style, image or frame by URL, a CSS
# url(), a module import, or anything from the usual CDNs (links to read, <a href>, are fine).
EXTERNAL = re.compile(
    r"<(?:script|link|img|iframe|source|embed|video|audio)\b[^>]*?\b(?:src|href)\s*=\s*"
    r"[\"']?((?:https?:)?//[^\"'\s>]+)"
    r"|url\(\s*[\"']?((?:https?:)?//[^\"')]+)"
    r"|import\(\s*[\"']((?:https?:)?//[^\"']+)"
    r"|((?:https?:)?//(?:cdnjs\.cloudflare\.com|cdn\.jsdelivr\.net|unpkg\.com)[^\"'\s<>]*)",
    flags=re.I)


def external_resources(page_html: str) -> list[str]:
    """The URLs a page would fetch from the network (empty for an offline page)."""
    return [next(url for url in match if url) for match in EXTERNAL.findall(page_html)]


@dataclass
class Report:
    """What one page showed in the browser, and what is wrong with it."""
    page: str
    seconds: float = 0.0
    mathjax: str | None = None
    formulas: int = 0
    notes: int = 0
    problems: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def line(self) -> str:
        verdict = "ok" if not self.problems else "FAIL: " + "; ".join(self.problems)
        return (f"{self.page}: {self.formulas} formulas (MathJax {self.mathjax or '-'}), "
                f"{self.notes} widget notes, {self.seconds:.1f} s: {verdict}")


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) on PATH, or a RuntimeError that says how to install them."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise RuntimeError("headless Chromium and its driver are not installed: "
                           "apt-get install -y chromium chromium-driver (Debian/Ubuntu)")
    return browser, driver


def open_browser(local_server: bool = False):
    """Headless Chromium that can reach nothing but local files and, with `local_server`, a
    server at 127.0.0.1 (JupyterLab in tests/test_lab.py). Every browser starts from a fresh
    profile and asks nothing of the network by itself (no updates, no first-run pages)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_browser()
    profile = tempfile.TemporaryDirectory(prefix="course-chromium-", ignore_cleanup_errors=True)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", f"--user-data-dir={profile.name}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                # No host name resolves (and, for the book, the network is off below).
                "--host-resolver-rules=MAP * ~NOTFOUND"
                + (", EXCLUDE 127.0.0.1" if local_server else "")):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.profile_dir = profile                # removed once the browser object is gone
    if not local_server:                        # offline also cuts 127.0.0.1
        chrome.set_network_conditions(offline=True, latency=0, download_throughput=0,
                                      upload_throughput=0)
    chrome.set_script_timeout(SCRIPT_TIMEOUT)
    return chrome


def check_page(chrome, page: Path, shots_dir: Path | None = None) -> Report:
    """Load `page` from disk and report what is wrong with it; screenshots into shots_dir."""
    report = Report(page.name)
    report.problems += [f"loads {url} from the network"
                        for url in external_resources(page.read_text(encoding="utf-8"))]
    start = time.perf_counter()
    chrome.get_log("browser")                          # drop what earlier pages logged
    chrome.get(page.resolve().as_uri())
    try:
        seen = chrome.execute_async_script(INSPECT_PAGE)
    except TimeoutException:
        seen = {"failed": f"did not finish typesetting in {SCRIPT_TIMEOUT} s"}
    report.seconds = time.perf_counter() - start
    report.problems += [f"console error: {entry['message'][:200]}"
                        for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]
    if "failed" in seen:
        report.problems.append(f"MathJax failed: {seen['failed']}")
        return report
    report.mathjax, report.formulas, report.notes = seen["mathjax"], seen["formulas"], seen["notes"]
    if seen["raw"]:
        report.problems.append(f"{len(seen['raw'])} markdown cells show raw TeX, "
                               f"first: {seen['raw'][0]!r}")
    if seen["unlaid"]:
        report.problems.append(f"{seen['unlaid']} formulas typeset with zero width")
    if seen["errors"]:
        report.problems.append(f"{seen['errors']} formulas show a TeX error")
    if seen["empty_widgets"]:
        report.problems.append(f"{seen['empty_widgets']} widget areas are empty (0 px)")
    if shots_dir is not None:
        report.shots = screenshots(chrome, page, shots_dir)
    return report


def screenshots(chrome, page: Path, shots_dir: Path) -> list[Path]:
    """The top of the page, then its first displayed formula and first widget note if any."""
    shots_dir.mkdir(parents=True, exist_ok=True)
    taken = []
    views = [("top", None), ("formula", 'mjx-container[display="true"]'),
             ("widget", ".course-widget-note")]
    for view, selector in views:
        if selector is None:
            chrome.execute_script("window.scrollTo(0, 0);")
        elif not chrome.execute_script(
                "const el = document.querySelector(arguments[0]);"
                "if (el) el.scrollIntoView({block: 'center'}); return !!el;", selector):
            continue
        target = shots_dir / f"{page.stem}.{view}.png"
        chrome.save_screenshot(str(target))
        taken.append(target)
    return taken


def pages_of(book: Path) -> list[Path]:
    pages = sorted(book.glob("*.html"))
    if not pages:
        raise FileNotFoundError(f"no HTML pages in {book}; build the book first: make course")
    return pages


def check_book(book: Path, shots_dir: Path | None = None, shot_pages: list[str] | None = None,
               log=print) -> list[Report]:
    """Check every page of `book`; screenshots of the pages whose names start with one of
    `shot_pages` (all pages when it is None) go to shots_dir."""
    chrome = open_browser()
    try:
        reports = []
        for page in pages_of(book):
            wanted = shots_dir is not None and (
                shot_pages is None or any(page.name.startswith(p) for p in shot_pages))
            report = check_page(chrome, page, shots_dir if wanted else None)
            log(report.line())
            for shot in report.shots:
                log(f"  screenshot {shot}")
            reports.append(report)
        return reports
    finally:
        chrome.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("book", nargs="?", type=Path, default=ROOT / "build" / "html",
                        help="the book's folder (default: build/html)")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save screenshots of the pages into DIR")
    parser.add_argument("--pages", metavar="PREFIXES",
                        help="comma-separated page-name prefixes to screenshot, e.g. 00,05 "
                             "(default: every page)")
    args = parser.parse_args(argv)
    shot_pages = [p.strip() for p in args.pages.split(",")] if args.pages else None
    try:
        reports = check_book(args.book, args.screenshots, shot_pages)
    except (RuntimeError, FileNotFoundError) as err:
        print(f"check-book: {err}", file=sys.stderr)
        return 2
    failed = [r.page for r in reports if r.problems]
    print(f"{len(reports)} pages checked offline, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
