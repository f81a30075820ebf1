"""Checks for exercise 05: residual quantization with given codebooks, the collision token,
and the per-level entropy and Gini coefficient of the hourglass."""
from __future__ import annotations

import torch

from course_lib.grading.checks import close, run_check
from course_lib.quantize import stats
from course_lib.quantize.residual import residual_quantize
from course_lib.quantize.semantic_ids import collision_suffix

__all__ = ["check_residual_quantize", "check_collision_suffix", "check_level_entropy",
           "check_level_gini"]


def _random_codes(gen, n, levels, k):
    return torch.randint(0, k, (n, levels), generator=gen)


def check_residual_quantize(fn) -> bool:
    """fn(x (B, D), codebooks (L, K, D)) -> (codes (B, L) long, x_hat (B, D))."""
    t = torch.tensor
    cases = [("the lesson's 1-D example", (t([[5.3]]), t([[[0.0], [4.0], [8.0]],
                                                         [[-1.0], [0.0], [1.0]]]))),
             ("one level is plain VQ", (t([[0.9, 0.1], [-1.0, 2.0]]),
                                        t([[[1.0, 0.0], [0.0, 2.0]]])))]
    gen = torch.Generator().manual_seed(5)
    for i in range(6):
        levels, k, d = (int(v) for v in torch.randint(1, 5, (3,), generator=gen))
        x = torch.randn(7, d, generator=gen)
        codebooks = torch.randn(levels, k + 1, d, generator=gen) / (1 + torch.arange(levels))[:, None, None]
        cases.append((f"random {i}", (x, codebooks)))
    cases = [(name, args, tuple(residual_quantize(*args)[:2])) for name, args in cases]

    def same(got, expected):
        try:
            codes, x_hat = got
        except (TypeError, ValueError):
            return False
        return close(codes, expected[0]) and close(x_hat, expected[1])

    return run_check("residual_quantize", fn, cases, same)


def check_collision_suffix(fn) -> bool:
    """fn(codes (N, L)) -> (N,): 0, 1, 2, ... among items sharing a code tuple, in order."""
    t = torch.tensor
    cases = [("three items share one tuple", (t([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]]),)),
             ("no collisions", (t([[0, 1], [1, 0], [1, 1]]),)),
             ("one level", (t([[4], [4], [2], [4]]),))]
    gen = torch.Generator().manual_seed(6)
    for i in range(6):
        cases.append((f"random {i}", (_random_codes(gen, 20, 2, 3),)))
    cases = [(name, args, collision_suffix(*args)) for name, args in cases]
    return run_check("collision_suffix", fn, cases, close)


def _level_cases():
    t = torch.tensor
    cases = [("uniform level and one-token level", (t([[0, 1], [1, 1], [2, 1], [3, 1]]), 4)),
             ("unused codes count as zeros", (t([[0], [0], [1], [1]]), 4))]
    gen = torch.Generator().manual_seed(7)
    for i in range(6):
        k = int(torch.randint(2, 9, (1,), generator=gen))
        cases.append((f"random {i}", (_random_codes(gen, 40, 3, k), k)))
    return cases


def check_level_entropy(fn) -> bool:
    """fn(codes (N, L), K) -> (L,) entropy in bits of each level's token distribution."""
    cases = [(name, args, torch.tensor(stats.level_stats(*args)["entropy_bits"].to_numpy()))
             for name, args in _level_cases()]
    return run_check("level_entropy", fn, cases, close)


def check_level_gini(fn) -> bool:
    """fn(codes (N, L), K) -> (L,) Gini coefficient of each level's K token counts."""
    cases = [(name, args, torch.tensor(stats.level_stats(*args)["gini"].to_numpy()))
             for name, args in _level_cases()]
    return run_check("level_gini", fn, cases, close)
