"""Generate exercises/ from solutions/: the solution notebooks are the single source.

Code between `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markers) becomes a stub
that raises NotImplementedError, at the marker's indentation: the stub nbgrader writes too.
Outputs are dropped.

The solutions also get nbgrader's cell metadata, so a teacher can release and autograde them
with nbgrader (docs/teachers.md): a cell with a solution block is an answer cell, the cell that
calls its `check_*` is an autograded test cell worth `POINTS` (a teacher's own `points` in that
cell's metadata are kept), and every other cell is locked. Grade ids come from the check's
name (`check_split_sequence`, answer `split_sequence`) or the cell id, so a re-release keeps
the grades.

Run `python tools/make_exercises.py` after editing a solution; `--check` exits 1 when the
committed solutions' metadata or exercises differ from what it would write (the test suite
runs that check).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
POINTS = 1                                          # per task, unless the cell says otherwise
CHECK_CALL = re.compile(r"\bcheck_(\w+)\(")           # a test cell calls exactly one check_*


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


def _grading(*, grade_id: str, solution: bool = False, grade: bool = False,
             points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution,
            "schema_version": 3, "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def annotate(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The solution notebook with nbgrader metadata on every cell (see the module docstring)."""
    notebook = nbformat.from_dict(solution)
    answer = None                                       # the answer cell still waiting for its check
    for cell in notebook.cells:
        old = cell.metadata.get("nbgrader", {})
        checks = CHECK_CALL.findall(cell.source) if cell.cell_type == "code" else []
        if cell.cell_type == "code" and BEGIN in cell.source:
            if answer is not None:
                raise ValueError(f"{name}: the solution in cell {answer.id} has no check cell "
                                 "after it; add one that calls its grading.check_* function")
            answer = cell
        elif len(checks) > 1:
            raise ValueError(f"{name}: cell {cell.id} calls {len(checks)} checks; give each "
                             "check its own cell so each task gets its own points")
        elif checks:
            if answer is None:
                raise ValueError(f"{name}: check_{checks[0]} in cell {cell.id} follows no "
                                 "solution cell")
            answer.metadata["nbgrader"] = _grading(grade_id=checks[0], solution=True)
            cell.metadata["nbgrader"] = _grading(grade_id=f"check_{checks[0]}", grade=True,
                                                 points=old.get("points", POINTS))
            answer = None
        else:
            cell.metadata["nbgrader"] = _grading(grade_id=f"cell-{cell.id}")
    if answer is not None:
        raise ValueError(f"{name}: the solution in cell {answer.id} has no check cell after it")
    return notebook


def make_exercise(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    exercise = nbformat.from_dict(solution)
    for cell in exercise.cells:
        if cell.cell_type == "code":
            cell.source = stub_source(cell.source)
            cell.outputs, cell.execution_count = [], None
    return exercise


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def expected_files(root: Path = ROOT) -> dict[Path, str]:
    """solution and exercise paths -> the text the generator writes for them."""
    out = {}
    for path in sorted((root / "solutions").glob("*.ipynb")):
        solution = annotate(nbformat.read(path, as_version=4), path.name)
        out[path] = render(solution)
        out[root / "exercises" / path.name] = render(make_exercise(solution))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
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
