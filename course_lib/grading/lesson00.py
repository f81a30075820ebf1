"""Checks for exercise 00: the leave-one-out split, the target's rank, HR@K, NDCG@K, the
history mask ("exclude seen"), and a predict-measure-interpret task on what excluding seen
items does to item-kNN on a world whose users come back to items.

Each check calls the learner's function on named hand cases and seeded random cases and
compares with `course_lib.metrics` and `course_lib.data.sequences`. A wrong answer names the
case and, where it equals the answer of a known mistake (valid and test swapped, ties counted
for the target, the padding column counted, a rank from 0, r < K for a hit, the natural log
in NDCG, the padding column left unmasked, 0 in place of -inf, ...), says which mistake it
looks like.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from course_lib import metrics
from course_lib.data import sequences
from course_lib.grading.checks import (check_choice, check_measured, expect_error,
                                       left_padded, run_naming_mistakes, same_values,
                                       tensor_like)

__all__ = ["check_split_sequence", "check_target_rank", "check_hr_at_k", "check_ndcg_at_k",
           "check_mask_history", "check_hr_change_from_excluding_seen", "check_why_hr_drops"]

t = torch.tensor
NEG_INF = float("-inf")


# --- task 1: leave-one-out ---------------------------------------------------------------------

def _split_mistakes(seq: list) -> list[tuple[str, tuple]]:
    """(what, (train, valid, test)) of the plausible wrong splits of one sequence."""
    return [("valid and test swapped: valid is the second-to-last item, test the last",
             (seq[:-2], seq[-1], seq[-2])),
            ("the valid item left in train (train = all but the last): train ends before the "
             "valid item, so the model never trains on what it is validated on",
             (seq[:-1], seq[-2], seq[-1])),
            ("one item too few in train (all but the last three): train is everything before "
             "the valid item", (seq[:-3], seq[-2], seq[-1])),
            ("the split taken from the front: leave-one-out holds out the NEWEST items, the "
             "end of the sequence", (seq[2:], seq[0], seq[1])),
            ("the whole sequence as train: the held-out items leak into training",
             (seq, seq[-2], seq[-1]))]


def _as_split(got):
    """(train list, valid int, test int) from a learner's answer, or None."""
    try:
        train, valid, test = got
        return [int(x) for x in np.asarray(train).reshape(-1)], int(valid), int(test)
    except (TypeError, ValueError):
        return None


def _same_split(got, answer, args=None) -> bool:
    return _as_split(got) == (list(answer[0]), answer[1], answer[2])


def check_split_sequence(fn) -> None:
    """fn(sequence) -> (train items, valid item, test item); < 3 items raises ValueError."""
    rng = np.random.default_rng(0)
    seqs = [("three items: train is the first one", [4, 7, 9]),
            ("a repeated item stays where it is", [5, 5, 2, 5]),
            ("six items", [11, 3, 8, 2, 6, 1])]
    for i in range(8):
        seqs.append((f"random {i}", rng.integers(1, 50, size=rng.integers(3, 12)).tolist()))
    cases = []
    for name, seq in seqs:
        train, valid, test = sequences.split_sequence(seq)
        cases.append((name, (seq,), ((train.tolist(), valid, test), _split_mistakes(seq))))
    run_naming_mistakes("split_sequence", fn, cases, _same_split)
    return expect_error("split_sequence", fn, ([3, 8],), ValueError, "a 2-item sequence")


# --- task 2: the target's rank -------------------------------------------------------------------

def _rank_mistakes(scores: Tensor, target: int) -> list[tuple[str, int]]:
    """(what, rank) of the plausible wrong ranks of `target` among items 1..I."""
    s = scores[target]
    items = scores[1:]
    others = torch.cat([scores[1:target], scores[target + 1:]])
    before = scores[1:target]                                  # items with a smaller id
    return [("ties counted for the target (1 + #{score > target's}): a tie must count "
             "against it, >=, or a model that scores every item the same ranks first",
             1 + int((others > s).sum())),
            ("ties broken by item id, as a stable sort does: a tie counts against the target "
             "whatever the ids", 1 + int((others > s).sum()) + int((before == s).sum())),
            ("the padding column counted: scores[0] is padding, not an item; rank among "
             "items 1..I", 1 + int((others >= s).sum()) + int(scores[0] >= s)),
            ("a rank from 0: the best item has rank 1", int((others >= s).sum())),
            ("the target counted against itself: count the OTHER items with a score >= the "
             "target's", 1 + int((items >= s).sum())),
            ("the order reversed (counting the items that score at most the target's): a "
             "higher score is a better rank", 1 + int((others <= s).sum()))]


def check_target_rank(fn) -> None:
    """fn(scores (I + 1,), target) -> 1-based rank, column 0 ignored, ties pessimistic."""
    cases = [("best item: rank 1, it does not compete with itself", (t([0.0, 0.9, 0.1, 0.5]), 1)),
             ("padding column ignored", (t([9.0, 0.2, 0.1, 0.5]), 1)),
             ("ties count against the target", (t([0.0, 0.5, 0.5, 0.5, 0.1]), 2)),
             ("ties count against the target whatever the ids", (t([0.0, 0.2, 0.7, 0.7]), 2)),
             ("last place", (t([0.0, 0.3, 0.2, 0.1]), 3)),
             ("masked items (-inf) never outrank the target",
              (t([NEG_INF, NEG_INF, 0.4, NEG_INF, 0.9]), 2))]
    gen = torch.Generator().manual_seed(0)
    for i in range(10):
        scores = torch.randint(0, 5, (12,), generator=gen).float()   # small ints: many ties
        target = int(torch.randint(1, 12, (1,), generator=gen))
        cases.append((f"random {i}", (scores, target)))
    cases = [(name, (scores, target),
              (int(metrics.target_ranks(scores[None], t([target]))[0]),
               _rank_mistakes(scores, target)))
             for name, (scores, target) in cases]
    return run_naming_mistakes("target_rank", fn, cases, same_values)


# --- tasks 3 and 4: HR@K and NDCG@K ------------------------------------------------------------

def _rank_cases() -> list[tuple[str, tuple]]:
    cases = [("a hit at rank exactly K counts", (t([1, 3, 10, 11]), 10)),
             ("one value per user, not the mean", (t([2, 50, 1]), 5)),
             ("K = 1: only rank 1 is a hit", (t([1, 2, 3]), 1))]
    gen = torch.Generator().manual_seed(1)
    for i in range(6):
        ranks = torch.randint(1, 40, (16,), generator=gen)
        cases.append((f"random {i}", (ranks, int(torch.randint(1, 30, (1,), generator=gen)))))
    return cases


def check_hr_at_k(fn) -> None:
    """fn(ranks (B,), k) -> per-user HR@k (B,)."""
    cases = []
    for name, (ranks, k) in _rank_cases():
        hit = (ranks <= k).float()
        wrong = [("r < K: a target at rank exactly K is in the top K, 1[r <= K]",
                  (ranks < k).float()),
                 ("one number for all users (the mean): return one value per user, the "
                  "notebook averages them", hit.mean()),
                 ("1[r >= K], the comparison reversed: a hit is a SMALL rank",
                  (ranks >= k).float()),
                 ("1[r <= K + 1]: ranks start at 1, compare r with K itself",
                  (ranks <= k + 1).float())]
        cases.append((name, (ranks, k), (metrics.hr_at_k(ranks, k), wrong)))
    return run_naming_mistakes("hr_at_k", fn, cases, same_values)


def _explain_ndcg(got, answer) -> str | None:
    """A constant ratio to the right gains names the logarithm's base."""
    got = tensor_like(got, answer, torch.float64)
    if got is None:
        return None
    hits = (answer > 0) & (got != 0)               # the cut-off may be wrong as well
    if not hits.any() or not torch.isfinite(got[hits]).all():
        return None
    ratio = got[hits] / answer[hits].double()
    if not torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4):
        return None
    for base, name, log in ((math.e, "the natural log", "ln"), (10.0, "log10", "log10")):
        if math.isclose(float(ratio[0]), math.log2(base), rel_tol=1e-4):
            return (f"{name}: your gains are {float(ratio[0]):.4f} = 1 / {log} 2 times the "
                    "right ones; the discount is log2(r + 1) (torch.log2)")
    return None


def check_ndcg_at_k(fn) -> None:
    """fn(ranks (B,), k) -> per-user NDCG@k (B,) with one relevant item."""
    cases = []
    for name, (ranks, k) in _rank_cases():
        r = ranks.double()
        hit = ranks <= k
        wrong = [("the natural log: the discount is log2(r + 1), so a hit at rank 1 is worth 1",
                  hit / torch.log(r + 1)),
                 ("log2(r) instead of log2(r + 1): rank 1 would be worth 1 / log2(1) = inf",
                  hit / torch.log2(r)),
                 ("log2(r + 2), a rank counted from 0 and shifted again: with 1-based ranks "
                  "the discount is log2(r + 1)", hit / torch.log2(r + 2)),
                 ("no cut-off at K: a target beyond K is worth 0", 1 / torch.log2(r + 1)),
                 ("r < K for a hit: rank exactly K still counts", (ranks < k) / torch.log2(r + 1)),
                 ("the reciprocal rank 1 / r (that is MRR): NDCG discounts by 1 / log2(r + 1)",
                  hit / r),
                 ("one number for all users (the mean): return one value per user",
                  (hit / torch.log2(r + 1)).mean())]
        cases.append((name, (ranks, k), (metrics.ndcg_at_k(ranks, k), wrong)))
    return run_naming_mistakes("ndcg_at_k", fn, cases, same_values, explain=_explain_ndcg)


# --- task 5: the history mask ----------------------------------------------------------------

def _masked(scores: Tensor, mask: Tensor, value: float = NEG_INF) -> Tensor:
    return scores.masked_fill(mask, value)


def _history_mask(history: Tensor, width: int, index_shift: int = 0) -> Tensor:
    """(B, I + 1) bool, True at each row's history items (history's 0s land on column 0)."""
    mask = torch.zeros(history.shape[0], width, dtype=torch.bool)
    return mask.scatter(1, (history - index_shift) % width, True)


def _mask_history_mistakes(scores, history) -> list[tuple[str, Tensor]]:
    width = scores.shape[1]
    seen = _history_mask(history, width)
    right = seen.clone()
    right[:, 0] = True
    padding = torch.zeros_like(seen)
    padding[:, 0] = True
    pooled = seen.any(0, keepdim=True) | right
    newest = _history_mask(history[:, -1:], width) | padding
    shifted = _history_mask(history, width, index_shift=1)
    shifted[:, 0] = True
    return [("the padding column left unmasked on a row with no padding (only a padded "
             "history's 0s land on column 0): set column 0 to -inf on every row",
             _masked(scores, seen)),
            ("the padding column never masked: column 0 is padding, not an item; set it to "
             "-inf", _masked(scores, right & (torch.arange(width) > 0))),
            ("0 at the masked entries instead of -inf: 0 still outranks every negative score "
             "and ties with a zero one", _masked(scores, right, 0.0)),
            ("every user's history masked for everyone (the batch's items pooled): mask row "
             "b with history[b] only", _masked(scores, pooled)),
            ("only the newest history item masked (the last column): mask every item of the "
             "history", _masked(scores, newest)),
            ("item i masked at column i - 1: column i is item i (column 0 is padding)",
             _masked(scores, shifted))]


def _explain_mask_history(got, answer) -> str | None:
    """Read what is wrong from where the learner put -inf (the answer's -inf are the mask)."""
    if got is None:
        return ("a function that returns nothing (None): return the masked scores "
                "(masked_fill returns a new tensor; masked_fill_ changes one in place)")
    got = tensor_like(got, answer, torch.float64)
    if got is None:
        return None
    answer = answer.double()
    mask = torch.isinf(answer) & (answer < 0)
    if not torch.equal(got[~mask], answer[~mask]):
        if (torch.isinf(got) & ~mask).any():
            return ("an entry masked that must keep its score: mask only column 0 and the "
                    "row's own history")
        return "scores changed outside the mask: leave every unmasked score as it was"
    values = got[mask]
    if torch.isfinite(values).all() and len(values.unique()) == 1 and values[0] < -1e3:
        return (f"a large finite number ({float(values[0]):.3g}) instead of -inf: ties and "
                "-inf checks treat a finite score as a candidate; use float('-inf')")
    if torch.isfinite(got[:, 0]).any():
        return "the padding column left on some rows: set column 0 to -inf on every row"
    return "history items left unmasked: every item in the row's history gets -inf"


def check_mask_history(fn) -> None:
    """fn(scores (B, I + 1), history (B, T) left-padded with 0) -> a copy of the scores with
    column 0 and each row's history items at -inf ("exclude seen", `metrics.mask_history`).
    Masking the history's padding 0 as if it were an item is fine: column 0 is masked anyway.
    The mask is the history's alone: the function is never told the target."""
    cases = [("scores below zero: -inf, not 0, takes an item out",
              (t([[-1.0, -0.5, -2.0, -0.1, -0.7]]), t([[0, 0, 4]]))),
             ("a full history (no padding): column 0 is still masked",
              (t([[5.0, 0.4, 0.9, 0.1, 0.3]]), t([[2, 4]]))),
             ("each row masks its own history",
              (t([[1.0, 0.5, 0.6, 0.7, 0.8], [1.0, 0.8, 0.7, 0.6, 0.5]]),
               t([[0, 1, 2], [0, 0, 4]]))),
             ("every item of the history, not only the newest",
              (t([[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]]), t([[5, 3, 1]])))]
    gen = torch.Generator().manual_seed(2)
    for i in range(6):
        batch, length, n_items = 4, 6, 9
        real = left_padded(gen, batch, length)                                     # (B, T)
        history = torch.randint(1, n_items + 1, (batch, length), generator=gen) * real
        scores = torch.randn(batch, n_items + 1, generator=gen)
        cases.append((f"random {i}", (scores, history)))
    cases = [(name, args, (metrics.mask_history(*args), _mask_history_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("mask_history", fn, cases, same_values,
                               explain=_explain_mask_history)


# --- task 6: predict, measure, interpret: excluding seen items on a world that re-consumes ------

WORLD = dict(n_users=300, n_items=200, seed=1)      # the world of "Putting it together"
K = 10


@functools.lru_cache(maxsize=1)
def _knn_hit_rates() -> dict[str, float]:
    """Item-kNN's test HR@10 on the exercise's world with seen items excluded, with repeats
    allowed (nothing but column 0 masked) and under the leaky rule that masks the history but
    gives the target its score back, and the number of test users. Cached: a notebook and its
    tests compute it once."""
    from course_lib.data.world import CONSUMED, WorldConfig, make_world
    from course_lib.models.baselines import ItemKNN

    world = make_world(WorldConfig(**WORLD))
    split = sequences.leave_one_out(sequences.user_sequences(world.interactions,
                                                             actions=CONSUMED), world.n_items)
    test = split.evaluation("test")
    scores = ItemKNN(split.train, world.n_items).scores(test.history)          # (B, I + 1)
    history, targets = test.history, test.targets
    leaky = metrics.mask_history(scores, history)
    rows = torch.arange(len(targets))
    leaky[rows, targets] = scores[rows, targets]                  # the target given back: a leak

    def hit_rate(ranks: Tensor) -> float:
        return float(metrics.hr_at_k(ranks, K).mean())

    return {"excluded": hit_rate(metrics.target_ranks(scores, targets, history)),
            "allowed": hit_rate(metrics.target_ranks(scores, targets)),
            "leaky": hit_rate(metrics.target_ranks(leaky, targets)),
            "repeats": float(metrics.repeated_targets(history, targets).double().mean()),
            "users": len(targets)}


def check_hr_change_from_excluding_seen(fn) -> None:
    """fn() -> item-kNN's test HR@10 with seen items excluded minus with repeats allowed, on
    the world WorldConfig(n_users=300, n_items=200, seed=1) (a number, about -0.27: half this
    world's test targets repeat a history item). The range is the library's own measurement
    give or take one user's hit: the learner's target_rank and hr_at_k are checked to agree
    with the library, so a right measurement is the same."""
    rates = _knn_hit_rates()
    change = rates["excluded"] - rates["allowed"]
    one_user = 1 / rates["users"]
    leak = rates["leaky"] - rates["allowed"]
    hint = ("excluded minus allowed, each HR@10 averaged over the test users. About 0 means "
            "both runs were masked alike (or neither was); a positive value is the difference "
            f"the other way round; {leak:+.3f} is what giving the target its score back after "
            "the mask gives (the leak: the mask must not know the target)")
    return check_measured("hr_change_from_excluding_seen", fn, change - one_user,
                          change + one_user, "HR@10 with seen items excluded minus allowed",
                          hint)


WHY_HR_DROPS = {
    "a": "About half of this world's test targets repeat an item of the user's history (its "
         "users come back to items). Excluding seen items makes each of those targets "
         "unreachable, a miss, while with repeats allowed item-kNN ranks many of them near the "
         "top: the other history items are their neighbours. The slots the mask frees for "
         "unseen items win back far less.",
    "b": "Your target_rank ignores column 0 whatever its score, and item-kNN gives the "
         "padding column no similarity at all: the difference comes from real items.",
    "c": "Masking frees the top 10 for unseen items, so HR@10 can only rise; a negative "
         "number means the measurement is wrong. It is not: the check compares it with the "
         "library's own measurement.",
    "d": "Both runs rank the same item-kNN scores of the same trained model; only the mask "
         "differs, so nothing about training or overfitting can explain the gap.",
}


def check_why_hr_drops(fn) -> None:
    """fn() -> the letter of the explanation of the HR@10 lost by excluding seen items."""
    return check_choice("why_hr_drops", fn, "a", WHY_HR_DROPS)
