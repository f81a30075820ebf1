"""The classroom path, end to end: nbgrader releases every exercise from `solutions/` and
autogrades two submissions per lesson, the solution itself (every task full marks) and the
untouched released stub (every task zero, and grading does not crash).

The autograded solution also runs every cell of the solution notebook, so this is where the
solution notebooks are executed by the test suite (a cell with an error fails the test).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

nbgrader_apps = pytest.importorskip("nbgrader.apps", reason="nbgrader is a dev dependency")
from nbgrader.api import Gradebook  # noqa: E402
from traitlets.config import Config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def assignment(solution: Path) -> str:
    return "lesson" + solution.name[:2]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course directory as a teacher sets it up (docs/teachers.md): every solution under
    source/lessonNN/, released with `generate_assignment`."""
    root = tmp_path_factory.mktemp("course")
    for solution in SOLUTIONS:
        folder = root / "source" / assignment(solution)
        folder.mkdir(parents=True)
        shutil.copy(solution, folder)
    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.course_id = "generative-recommendation"
    config.Execute.timeout = 900                  # per cell; some solutions train small models
    # nbgrader creates its gradebook with the `alembic` command: the one next to this Python.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    api = nbgrader_apps.NbGraderAPI(config=config)
    for solution in SOLUTIONS:
        result = api.generate_assignment(assignment(solution))
        assert result["success"], result["error"]
    return root, api


def test_released_notebooks_are_the_generated_exercises(course):
    root, _ = course
    for solution in SOLUTIONS:
        released = nbformat.read(root / "release" / assignment(solution) / solution.name, 4)
        exercise = nbformat.read(ROOT / "exercises" / solution.name, 4)
        assert [c.source for c in released.cells] == [c.source for c in exercise.cells], (
            f"{solution.name}: nbgrader's release and exercises/ give the learner different code")


def grades(root: Path, lesson: str, student: str) -> dict[str, tuple[float, float]]:
    """grade id -> (score, max score) of one autograded submission."""
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(lesson, student)
        return {grade.name: (grade.score, grade.max_score)
                for notebook in submission.notebooks for grade in notebook.grades}


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_scores_full_marks_and_the_stub_zero(course, solution):
    root, api = course
    lesson = assignment(solution)
    submissions = {"solution": solution,
                   "stub": root / "release" / lesson / solution.name}
    for student, notebook in submissions.items():
        folder = root / "submitted" / student / lesson
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / solution.name)
        result = api.autograde(lesson, student)
        assert result["success"], f"{student}: {result['error']}"

    full, stub = grades(root, lesson, "solution"), grades(root, lesson, "stub")
    tasks = sum(1 for cell in nbformat.read(solution, 4).cells
                if cell.metadata.get("nbgrader", {}).get("grade"))
    assert tasks >= 4 and len(full) == len(stub) == tasks
    assert {name: score for name, (score, best) in full.items() if score != best} == {}
    assert {name: score for name, (score, _) in stub.items() if score != 0} == {}

    graded = nbformat.read(root / "autograded" / "solution" / lesson / solution.name, 4)
    errors = [(cell.id, f"{out.ename}: {out.evalue}"[:300]) for cell in graded.cells
              if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"]
    assert not errors, f"{solution.name}: cells failed when the solution ran: {errors}"

    result = api.generate_feedback(lesson, "stub")
    assert result["success"], result["error"]
    assert (root / "feedback" / "stub" / lesson / f"{solution.stem}.html").exists()
