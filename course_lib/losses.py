"""Training losses for recommenders, from first principles: BPR, InfoNCE and sampled softmax
with the log-q correction.

Dimensions: B rows (users, or positions of a sequence flattened), N negatives per row,
D embedding width. A "score" is the model's logit s(u, i) for user (or context) u and item i.

* BPR (Rendle et al., UAI 2009, the BPR-Opt criterion without its prior term): the
  probability that u prefers the positive i over a negative j is sigma(s_ui - s_uj);
  maximum likelihood gives -ln sigma(s_ui - s_uj), averaged over (u, i, j) triples.
* InfoNCE (van den Oord et al. 2018, section 2.3; "in-batch softmax" in recommendation,
  Yi et al., RecSys 2019): a softmax over the batch, where each query's positive is the
  matching row and the other rows' positives are its negatives.
* Sampled softmax (Bengio & Senecal 2008; Jean et al., ACL 2015): the full softmax over I
  items is approximated by the positive plus N negatives drawn from a proposal q. Subtracting
  ln q from every candidate's logit (the log-q correction, s^c = s - ln q; Yi et al. 2019,
  section 3) makes the sampled loss aim at the full softmax. Without it the model learns
  s_i ~ ln p_i - ln q_i: with popularity-proportional negatives (in-batch negatives are
  exactly that) popular items are pushed down, because they turn up as negatives more often.

* Sampled softmax on the unit sphere (the HSTU reference code's loss, also SASRec's with a
  temperature): the same sampled softmax over cosines / temperature, every vector
  L2-normalised first (`normalised_sampled_softmax_loss`).

All functions return the mean loss (a scalar tensor), work on any device, and use
log-sigmoid / log-softmax, so large score gaps never overflow.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NORM_EPS = 1e-6        # the L2-norm epsilon of the HSTU reference code


def _check_float(x, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; call .float()")


def _check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or temperature <= 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")


def _check_pos_neg(pos_scores, neg_scores) -> None:
    _check_float(pos_scores, "pos_scores")
    _check_float(neg_scores, "neg_scores")
    if neg_scores.dim() != pos_scores.dim() + 1 or neg_scores.shape[:-1] != pos_scores.shape:
        raise ValueError(f"neg_scores must have the shape of pos_scores plus a last axis of "
                         f"N negatives, e.g. (B,) and (B, N); got {tuple(pos_scores.shape)} "
                         f"and {tuple(neg_scores.shape)} (use neg_scores[..., None] for N=1)")
    if neg_scores.shape[-1] < 1:
        raise ValueError("neg_scores has no negatives (last axis is 0): sample at least one")


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    """Bayesian personalised ranking: mean of -ln sigma(s_ui - s_uj) (Rendle et al. 2009).

    pos_scores (B,) the positives' scores s_ui; neg_scores (B, N) the scores s_uj of N
    negatives for each positive (any leading shape works: (B, T) and (B, T, N)). Every
    (positive, negative) pair counts once.
    """
    _check_pos_neg(pos_scores, neg_scores)
    margin = pos_scores.unsqueeze(-1) - neg_scores  # (B, N)
    return -F.logsigmoid(margin).mean()


def info_nce_loss(queries: Tensor, keys: Tensor, temperature: float = 1.0) -> Tensor:
    """InfoNCE with in-batch negatives (van den Oord et al. 2018, section 2.3).

    queries (B, D) and keys (B, D): row b of keys is the positive of query b, the other
    B - 1 rows are its negatives. loss = mean_b -ln softmax_b'(q_b . k_b' / tau)[b].
    Normalise the rows first (F.normalize) for the cosine form used with small tau.
    """
    _check_float(queries, "queries")
    _check_float(keys, "keys")
    if queries.dim() != 2 or queries.shape != keys.shape:
        raise ValueError(f"queries and keys must both be (B, D) with row b of keys the "
                         f"positive of query b; got {tuple(queries.shape)} and "
                         f"{tuple(keys.shape)}")
    _check_temperature(temperature)
    logits = queries @ keys.T / temperature  # (B, B)
    labels = torch.arange(len(queries), device=queries.device)  # positives on the diagonal
    return F.cross_entropy(logits, labels)


def sampled_softmax_loss(pos_scores: Tensor, neg_scores: Tensor,
                         log_q_pos: Tensor | None = None, log_q_neg: Tensor | None = None,
                         accidental_hits: Tensor | None = None,
                         temperature: float = 1.0, reduction: str = "mean") -> Tensor:
    """Sampled softmax: -ln of the positive's softmax share among itself and N negatives.

    pos_scores (B,), neg_scores (B, N). With the proposal's log-probabilities log_q_pos (B,)
    and log_q_neg (B, N) (or (N,) for negatives shared by the batch), every candidate's
    logit becomes s / tau - ln q: the log-q correction (Jean et al. 2015; Yi et al. 2019,
    section 3), subtracted after the temperature so it stays exactly ln q. Leave both None
    for no correction (right only when q is uniform). `accidental_hits` (B, N) bool marks
    negatives that are in fact the positive; they are removed from the softmax.
    reduction: "mean" over the batch, or "none" for the loss of every row (B,) (PinRec takes
    the minimum over a window's positives).
    """
    _check_pos_neg(pos_scores, neg_scores)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    _check_temperature(temperature)
    if (log_q_pos is None) != (log_q_neg is None):
        raise ValueError("pass both log_q_pos and log_q_neg (the log-q correction), "
                         "or neither (no correction)")
    pos = pos_scores / temperature  # (B,)
    neg = neg_scores / temperature  # (B, N)
    if log_q_pos is not None:
        _check_float(log_q_pos, "log_q_pos")
        _check_float(log_q_neg, "log_q_neg")
        if log_q_pos.shape != pos.shape:
            raise ValueError(f"log_q_pos must have the shape of pos_scores "
                             f"{tuple(pos.shape)}, got {tuple(log_q_pos.shape)}")
        if log_q_neg.shape not in (neg.shape, neg.shape[-1:]):
            raise ValueError(f"log_q_neg must be shaped like neg_scores {tuple(neg.shape)} "
                             f"or ({neg.shape[-1]},) for shared negatives, got "
                             f"{tuple(log_q_neg.shape)}")
        pos = pos - log_q_pos
        neg = neg - log_q_neg  # (B, N); an (N,) vector broadcasts over the batch
    if accidental_hits is not None:
        if accidental_hits.shape != neg.shape or accidental_hits.dtype != torch.bool:
            raise ValueError(f"accidental_hits must be a bool tensor shaped like neg_scores "
                             f"{tuple(neg.shape)}, e.g. negatives == positives[:, None]")
        neg = neg.masked_fill(accidental_hits, float("-inf"))
    logits = torch.cat([pos.unsqueeze(-1), neg], dim=-1)  # (B, 1 + N), positive first
    per_row = -torch.log_softmax(logits, dim=-1)[..., 0]  # (B,)
    return per_row.mean() if reduction == "mean" else per_row


def normalised_sampled_softmax_loss(queries: Tensor, item_embedding: Tensor, labels: Tensor,
                                    negatives: Tensor, temperature: float) -> Tensor:
    """Sampled softmax on the unit sphere (the HSTU reference code's loss): queries (M, D),
    labels (M,), negatives (M, N), item_embedding (I + 1, D); every vector is L2-normalised,
    the logits are cosines / temperature, and a negative equal to its positive is masked
    (`sampled_softmax_loss` with `accidental_hits`).

    Two ways to the same cosines: a small catalogue (I + 1 <= N D) is scored whole by one
    matmul and the negatives' columns are picked, cheaper than gathering N vectors per
    position, which a large catalogue needs."""
    queries = F.normalize(queries, dim=-1, eps=NORM_EPS)                  # (M, D)
    items = F.normalize(item_embedding, dim=-1, eps=NORM_EPS)             # (I + 1, D)
    pos = (queries * items[labels]).sum(-1)                                # (M,) cos
    if items.shape[0] <= negatives.shape[-1] * items.shape[1]:
        neg = (queries @ items.T).gather(1, negatives)                     # (M, I + 1) -> (M, N)
    else:
        neg = torch.einsum("md,mnd->mn", queries, items[negatives])        # (M, N, D) -> (M, N)
    return sampled_softmax_loss(pos, neg, accidental_hits=negatives == labels[:, None],
                                temperature=temperature)
