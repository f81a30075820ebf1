"""Checks for exercise 00: the leave-one-out split, the target's rank, HR@K and NDCG@K."""
from __future__ import annotations

import numpy as np
import torch

from course_lib import metrics
from course_lib.data import sequences
from course_lib.grading.checks import close, expect_error, run_check

__all__ = ["check_split_sequence", "check_target_rank", "check_hr_at_k", "check_ndcg_at_k"]


def check_split_sequence(fn) -> bool:
    """fn(sequence) -> (train items, valid item, test item); < 3 items raises ValueError."""
    rng = np.random.default_rng(0)
    cases = [("three items", ([4, 7, 9],), ([4], 7, 9)),
             ("repeated item", ([5, 5, 2, 5],), ([5, 5], 2, 5))]
    for i in range(8):
        seq = rng.integers(1, 50, size=rng.integers(3, 12)).tolist()
        train, valid, test = sequences.split_sequence(seq)
        cases.append((f"random {i}", (seq,), (train.tolist(), valid, test)))

    def same(got, expected):
        try:
            train, valid, test = got
            return (list(np.asarray(train).tolist()) == expected[0]
                    and int(valid) == expected[1] and int(test) == expected[2])
        except (TypeError, ValueError):
            return False

    run_check("split_sequence", fn, cases, same)
    return expect_error("split_sequence", fn, ([3, 8],), ValueError, "a 2-item sequence")


def check_target_rank(fn) -> bool:
    """fn(scores (I + 1,), target) -> 1-based rank, column 0 ignored, ties pessimistic."""
    t = torch.tensor
    cases = [("best item", (t([9.0, 0.9, 0.1, 0.5]), 1), 1),
             ("padding column ignored", (t([9.0, 0.2, 0.1, 0.5]), 1), 2),
             ("ties count against the target", (t([0.0, 0.5, 0.5, 0.5, 0.1]), 2), 3),
             ("last place", (t([0.0, 0.3, 0.2, 0.1]), 3), 3)]
    gen = torch.Generator().manual_seed(0)
    for i in range(10):
        scores = torch.randint(0, 5, (12,), generator=gen).float()   # small ints: many ties
        target = int(torch.randint(1, 12, (1,), generator=gen))
        expected = int(metrics.target_ranks(scores[None], t([target]))[0])
        cases.append((f"random {i}", (scores, target), expected))
    return run_check("target_rank", fn, cases, lambda got, exp: close(got, exp))


def _rank_cases():
    gen = torch.Generator().manual_seed(1)
    out = [("hand", (torch.tensor([1, 3, 10, 11]), 10))]
    for i in range(6):
        ranks = torch.randint(1, 40, (16,), generator=gen)
        out.append((f"random {i}", (ranks, int(torch.randint(1, 30, (1,), generator=gen)))))
    return out


def check_hr_at_k(fn) -> bool:
    """fn(ranks (B,), k) -> per-user HR@k (B,)."""
    cases = [(name, args, metrics.hr_at_k(*args)) for name, args in _rank_cases()]
    return run_check("hr_at_k", fn, cases, close)


def check_ndcg_at_k(fn) -> bool:
    """fn(ranks (B,), k) -> per-user NDCG@k (B,) with one relevant item."""
    cases = [(name, args, metrics.ndcg_at_k(*args)) for name, args in _rank_cases()]
    return run_check("ndcg_at_k", fn, cases, close)
