"""Generate exercises/ from solutions/: the solution notebooks are the single source.

Code between `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markers, so a teacher
can use nbgrader instead) becomes a stub that raises NotImplementedError, at the marker's
indentation. Outputs are dropped. Run `python tools/make_exercises.py` after editing a
solution; `--check` exits 1 when the committed exercises differ from what it would write
(the test suite runs that check).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]


def stub_source(source: str) -> str:
    """The cell's source with every solution block replaced by the stub."""
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif marker == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without a matching {END}")
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    exercise = nbformat.from_dict(solution)
    for cell in exercise.cells:
        if cell.cell_type == "code":
            cell.source = stub_source(cell.source)
            cell.outputs, cell.execution_count = [], None
    return exercise


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def expected_exercises(root: Path = ROOT) -> dict[Path, str]:
    """exercise path -> the text the generator writes for it."""
    out = {}
    for path in sorted((root / "solutions").glob("*.ipynb")):
        solution = nbformat.read(path, as_version=4)
        out[root / "exercises" / path.name] = render(make_exercise(solution))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_exercises().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
                print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        print("out of date (run `make exercises`):", *[p.name for p in stale])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
