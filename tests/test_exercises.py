"""Exercise notebooks run with every unfinished task raising NotImplementedError and
nothing else failing. (Solutions run under nbval, where every check must pass.)"""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
ALLOWED = {"NotImplementedError", "NotImplementedYet"}


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_stubs_raise_not_implemented_and_nothing_else_fails(path):
    nb = nbformat.read(path, as_version=4)
    n_stubs = sum(c.source.count("raise NotImplementedError()") for c in nb.cells
                  if c.cell_type == "code")
    assert n_stubs >= 3, "an exercise needs at least three tasks"
    NotebookClient(nb, timeout=600, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(i, o["ename"], o["evalue"]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o["output_type"] == "error"]
    unexpected = [e for e in errors if e[1] not in ALLOWED]
    assert not unexpected, f"cells failed with something other than NotImplementedError: {unexpected}"
    assert len(errors) >= n_stubs, "every unfinished task's check should say it is not implemented"
