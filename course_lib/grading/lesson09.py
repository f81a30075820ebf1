"""Checks for exercise 09: graded relevance w(i) from an event stream, weighted NDCG@K, the
reciprocal rank (MRR), Entropy@K and the BPR loss, each compared with `course_lib.metrics` /
`course_lib.losses` on fixed hand-computed cases and seeded random cases; then a
predict-measure-interpret task on sampled versus full ranking.

A wrong answer names the case and, where it equals the answer of a known mistake, says which
one it looks like: the last event's gain instead of the largest, gains summed; exponential or
binary gains, an IDCG not cut at K, the padding column ranked, a discount off by one rank, the
DCG and IDCG in different log bases (a ratio of ln 2); ties counted for the target, a rank off
by one; entropy in nats (a ratio of ln 2) or of the distinct categories; the BPR margin
reversed, log(sigmoid) that overflows, a sum instead of the mean, ...
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib import losses, metrics
from course_lib.grading.checks import (check_choice, check_measured, expect_error,
                                       run_naming_mistakes, same_values, tensor_like)

__all__ = ["action_gains", "relevance_from_events", "check_relevance_from_events",
           "check_weighted_ndcg_at_k", "check_reciprocal_rank", "check_entropy_at_k",
           "check_bpr_loss", "expected_sampled_mrr", "check_sampled_mrr",
           "check_why_sampled_mrr_is_higher"]

t = torch.tensor
LN2 = math.log(2)


def _explain_mean(got, answer) -> str | None:
    """One number where one value per user (B,) was asked: the mean over users, or not."""
    try:
        got = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None
    if got.dim() == 0 and answer.dim() == 1:
        if math.isclose(float(got), float(answer.double().mean()), abs_tol=1e-6):
            return ("the mean over users (or a 0-d number): return one value per user, a "
                    f"tensor of shape (B,) = ({len(answer)},)")
        return f"one number where one value per user, shape (B,) = ({len(answer)},), was asked"
    return None


# --- task 1: graded relevance w(i) -------------------------------------------------------------

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


def _relevance_variant(items, actions, n_items, alpha, keep="largest", shift=0,
                       **gains) -> Tensor:
    """A mistaken w(i): another way to combine an item's events (`keep`), other gains, or the
    gains written at index item + shift."""
    gain = {**action_gains(alpha), **gains}
    out = torch.zeros(n_items + 1, dtype=torch.float64)
    seen = set()
    for item, action in zip(items, actions):
        value = gain[action]
        if keep == "largest":
            value = max(value, float(out[item + shift]))
        elif keep == "summed":
            value += float(out[item + shift])
        elif keep == "first" and item in seen:
            continue
        out[item + shift] = value
        seen.add(item)
    return out


def _relevance_mistakes(items, actions, n_items, alpha) -> list[tuple[str, Tensor]]:
    args = (items, actions, n_items, alpha)
    return [("the last event's gain instead of the largest: a click after a conversion must "
             "not lower the item's gain", _relevance_variant(*args, keep="last")),
            ("the first event's gain instead of the largest: a conversion after a click "
             "raises the item's gain", _relevance_variant(*args, keep="first")),
            ("the gains summed over an item's events: an item keeps its largest gain",
             _relevance_variant(*args, keep="summed")),
            ("a like worth 0: a like counts as a click, 1", _relevance_variant(*args, like=0.0)),
            ("a conversion worth 1: it is worth alpha", _relevance_variant(*args, conversion=1.0)),
            ("an exposure worth 1: an item that was only shown is worth 0",
             _relevance_variant(*args, exposure=1.0)),
            ("gains written at index item - 1: entry i is item i, entry 0 the padding id",
             _relevance_variant(*args, shift=-1))]


def _explain_relevance(got, answer) -> str | None:
    values = tensor_like(got, answer[1:], torch.float64)
    if values is not None and torch.allclose(values, answer[1:].double()):
        return "I values without the padding entry: return I + 1 values, entry 0 is 0"
    return None


def _actions(gen, n):
    names = ["exposure", "click", "like", "conversion"]
    return [names[i] for i in torch.randint(0, 4, (n,), generator=gen).tolist()]


def check_relevance_from_events(fn) -> None:
    """fn(items, actions, n_items, alpha) -> (I + 1,) gains, the largest gain per item."""
    hand = [("a conversion is worth alpha", ([2], ["conversion"], 3, 3.0), [0.0, 0.0, 3.0, 0.0]),
            ("click then conversion of the same item",
             ([3, 3, 5], ["click", "conversion", "exposure"], 6, 4.0),
             [0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]),
            ("conversion then click keeps the conversion",
             ([2, 2], ["conversion", "click"], 3, 5.0), [0.0, 0.0, 5.0, 0.0]),
            ("an exposure after a click keeps the click",
             ([4, 4], ["click", "exposure"], 5, 2.0), [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            ("exposure only is worth 0", ([2], ["exposure"], 3, 2.0), [0.0, 0.0, 0.0, 0.0]),
            ("like counts as a click", ([1, 2], ["like", "click"], 2, 3.0), [0.0, 1.0, 1.0])]
    cases = [(name, args, t(answer, dtype=torch.float64)) for name, args, answer in hand]
    gen = torch.Generator().manual_seed(9)
    for i in range(6):
        n = int(torch.randint(1, 15, (1,), generator=gen))
        items = torch.randint(1, 11, (n,), generator=gen).tolist()
        alpha = float(torch.randint(2, 6, (1,), generator=gen))
        args = (items, _actions(gen, n), 10, alpha)
        cases.append((f"random {i}", args, relevance_from_events(*args)))
    cases = [(name, args, (answer, _relevance_mistakes(*args))) for name, args, answer in cases]
    return run_naming_mistakes("relevance_from_events", fn, cases, same_values,
                                explain=_explain_relevance)


# --- task 2: weighted NDCG@K -------------------------------------------------------------------

def _ndcg_variant(scores, relevance, k, gains=lambda w: w, rank_padding=False, ascending=False,
                  first_rank=1, dcg_log=torch.log2, idcg_log=torch.log2, ideal="best k",
                  divide=True) -> Tensor:
    """A mistaken NDCG@K (B,): other gains, the padding column ranked, the lowest scores
    first, ranks counted from `first_rank`, other logs, another ideal list, no IDCG."""
    start = 0 if rank_padding else 1
    s, w = scores[:, start:].double(), gains(relevance[:, start:].double())
    order = s.argsort(dim=1, descending=not ascending, stable=True)[:, :k]    # (B, k)
    found = w.gather(1, order)                                                 # (B, k)

    def dcg(gains_in_order, log):
        ranks = torch.arange(first_rank, first_rank + gains_in_order.shape[1],
                             dtype=torch.float64)
        return (gains_in_order / log(ranks + 1)).sum(dim=1)

    best = w.sort(dim=1, descending=True).values                               # (B, I)
    ideal_list = {"best k": best[:, :k], "every item": best,
                  "retrieved": found.sort(dim=1, descending=True).values}[ideal]
    return dcg(found, dcg_log) / dcg(ideal_list, idcg_log) if divide else dcg(found, dcg_log)


def _ndcg_mistakes(scores, relevance, k) -> list[tuple[str, Tensor]]:
    args = (scores, relevance, k)
    bases = ("the DCG and the IDCG in different log bases (one natural, one base 2): their "
             "ratio is off by ln 2 = 0.693. Use log2 in both; NDCG does not depend on the "
             "base when both use the same one")
    return [("exponential gains 2^w - 1 (Burges et al.'s variant): this course's gain is w "
             "itself", _ndcg_variant(*args, gains=lambda w: 2 ** w - 1)),
            ("binary gains (any w > 0 counts 1): a conversion is worth alpha, more than a click",
             _ndcg_variant(*args, gains=lambda w: (w > 0).double())),
            ("an IDCG over every relevant item: cut the ideal list at K too",
             _ndcg_variant(*args, ideal="every item")),
            ("an IDCG of the K items you retrieved, re-sorted: the ideal list sorts the gains "
             "of ALL items", _ndcg_variant(*args, ideal="retrieved")),
            ("the padding column 0 ranked like an item: rank columns 1..I only",
             _ndcg_variant(*args, rank_padding=True)),
            ("the discount 1 / log2(r + 2), one rank off: the top item (r = 1) is discounted "
             "by 1 / log2(2) = 1", _ndcg_variant(*args, first_rank=2)),
            ("the lowest scores ranked first: sort by score, descending",
             _ndcg_variant(*args, ascending=True)),
            ("DCG@K not divided by IDCG@K", _ndcg_variant(*args, divide=False)),
            (bases, _ndcg_variant(*args, dcg_log=torch.log)),
            (bases, _ndcg_variant(*args, idcg_log=torch.log))]


def _graded_cases():
    # Lesson 09's worked example: list A (click), B (exposure), C (conversion, alpha 3),
    # D (nothing), with E (like) relevant but not listed: NDCG@4 = 2.5 / 4.1309 = 0.6052.
    hand = (t([[0.0, 0.9, 0.8, 0.7, 0.6, 0.1]]), t([[0.0, 1.0, 0.0, 3.0, 0.0, 1.0]]), 4)
    cases = [("worked example of lesson 09", hand, t([2.5 / (3 + 1 / math.log2(3) + 0.5)])),
             ("ideal order gives 1", (t([[0.0, 0.1, 0.9, 0.5]]), t([[0.0, 0.0, 2.0, 1.0]]), 2),
              t([1.0])),
             ("the padding column is never ranked, whatever its score",
              (t([[5.0, 0.2, 0.9, 0.1]]), t([[4.0, 1.0, 0.0, 2.0]]), 2),
              t([1 / math.log2(3) / (2 + 1 / math.log2(3))]))]
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


def check_weighted_ndcg_at_k(fn) -> None:
    """fn(scores (B, I + 1), relevance (B, I + 1), k) -> (B,) graded NDCG@k, column 0 ignored."""
    cases = [(name, args, (answer, _ndcg_mistakes(*args)))
             for name, args, answer in _graded_cases()]
    return run_naming_mistakes("weighted_ndcg_at_k", fn, cases, same_values,
                                explain=_explain_mean)


# --- task 3: the reciprocal rank ---------------------------------------------------------------

def _rank_counts(scores, targets, rank_padding=False, ascending=False):
    """(#items above the target, #items tied with it), other items of columns 1..I (or 0..I)."""
    s = scores.double().clone()
    s = -s if ascending else s
    if not rank_padding:
        s[:, 0] = -math.inf
    rows = torch.arange(len(targets))
    target = s[rows, targets].clone()
    s[rows, targets] = math.nan                                 # never above, never tied
    return (s > target[:, None]).sum(dim=1).double(), (s == target[:, None]).sum(dim=1).double()


def _reciprocal_rank_mistakes(scores, targets) -> list[tuple[str, Tensor]]:
    above, tied = _rank_counts(scores, targets)
    rank = 1 + above + tied
    padded = 1 + sum(_rank_counts(scores, targets, rank_padding=True))
    lowest_first = 1 + sum(_rank_counts(scores, targets, ascending=True))
    return [("optimistic ties (> instead of >=): an item tied with the target counts against "
             "it", 1 / (1 + above)),
            ("tied items sharing the rank (the average over the tied group): the course "
             "counts every tie against the target", 1 / (1 + above + tied / 2)),
            ("the padding column 0 ranked like an item: it is never ranked", 1 / padded),
            ("the rank itself: return its reciprocal, 1 / rank", rank),
            ("a rank one too large (the target counted as beating itself): rank = 1 + the "
             "number of OTHER items scoring at least as high", 1 / (rank + 1)),
            ("a 0-based rank: the best item has rank 1, so its 1 / rank is 1", 1 / (rank - 1)),
            ("the lowest scores ranked first: the best item has the highest score",
             1 / lowest_first)]


def check_reciprocal_rank(fn) -> None:
    """fn(scores (B, I + 1), targets (B,)) -> (B,) 1 / rank, ties counted against the target."""
    cases = [("best item", (t([[0.0, 0.9, 0.1, 0.3]]), t([1])), t([1.0])),
             ("padding column ignored", (t([[9.0, 0.2, 0.1, 0.5]]), t([1])), t([0.5])),
             ("tied with two others", (t([[0.0, 0.9, 0.5, 0.5, 0.5]]), t([3])), t([0.25])),
             ("third of four, no ties", (t([[0.0, 0.4, 0.8, 0.1, 0.6]]), t([1])), t([1 / 3]))]
    gen = torch.Generator().manual_seed(11)
    for i in range(8):
        scores = torch.randint(0, 4, (6, 15), generator=gen).float()    # small ints: ties
        args = (scores, torch.randint(1, 15, (6,), generator=gen))
        cases.append((f"random {i}", args, metrics.mrr(metrics.target_ranks(*args))))
    cases = [(name, args, (answer, _reciprocal_rank_mistakes(*args)))
             for name, args, answer in cases]
    return run_naming_mistakes("reciprocal_rank", fn, cases, same_values, explain=_explain_mean)


# --- task 4: Entropy@K -------------------------------------------------------------------------

def _entropy_mistakes(topk, item_category) -> list[tuple[str, Tensor]]:
    bits = metrics.entropy_at_k(topk, item_category).double()                 # (B,)
    categories = item_category[topk]                                           # (B, K)
    distinct = t([len(set(row)) for row in categories.tolist()], dtype=torch.float64)
    catalogue = metrics.entropy_at_k(torch.arange(1, len(item_category))[None],
                                     item_category).double().expand(len(topk))
    k = topk.shape[1]
    return [("entropy in nats (the natural log): a ratio of ln 2 = 0.693 to the bits asked "
             "for; use log2", bits * LN2),
            ("entropy with log10: use log2 for bits", bits * math.log10(2)),
            ("log2 of the number of distinct categories: that is the entropy only when every "
             "category has the same share", distinct.log2()),
            ("the entropy divided by log2(K) (normalised entropy): return H in bits",
             bits / math.log2(k) if k > 1 else bits),
            ("the entropy of the whole catalogue's categories: use only each list's K items",
             catalogue),
            ("the entropy without its minus sign: H = -sum p log2 p >= 0", -bits)]


def check_entropy_at_k(fn) -> None:
    """fn(topk (B, K), item_category (I + 1,)) -> (B,) entropy in bits of the categories."""
    cases = [("categories 3/1/1 of a top-5", (t([[1, 2, 3, 4, 5]]), t([0, 0, 0, 0, 1, 2])),
              t([0.6 * math.log2(5 / 3) + 0.4 * math.log2(5)])),              # 1.371 bits
             ("one category", (t([[1, 2, 3]]), t([0, 2, 2, 2])), t([0.0])),
             ("all different", (t([[1, 2, 3, 4]]), t([0, 0, 1, 2, 3])), t([2.0]))]
    gen = torch.Generator().manual_seed(12)
    for i in range(6):
        item_category = torch.randint(0, 5, (31,), generator=gen)
        args = (metrics.topk_items(torch.randn(5, 31, generator=gen), 10), item_category)
        cases.append((f"random {i}", args, metrics.entropy_at_k(*args)))
    cases = [(name, args, (answer, _entropy_mistakes(*args))) for name, args, answer in cases]
    return run_naming_mistakes("entropy_at_k", fn, cases, same_values, explain=_explain_mean)


# --- task 5: the BPR loss ----------------------------------------------------------------------

def _bpr_mistakes(pos_scores, neg_scores) -> list[tuple[str, Tensor]]:
    margin = pos_scores[:, None] - neg_scores                                  # (B, N)
    terms = -torch.nn.functional.logsigmoid(margin)                            # (B, N)
    return [("torch.log(torch.sigmoid(...)): sigma(-100) rounds to 0 in float32 and its log "
             "is -inf; use F.logsigmoid", -torch.log(torch.sigmoid(margin)).mean()),
            ("the margin reversed, s_neg - s_pos: BPR pushes the positive ABOVE the negative, "
             "-ln sigma(s_pos - s_neg)", -torch.nn.functional.logsigmoid(-margin).mean()),
            ("the sum over the B * N pairs: take their mean", terms.sum()),
            ("each positive's N terms summed, then the mean over positives: every pair counts "
             "once, take the mean over all B * N pairs", terms.sum(dim=1).mean()),
            ("the loss without its minus sign: -ln sigma(.) is >= 0", -terms.mean()),
            ("log base 2: BPR's log is the natural log (a ratio of 1 / ln 2 = 1.443)",
             terms.mean() / LN2)]


def check_bpr_loss(fn) -> None:
    """fn(pos_scores (B,), neg_scores (B, N)) -> scalar mean of -ln sigma(s_pos - s_neg);
    finite for large score gaps."""
    cases = [("one pair", (t([2.0]), t([[0.5]])), t(-math.log(1 / (1 + math.exp(-1.5))))),
             ("equal scores give ln 2", (t([1.0, -3.0]), t([[1.0], [-3.0]])), t(LN2)),
             ("a 100-point gap in the wrong direction is finite", (t([0.0]), t([[100.0]])),
              t(100.0)),
             ("two positives, three negatives each: the mean of six terms",
              (t([1.0, 0.0]), t([[0.0, 2.0, -1.0], [0.5, 0.0, 3.0]])),
              t(sum(math.log1p(math.exp(-m)) for m in (1, -1, 2, -0.5, 0, -3)) / 6))]
    gen = torch.Generator().manual_seed(13)
    for i in range(6):
        pos = 3 * torch.randn(8, generator=gen)
        neg = 3 * torch.randn(8, int(torch.randint(1, 6, (1,), generator=gen)), generator=gen)
        cases.append((f"random {i}", (pos, neg), losses.bpr_loss(pos, neg)))
    cases = [(name, args, (answer, _bpr_mistakes(*args))) for name, args, answer in cases]
    run_naming_mistakes("bpr_loss", fn, cases, same_values)
    return expect_error("bpr_loss", fn, (t([1.0, 2.0]), t([0.5, 0.5])), ValueError,
                        "neg_scores without the negatives axis (B,) instead of (B, N)")


# --- task 6: predict, measure, interpret: sampled versus full ranking ---------------------------

N_NEGATIVES = 100                  # the sampled ranking of SASRec's and many papers' tables
SPREAD = 4                         # the range: the expectation +- 4 standard deviations


def expected_sampled_mrr(scores: Tensor, targets: Tensor, history: Tensor | None,
                         n_negatives: int = N_NEGATIVES) -> tuple[float, float]:
    """The expected MRR (and its standard deviation over the draws) when each target is ranked
    against `n_negatives` items drawn uniformly without replacement from its pool: the sampled
    rank is 1 + X with X hypergeometric (`metrics.sampled_rank_distribution`), so E[1 / (1 + X)]
    needs no sampling. The standard deviation is that of the mean over users of one draw each
    (users draw independently)."""
    p = metrics.sampled_rank_distribution(scores, targets, history, n_negatives)   # (B, n + 1)
    repeated = (metrics.repeated_targets(history, targets) if history is not None
                else torch.zeros_like(targets, dtype=torch.bool))              # (B,) masked
    pool = (metrics.mask_history(scores, history) > -math.inf).sum(dim=1) - (~repeated).long()
    if int(pool.min()) < n_negatives:
        raise ValueError(f"a user has only {int(pool.min())} items to sample from, fewer "
                         f"than n_negatives={n_negatives}")
    reciprocal = 1 / torch.arange(1, n_negatives + 2, dtype=torch.float64)       # 1 / (1 + x)
    mean = (p * reciprocal).sum(dim=1)                                         # (B,)
    variance = (p * reciprocal ** 2).sum(dim=1) - mean ** 2
    return float(mean.mean()), float(variance.sum().sqrt() / len(mean))


def check_sampled_mrr(measure, scores: Tensor, targets: Tensor, history: Tensor | None) -> None:
    """measure() -> the MRR of `scores` when each target is ranked against N_NEGATIVES = 100
    items drawn from its pool (one draw per user). Passes inside the expectation +- 4
    standard deviations of the draw (`expected_sampled_mrr`), whatever the random numbers."""
    expected, spread = expected_sampled_mrr(scores, targets, history)
    full = float(metrics.mrr(metrics.target_ranks(scores, targets, history)).mean())
    hint = (f"the full-ranking MRR is {full:.3f}: rank each target against itself and "
            f"{N_NEGATIVES} items drawn without replacement from the items with a finite score "
            "other than the target (every other item -inf), then take your reciprocal_rank")
    return check_measured("sampled MRR", measure, expected - SPREAD * spread,
                          expected + SPREAD * spread, "the MRR with 100 sampled negatives", hint)


def check_why_sampled_mrr_is_higher(choose) -> None:
    """Why the sampled MRR is higher than the full one (the letter of the explanation)."""
    reasons = {
        "a": "no: the sampled rank uses the same pessimistic rule; an item tied with the target "
             "counts against it whenever it is drawn, exactly like an item that scores higher",
        "b": "yes: against n = 100 of the M items it competes with, a target is beaten only by "
             "the drawn items among the r - 1 above it, about (r - 1) n / M of them. Every rank "
             "shrinks, so every reciprocal rank grows, and the model did not get better",
        "c": "no: a uniformly drawn item is an average item of the pool, no easier to beat than "
             "the others; each item above the target is drawn with the same probability n / M. "
             "There are fewer competitors, not easier ones",
        "d": "no: the reciprocal rank has no cut-off, in the full ranking or the sampled one"}
    return check_choice("why the sampled MRR is higher", choose, "b", reasons)
