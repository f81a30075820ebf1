"""Time every notebook (lessons and solutions) in the quick profile; print a Markdown table.

    python bench/notebooks.py [--runs 3] [--pattern '00_*'] [--folders notebooks] [--load 0,2]

Each notebook runs `--runs` times in a fresh kernel; the table shows the median and the
spread. CPU timings on a shared machine are noisy: compare medians, not single runs.

`--load 0,2` times each notebook twice over: on the machine as it is (0) and with two CPU
burners (busy-loop processes) running beside it, the way a learner's laptop with a browser
open or a CI runner shared with other jobs is loaded. The table gets one column per load and
the slowdown against the first, so a regression that only shows on a busy machine (torch
starting as many threads as cores while the cores are taken) shows here too.

Each lesson promises its run time in its opening **Time:** line ("the code runs in about a
minute and a half on a 2-core CPU"). That promise is the lesson's budget: the table shows it and
whether the idle median keeps it ("about X" allows X + 25%, "under X" allows X) and whether
every loaded median stays within 3x the idle one. A notebook that states no run time (the
exercises) has the course's default: about a minute. The burners
start before a notebook's runs and stop after them, also on an error or Ctrl-C; each one
also exits by itself when this script dies, since it stops once its parent is gone.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]

# A busy loop that checks every few milliseconds whether its parent (this script) is alive:
# once the parent is gone, getppid() names another process and the loop ends.
BURNER = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


@contextlib.contextmanager
def cpu_load(n: int):
    """Run `n` busy-loop processes for the duration of the block; stop them however it ends."""
    if n < 0:
        raise ValueError(f"the load is a number of burner processes >= 0, got {n}")
    burners = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(n)]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


# The spoken amounts the Time lines use, in seconds.
AMOUNTS = {"a minute": 60, "a minute and a half": 90, "two minutes": 120,
           "two and a half minutes": 150, "three minutes": 180}
SLACK = {"about": 1.25, "under": 1.0, "well under": 1.0}
LOADED_SLOWDOWN = 3.0         # a loaded machine may be at most this much slower than an idle one


def budget(path: Path) -> tuple[str, float]:
    """The run time `path` promises, as (its words, the seconds allowed): from its **Time:** line
    ("the code runs in about ... on a ..."), else the course's default, about a minute (the
    exercises state reading time only)."""
    nb = nbformat.read(path, as_version=4)
    text = " ".join(" ".join(cell.source.split()) for cell in nb.cells if cell.cell_type == "markdown")
    found = re.search(r"runs in (about|well under|under) (.+?) on a", text)
    if found is None:
        return "about a minute (default)", AMOUNTS["a minute"] * SLACK["about"]
    how, amount = found.groups()
    number = re.fullmatch(r"(\d+) (s|seconds|minutes)", amount)
    if number:
        seconds = int(number[1]) * (60 if number[2] == "minutes" else 1)
    elif amount in AMOUNTS:
        seconds = AMOUNTS[amount]
    else:
        raise ValueError(f"{path.name}: cannot read the run time {amount!r}; write it as '90 seconds', "
                         f"'20 s' or one of {sorted(AMOUNTS)}")
    return f"{how} {amount}", seconds * SLACK[how]


def run_once(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1800, resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def load_name(n: int) -> str:
    return "idle" if n == 0 else f"{n} burner{'s' * (n > 1)}"


def parse_loads(text: str) -> list[int]:
    try:
        loads = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--load takes burner counts separated by commas, e.g. 0,2; got {text!r}") from None
    if any(n < 0 for n in loads):
        raise argparse.ArgumentTypeError(f"burner counts must be >= 0, got {text!r}")
    return loads


def main() -> None:
    parser = argparse.ArgumentParser(description="time the notebooks in the quick profile")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pattern", default="*")
    parser.add_argument("--folders", default="notebooks,solutions",
                        help="which folders' notebooks to time, comma-separated")
    parser.add_argument("--load", type=parse_loads, default=[0], metavar="N[,N...]",
                        help="CPU burner processes running beside the notebook while it is "
                             "timed, one table column per count (e.g. 0,2: idle and loaded)")
    args = parser.parse_args()
    os.environ.setdefault("COURSE_PROFILE", "quick")
    shared = ROOT.parent / "shared" / "datasets"
    if "COURSE_DATA_DIR" not in os.environ and (shared / "ml-latest-small").is_dir():
        os.environ["COURSE_DATA_DIR"] = str(shared)
    paths = sorted(p for folder in args.folders.split(",")
                   for p in (ROOT / folder.strip()).glob(f"{args.pattern}.ipynb"))
    if not paths:
        parser.error(f"no notebook matches {args.pattern!r} in {args.folders!r}")
    loads = args.load
    print(f"profile {os.environ['COURSE_PROFILE']}, {os.cpu_count()} CPUs, {args.runs} runs each; "
          f"load: {', '.join(load_name(n) for n in loads)} (a burner is a busy-loop process "
          f"started before a notebook's runs and stopped after them)\n")
    header = ["notebook"] + [f"{load_name(n)}: median (min–max) s" for n in loads]
    header += [f"{load_name(n)} / {load_name(loads[0])}" for n in loads[1:]]
    header += ["stated run time", "kept"]
    print("| " + " | ".join(header) + " |")
    print("|---" + "|---:" * (len(header) - 1) + "|")
    for path in paths:
        medians, cells = [], []
        for n in loads:
            with cpu_load(n):
                times = [run_once(path) for _ in range(args.runs)]
            medians.append(statistics.median(times))
            cells.append(f"{medians[-1]:.1f} ({min(times):.1f}–{max(times):.1f})")
        cells += [f"{m / medians[0]:.1f}×" for m in medians[1:]]
        stated = budget(path)
        kept = (all(m <= LOADED_SLOWDOWN * medians[0] for m in medians[1:])
                and (loads[0] != 0 or medians[0] <= stated[1]))
        cells += [stated[0], "yes" if kept else "**no**"]
        print(f"| {path.parent.name}/{path.name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
