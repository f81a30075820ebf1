"""Checks for exercise 01 (SASRec): the attention mask of a left-padded batch, the BCE loss
with sampled negatives, the full softmax loss, and next-item scores through the shared item
embedding. Each compares the learner's function with `course_lib.models.sasrec`."""
from __future__ import annotations

import math

import torch

from course_lib.data.sequences import pad_left
from course_lib.grading.checks import close, run_check
from course_lib.models import sasrec

__all__ = ["check_attention_mask", "check_bce_loss", "check_softmax_loss",
           "check_next_item_scores"]


def _same_mask(got, expected) -> bool:
    return (torch.is_tensor(got) and got.shape == expected.shape
            and torch.equal(got.bool(), expected))


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


def check_attention_mask(fn) -> bool:
    """fn(inputs (B, T) left-padded) -> (B, T, T) bool: key s visible to query t iff s <= t
    and (s is an item or s == t)."""
    t = torch.tensor
    cases = [("no padding", (t([[3, 1, 2]]),)),
             ("two padding slots", (t([[0, 0, 5, 7]]),)),
             ("one item", (t([[0, 0, 0, 9]]),)),
             ("a batch of two", (t([[0, 4, 6], [1, 2, 3]]),))]
    gen = torch.Generator().manual_seed(0)
    for i in range(6):
        cases.append((f"random {i}", (_random_histories(gen, 5, 7, 20),)))
    cases = [(name, args, sasrec.attention_mask(*args)) for name, args in cases]
    return run_check("attention_mask", fn, cases, _same_mask)


def check_bce_loss(fn) -> bool:
    """fn(hidden, item_embedding, targets, negatives) -> scalar mean over target positions of
    -log s(F.M_pos) - sum_n log(1 - s(F.M_neg_n))."""
    zero = (torch.zeros(1, 2, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64),
            torch.tensor([[1, 2]]), torch.tensor([[[3], [4]]]))
    cases = [("hidden all zero: log 2 + log 2", zero, 2 * math.log(2))]
    gen = torch.Generator().manual_seed(1)
    for i, n_negatives in enumerate([1, 1, 1, 3, 5]):
        args = _loss_inputs(gen, 4, 6, 8, 25, n_negatives)
        cases.append((f"random {i}, {n_negatives} negative(s)", args, sasrec.bce_loss(*args)))
    return run_check("bce_loss", fn, cases, close)


def check_softmax_loss(fn) -> bool:
    """fn(hidden, item_embedding, targets) -> scalar cross-entropy over items 1..I, mean over
    target positions."""
    zero = (torch.zeros(1, 2, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64),
            torch.tensor([[0, 2]]))
    cases = [("hidden all zero: log I with I = 4", zero, math.log(4))]
    gen = torch.Generator().manual_seed(2)
    for i in range(5):
        hidden, embedding, targets, _ = _loss_inputs(gen, 4, 6, 8, 25, 1)
        args = (hidden, embedding, targets)
        cases.append((f"random {i}", args, sasrec.softmax_loss(*args)))
    return run_check("softmax_loss", fn, cases, close)


def check_next_item_scores(fn) -> bool:
    """fn(hidden (B, T, D), item_embedding (I + 1, D)) -> (B, I + 1) scores of the last
    position, column 0 = -inf."""
    hidden = torch.tensor([[[9.0, 9.0], [1.0, 2.0]]], dtype=torch.float64)
    embedding = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
                             dtype=torch.float64)
    cases = [("hand", (hidden, embedding), torch.tensor([[-math.inf, 1.0, 2.0, 3.0]]))]
    gen = torch.Generator().manual_seed(3)
    for i in range(5):
        args = _loss_inputs(gen, 3, 5, 6, 12, 1)[:2]
        cases.append((f"random {i}", args, sasrec.next_item_scores(*args)))
    return run_check("next_item_scores", fn, cases, close)
