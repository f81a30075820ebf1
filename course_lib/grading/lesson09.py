"""Checks for exercise 09: graded relevance w(i) from an event stream, weighted NDCG@K, the
reciprocal rank (MRR), Entropy@K and the BPR loss. Each compares the learner's function with
`course_lib.metrics` / `course_lib.losses` on fixed hand-computed cases and seeded random
cases."""
from __future__ import annotations

import math

import torch

from course_lib import losses, metrics
from course_lib.grading.checks import close, expect_error, run_check

__all__ = ["action_gains", "relevance_from_events", "check_relevance_from_events",
           "check_weighted_ndcg_at_k", "check_reciprocal_rank", "check_entropy_at_k",
           "check_bpr_loss"]


def action_gains(alpha: float) -> dict[str, float]:
    """The exercise's gain table: exposure 0, click or like 1, conversion alpha."""
    return {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": float(alpha)}


def relevance_from_events(items, actions, n_items: int, alpha: float) -> torch.Tensor:
    """Reference for task 1: gains (I + 1,) float64 for one user's events, w(i) = the largest
    gain among item i's events under `action_gains(alpha)`; 0 elsewhere and at the padding
    entry 0. One row of `metrics.graded_relevance`, which lesson 09 calls batched over users."""
    items = torch.as_tensor(list(items), dtype=torch.long)                     # (E,)
    rows = torch.zeros_like(items)                                             # one row
    return metrics.graded_relevance(rows, items, list(actions), 1, n_items,
                                    action_gains(alpha))[0]                    # (I + 1,)


def _actions(gen, n):
    names = ["exposure", "click", "like", "conversion"]
    return [names[i] for i in torch.randint(0, 4, (n,), generator=gen).tolist()]


def check_relevance_from_events(fn) -> bool:
    """fn(items, actions, n_items, alpha) -> (I + 1,) gains, the largest gain per item."""
    hand = [("click then conversion of the same item",
             ([3, 3, 5], ["click", "conversion", "exposure"], 6, 4.0),
             [0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]),
            ("conversion then click keeps the conversion",
             ([2, 2], ["conversion", "click"], 3, 5.0), [0.0, 0.0, 5.0, 0.0]),
            ("exposure only is worth 0", ([2], ["exposure"], 3, 2.0), [0.0, 0.0, 0.0, 0.0]),
            ("like counts as a click", ([1, 2], ["like", "click"], 2, 3.0), [0.0, 1.0, 1.0])]
    gen = torch.Generator().manual_seed(9)
    cases = list(hand)
    for i in range(6):
        n = int(torch.randint(1, 15, (1,), generator=gen))
        items = torch.randint(1, 11, (n,), generator=gen).tolist()
        actions = _actions(gen, n)
        alpha = float(torch.randint(2, 6, (1,), generator=gen))
        cases.append((f"random {i}", (items, actions, 10, alpha),
                      relevance_from_events(items, actions, 10, alpha)))
    return run_check("relevance_from_events", fn, cases, close)


def _graded_cases():
    t = torch.tensor
    # Lesson 09's worked example: list A (click), B (exposure), C (conversion, alpha 3),
    # D (nothing), with E (like) relevant but not listed: NDCG@4 = 2.5 / 4.1309 = 0.6052.
    hand = (t([[0.0, 0.9, 0.8, 0.7, 0.6, 0.1]]), t([[0.0, 1.0, 0.0, 3.0, 0.0, 1.0]]), 4)
    cases = [("worked example of lesson 09", hand, t([2.5 / (3 + 1 / math.log2(3) + 0.5)])),
             ("ideal order gives 1", (t([[0.0, 0.1, 0.9, 0.5]]), t([[0.0, 0.0, 2.0, 1.0]]), 2),
              t([1.0]))]
    gen = torch.Generator().manual_seed(10)
    for i in range(8):
        batch, n_items = 4, int(torch.randint(5, 30, (1,), generator=gen))
        k = int(torch.randint(1, n_items + 1, (1,), generator=gen))
        scores = torch.randn(batch, n_items + 1, generator=gen)     # continuous: no ties
        relevance = torch.randint(0, 4, (batch, n_items + 1), generator=gen).float()
        relevance[:, 1] += 1.0                                        # some gain per user
        cases.append((f"random {i}", (scores, relevance, k),
                      metrics.graded_ndcg_at_k(scores, relevance, k)))
    return cases


def check_weighted_ndcg_at_k(fn) -> bool:
    """fn(scores (B, I + 1), relevance (B, I + 1), k) -> (B,) graded NDCG@k, column 0 ignored."""
    return run_check("weighted_ndcg_at_k", fn, _graded_cases(), close)


def check_reciprocal_rank(fn) -> bool:
    """fn(scores (B, I + 1), targets (B,)) -> (B,) 1 / rank, ties counted against the target."""
    t = torch.tensor
    cases = [("best item", (t([[0.0, 0.9, 0.1]]), t([1])), t([1.0])),
             ("padding column ignored", (t([[9.0, 0.2, 0.1, 0.5]]), t([1])), t([0.5])),
             ("tied with two others", (t([[0.0, 0.9, 0.5, 0.5, 0.5]]), t([3])), t([0.25]))]
    gen = torch.Generator().manual_seed(11)
    for i in range(8):
        scores = torch.randint(0, 4, (6, 15), generator=gen).float()    # small ints: ties
        targets = torch.randint(1, 15, (6,), generator=gen)
        cases.append((f"random {i}", (scores, targets),
                      metrics.mrr(metrics.target_ranks(scores, targets))))
    return run_check("reciprocal_rank", fn, cases, close)


def check_entropy_at_k(fn) -> bool:
    """fn(topk (B, K), item_category (I + 1,)) -> (B,) entropy in bits of the categories."""
    t = torch.tensor
    cases = [("categories 3/1/1 of a top-5", (t([[1, 2, 3, 4, 5]]), t([0, 0, 0, 0, 1, 2])),
              t([0.6 * math.log2(5 / 3) + 0.4 * math.log2(5)])),   # 1.371 bits
             ("one category", (t([[1, 2, 3]]), t([0, 2, 2, 2])), t([0.0])),
             ("all different", (t([[1, 2, 3, 4]]), t([0, 0, 1, 2, 3])), t([2.0]))]
    gen = torch.Generator().manual_seed(12)
    for i in range(6):
        item_category = torch.randint(0, 5, (31,), generator=gen)
        topk = metrics.topk_items(torch.randn(5, 31, generator=gen), 10)
        cases.append((f"random {i}", (topk, item_category),
                      metrics.entropy_at_k(topk, item_category)))
    return run_check("entropy_at_k", fn, cases, close)


def check_bpr_loss(fn) -> bool:
    """fn(pos_scores (B,), neg_scores (B, N)) -> scalar mean of -ln sigma(s_pos - s_neg);
    finite for large score gaps."""
    t = torch.tensor
    cases = [("one pair", (t([2.0]), t([[0.5]])), t(-math.log(1 / (1 + math.exp(-1.5))))),
             ("equal scores give ln 2", (t([1.0, -3.0]), t([[1.0], [-3.0]])), t(math.log(2))),
             ("a 100-point gap in the wrong direction is finite", (t([0.0]), t([[100.0]])),
              t(100.0))]
    gen = torch.Generator().manual_seed(13)
    for i in range(6):
        pos = 3 * torch.randn(8, generator=gen)
        neg = 3 * torch.randn(8, int(torch.randint(1, 6, (1,), generator=gen)), generator=gen)
        cases.append((f"random {i}", (pos, neg), losses.bpr_loss(pos, neg)))
    run_check("bpr_loss", fn, cases, lambda got, exp: close(got, exp))
    return expect_error("bpr_loss", fn, (t([1.0, 2.0]), t([0.5, 0.5])), ValueError,
                        "neg_scores without the negatives axis (B,) instead of (B, N)")
