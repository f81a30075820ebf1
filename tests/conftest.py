"""Shared test setup: the quick profile, a headless plot backend, and the MovieLens copy that
sits beside the repository on the course machines (tests that need it skip without it)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MOVIELENS = ROOT.parent / "shared" / "datasets"

os.environ.setdefault("COURSE_PROFILE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")
# Notebook kernels inherit this environment: point them at the local MovieLens copy.
if "COURSE_DATA_DIR" not in os.environ and (SHARED_MOVIELENS / "ml-latest-small").is_dir():
    os.environ["COURSE_DATA_DIR"] = str(SHARED_MOVIELENS)


@pytest.fixture
def root() -> Path:
    return ROOT
