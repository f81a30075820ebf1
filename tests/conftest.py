"""Shared test setup: the quick profile, a headless plot backend, the MovieLens copy that sits
beside the repository on the course machines (tests that need it skip without it), and the
fixtures and hypothesis strategies more than one test file uses.

Fixtures are found by name; strategies are imported: `from conftest import tied_scores`.
"""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SHARED_MOVIELENS = ROOT.parent / "shared" / "datasets"

os.environ.setdefault("COURSE_PROFILE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")
# Notebook kernels inherit this environment: point them at the local MovieLens copy.
if "COURSE_DATA_DIR" not in os.environ and (SHARED_MOVIELENS / "ml-latest-small").is_dir():
    os.environ["COURSE_DATA_DIR"] = str(SHARED_MOVIELENS)

SUCCESSOR_ITEMS = 30         # the catalogue size of `successor_split`


@pytest.fixture
def root() -> Path:
    return ROOT


# --- fixtures -----------------------------------------------------------------------------

def headless_browser(local_server: bool = False):
    """Yield the one headless Chromium of tools/check_book.py for a module's browser tests, or
    skip them where Chromium and its driver are not installed (`yield from` it in a fixture)."""
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    import check_book
    try:
        check_book.find_browser()
    except RuntimeError as err:
        pytest.skip(f"no headless browser on this machine: {err}")
    browser = check_book.open_browser(local_server=local_server)
    yield browser
    browser.quit()


@pytest.fixture
def stub():
    """An unfinished exercise task: every call raises NotImplementedError."""
    def unfinished(*args):
        raise NotImplementedError()
    return unfinished


@pytest.fixture(scope="session")
def successor_split():
    """A leave-one-out split of 120 users over SUCCESSOR_ITEMS items in which item i is always
    followed by i + 1 (mod I): a pattern a sequence model learns in a few epochs."""
    from course_lib.data.sequences import leave_one_out

    rng = np.random.default_rng(0)
    seqs = {}
    for user in range(1, 121):
        start = rng.integers(1, SUCCESSOR_ITEMS + 1)
        seqs[user] = (start - 1 + np.arange(rng.integers(6, 12))) % SUCCESSOR_ITEMS + 1
    return leave_one_out(seqs, SUCCESSOR_ITEMS)


# --- hypothesis strategies ----------------------------------------------------------------

@st.composite
def tied_scores(draw, min_items=2, max_items=12):
    """(scores (B, I + 1), targets (B,)) with small integer scores, so ties are common."""
    n_users = draw(st.integers(1, 4))
    n_items = draw(st.integers(min_items, max_items))
    values = draw(st.lists(st.integers(0, 3), min_size=n_users * (n_items + 1),
                           max_size=n_users * (n_items + 1)))
    scores = torch.tensor(values, dtype=torch.float32).reshape(n_users, n_items + 1)
    targets = torch.tensor(draw(st.lists(st.integers(1, n_items), min_size=n_users,
                                         max_size=n_users)))
    return scores, targets


@st.composite
def small_codes(draw, max_items=30, max_levels=3, max_code=3):
    """(N, L) codes over a tiny vocabulary, so collisions are common."""
    n = draw(st.integers(1, max_items))
    levels = draw(st.integers(1, max_levels))
    values = draw(st.lists(st.integers(0, max_code), min_size=n * levels, max_size=n * levels))
    return torch.tensor(values).reshape(n, levels)


@st.composite
def graded_case(draw, distinct_scores=True):
    """(scores (B, I + 1), relevance (B, I + 1), k) with integer gains in 0..3 and at least
    one positive gain per user; scores are a permutation (no ties) unless distinct_scores is
    False, then small integers (many ties)."""
    n_users = draw(st.integers(1, 3))
    n_items = draw(st.integers(2, 10))
    k = draw(st.integers(1, n_items))
    scores, relevance = [], []
    for _ in range(n_users):
        if distinct_scores:
            row = [float(v) for v in draw(st.permutations(range(n_items)))]
        else:
            row = [float(v) for v in draw(st.lists(st.integers(0, 3), min_size=n_items,
                                                   max_size=n_items))]
        scores.append([0.0] + row)
        gains = draw(st.lists(st.integers(0, 3), min_size=n_items, max_size=n_items)
                     .filter(lambda g: any(g)))
        relevance.append([0.0] + [float(g) for g in gains])
    return torch.tensor(scores), torch.tensor(relevance), k


def assert_each_listed_mistake_is_named(check, mistakes, reference):
    """A learner who makes exactly one listed mistake (its answer where the mistake applies,
    the right one elsewhere) hears that mistake's name: no other mistake hides it.
    mistakes(*args) -> [(what, wrong answer), ...] for one case, reference(*args) the answer."""
    from course_lib.grading.checks import CheckFailed
    named = []
    check(lambda *args: named.extend(what for what, _ in mistakes(*args)) or reference(*args))
    for what in dict.fromkeys(named):
        def making_it(*args):
            return next((wrong for name, wrong in mistakes(*args) if name == what),
                        reference(*args))

        with pytest.raises(CheckFailed) as failure:
            check(making_it)
        assert "looks like " + what in str(failure.value), (what, str(failure.value))
