"""Checks for exercise 01 (SASRec): the attention mask of a left-padded batch, the BCE loss
with sampled negatives, the full softmax loss, next-item scores through the shared item
embedding, and a predict-measure-interpret task on the softmax loss of an untrained model.
Each compares the learner's function with `course_lib.models.sasrec`.

A wrong answer names the case and, where it equals the answer of a known mistake (padding
keys visible, the mask transposed or inverted, a padding query left with no key, the
negatives averaged instead of summed, padding positions in the mean, the padding column in
the softmax, the first position's scores, ...), says which mistake it looks like; masks that
match no listed mistake are read for what they let through.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.data.sequences import pad_left
from course_lib.grading.checks import (check_choice, check_measured, read_mask,
                                       run_naming_mistakes, same_mask, same_values, tensor_like)
from course_lib.models import sasrec

__all__ = ["check_attention_mask", "check_bce_loss", "check_softmax_loss",
           "check_next_item_scores", "check_initial_softmax_loss", "check_why_above_log_i"]

t = torch.tensor


def _random_histories(gen, batch, length, n_items):
    """Left-padded (B, T) histories of random lengths 1..T (some rows fully used)."""
    lengths = torch.randint(1, length + 1, (batch,), generator=gen).tolist()
    seqs = [torch.randint(1, n_items + 1, (n,), generator=gen).tolist() for n in lengths]
    return pad_left(seqs, length)


def _loss_inputs(gen, batch, length, width, n_items, n_negatives):
    """hidden (B, T, D), item_embedding (I + 1, D), targets (B, T) with leading padding,
    negatives (B, T, N) zero where there is no target; float64 so sums compare tightly."""
    hidden = torch.randn(batch, length, width, generator=gen, dtype=torch.float64)
    embedding = torch.randn(n_items + 1, width, generator=gen, dtype=torch.float64)
    targets = _random_histories(gen, batch, length, n_items)
    negatives = torch.randint(1, n_items + 1, (batch, length, n_negatives), generator=gen)
    return hidden, embedding, targets, negatives * (targets > 0).unsqueeze(-1)


# --- task 1: the attention mask ----------------------------------------------------------------

def _mask_mistakes(inputs: Tensor) -> list[tuple[str, Tensor]]:
    length = inputs.shape[1]
    causal = sasrec.causal_mask(length)                                    # (T, T): s <= t
    real_key = (inputs > 0)[:, None, :]                                    # (B, 1, T)
    real_query = (inputs > 0)[:, :, None]                                  # (B, T, 1)
    itself = torch.eye(length, dtype=torch.bool)
    right = sasrec.attention_mask(inputs)
    return [("the mask inverted (True where attention is blocked, as nn.MultiheadAttention's "
             "attn_mask reads it): here True means 'may attend', as in "
             "F.scaled_dot_product_attention", ~right),
            ("padding keys visible (the causal mask alone): hide the keys s with "
             "inputs[b, s] == 0", causal.expand(len(inputs), -1, -1).clone()),
            ("no causal mask: position t sees the items after it, the very items it must "
             "predict; keep only s <= t (torch.tril)", real_key.expand(-1, length, -1) | itself),
            ("the mask transposed (torch.triu, or [b, s, t] for [b, t, s]): query t must see "
             "the past s <= t, not the future", right.transpose(1, 2)),
            ("a padding query that sees nothing, not even itself: its softmax over no key is "
             "0 / 0 = NaN, which spreads through the next layer; let every position see "
             "itself (| torch.eye)", causal & real_key),
            ("padding hidden by query rows instead of key columns: a real query still reads "
             "padding; use inputs[:, None, :] (the key axis is the last one)",
             causal & (real_query | itself))]


def _explain_mask(got, answer) -> str | None:
    """What is wrong with a mask that matches no listed mistake."""
    if isinstance(got, Tensor) and got.shape == answer.shape[1:]:
        return ("one (T, T) mask for the whole batch: each row has its own padding, return "
                "(B, T, T)")
    got, verdict = read_mask(got, answer)
    if got is None or verdict:
        return verdict
    future = torch.ones(answer.shape[-2:], dtype=torch.bool).triu(1)
    if (got & future).any():
        return "a mask that lets a position see the items after it (s > t): the future"
    if (got & ~answer).any():
        return "a mask that shows padding keys to a query other than the padding slot itself"
    return "a mask that hides keys a position may see (the real items s <= t, and itself)"


def check_attention_mask(fn) -> None:
    """fn(inputs (B, T) left-padded) -> (B, T, T) bool: key s visible to query t iff s <= t
    and (s is an item or s == t)."""
    cases = [("no padding", (t([[3, 1, 2]]),)),
             ("two padding slots", (t([[0, 0, 5, 7]]),)),
             ("one item", (t([[0, 0, 0, 9]]),)),
             ("a batch of two", (t([[0, 4, 6], [1, 2, 3]]),))]
    gen = torch.Generator().manual_seed(0)
    for i in range(6):
        cases.append((f"random {i}", (_random_histories(gen, 5, 7, 20),)))
    cases = [(name, args, (sasrec.attention_mask(*args), _mask_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("attention_mask", fn, cases, same_mask, same_values,
                               _explain_mask)


# --- task 2: BCE with sampled negatives ----------------------------------------------------------

def _bce_mistakes(hidden, embedding, targets, negatives) -> list[tuple[str, Tensor]]:
    pos = (hidden * embedding[targets]).sum(-1)                            # (B, T)
    neg = (hidden.unsqueeze(2) * embedding[negatives]).sum(-1)             # (B, T, N)
    valid = targets > 0
    n = negatives.shape[-1]
    right = F.softplus(-pos) + F.softplus(neg).sum(-1)                     # (B, T)
    return [("the negatives averaged instead of summed: the paper sums -log(1 - s(r_neg)) over "
             "the N negatives", (F.softplus(-pos) + F.softplus(neg).mean(-1))[valid].mean()),
            ("padding positions in the mean: average only where targets > 0",
             right.mean()),
            ("the negatives' sign flipped (-log s(r_neg)): a negative should be pushed DOWN, "
             "-log(1 - s(r_neg)) = softplus(r_neg)",
             (F.softplus(-pos) + F.softplus(-neg).sum(-1))[valid].mean()),
            ("the positive's sign flipped (-log(1 - s(r_pos))): the target should be pushed UP, "
             "-log s(r_pos) = softplus(-r_pos)",
             (F.softplus(pos) + F.softplus(neg).sum(-1))[valid].mean()),
            ("the sum over positions instead of the mean", right[valid].sum()),
            (f"the mean over all 1 + N terms of a position (binary_cross_entropy's default): "
             f"the positive and the {n} negative(s) add up, then average over positions",
             right[valid].mean() / (1 + n)),
            ("the log-likelihood, not the loss: the loss is its negative, -log s(...)",
             -right[valid].mean())]


def check_bce_loss(fn) -> None:
    """fn(hidden, item_embedding, targets, negatives) -> scalar mean over target positions of
    -log s(F.M_pos) - sum_n log(1 - s(F.M_neg_n))."""
    zero = (torch.zeros(1, 2, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64),
            t([[1, 2]]), t([[[3], [4]]]))
    cases = [("hidden all zero: log 2 + log 2", zero)]
    gen = torch.Generator().manual_seed(1)
    for i, n_negatives in enumerate([1, 1, 1, 3, 5]):
        cases.append((f"random {i}, {n_negatives} negative(s)",
                      _loss_inputs(gen, 4, 6, 8, 25, n_negatives)))
    cases = [(name, args, (sasrec.bce_loss(*args), _bce_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("bce_loss", fn, cases, same_values)


# --- task 3: full softmax ----------------------------------------------------------------------

def _softmax_mistakes(hidden, embedding, targets) -> list[tuple[str, Tensor]]:
    valid = targets > 0
    logits = hidden @ embedding.T                                          # (B, T, I + 1)
    items_only = logits.clone()
    items_only[..., 0] = float("-inf")
    per_position = F.cross_entropy(items_only.flatten(0, 1), targets.flatten(),
                                   ignore_index=0, reduction="none")       # 0 at padding
    right = per_position[valid.flatten()].mean()
    wrong = [("the padding column in the softmax: row 0 of the table is no item; set its "
              "logit to -inf", F.cross_entropy(logits[valid], targets[valid])),
             ("the sum over positions instead of the mean", right * valid.sum()),
             ("padding positions in the mean: average only where targets > 0",
              per_position.mean()),
             ("the log-likelihood, not the loss: the cross-entropy is -log softmax",
              -right)]
    if int(targets.max()) < embedding.shape[0] - 1:      # else this mistake crashes instead
        wrong.append(("the targets not shifted after dropping column 0: with logits over "
                      "items 1..I, item i sits at index i - 1",
                      F.cross_entropy(logits[valid][:, 1:], targets[valid])))
    return wrong


def check_softmax_loss(fn) -> None:
    """fn(hidden, item_embedding, targets) -> scalar cross-entropy over items 1..I, mean over
    target positions."""
    zero = (torch.zeros(1, 2, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64),
            t([[0, 2]]))
    small = (t([[[1.0, 0.0], [0.0, 2.0]]], dtype=torch.float64),
             t([[5.0, 5.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]],
               dtype=torch.float64), t([[1, 2]]))
    cases = [("hidden all zero: log I with I = 4", zero),
             ("the padding row of the table scores high but is no item", small)]
    gen = torch.Generator().manual_seed(2)
    for i in range(5):
        hidden, embedding, targets, _ = _loss_inputs(gen, 4, 6, 8, 25, 1)
        cases.append((f"random {i}", (hidden, embedding, targets)))
    cases = [(name, args, (sasrec.softmax_loss(*args), _softmax_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("softmax_loss", fn, cases, same_values)


# --- task 4: next-item scores ------------------------------------------------------------------

def _scores_mistakes(hidden, embedding) -> list[tuple[str, Tensor]]:
    def padding_out(scores, value=float("-inf")):
        scores = scores.clone()
        scores[:, 0] = value
        return scores

    last = hidden[:, -1] @ embedding.T                                     # (B, I + 1)
    return [("the first position's scores: with left padding the newest item is in the LAST "
             "column, hidden[:, -1]", padding_out(hidden[:, 0] @ embedding.T)),
            ("the padding column left with a score: set column 0 to -inf so it is never "
             "recommended", last),
            ("column 0 set to 0: a score of 0 still outranks every negative score; use -inf",
             padding_out(last, 0.0)),
            ("the positions averaged: the next item is predicted from the last position alone",
             padding_out(hidden.mean(1) @ embedding.T)),
            ("probabilities (a softmax) instead of scores: ranking needs only r_i = F_T . M_i",
             torch.softmax(padding_out(last), dim=-1))]


def _explain_scores(got, answer) -> str | None:
    if isinstance(got, Tensor) and got.dim() == 3 and got.shape[-1] == answer.shape[-1]:
        return ("scores at every position (B, T, I + 1): recommend from the last position "
                "alone, hidden[:, -1]")
    return None


def check_next_item_scores(fn) -> None:
    """fn(hidden (B, T, D), item_embedding (I + 1, D)) -> (B, I + 1) scores of the last
    position, column 0 = -inf."""
    hidden = t([[[9.0, 9.0], [1.0, 2.0]]], dtype=torch.float64)
    embedding = t([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)
    cases = [("hand", (hidden, embedding))]
    gen = torch.Generator().manual_seed(3)
    for i in range(5):
        cases.append((f"random {i}", _loss_inputs(gen, 3, 5, 6, 12, 1)[:2]))
    cases = [(name, args, (sasrec.next_item_scores(*args), _scores_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("next_item_scores", fn, cases, same_values,
                               explain=_explain_scores)


# --- task 5: predict, measure, interpret: the loss before training ------------------------------

WORLD = dict(n_users=400, n_items=200, seed=1)      # the world of Task 5 and "Putting it together"
MAX_LEN, D_MODEL, BATCH = 30, 32, 64
SEEDS = range(5)


@functools.lru_cache(maxsize=1)
def _initial_softmax_losses() -> tuple[float, ...]:
    """The library's softmax loss of an untrained SASRec (eval mode) on the first training
    batch of the exercise's world, one value per initialisation seed (torch's generator is
    restored afterwards: a check leaves the learner's random state alone). Cached."""
    from course_lib.data.sequences import leave_one_out, next_item_batches, user_sequences
    from course_lib.data.world import CONSUMED, WorldConfig, make_world

    world = make_world(WorldConfig(**WORLD))
    split = leave_one_out(user_sequences(world.interactions, actions=CONSUMED), world.n_items)
    batch = next(next_item_batches(split.train, world.n_items, MAX_LEN, BATCH, 1, seed=0))
    targets = batch["targets"] * (batch["inputs"] > 0)
    losses = []
    for seed in SEEDS:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)                      # what seed_everything(seed) does to torch
            model = sasrec.SASRec(sasrec.SASRecConfig(world.n_items, max_len=MAX_LEN,
                                                      d_model=D_MODEL)).eval()
            hidden = model(batch["inputs"])                                 # (B, T, D)
            losses.append(float(sasrec.softmax_loss(hidden, model.item_embedding.weight,
                                                    targets)))
    return tuple(losses)


def check_initial_softmax_loss(fn) -> None:
    """fn() -> the full softmax loss of an untrained SASRec on the exercise's world (I = 200):
    the range is the library's loss over five initialisation seeds, widened by half their
    spread on each side."""
    losses = _initial_softmax_losses()
    margin = (max(losses) - min(losses)) / 2
    n_items = WORLD["n_items"]
    hint = (f"log I = {math.log(n_items):.3f} is the loss of a uniform guess; the BCE loss "
            f"with one negative starts near 2 log 2 = {2 * math.log(2):.3f}; padding positions "
            "in the mean pull it down, a sum over the batch's positions is hundreds of nats. "
            "Measure your softmax_loss on the untrained model's hidden states, targets only "
            "where inputs > 0")
    return check_measured("initial_softmax_loss", fn, min(losses) - margin,
                          max(losses) + margin, "the untrained softmax loss (nats)", hint)


WHY_ABOVE_LOG_I = {
    "a": "log I is the loss of a model whose scores are all equal (1/I on every item). An "
         "untrained model's scores are random, not equal, and log-sum-exp is convex, so "
         "averaged over targets random scores cost more than equal ones (for scores of spread "
         "sigma, about log I + sigma^2 / 2). A loss far above log I at step 0 means the "
         "initial scores are too spread out.",
    "b": f"The padding column would add log(I + 1) - log I = "
         f"{math.log1p(1 / WORLD['n_items']):.3f} nats, far less than the gap you measured, "
         "and your loss excludes column 0 anyway.",
    "c": "The model has not been trained; learning popularity would push the loss BELOW "
         "log I, not above it.",
    "d": "The loss is a mean over target positions; a sum over the batch would be hundreds "
         "of nats.",
}


def check_why_above_log_i(fn) -> None:
    """fn() -> the letter of the explanation of an untrained loss a little above log I."""
    return check_choice("why_above_log_i", fn, "a", WHY_ABOVE_LOG_I)
