"""Checks for exercise 03 (VQ-VAE): the nearest-code lookup, the straight-through estimator,
and the codebook and commitment losses, each compared with `course_lib.quantize.vq`. The
gradient checks run the learner's function, backpropagate a random upstream gradient, and
compare where the gradient arrives."""
from __future__ import annotations

import torch

from course_lib.grading.checks import close, run_check
from course_lib.quantize import vq

__all__ = ["check_nearest_codes", "check_straight_through", "check_codebook_loss",
           "check_commitment_loss"]


def _vectors(gen, n, k, d):
    return (torch.randn(n, d, generator=gen, dtype=torch.float64),
            torch.randn(k, d, generator=gen, dtype=torch.float64))


def check_nearest_codes(fn) -> bool:
    """fn(x (N, D), codebook (K, D)) -> (N,) index of the nearest code (squared Euclidean)."""
    t = torch.tensor
    cases = [("one dimension", (t([[0.1], [1.9], [5.0]]), t([[0.0], [2.0], [4.0]]))),
             ("a single code", (t([[1.0, 2.0], [-3.0, 0.5]]), t([[0.0, 0.0]]))),
             ("nearest, not largest dot product", (t([[1.0, 0.0]]), t([[3.0, 0.0], [0.9, 0.1]])))]
    gen = torch.Generator().manual_seed(0)
    for i, (n, k, d) in enumerate([(5, 3, 2), (20, 8, 4), (64, 32, 16), (1, 5, 3)]):
        cases.append((f"random {i}", _vectors(gen, n, k, d)))
    cases = [(name, args, vq.nearest_codes(*args)) for name, args in cases]
    return run_check("nearest_codes", fn, cases,
                     lambda got, exp: torch.is_tensor(got) and torch.equal(got.long(), exp))


def _probe(fn):
    """Call fn on copies that require grad, backpropagate `upstream`, return what came out
    and where the gradient went: (value, grad w.r.t. the first input, grad w.r.t. the second)."""
    def probe(a, b, upstream):
        a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
        out = fn(a, b)
        if not torch.is_tensor(out):
            raise TypeError(f"expected a tensor, got {type(out).__name__}")
        if out.requires_grad:
            (out * upstream).sum().backward()
        zero = torch.zeros_like
        return (out.detach(), zero(a) if a.grad is None else a.grad,
                zero(b) if b.grad is None else b.grad)
    return probe


def _grad_cases(reference, scalar: bool):
    gen = torch.Generator().manual_seed(1)
    cases = []
    for i, (n, d) in enumerate([(1, 1), (4, 2), (16, 8), (32, 3)]):
        z_e, e = _vectors(gen, n, n, d)
        upstream = torch.tensor(1.7, dtype=torch.float64) if scalar else \
            torch.randn(n, d, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}; input (z_e, e, upstream gradient), answers (value, "
                      "gradient at z_e, gradient at e)", (z_e, e, upstream),
                      _probe(reference)(z_e, e, upstream)))
    return cases


def _same_value_and_gradients(got, expected) -> bool:
    return isinstance(got, tuple) and len(got) == 3 and all(
        close(g, e) for g, e in zip(got, expected))


def check_straight_through(fn) -> bool:
    """fn(z_e, e) -> z_q with the value of e and the gradient of z_e: d z_q / d z_e = I,
    no gradient to e."""
    return run_check("straight_through", _probe(fn), _grad_cases(vq.straight_through, False),
                     _same_value_and_gradients)


def check_codebook_loss(fn) -> bool:
    """fn(z_e, e) -> mean of (sg(z_e) - e)^2: the gradient reaches e only."""
    return run_check("codebook_loss", _probe(fn), _grad_cases(vq.codebook_loss, True),
                     _same_value_and_gradients)


def check_commitment_loss(fn) -> bool:
    """fn(z_e, e) -> mean of (z_e - sg(e))^2: the gradient reaches z_e only."""
    return run_check("commitment_loss", _probe(fn), _grad_cases(vq.commitment_loss, True),
                     _same_value_and_gradients)
