"""Checks for exercise 04 (EMA codebooks): Laplace smoothing, one EMA step, the dead-code reset
and the codebook perplexity, each compared with `course_lib.quantize.vq` and
`course_lib.metrics`. The reset draws random rows, so its check tests what must hold for any
draw (dead codes replaced by rows of the batch, live codes untouched) instead of exact values."""
from __future__ import annotations

import torch

from course_lib import metrics
from course_lib.grading.checks import close, run_check
from course_lib.quantize import vq

__all__ = ["check_laplace_smoothing", "check_ema_update", "check_reset_dead_codes",
           "check_perplexity"]


def check_laplace_smoothing(fn) -> bool:
    """fn(counts (K,), eps) -> (N_i + eps) / (n + K eps) * n with n = sum_i N_i."""
    t = torch.tensor
    cases = [("no zero counts", (t([1.0, 2.0, 3.0]), 0.1)),
             ("a zero count", (t([0.0, 4.0]), 0.5)),
             ("the paper's eps", (t([0.0, 0.0, 10.0, 5.0]), 1e-5))]
    gen = torch.Generator().manual_seed(0)
    for i, k in enumerate([1, 7, 64]):
        counts = torch.rand(k, generator=gen, dtype=torch.float64) * 5
        counts[counts < 1] = 0                                    # some dead codes
        cases.append((f"random {i}", (counts, 1e-3)))
    cases = [(name, args, vq.laplace_smoothing(*args)) for name, args in cases]
    return run_check("laplace_smoothing", fn, cases, close)


def _ema_case(gen, n, k, d):
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)              # (N, D)
    counts = torch.rand(k, generator=gen, dtype=torch.float64) * 3         # (K,)
    sums = torch.randn(k, d, generator=gen, dtype=torch.float64)           # (K, D)
    codes = torch.randint(k, (n,), generator=gen)                          # (N,)
    return counts, sums, x, codes


def check_ema_update(fn) -> bool:
    """fn(counts (K,), sums (K, D), x (N, D), codes (N,), decay, eps) -> (new counts, new sums,
    codebook = sums / Laplace-smoothed counts), inputs left untouched."""
    t = torch.tensor
    hand = (t([1.0, 1.0]), t([[0.0], [2.0]]), t([[0.5], [3.0], [5.0]]), t([0, 1, 1]))
    cases = [("hand-computed (the lesson's example)", (*hand, 0.5, 0.1)),
             ("a code no vector picks", (t([2.0, 1.0, 0.5]), t([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                                         t([[1.0, 1.0], [3.0, -1.0]]), t([0, 0]), 0.9, 1e-5))]
    gen = torch.Generator().manual_seed(1)
    for i, (n, k, d) in enumerate([(10, 4, 2), (64, 16, 8), (5, 32, 3)]):
        cases.append((f"random {i}", (*_ema_case(gen, n, k, d), 0.99, 1e-5)))
    cases = [(name, args, vq.ema_update(*args)) for name, args in cases]

    def learner(*args):
        before = [a.clone() for a in args[:4]]
        out = fn(*args)
        if any(not torch.equal(a, b) for a, b in zip(args[:4], before)):
            return "your function changed its inputs in place; return new tensors instead"
        return out

    def same(got, expected):
        return (isinstance(got, tuple) and len(got) == 3
                and all(close(g, e) for g, e in zip(got, expected)))
    return run_check("ema_update", learner, cases, same)


def check_reset_dead_codes(fn) -> bool:
    """fn(codebook (K, D), counts (K,), x (N, D), threshold) -> (new codebook, dead mask):
    codes with count < threshold get a row of x, the others stay as they were."""
    t = torch.tensor
    cases = [("one dead code", (t([[0.0, 0.0], [1.0, 1.0]]), t([0.1, 3.0]),
                                t([[5.0, 5.0], [6.0, 6.0]]), 0.5)),
             ("none dead", (t([[0.0], [1.0]]), t([1.0, 2.0]), t([[9.0]]), 0.5)),
             ("all dead", (t([[0.0], [1.0], [2.0]]), t([0.0, 0.2, 0.4]), t([[7.0], [8.0]]), 0.5)),
             ("count equal to the threshold is alive", (t([[0.0], [1.0]]), t([0.5, 0.49]),
                                                        t([[4.0]]), 0.5))]
    gen = torch.Generator().manual_seed(2)
    for i, (k, d, n) in enumerate([(8, 2, 20), (64, 4, 5), (16, 3, 100)]):
        codebook = torch.randn(k, d, generator=gen, dtype=torch.float64)
        counts = torch.rand(k, generator=gen, dtype=torch.float64) * 2
        x = 10 + torch.randn(n, d, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}", (codebook, counts, x, 1.0)))
    rule = "the dead mask (count < threshold), dead codes replaced by rows of x, live ones kept"
    cases = [(name, args, rule) for name, args in cases]

    def learner(codebook, counts, x, threshold):
        before = codebook.clone()
        got = fn(codebook, counts, x, threshold)
        if not (isinstance(got, tuple) and len(got) == 2):
            return f"expected (new codebook, dead mask), got {type(got).__name__}"
        new, dead = (torch.as_tensor(g) for g in got)
        expected = vq.dead_codes(counts, threshold)
        if not torch.equal(codebook, before):
            return "your function changed the codebook in place; return a new tensor"
        if dead.dtype != torch.bool or not torch.equal(dead, expected):
            return f"dead mask {dead.tolist()}, expected {expected.tolist()} (count < threshold)"
        if new.shape != codebook.shape:
            return f"new codebook of shape {tuple(new.shape)}, expected {tuple(codebook.shape)}"
        if not torch.equal(new[~expected], codebook[~expected]):
            return "a live code was changed"
        from_batch = (new[expected][:, None, :] == x[None]).all(-1).any(-1)    # (dead,)
        if not bool(from_batch.all()):
            return "a dead code was not replaced by a row of x"
        return True
    return run_check("reset_dead_codes", learner, cases, lambda got, rule: got is True)


def check_perplexity(fn) -> bool:
    """fn(codes (N,), n_codes) -> exp(-sum_k p_k log p_k) of the code usage (natural log)."""
    t = torch.tensor
    cases = [("one code used", (t([3, 3, 3]), 5)), ("uniform over all codes", (t([0, 1, 2, 3]), 4)),
             ("unused codes add nothing", (t([0, 0, 1, 1]), 100)),
             ("skewed", (t([0, 0, 0, 1]), 2))]
    gen = torch.Generator().manual_seed(3)
    for i, (n, k) in enumerate([(50, 8), (1000, 256), (7, 3)]):
        cases.append((f"random {i}", (torch.randint(k, (n,), generator=gen), k)))
    cases = [(name, args, metrics.perplexity(*args)) for name, args in cases]
    return run_check("perplexity", fn, cases, close)
