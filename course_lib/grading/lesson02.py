"""Checks for exercise 02 (VAE and posterior collapse): the reparameterisation trick, the
Gaussian KL in closed form, free bits and the KL annealing schedule, each compared with
`course_lib.models.vae`."""
from __future__ import annotations

import torch

from course_lib.grading.checks import close, expect_error, run_check
from course_lib.models import vae

__all__ = ["check_reparameterize", "check_gaussian_kl", "check_free_bits", "check_kl_weight"]


def _gaussians(gen, shape):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * 2,
            torch.randn(shape, generator=gen, dtype=torch.float64))


def check_reparameterize(fn) -> bool:
    """fn(mu, logvar, eps) -> z = mu + exp(logvar / 2) * eps, differentiable in mu and logvar.
    The answer compared is (z, dz/dmu summed, dz/dlogvar summed) for an upstream gradient."""

    def probe(f):
        def run(mu, logvar, eps, upstream):
            mu, logvar = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
            z = f(mu, logvar, eps)
            if not torch.is_tensor(z):
                raise TypeError(f"expected a tensor, got {type(z).__name__}")
            if not z.requires_grad:
                raise TypeError("z carries no gradient: build it from mu and logvar with "
                                "differentiable torch operations (no .detach(), no numpy)")
            (z * upstream).sum().backward()
            zero = torch.zeros_like
            return (z.detach(), zero(mu) if mu.grad is None else mu.grad,
                    zero(logvar) if logvar.grad is None else logvar.grad)
        return run

    def reference(mu, logvar, eps):
        return mu + torch.exp(0.5 * logvar) * eps

    t = lambda *v: torch.tensor(v, dtype=torch.float64)          # noqa: E731
    cases = [("standard normal: z = eps", (t(0.0, 0.0), t(0.0, 0.0), t(0.3, -1.2), t(1.0, 1.0))),
             ("sigma = 2 means logvar = log 4", (t(1.0), t(1.3862943611198906), t(0.5), t(1.0))),
             ("eps = 0 gives the mean", (t(-2.0, 3.0), t(1.0, -1.0), t(0.0, 0.0), t(1.0, 1.0)))]
    gen = torch.Generator().manual_seed(0)
    for i, shape in enumerate([(3,), (4, 2), (8, 5)]):
        mu, logvar = _gaussians(gen, shape)
        eps = torch.randn(shape, generator=gen, dtype=torch.float64)
        upstream = torch.randn(shape, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}", (mu, logvar, eps, upstream)))
    cases = [(f"{name}; input (mu, logvar, eps, upstream gradient), answers (z, gradient at "
              "mu, gradient at logvar)", args, probe(reference)(*args)) for name, args in cases]
    same = lambda got, exp: all(close(g, e) for g, e in zip(got, exp))   # noqa: E731
    return run_check("reparameterize", probe(fn), cases, same)


def check_gaussian_kl(fn) -> bool:
    """fn(mu, logvar) -> KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, mu's shape."""
    t = lambda *v: torch.tensor(v, dtype=torch.float64)          # noqa: E731
    cases = [("the prior itself: KL = 0", (t(0.0, 0.0), t(0.0, 0.0))),
             ("mean 1, unit variance: KL = 1/2", (t(1.0), t(0.0))),
             ("mean 0, variance e: KL = (e - 2) / 2", (t(0.0), t(1.0)))]
    gen = torch.Generator().manual_seed(1)
    for i, shape in enumerate([(5,), (3, 4), (16, 8)]):
        cases.append((f"random {i}", _gaussians(gen, shape)))
    cases = [(name, args, vae.gaussian_kl(*args)) for name, args in cases]
    return run_check("gaussian_kl", fn, cases, close)


def check_free_bits(fn) -> bool:
    """fn(kl_per_dim (B, J), free_bits) -> sum_j max(lambda, mean_b KL_bj), a scalar."""
    t = lambda *v: torch.tensor(v, dtype=torch.float64)          # noqa: E731
    cases = [("all dimensions above the floor", (t([1.0, 2.0], [3.0, 4.0]), 0.5)),
             ("a dead dimension costs lambda", (t([0.0, 2.0], [0.0, 2.0]), 0.5)),
             ("floor the batch MEAN, not each example", (t([0.0, 1.0], [2.0, 1.0]), 1.5)),
             ("lambda = 0 is the plain KL", (t([0.3, 0.1], [0.5, 0.2]), 0.0))]
    gen = torch.Generator().manual_seed(2)
    for i, (b, j) in enumerate([(4, 3), (16, 8), (1, 5)]):
        kl = torch.rand(b, j, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}", (kl, float(torch.rand(1, generator=gen)))))
    cases = [(name, args, vae.free_bits_kl(*args)) for name, args in cases]
    return run_check("free_bits", fn, cases, close)


def check_kl_weight(fn) -> bool:
    """fn(step, anneal_steps) -> linear KL weight min(1, step / anneal_steps); anneal_steps = 0
    means no annealing (weight 1); a negative step raises ValueError."""
    cases = [(f"step {s} of {n}", (s, n), vae.kl_weight(s, n))
             for s, n in [(0, 100), (25, 100), (99, 100), (100, 100), (250, 100), (3, 7),
                          (0, 0), (5, 0)]]
    run_check("kl_weight", fn, cases, close)
    return expect_error("kl_weight", fn, (-1, 100), ValueError, "a negative step")
