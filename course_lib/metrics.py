"""Ranking, beyond-accuracy and codebook metrics for generative recommendation.

Dimensions: B users (the batch), I items, K the cut-off of a top-K list, T history length,
N codes (or semantic-ID tuples), L levels of a semantic ID.

Conventions, shared with the rest of `course_lib`:

- Item ids run 1..I; 0 is padding. A score matrix `scores` is a float tensor (B, I + 1)
  whose column 0 is padding and is never ranked (it counts as -inf).
- `targets` (B,) holds one held-out item id per user (leave-one-out).
- `history` (B, T) holds the items a user has already seen, padded with 0 on either side;
  0 entries are ignored. Given, it masks every seen item ("exclude seen"); left out, nothing
  but padding is masked ("allow repeats"). Never is the mask decided by the target (`SEEN`).
- A score of -inf means "masked": a masked item never counts against the target and is
  never recommended ahead of an unmasked one.

Tie policy: PESSIMISTIC. The target gains nothing from ties:

    rank = 1 + #{valid items j != target with score_j >= score_target}

so a model that gives every item the same score ranks each target last, not in the middle.
Libraries differ here (sklearn and torchmetrics average over ties, trec_eval breaks them by
id, ranx is pessimistic); pessimistic ranks cannot be gamed by a constant model. The
multi-relevance metrics (`hits_at_k`, `recall_at_k`, `precision_at_k`, `graded_ndcg_at_k`)
use the same rule: among equal scores the LESS relevant item comes first.

With one target at rank r: HR@K = 1[r <= K], NDCG@K = 1[r <= K] / log2(r + 1),
MRR = 1 / r. Prefer full ranking: sampled metrics (`sampled_ranks`) inflate every score and
can reverse the order of two models (Krichene & Rendle, KDD 2020).

Everything is batched with tensor ops and runs on the device of its input.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch
from torch import Tensor

NEG_INF = float("-inf")


# --- input checks: every public function validates at its boundary ------------------------

def _check_tensor(x, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; "
                        f"wrap it with torch.tensor(...)")


def _check_int_tensor(x, name: str) -> None:
    _check_tensor(x, name)
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype}; call .long()")


def _check_scores(scores, name: str = "scores") -> None:
    _check_tensor(scores, name)
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"{name} must be 2-D (B, I + 1) with column 0 for padding; "
                         f"got shape {tuple(scores.shape)}")
    if not scores.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {scores.dtype}; "
                        "call .float()")
    if torch.isnan(scores).any():
        raise ValueError(f"{name} contain NaN: check the model's output")


def _check_targets(targets, scores: Tensor) -> Tensor:
    _check_int_tensor(targets, "targets")
    if targets.dim() != 1:
        raise ValueError(f"targets must be 1-D (B,), one item id per user; "
                         f"got shape {tuple(targets.shape)}")
    if targets.shape[0] != scores.shape[0]:
        raise ValueError(f"targets has {targets.shape[0]} rows but scores has "
                         f"{scores.shape[0]}; pass one target per row of scores")
    n_items = scores.shape[1] - 1
    if targets.numel() and (targets.min() < 1 or targets.max() > n_items):
        raise ValueError(f"targets must be item ids in [1, I] = [1, {n_items}]; 0 is padding")
    return targets.to(scores.device).long()


def _check_history(history, n_rows: int, n_items: int, device) -> Tensor:
    _check_int_tensor(history, "history")
    if history.dim() != 2:
        raise ValueError(f"history must be 2-D (B, T) of item ids padded with 0; "
                         f"got shape {tuple(history.shape)}")
    if history.shape[0] != n_rows:
        raise ValueError(f"history has {history.shape[0]} rows but there are {n_rows} "
                         "users to rank for; pass one history row per user")
    if history.numel() and (history.min() < 0 or history.max() > n_items):
        raise ValueError(f"history must hold item ids in [1, I] = [1, {n_items}] "
                         "or 0 for padding")
    return history.to(device).long()


def _check_k(k, n_items: int | None = None, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"{name} must be an int >= 1, got {k!r}")
    if n_items is not None and k > n_items:
        raise ValueError(f"{name}={k} is larger than the number of items I={n_items}; "
                         f"use {name} <= I")


def _check_ranks(ranks) -> None:
    _check_int_tensor(ranks, "ranks")
    if ranks.numel() and ranks.min() < 1:
        raise ValueError("ranks must be 1-based (>= 1), got a rank of "
                         f"{int(ranks.min())}; use target_ranks(...) to compute them")


def _check_relevance(relevance, scores: Tensor) -> Tensor:
    _check_tensor(relevance, "relevance")
    if relevance.shape != scores.shape:
        raise ValueError(f"relevance must have the shape of scores (B, I + 1) = "
                         f"{tuple(scores.shape)}, got {tuple(relevance.shape)}")
    relevance = relevance.to(scores.device, torch.float64)
    if torch.isnan(relevance).any():
        raise ValueError("relevance contains NaN: use 0 for items that are not relevant")
    if (relevance < 0).any():
        raise ValueError("relevance must be >= 0 (a gain per item); "
                         "use 0 for items that are not relevant")
    return relevance


def _check_topk(topk, n_items: int) -> None:
    _check_int_tensor(topk, "topk")
    if topk.dim() != 2:
        raise ValueError(f"topk must be 2-D (B, K) of item ids, e.g. from topk_items; "
                         f"got shape {tuple(topk.shape)}")
    if topk.numel() and (topk.min() < 1 or topk.max() > n_items):
        raise ValueError(f"topk must hold item ids in [1, I] = [1, {n_items}]; "
                         "0 is padding and is never recommended")


def check_codes(codes, n_codes=None, *, levels: bool = False, allow_missing: bool = False,
                name: str = "codes") -> Tensor:
    """The one validator of quantizer codes (code indices, semantic-ID tokens); returns them
    as a long tensor.

    codes: an integer tensor of any shape, or with levels=True a non-empty 2-D (items,
    levels) tensor. Every value must be >= 0, or -1 (a token removed from a variable-length
    ID) where allow_missing=True, and below `n_codes` when it is given: one int for all
    codes, or one int per level.
    """
    codes = torch.as_tensor(codes)
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {codes.dtype}; call .long()")
    if levels and (codes.dim() != 2 or codes.shape[0] == 0 or codes.shape[1] == 0):
        raise ValueError(f"{name} must be 2-D (items, levels) and non-empty, got shape "
                         f"{tuple(codes.shape)}; use codes[:, None] for a single level")
    if codes.numel() == 0:
        raise ValueError(f"{name} is empty: pass at least one code index")
    low = -1 if allow_missing else 0
    if int(codes.min()) < low:
        raise ValueError(f"{name} must be >= {low}, got {int(codes.min())}"
                         + ("" if allow_missing else "; variable-length IDs (with -1) "
                            "cannot be used here, keep fixed-length IDs"))
    if n_codes is not None:
        sizes = torch.as_tensor(n_codes, device=codes.device)
        if sizes.dim() == 1 and (codes.dim() != 2 or len(sizes) != codes.shape[1]):
            raise ValueError(f"need one codebook size per level: {name} has shape "
                             f"{tuple(codes.shape)}, got {len(sizes)} sizes")
        if (sizes < 1).any():
            raise ValueError(f"codebook sizes must be >= 1, got {n_codes}")
        if (codes >= sizes).any():
            raise ValueError(f"{name} must be indices below the codebook size {n_codes}, got "
                             f"values up to {int(codes.max())}; check n_codes (the codebook "
                             "size)")
    return codes.long()


# --- leave-one-out: one target per user ---------------------------------------------------
#
# What is masked is decided by the history alone, never by the target (the course's evaluation
# protocol). Two honest conventions, by name (`SEEN`):
#
#   "exclude"  exclude seen: every history item is masked. A target that repeats a history item
#              is then unreachable: it ranks after every candidate and counts as a miss
#              (`repeated_targets` tells how many there are; report the share).
#   "allow"    allow repeats: nothing is masked, so a seen item may be recommended again (and
#              competes with the unseen ones).
#
# The rule that looks like a compromise, "mask the history except the target", leaks the answer:
# when the target repeats a history item, every OTHER seen item is removed and the target is the
# one seen item left standing, so "history first" rises to the top for free (lesson 00).

SEEN = ("exclude", "allow")


def check_seen(seen) -> str:
    """The name of an evaluation convention, checked: "exclude" (seen items masked) or "allow"
    (repeats allowed, nothing masked)."""
    if seen not in SEEN:
        raise ValueError(f"seen must be one of {SEEN} ('exclude': every history item is masked, a "
                         f"repeated target counts as a miss; 'allow': nothing is masked), got "
                         f"{seen!r}")
    return seen


def mask_history(scores: Tensor, history: Tensor | None) -> Tensor:
    """A copy of `scores` (B, I + 1) with column 0 and every history item set to -inf: the
    "exclude seen" convention. The mask depends on the history alone: a target that repeats a
    history item is masked too, and can then never be recommended. history=None masks column
    0 only ("allow repeats"), so `mask_history(scores, eval_set.excluded)` follows a split's
    convention either way."""
    _check_scores(scores)
    if history is None:
        return _mask_padding(scores)
    history = _check_history(history, scores.shape[0], scores.shape[1] - 1, scores.device)
    masked = torch.zeros_like(scores, dtype=torch.bool)
    masked.scatter_(1, history, True)  # (B, I + 1); history's 0s land on column 0
    masked[:, 0] = True
    return scores.masked_fill(masked, NEG_INF)


def repeated_targets(history: Tensor, targets: Tensor) -> Tensor:
    """(B,) bool: does the target repeat an item of its user's history (B, T)? Under "exclude
    seen" these targets are unreachable; report their share beside the metrics."""
    _check_int_tensor(targets, "targets")
    if targets.dim() != 1:
        raise ValueError(f"targets must be 1-D (B,), got shape {tuple(targets.shape)}")
    _check_int_tensor(history, "history")
    if history.dim() != 2 or history.shape[0] != targets.shape[0]:
        raise ValueError(f"history must be (B, T) with B = {targets.shape[0]} rows, one per "
                         f"target; got shape {tuple(history.shape)}")
    targets = targets.to(history.device).long()
    return ((history.long() == targets[:, None]) & (targets[:, None] > 0)).any(dim=1)


def _mask_padding(scores: Tensor) -> Tensor:
    out = scores.clone()
    out[:, 0] = NEG_INF
    return out


def target_ranks(scores: Tensor, targets: Tensor, history: Tensor | None = None) -> Tensor:
    """1-based full-ranking rank of each target (B,), pessimistic over ties.

    rank = 1 + #{items j != target, score_j != -inf, score_j >= score_target}. With `history`
    every seen item is masked first (`mask_history`, "exclude seen"); a target that repeats
    one is masked with them: it cannot be recommended, and gets rank I + 1, past the end of
    the catalogue, a miss at every cut-off. A target the scores themselves mask (-inf) is a
    miss in the same way. Without `history` nothing but padding is masked ("allow repeats").
    """
    _check_scores(scores)
    targets = _check_targets(targets, scores)
    if history is None:
        scores = _mask_padding(scores)
    else:
        scores = mask_history(scores, history)
    rows = torch.arange(len(targets), device=scores.device)
    target_score = scores[rows, targets].unsqueeze(1)  # (B, 1)
    counts = (scores >= target_score) & (scores != NEG_INF)  # (B, I + 1)
    counts[rows, targets] = False
    unreachable = target_score[:, 0] == NEG_INF  # masked: past the end of the catalogue
    return torch.where(unreachable, scores.shape[1], 1 + counts.sum(dim=1))


def hr_at_k(ranks: Tensor, k: int) -> Tensor:
    """Hit rate HR@K = 1[r <= K] per user (B,); equals Recall@K with one target."""
    _check_ranks(ranks)
    _check_k(k)
    return (ranks <= k).float()


def ndcg_at_k(ranks: Tensor, k: int) -> Tensor:
    """NDCG@K = 1[r <= K] / log2(r + 1) per user (B,): one relevant item, so IDCG = 1."""
    _check_ranks(ranks)
    _check_k(k)
    gain = 1.0 / torch.log2(ranks.double() + 1.0)
    return torch.where(ranks <= k, gain, torch.zeros_like(gain)).float()


def mrr(ranks: Tensor) -> Tensor:
    """Reciprocal rank 1 / r per user (B,), with no cut-off (the full MRR)."""
    _check_ranks(ranks)
    return 1.0 / ranks.float()


def _check_ks(ks, n_items: int) -> tuple[int, ...]:
    if isinstance(ks, int) and not isinstance(ks, bool):
        ks = (ks,)
    if not isinstance(ks, Iterable):
        raise TypeError(f"ks must be a tuple of cut-offs such as (10,), got {ks!r}")
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks is empty: pass at least one cut-off, e.g. ks=(10,)")
    for k in ks:
        _check_k(k, n_items)
    return ks


def summarise(ranks: Tensor, ks=(10,)) -> dict[str, float]:
    """HR@K and NDCG@K for each K in `ks`, and MRR, averaged over users, from 1-based ranks
    (B,): the one summary every evaluation in the course reports (keys "HR@10", "NDCG@10",
    "MRR")."""
    _check_ranks(ranks)
    if isinstance(ks, int) and not isinstance(ks, bool):
        ks = (ks,)
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks is empty: pass at least one cut-off, e.g. ks=(10,)")
    if ranks.numel() == 0:
        raise ValueError("ranks is empty: there is no user to average over")
    out = {}
    for k in ks:
        out[f"HR@{k}"] = hr_at_k(ranks, k).mean().item()
        out[f"NDCG@{k}"] = ndcg_at_k(ranks, k).mean().item()
    out["MRR"] = mrr(ranks).mean().item()
    return out


def evaluate(scores: Tensor, targets: Tensor, history: Tensor | None = None,
             ks=(10,)) -> dict[str, float]:
    """Full-ranking HR@K, NDCG@K for each K in `ks`, and MRR, averaged over users."""
    _check_scores(scores)
    ks = _check_ks(ks, scores.shape[1] - 1)
    return summarise(target_ranks(scores, targets, history), ks)


def ranks_from_topk(topk: Tensor, targets: Tensor, n_items: int,
                    history: Tensor | None = None) -> Tensor:
    """Full-ranking ranks (B,) of the targets for a model that returns only a ranked list.

    A generative model (beam search) names its top K items, best first, and says nothing
    about the others. Read as a score matrix, every item outside the list ties below it, so
    under the pessimistic rule a target in the list at position p has rank p, and a target
    outside it ranks last among the unlisted items: rank = number of rankable items, I, or
    I minus the distinct history items when `history` (B, T) is masked ("exclude seen", as in
    `mask_history`). A target that repeats a history item is then masked too: rank I + 1, a
    miss even if the list names it, as in `target_ranks`. Always > K, so HR@k and NDCG@k for
    k <= K are exact and MRR is a lower bound.

    `topk` (B, K) item ids in 1..I, best first, distinct within a row; a 0 marks an empty
    slot (a beam that returned fewer than K items) and never matches a target.
    """
    _check_k(n_items, name="n_items")
    _check_int_tensor(topk, "topk")
    if topk.dim() != 2:
        raise ValueError(f"topk must be 2-D (B, K) ranked item ids, got shape "
                         f"{tuple(topk.shape)}; for one user use topk[None]")
    if topk.numel() and (topk.min() < 0 or topk.max() > n_items):
        raise ValueError(f"topk must hold item ids in [1, {n_items}] (0 marks an empty slot)")
    if topk.shape[1] > n_items:
        raise ValueError(f"topk has {topk.shape[1]} columns but there are only {n_items} "
                         "items; a ranked list names each item at most once")
    _check_int_tensor(targets, "targets")
    if targets.shape != topk.shape[:1]:
        raise ValueError(f"targets must be (B,) = ({topk.shape[0]},), one per row of topk; "
                         f"got shape {tuple(targets.shape)}")
    if targets.numel() and (targets.min() < 1 or targets.max() > n_items):
        raise ValueError(f"targets must be item ids in [1, {n_items}]; 0 is padding")
    targets = targets.to(topk.device).long()
    last = torch.full_like(targets, n_items)                              # (B,) worst rank
    unreachable = torch.zeros_like(targets, dtype=torch.bool)
    if history is not None:
        history = _check_history(history, len(targets), n_items, topk.device)
        seen = torch.zeros(len(targets), n_items + 1, dtype=torch.bool, device=topk.device)
        seen.scatter_(1, history.to(topk.device), True)                   # (B, I + 1)
        seen[:, 0] = False
        unreachable = seen[torch.arange(len(targets), device=topk.device), targets]
        last = last - seen.sum(dim=1)
    hit = (topk.long() == targets[:, None]) & ~unreachable[:, None]       # (B, K)
    position = hit.float().argmax(dim=1) + 1                              # (B,) 1-based
    ranks = torch.where(hit.any(dim=1), position, last)
    return torch.where(unreachable, n_items + 1, ranks)                   # masked: a miss


# --- sampled evaluation (for comparison only: prefer full ranking) ------------------------

def sampled_ranks(scores: Tensor, targets: Tensor, history: Tensor | None = None,
                  n_negatives: int = 100, generator: torch.Generator | None = None) -> Tensor:
    """Rank of each target (B,) among itself and `n_negatives` sampled items.

    The negatives are drawn uniformly without replacement per user from the items that are
    not padding, not the target and not in the history (random keys, then top-n over the
    allowed items). Same pessimistic tie rule as `target_ranks`, so a sampled rank is never
    worse than the full rank: sampled metrics are optimistic (Krichene & Rendle, KDD 2020).
    With `history` ("exclude seen"), a target that repeats a history item is masked as in
    `target_ranks`: every negative beats it (rank n_negatives + 1, a miss).
    """
    _check_scores(scores)
    targets = _check_targets(targets, scores)
    _check_k(n_negatives, name="n_negatives")
    batch, device = scores.shape[0], scores.device
    rows = torch.arange(batch, device=device)
    allowed = torch.ones_like(scores, dtype=torch.bool)  # (B, I + 1)
    if history is not None:
        allowed.scatter_(1, _check_history(history, batch, scores.shape[1] - 1, device), False)
    allowed[:, 0] = False
    allowed[rows, targets] = False
    n_allowed = allowed.sum(dim=1)  # (B,)
    if batch and n_allowed.min() < n_negatives:
        user = int(torch.argmin(n_allowed))
        raise ValueError(f"n_negatives={n_negatives} but user {user} has only "
                         f"{int(n_allowed[user])} items left to sample from; "
                         "lower n_negatives or use target_ranks (full ranking)")
    keys_device = generator.device if generator is not None else device
    keys = torch.rand(scores.shape, generator=generator, device=keys_device).to(device)
    keys = keys.masked_fill(~allowed, -1.0)  # keys are in [0, 1): disallowed never win
    negatives = keys.topk(n_negatives, dim=1).indices  # (B, n_negatives)
    negative_scores = scores.gather(1, negatives)  # (B, n_negatives)
    target_score = scores[rows, targets].unsqueeze(1)  # (B, 1)
    beaten = (negative_scores >= target_score) & (negative_scores != NEG_INF)
    ranks = 1 + beaten.sum(dim=1)
    if history is not None:
        unreachable = repeated_targets(history.to(device), targets)
        ranks = torch.where(unreachable, torch.full_like(ranks, n_negatives + 1), ranks)
    return ranks


def sampled_rank_distribution(scores: Tensor, targets: Tensor, history: Tensor | None = None,
                              n_negatives: int = 100) -> Tensor:
    """P(sampled rank = 1 + x) for x = 0..n_negatives, per user (B, n_negatives + 1), float64:
    the exact distribution `sampled_ranks` draws from, so expectations need no sampling.

    If r - 1 of the M items a user's negatives are drawn from beat the target (same pool and
    pessimistic tie rule as `sampled_ranks`), the number X of them among n drawn without
    replacement is hypergeometric (Krichene & Rendle, KDD 2020):

        P(X = x) = C(r - 1, x) C(M - r + 1, n - x) / C(M, n).

    Then E[sampled HR@k] = P(X <= k - 1) = p[:, :k].sum(1) and E[sampled RR] = sum_x p_x / (1 + x).
    A user with M < n_negatives is ranked against all M items: full ranking, the limit of
    sampling (`sampled_ranks` refuses such a user instead). With `history`, a target that
    repeats a history item is a miss: X = n with probability 1."""
    _check_scores(scores)
    targets = _check_targets(targets, scores)
    _check_k(n_negatives, name="n_negatives")
    rows = torch.arange(scores.shape[0], device=scores.device)
    allowed = torch.ones_like(scores, dtype=torch.bool)                      # (B, I + 1)
    if history is not None:
        allowed.scatter_(1, _check_history(history, len(rows), scores.shape[1] - 1, scores.device), False)
    allowed[:, 0] = False
    allowed[rows, targets] = False
    beats = allowed & (scores >= scores[rows, targets][:, None]) & (scores != NEG_INF)
    pool = allowed.sum(dim=1, keepdim=True).double()                         # (B, 1): M
    above = beats.sum(dim=1, keepdim=True).double()                          # (B, 1): r - 1
    if history is not None:                                                  # masked target:
        unreachable = repeated_targets(history.to(scores.device), targets)[:, None]
        above = torch.where(unreachable, pool, above)                        # all M beat it
    n = pool.clamp(max=n_negatives)                                          # (B, 1)
    x = torch.arange(n_negatives + 1, dtype=torch.float64, device=scores.device)[None]   # (1, n + 1)

    def log_choose(a, b):
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)

    below = pool - above                                                     # M - r + 1
    possible = (x <= above) & (x <= n) & (n - x <= below)
    log_p = (log_choose(above, x.minimum(above)) + log_choose(below, (n - x).clamp(min=0).minimum(below))
             - log_choose(pool, n))
    return torch.where(possible, log_p.exp(), torch.zeros_like(log_p))


def evaluate_sampled(scores: Tensor, targets: Tensor, history: Tensor | None = None,
                     n_negatives: int = 100, ks=(10,),
                     generator: torch.Generator | None = None) -> dict[str, float]:
    """Sampled HR@K, NDCG@K and MRR (keys as in `evaluate`), averaged over users."""
    _check_scores(scores)
    ks = _check_ks(ks, scores.shape[1] - 1)
    ranks = sampled_ranks(scores, targets, history, n_negatives, generator)
    return summarise(ranks, ks)


# --- several relevant items per user ------------------------------------------------------

def topk_items(scores: Tensor, k: int) -> Tensor:
    """The k highest-scoring item ids (B, k), best first; column 0 is never returned.

    Ties go to the lower item id, so the list is deterministic. Masked (-inf) items come
    last, so they appear only when k exceeds the number of unmasked items.
    """
    _check_scores(scores)
    _check_k(k, scores.shape[1] - 1)
    order = torch.sort(scores[:, 1:], dim=1, descending=True, stable=True).indices
    return order[:, :k] + 1  # (B, k); +1 because column 0 was left out


def _pessimistic_order(scores: Tensor, relevance: Tensor) -> Tensor:
    """Item columns 1..I (B, I) by score descending; among equal scores the LESS relevant
    item comes first (two stable sorts: relevance ascending, then score descending)."""
    by_relevance = torch.sort(relevance[:, 1:], dim=1, stable=True).indices  # (B, I)
    by_score = torch.sort(scores[:, 1:].gather(1, by_relevance), dim=1,
                          descending=True, stable=True).indices
    return by_relevance.gather(1, by_score)  # (B, I), 0-based over columns 1..I


def _relevant_in_top_k(scores: Tensor, relevance: Tensor, k: int) -> Tensor:
    _check_scores(scores)
    relevance = _check_relevance(relevance, scores)
    _check_k(k, scores.shape[1] - 1)
    top = _pessimistic_order(scores, relevance)[:, :k]  # (B, k)
    return relevance[:, 1:].gather(1, top) > 0  # (B, k)


def _n_relevant(relevance: Tensor, scores: Tensor, metric: str) -> Tensor:
    n_rel = (_check_relevance(relevance, scores)[:, 1:] > 0).sum(dim=1)  # (B,)
    if (n_rel == 0).any():
        user = int(torch.argmin(n_rel))
        raise ValueError(f"{metric} is undefined for a user with no relevant item "
                         f"(user {user}); drop such users before evaluating")
    return n_rel


def hits_at_k(scores: Tensor, relevance: Tensor, k: int) -> Tensor:
    """HR@K with several relevant items: 1[any relevant item in the top k] per user (B,).

    `relevance` (B, I + 1) is float or bool; an item is relevant iff its value is > 0.
    Column 0 (padding) is ignored, so a relevance matrix built by scattering 0-padded id
    lists is fine. Ties are pessimistic (a relevant item loses ties to irrelevant ones).
    """
    return _relevant_in_top_k(scores, relevance, k).any(dim=1).float()


def recall_at_k(scores: Tensor, relevance: Tensor, k: int) -> Tensor:
    """Recall@K = hits in the top k / |relevant| per user (B,).

    Plain hits / |rel|, NOT hits / min(k, |rel|): a user with more relevant items than k
    cannot reach 1. Users with no relevant item raise an error (recall is undefined).
    """
    hits = _relevant_in_top_k(scores, relevance, k).sum(dim=1)
    return (hits / _n_relevant(relevance, scores, "recall")).float()


def precision_at_k(scores: Tensor, relevance: Tensor, k: int) -> Tensor:
    """Precision@K = hits in the top k / k per user (B,)."""
    return _relevant_in_top_k(scores, relevance, k).sum(dim=1).float() / k


def graded_ndcg_at_k(scores: Tensor, relevance: Tensor, k: int) -> Tensor:
    """Graded NDCG@K per user (B,) with linear gains (as trec_eval, sklearn, torchmetrics).

    `relevance` (B, I + 1) holds a gain w(i) >= 0 per item, e.g. exposure 0, click 1,
    conversion alpha. DCG@K = sum_{r <= K} w(i_r) / log2(r + 1) over the ranked list;
    IDCG@K is the DCG of the ideal order. Ties are pessimistic: among equal scores the less
    relevant item is ranked first. Users whose IDCG is 0 (no gain at all) raise an error.
    """
    _check_scores(scores)
    relevance = _check_relevance(relevance, scores)
    _check_k(k, scores.shape[1] - 1)
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, device=scores.device,
                                             dtype=torch.float64))  # (k,)
    order = _pessimistic_order(scores, relevance)[:, :k]  # (B, k)
    dcg = (relevance[:, 1:].gather(1, order) * discount).sum(dim=1)
    ideal = torch.sort(relevance[:, 1:], dim=1, descending=True).values[:, :k]  # (B, k)
    idcg = (ideal * discount).sum(dim=1)
    if (idcg == 0).any():
        user = int(torch.argmin(idcg))
        raise ValueError(f"graded NDCG is undefined for a user with no positive gain "
                         f"(user {user}); drop such users before evaluating")
    return (dcg / idcg).float()


def graded_relevance(rows: Tensor, items: Tensor, actions, n_rows: int, n_items: int,
                     gains: dict[str, float]) -> Tensor:
    """Gains w(i) (n_rows, I + 1), float64, from an event stream: entry (r, i) is the LARGEST
    gain among row r's events on item i (a click then a conversion counts as a conversion),
    0 where there is no event and in the padding column 0.

    rows (E,) row index in [0, n_rows) of each event (e.g. a user's position in the batch),
    items (E,) item ids in 1..I, actions (E,) action names, `gains` maps every action name to
    its gain, e.g. {"exposure": 0, "click": 1, "like": 1, "conversion": alpha}.
    """
    _check_int_tensor(rows, "rows")
    _check_int_tensor(items, "items")
    actions = [str(a) for a in actions]
    if not (rows.dim() == items.dim() == 1 and len(rows) == len(items) == len(actions)):
        raise ValueError(f"rows, items and actions must be 1-D and of one length (one entry "
                         f"per event), got {tuple(rows.shape)}, {tuple(items.shape)} and "
                         f"{len(actions)} actions")
    unknown = sorted(set(actions) - set(gains))
    if unknown:
        raise ValueError(f"no gain for actions {unknown}; gains has {sorted(gains)}")
    if any(g < 0 for g in gains.values()):
        raise ValueError(f"gains must be >= 0, got {gains}")
    if rows.numel() and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"rows must be in [0, n_rows) = [0, {n_rows})")
    if items.numel() and (items.min() < 1 or items.max() > n_items):
        raise ValueError(f"items must be item ids in [1, {n_items}]; 0 is padding")
    values = torch.tensor([float(gains[a]) for a in actions], dtype=torch.float64,
                          device=items.device)                                   # (E,)
    flat = torch.zeros(n_rows * (n_items + 1), dtype=torch.float64, device=items.device)
    flat.scatter_reduce_(0, rows.long() * (n_items + 1) + items.long(), values, reduce="amax")
    return flat.view(n_rows, n_items + 1)


# --- beyond accuracy: diversity and coverage of the recommended lists ---------------------

def entropy_at_k(topk: Tensor, item_category: Tensor, base: float = 2.0) -> Tensor:
    """Entropy of the category distribution within each user's top-k list (B,).

    H = -sum_c p_c log p_c with p_c the share of the list in category c; in bits by
    default (base 2). Categories [a, a, a, b, c] give 1.371 bits; one category gives 0.
    `item_category` (I + 1,) maps each item id to a category index >= 0 (entry 0 unused).
    """
    _check_int_tensor(item_category, "item_category")
    if item_category.dim() != 1 or item_category.numel() < 2:
        raise ValueError("item_category must be 1-D (I + 1,), one category per item id "
                         f"with entry 0 for padding; got shape {tuple(item_category.shape)}")
    if item_category.min() < 0:
        raise ValueError("item_category must hold category indices >= 0")
    _check_topk(topk, item_category.numel() - 1)
    if isinstance(base, bool) or not isinstance(base, (int, float)) or base <= 0 or base == 1:
        raise ValueError(f"base must be a number > 0 and != 1 (2 for bits, e for nats), "
                         f"got {base!r}")
    item_category = item_category.to(topk.device).long()
    categories = item_category[topk.long()]  # (B, K)
    n_categories = int(item_category.max()) + 1
    counts = torch.zeros(topk.shape[0], n_categories, device=topk.device, dtype=torch.float64)
    counts.scatter_add_(1, categories, torch.ones_like(categories, dtype=torch.float64))
    return count_entropy(counts, base).float()  # (B,)


def count_entropy(counts: Tensor, base: float = 2.0) -> Tensor:
    """Entropy -sum_c p_c log p_c of the distribution p = counts / sum(counts), along the
    last dimension (so a (B, C) table gives (B,)), float64; bits by default, 0 log 0 = 0."""
    _check_tensor(counts, "counts")
    if counts.dim() == 0 or counts.shape[-1] == 0:
        raise ValueError(f"counts must have at least one entry on its last axis, got shape "
                         f"{tuple(counts.shape)}")
    if torch.isnan(counts).any() or (counts < 0).any():
        raise ValueError("counts must be >= 0 and not NaN (they are how often each outcome "
                         "occurred)")
    totals = counts.double().sum(dim=-1, keepdim=True)
    if (totals == 0).any():
        raise ValueError("a row of counts sums to 0: the distribution, and so its entropy, is "
                         "undefined; drop empty rows (e.g. codes never used at any level)")
    p = counts.double() / totals
    plogp = torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))
    return -plogp.sum(dim=-1) / math.log(base)


def coverage(topk: Tensor, n_items: int) -> float:
    """Catalogue coverage: distinct items recommended across all lists / I."""
    _check_k(n_items, name="n_items")
    _check_topk(topk, n_items)
    return torch.unique(topk).numel() / n_items


# --- codebooks and semantic IDs -----------------------------------------------------------

def code_counts(codes: Tensor, n_codes: int) -> Tensor:
    """How often each code is used (n_codes,); `codes` has any shape, values in [0, N)."""
    _check_k(n_codes, name="n_codes")
    codes = check_codes(codes, n_codes)
    return torch.bincount(codes.flatten().long(), minlength=n_codes)


def utilisation(codes: Tensor, n_codes: int) -> float:
    """Share of the codebook in use: codes used at least once / n_codes."""
    return (code_counts(codes, n_codes) > 0).sum().item() / n_codes


def perplexity(codes: Tensor, n_codes: int) -> float:
    """Codebook perplexity exp(-sum p log p) (natural log) of the code usage p.

    1 when a single code is used, n_codes when usage is uniform: the effective number of
    codes in use.
    """
    return math.exp(count_entropy(code_counts(codes, n_codes), base=math.e).item())


def gini(counts: Tensor) -> float:
    """Gini coefficient of a count vector, zeros included (popularity or code usage).

    G = sum_i (2i - n - 1) x_(i) / (n sum x) over counts sorted ascending, i = 1..n.
    0 for equal counts, approaching 1 when one entry holds everything (max 1 - 1/n).
    """
    _check_tensor(counts, "counts")
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D tensor, got shape "
                         f"{tuple(counts.shape)}; use code_counts(...) or a bincount")
    x = counts.double()
    if torch.isnan(x).any() or (x < 0).any():
        raise ValueError("counts must be >= 0 and not NaN")
    total = x.sum()
    if total == 0:
        raise ValueError("counts are all zero: the Gini coefficient is undefined")
    x = torch.sort(x).values
    n = x.numel()
    i = torch.arange(1, n + 1, device=x.device, dtype=torch.float64)
    return ((2 * i - n - 1) * x).sum().item() / (n * total.item())


def collision_rate(ids: Tensor) -> float:
    """Share of items whose semantic ID is not unique: 1 - unique rows / N, ids (N, L)."""
    _check_int_tensor(ids, "ids")
    if ids.dim() != 2 or ids.shape[0] == 0:
        raise ValueError(f"ids must be 2-D (N, L), one semantic-ID tuple per item, "
                         f"got shape {tuple(ids.shape)}; use ids[:, None] for 1 level")
    return 1.0 - torch.unique(ids, dim=0).shape[0] / ids.shape[0]
