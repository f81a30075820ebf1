"""Autograded checks for the exercise notebooks.

Each `check_*` calls the learner's function on fixed cases and seeded random cases, compares
with the library's reference, and prints a short verdict. A wrong answer raises `CheckFailed`
naming the case, the input, what was expected and what came back; an unfinished task raises
`NotImplementedYet`. In Jupyter both show as one friendly line, not a traceback (IPython's
`_render_traceback_` hook); to pytest and nbval they are ordinary errors, so a solution
notebook fails its test when a check fails.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch

from course_lib import metrics
from course_lib.data import sequences


class CheckFailed(AssertionError):
    """The learner's function gave a wrong answer (or crashed) on a named case."""

    def _render_traceback_(self):
        return [f"\u274c {self}"]


class NotImplementedYet(NotImplementedError):
    """The learner's function still raises NotImplementedError."""

    def _render_traceback_(self):
        return [f"\u270f\ufe0f  {self}"]


Case = tuple[str, tuple, Any]            # (name, arguments, expected answer)


def run_check(task: str, fn: Callable, cases: Iterable[Case],
              same: Callable[[Any, Any], bool]) -> bool:
    """Call `fn(*arguments)` for every case; raise on the first wrong answer."""
    cases = list(cases)
    for name, args, expected in cases:
        try:
            got = fn(*args)
        except NotImplementedError:
            raise NotImplementedYet(f"{task}: not implemented yet. Replace the "
                                    "`raise NotImplementedError()` in your function.") from None
        except Exception as err:
            raise CheckFailed(f"{task}: on case '{name}' your function raised "
                              f"{type(err).__name__}: {err}\n   input: {_show(args)}") from None
        if not same(got, expected):
            raise CheckFailed(f"{task}: wrong answer on case '{name}'\n   input:    "
                              f"{_show(args)}\n   expected: {_show(expected)}\n   got:      "
                              f"{_show(got)}")
    print(f"\u2705 {task}: all {len(cases)} cases pass")
    return True


def _show(value) -> str:
    if torch.is_tensor(value):
        value = value.tolist()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    text = repr(value)
    return text if len(text) < 200 else text[:200] + " ..."


def _close(got, expected) -> bool:
    try:
        got = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    expected = torch.as_tensor(expected, dtype=torch.float64)
    return got.shape == expected.shape and bool(torch.allclose(got, expected, atol=1e-6))


# ---------------------------------------------------------------- lesson 00: evaluation

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
    return _expect_error("split_sequence", fn, ([3, 8],), ValueError, "a 2-item sequence")


def _expect_error(task, fn, args, error, what) -> bool:
    try:
        fn(*args)
    except error:
        print(f"\u2705 {task}: raises {error.__name__} for {what}")
        return True
    except NotImplementedError:
        raise NotImplementedYet(f"{task}: not implemented yet.") from None
    except Exception as err:
        raise CheckFailed(f"{task}: for {what} expected {error.__name__}, got "
                          f"{type(err).__name__}: {err}") from None
    raise CheckFailed(f"{task}: for {what} ({_show(args)}) expected {error.__name__}, "
                      "but your function returned normally")


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
    return run_check("target_rank", fn, cases, lambda got, exp: _close(got, exp))


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
    return run_check("hr_at_k", fn, cases, _close)


def check_ndcg_at_k(fn) -> bool:
    """fn(ranks (B,), k) -> per-user NDCG@k (B,) with one relevant item."""
    cases = [(name, args, metrics.ndcg_at_k(*args)) for name, args in _rank_cases()]
    return run_check("ndcg_at_k", fn, cases, _close)
