"""Time every notebook (lessons and solutions) in the quick profile; print a Markdown table.

    python bench/notebooks.py [--runs 3] [--pattern '00_*']

Each notebook runs `--runs` times in a fresh kernel; the table shows the median and the
spread. CPU timings on a shared machine are noisy: compare medians, not single runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run_once(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1800, resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="time the notebooks in the quick profile")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pattern", default="*")
    args = parser.parse_args()
    os.environ.setdefault("COURSE_PROFILE", "quick")
    shared = ROOT.parent / "shared" / "datasets"
    if "COURSE_DATA_DIR" not in os.environ and (shared / "ml-latest-small").is_dir():
        os.environ["COURSE_DATA_DIR"] = str(shared)
    paths = sorted(p for folder in ("notebooks", "solutions")
                   for p in (ROOT / folder).glob(f"{args.pattern}.ipynb"))
    print(f"profile {os.environ['COURSE_PROFILE']}, {os.cpu_count()} CPUs, {args.runs} runs each\n")
    print("| notebook | median (s) | min (s) | max (s) |")
    print("|---|---:|---:|---:|")
    for path in paths:
        times = [run_once(path) for _ in range(args.runs)]
        print(f"| {path.parent.name}/{path.name} | {statistics.median(times):.1f} | "
              f"{min(times):.1f} | {max(times):.1f} |", flush=True)


if __name__ == "__main__":
    main()
