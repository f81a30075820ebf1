"""Checks for exercise 05: residual quantization with given codebooks, the collision token,
and the per-level entropy and Gini coefficient of the hourglass (Kuai et al. 2024), each
compared with `course_lib.quantize`; then a predict-measure-interpret task on how often the
world's semantic IDs collide.

A wrong answer names the case and, where it equals the answer of a known mistake (the input
quantized at every level instead of the residual, the last residual returned as the
reconstruction, a suffix counted from 1, the entropy in nats, unused codes left out of the
Gini, ...), says which mistake it looks like; an entropy off by a constant factor is read as
a log base.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from course_lib import metrics
from course_lib.data.world import WorldConfig, make_world
from course_lib.grading.checks import (check_choice, check_measured, close, run_naming_mistakes,
                                       same_integers, same_values, tensor_like)
from course_lib.quantize import stats
from course_lib.quantize.kmeans import rq_kmeans
from course_lib.quantize.residual import residual_quantize
from course_lib.quantize.semantic_ids import collision_suffix

__all__ = ["check_residual_quantize", "check_collision_suffix", "check_level_entropy",
           "check_level_gini", "collision_world", "check_measured_collision_rate",
           "check_why_collisions"]

t = torch.tensor


def _random_codes(gen, n, levels, k):
    return torch.randint(0, k, (n, levels), generator=gen)


# --- task 1: residual quantization -----------------------------------------------------------

def _levels(x: Tensor, codebooks: Tensor, residual_after, nearest: bool = True) -> Tensor:
    """The codes (B, L) of a residual quantizer in which level l + 1 quantizes
    `residual_after(x, r, e)` after level l chose the codeword e for its input r."""
    residual, codes = x, []
    for codebook in codebooks:                                             # (K, D)
        distances = torch.cdist(residual, codebook)                        # (B, K)
        c = distances.argmin(1) if nearest else distances.argmax(1)        # (B,)
        codes.append(c)
        residual = residual_after(x, residual, codebook[c])
    return torch.stack(codes, 1)


def _residual_mistakes(x: Tensor, codebooks: Tensor) -> list[tuple[str, tuple]]:
    """(what, (codes, x_hat)) of the known mistakes; x_hat None where the wrong codes alone
    give the mistake away (whatever reconstruction the learner built from them)."""
    out = residual_quantize(x, codebooks)
    codes, x_hat = out.codes, out.quantized
    wrong_paths = [("the input quantized at every level, not the residual: level l + 1 codes "
                    "r_{l+1} = r_l - e^l_{c_l}, what the levels before it missed",
                    lambda x, r, e: x),
                   ("r_{l+1} = x - e^l_{c_l}, the input minus the last codeword only: subtract "
                    "from the running residual, r_{l+1} = r_l - e^l_{c_l}", lambda x, r, e: x - e),
                   ("the codeword added to the residual: r_{l+1} = r_l - e^l_{c_l}",
                    lambda x, r, e: r + e)]
    mistakes = []
    for what, residual_after in wrong_paths:
        wrong_codes = _levels(x, codebooks, residual_after)
        if not torch.equal(wrong_codes, codes):
            mistakes.append((what, (wrong_codes, None)))
    farthest = _levels(x, codebooks, lambda x, r, e: r - e, nearest=False)
    if not torch.equal(farthest, codes):
        mistakes.append(("the farthest codeword at each level: take the argmin of the distances",
                         (farthest, None)))
    return mistakes + [
        ("the last residual r_L instead of the reconstruction: x_hat = sum of the chosen "
         "codewords = x - r_L", (codes, out.residuals[-1])),
        ("the first level's codeword alone as the reconstruction: x_hat sums the codewords of "
         "all levels", (codes, codebooks[0][codes[:, 0]])),
        ("codes of shape (L, B): stack the levels along dim=1 for (B, L)", (codes.T, x_hat)),
        ("(x_hat, codes) in the wrong order: return (codes, x_hat)", (x_hat, codes))]


def _pair(got):
    try:
        codes, x_hat = got
    except (TypeError, ValueError):
        return None
    return codes, x_hat


def _same_codes_and_reconstruction(got, answer, args=None) -> bool:
    got = _pair(got)
    return got is not None and close(got[0], answer[0]) and close(got[1], answer[1])


def _looks_like_residual_mistake(got, wrong, args) -> bool:
    got = _pair(got)
    return (got is not None and close(got[0], wrong[0])
            and (wrong[1] is None or close(got[1], wrong[1])))


def check_residual_quantize(fn) -> None:
    """fn(x (B, D), codebooks (L, K, D)) -> (codes (B, L) long, x_hat (B, D))."""
    f64 = torch.float64                          # hand cases print as written
    cases = [("the lesson's 1-D example", (t([[5.3]], dtype=f64),
                                           t([[[0.0], [4.0], [8.0]], [[-1.0], [0.0], [1.0]]],
                                             dtype=f64))),
             ("one level is plain VQ", (t([[0.9, 0.1], [-1.0, 2.0]], dtype=f64),
                                        t([[[1.0, 0.0], [0.0, 2.0]]], dtype=f64))),
             ("subtract the codeword from the residual, do not add it",
              (t([[3.0]], dtype=f64), t([[[0.0], [4.0], [100.0]], [[-1.0], [1.0], [6.0]]],
                                        dtype=f64))),
             ("three levels: each codes what the levels before it missed",
              (t([[5.3, -2.2]], dtype=f64),
               t([[[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]],
                  [[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]],
                  [[0.0, 0.5], [0.0, -0.5], [0.5, 0.0], [-0.5, 0.0]]], dtype=f64)))]
    gen = torch.Generator().manual_seed(5)
    for i in range(6):
        levels, k, d = (int(v) for v in torch.randint(1, 5, (3,), generator=gen))
        x = torch.randn(7, d, generator=gen)
        scale = 1 + torch.arange(levels)[:, None, None]                   # finer levels smaller
        codebooks = torch.randn(levels, k + 1, d, generator=gen) / scale
        cases.append((f"random {i}", (x, codebooks)))
    cases = [(name, args, (tuple(residual_quantize(*args)[:2]), _residual_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("residual_quantize", fn, cases, _same_codes_and_reconstruction,
                               _looks_like_residual_mistake)


# --- task 2: the collision token -------------------------------------------------------------

def _suffix_mistakes(codes: Tensor) -> list[tuple[str, Tensor]]:
    suffix = collision_suffix(codes)
    _, group, sizes = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    from_the_end = collision_suffix(codes.flip(0)).flip(0)
    return [("counting from 1: the first item of each group gets 0", suffix + 1),
            ("every item numbered (0, 1, 2, ... over all items): only items that share a code "
             "tuple are numbered together", torch.arange(len(codes))),
            ("the group's size minus one for every member: number the members 0, 1, 2, ... "
             "in item order", sizes[group] - 1),
            ("the group number (torch.unique's inverse) instead of the rank within the group",
             group),
            ("a flag (0 for the first, 1 for every later item): the third item of a group "
             "gets 2", (suffix > 0).long()),
            ("numbered from the last item: the first item in row order gets 0", from_the_end),
            ("collisions of the first level only: items collide when their whole rows are "
             "equal", collision_suffix(codes[:, :1]))]


def check_collision_suffix(fn) -> None:
    """fn(codes (N, L)) -> (N,) long: 0, 1, 2, ... among items sharing a code tuple, in order."""
    cases = [("three items share one tuple", (t([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]]),)),
             ("the whole row must match, not the first code",
              (t([[0, 1], [0, 2], [0, 1], [1, 1]]),)),
             ("no collisions", (t([[0, 1], [1, 0], [1, 1]]),)),
             ("one level", (t([[4], [4], [2], [4]]),))]
    gen = torch.Generator().manual_seed(6)
    for i in range(6):
        cases.append((f"random {i}", (_random_codes(gen, 20, 2, 3),)))
    cases = [(name, args, (collision_suffix(*args), _suffix_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("collision_suffix", fn, cases, same_integers, same_values)


# --- tasks 3 and 4: the per-level statistics -------------------------------------------------

def _level_cases():
    cases = [("uniform level and one-token level", (t([[0, 1], [1, 1], [2, 1], [3, 1]]), 4)),
             ("unused codes count as zeros", (t([[0], [0], [1], [1]]), 4)),
             ("uneven counts (3, 1, 2, 0): sort them ascending",
              (t([[0], [0], [0], [1], [2], [2]]), 4))]
    gen = torch.Generator().manual_seed(7)
    for i in range(6):
        k = int(torch.randint(2, 9, (1,), generator=gen))
        cases.append((f"random {i}", (_random_codes(gen, 40, 3, k), k)))
    return cases


def _counts(codes: Tensor, k: int) -> list[Tensor]:
    return [c.double() for c in stats.token_counts(codes, k)]


def _entropy(counts: Tensor, base: float, over: float | None = None) -> float:
    p = counts[counts > 0] / (counts.sum() if over is None else over)
    return float(-(p * p.log()).sum() / math.log(base))


def _entropy_mistakes(codes: Tensor, k: int) -> list[tuple[str, Tensor]]:
    counts = _counts(codes, k)
    bits = t([_entropy(c, 2) for c in counts], dtype=torch.float64)
    rows = t([_entropy(torch.bincount(row, minlength=k).double(), 2) for row in codes],
             dtype=torch.float64)
    return [("the entropy in nats (natural log): use log2; yours are ln 2 = 0.693 times the "
             "bits", bits * math.log(2)),
            ("the entropy in log10: use log2", bits * math.log10(2)),
            ("the entropy as a share of its maximum, H / log2 K: return H itself",
             bits / math.log2(k) if k > 1 else bits),
            ("the perplexity 2 ** H, not the entropy H", 2 ** bits),
            ("p_k = count / K: p_k is the share of the N items, count / N",
             t([_entropy(c, 2, over=k) for c in counts], dtype=torch.float64)),
            ("one entropy per item (row) instead of one per level (column): take codes[:, l]",
             rows)]


def _explain_entropy(got, answer) -> str | None:
    got = tensor_like(got, answer, torch.float64)
    if got is None:
        return None
    if got.isnan().any():
        return ("NaN: codes nobody uses have p = 0 and 0 log 0 counts as 0; drop them "
                "(p[p > 0]) before the log")
    nonzero = answer != 0
    if nonzero.any():
        ratio = got[nonzero] / answer[nonzero]
        if torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-6) and ratio[0] > 0:
            return (f"the right entropies times {float(ratio[0]):.4g}: a log of another base "
                    f"(your log is log2 times {float(ratio[0]):.4g}); use log2")
    return None


def check_level_entropy(fn) -> None:
    """fn(codes (N, L), K) -> (L,) entropy in bits of each level's token distribution."""
    cases = [(name, args, (t(stats.level_stats(*args)["entropy_bits"].to_numpy()),
                           _entropy_mistakes(*args)))
             for name, args in _level_cases()]
    return run_naming_mistakes("level_entropy", fn, cases, same_values, explain=_explain_entropy)


def _gini(x: Tensor) -> float:
    """The course's Gini (ascending order, i = 1..n), here on any order the mistakes need."""
    n = len(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(((2 * i - n - 1) * x).sum() / (n * x.sum()))


def _gini_mistakes(codes: Tensor, k: int) -> list[tuple[str, Tensor]]:
    counts = _counts(codes, k)
    right = t([metrics.gini(c) for c in counts], dtype=torch.float64)
    return [("unused codes left out: count them as zeros (an empty code is what makes a level "
             "unequal)", t([metrics.gini(c[c > 0]) for c in counts], dtype=torch.float64)),
            ("the counts sorted descending: the formula takes them ascending (your G has the "
             "wrong sign)", t([_gini(c.sort(descending=True).values) for c in counts],
                              dtype=torch.float64)),
            ("the counts not sorted: sort them ascending first", t([_gini(c) for c in counts],
                                                                    dtype=torch.float64)),
            ("the Gini rescaled by K / (K - 1) so that its maximum is 1: use the formula as given",
             right * k / (k - 1)),
            ("i from 0 to K - 1 in (2i - K - 1): the formula counts i from 1 to K (yours is "
             "2 / K too small)", right - 2 / k),
            ("twice the Gini: in the pairwise form sum_ij |x_i - x_j| / (2 K sum x) the 2 in "
             "the denominator was left out", 2 * right)]


def check_level_gini(fn) -> None:
    """fn(codes (N, L), K) -> (L,) Gini coefficient of each level's K token counts."""
    cases = [(name, args, (t(stats.level_stats(*args)["gini"].to_numpy()), _gini_mistakes(*args)))
             for name, args in _level_cases()]
    return run_naming_mistakes("level_gini", fn, cases, same_values)


# --- task 5: predict, measure, interpret -------------------------------------------------------

WORLD = WorldConfig(n_users=200, n_items=300, seed=5)      # the exercise's world
K, L = 16, 3                                              # codes per level, levels
SEEDS = range(5)                                          # k-means seeds of the check's range


def collision_world() -> Tensor:
    """The exercise's item content (I, D): 300 items of a small world."""
    return torch.tensor(make_world(WORLD).content[1:])


def uniform_collision_rate(n_items: int = WORLD.n_items, paths: int = K ** L) -> float:
    """The collision rate if every item drew its path uniformly at random among `paths`: the
    expected share of items that are not the first on their path (the birthday problem)."""
    expected_used = paths * (1 - (1 - 1 / paths) ** n_items)
    return 1 - expected_used / n_items


@functools.cache
def _rates_over_seeds() -> tuple[float, ...]:
    content = collision_world()
    return tuple(float((collision_suffix(rq_kmeans(content, n_levels=L, codebook_size=K,
                                                   seed=seed, n_init=1).codes) > 0)
                       .double().mean()) for seed in SEEDS)


def check_measured_collision_rate(measure) -> None:
    """measure() -> the share of the world's 300 items whose collision token is not 0 (the
    collision rate of their RQ-KMeans codes, K = 16, L = 3). The range is what the library's
    RQ-KMeans gives over five k-means seeds, widened by one standard error of a rate over 300
    items, sqrt(p (1 - p) / 300)."""
    rates = _rates_over_seeds()
    mean = sum(rates) / len(rates)
    margin = math.sqrt(mean * (1 - mean) / WORLD.n_items)
    return check_measured(
        "measured_collision_rate", measure, min(rates) - margin, max(rates) + margin,
        "the collision rate of the world's 3-level codes",
        hint="the share of items whose collision token (your collision_suffix of the codes) is "
             "greater than 0, i.e. 1 - distinct code tuples / items; not the share of items "
             "that are in some collision group (that counts each group's first item too)")


WHY_COLLISIONS = {
    "a": "Right. The paths are far from uniform: RQ-KMeans fits every level's codebook to "
         "where the items are, and items of the same leaf category have nearly the same "
         "content, so they fall on the same path. The colliding items almost always share "
         "their leaf category, while most of the 4096 paths stay empty.",
    "b": "No: the collision token is computed after the codes, from them; it removes the "
         "collisions (every ID is unique with it), it does not add any.",
    "c": "No: the check's range comes from five k-means seeds, and every one of them collides "
         "several times more often than uniform paths would.",
    "d": "No: fewer levels mean fewer paths (16 x 16 = 256 with two), so more items share one; "
         "a third level splits groups, it does not merge them.",
}


def check_why_collisions(choose) -> None:
    """choose() -> the letter of the explanation of the measured rate (see WHY_COLLISIONS)."""
    return check_choice("why_collisions", choose, "a", WHY_COLLISIONS)
