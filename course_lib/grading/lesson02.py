"""Checks for exercise 02 (VAE and posterior collapse): the reparameterisation trick, the
Gaussian KL in closed form, free bits and the KL annealing schedule, each compared with
`course_lib.models.vae`, and a predict-measure-interpret task on the gradient that the
reparameterisation trick carries to the log-variance.

A wrong answer names the case and, where it equals the answer of a known mistake (the
variance used as the standard deviation, sigma detached, the KL without its 1/2 or in the
reverse direction, free bits floored per example or as a hinge, the annealing weight without
its cap, ...), says which mistake it looks like.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib.grading.checks import (check_choice, check_measured, expect_error,
                                       run_naming_mistakes, same_values)
from course_lib.models import vae

__all__ = ["check_reparameterize", "check_gaussian_kl", "check_free_bits", "check_kl_weight",
           "check_logvar_gradient", "check_why_gradient_reaches_logvar"]


def _t(*values) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _gaussians(gen, shape):
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * 2,
            torch.randn(shape, generator=gen, dtype=torch.float64))


# --- task 1: the reparameterisation trick ------------------------------------------------------

def _probe(f):
    """f(mu, logvar, eps) as (z, dL/dmu, dL/dlogvar) for L = sum(z * upstream): the answer
    the check compares, so a z that carries no gradient is caught too."""
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


def _reference_reparameterize(mu, logvar, eps):
    """`vae.reparameterize` with the noise given instead of drawn."""
    return mu + torch.exp(0.5 * logvar) * eps


REPARAMETERIZE_MISTAKES = [
    ("the variance used as the standard deviation (exp(logvar) * eps): sigma = exp(logvar / 2)",
     lambda mu, logvar, eps: mu + torch.exp(logvar) * eps),
    ("logvar used as sigma itself (mu + logvar * eps): logvar is log sigma^2, so "
     "sigma = exp(logvar / 2)", lambda mu, logvar, eps: mu + logvar * eps),
    ("sigma = exp(-logvar / 2), the sign flipped: sigma = exp(+logvar / 2)",
     lambda mu, logvar, eps: mu + torch.exp(-0.5 * logvar) * eps),
    ("mu and sigma swapped (sigma + mu * eps): z = mu + sigma * eps",
     lambda mu, logvar, eps: torch.exp(0.5 * logvar) + mu * eps),
    ("z = mu, the noise left out: that is the posterior mean (used at evaluation); a sample "
     "adds sigma * eps", lambda mu, logvar, eps: mu + 0 * logvar),
    ("sigma detached: no gradient reaches logvar, so the encoder cannot learn its variance",
     lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar).detach() * eps + 0 * logvar),
    ("mu detached: no gradient reaches mu",
     lambda mu, logvar, eps: mu.detach() + torch.exp(0.5 * logvar) * eps + 0 * mu),
]


def _same_probe(got, answer, args=None) -> bool:
    try:
        return len(got) == 3 and all(same_values(g, a) for g, a in zip(got, answer))
    except TypeError:
        return False


def check_reparameterize(fn) -> None:
    """fn(mu, logvar, eps) -> z = mu + exp(logvar / 2) * eps, differentiable in mu and logvar.
    The answer compared is (z, dz/dmu summed, dz/dlogvar summed) for an upstream gradient."""
    cases = [("standard normal: z = eps",
              (_t(0.0, 0.0), _t(0.0, 0.0), _t(0.3, -1.2), _t(1.0, 1.0))),
             ("sigma = 2 means logvar = log 4", (_t(1.0), _t(math.log(4)), _t(0.5), _t(1.0))),
             ("eps = 0 gives the mean",
              (_t(-2.0, 3.0), _t(1.0, -1.0), _t(0.0, 0.0), _t(1.0, 1.0))),
             ("sigma below 1: logvar < 0",
              (_t(0.5, -0.5), _t(-2.0, -1.0), _t(1.0, -2.0), _t(1.0, -1.0)))]
    gen = torch.Generator().manual_seed(0)
    for i, shape in enumerate([(3,), (4, 2), (8, 5)]):
        mu, logvar = _gaussians(gen, shape)
        eps = torch.randn(shape, generator=gen, dtype=torch.float64)
        upstream = torch.randn(shape, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}", (mu, logvar, eps, upstream)))
    cases = [(f"{name}; input (mu, logvar, eps, upstream gradient), answers (z, gradient at "
              "mu, gradient at logvar)", args,
              (_probe(_reference_reparameterize)(*args),
               [(what, _probe(wrong)(*args)) for what, wrong in REPARAMETERIZE_MISTAKES]))
             for name, args in cases]
    return run_naming_mistakes("reparameterize", _probe(fn), cases, _same_probe)



# --- task 2: the Gaussian KL --------------------------------------------------------------------

def _kl_mistakes(mu, logvar) -> list[tuple[str, Tensor]]:
    var = logvar.exp()
    right = vae.gaussian_kl(mu, logvar)
    return [("the KL without its 1/2: KL_j = (mu^2 + sigma^2 - 1 - log sigma^2) / 2",
             2 * right),
            ("+ log sigma^2 where the formula subtracts it", 0.5 * (mu ** 2 + var - 1 + logvar)),
            ("sigma where the formula has sigma^2 (exp(logvar / 2)): sigma^2 = exp(logvar)",
             0.5 * (mu ** 2 + torch.exp(0.5 * logvar) - 1 - logvar)),
            ("logvar read as log sigma (sigma^2 = exp(2 logvar)): logvar is log sigma^2",
             0.5 * (mu ** 2 + torch.exp(2 * logvar) - 1 - 2 * logvar)),
            ("mu where the formula has mu^2", 0.5 * (mu + var - 1 - logvar)),
            ("the reverse KL(N(0, 1) || q): the ELBO charges KL(q(z | x) || p(z))",
             0.5 * ((1 + mu ** 2) / var - 1 + logvar)),
            ("the KL summed over the latent dimensions: return one value per dimension, mu's "
             "shape", right.sum(-1))]


def check_gaussian_kl(fn) -> None:
    """fn(mu, logvar) -> KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, mu's shape."""
    cases = [("the prior itself: KL = 0", (_t(0.0, 0.0), _t(0.0, 0.0))),
             ("mean 1, unit variance: KL = 1/2", (_t(1.0), _t(0.0))),
             ("mean 0, variance e: KL = (e - 2) / 2", (_t(0.0), _t(1.0))),
             ("mean 2, variance 1/4", (_t(2.0, -2.0), _t(math.log(0.25), math.log(0.25))))]
    gen = torch.Generator().manual_seed(1)
    for i, shape in enumerate([(5,), (3, 4), (16, 8)]):
        cases.append((f"random {i}", _gaussians(gen, shape)))
    cases = [(name, args, (vae.gaussian_kl(*args), _kl_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("gaussian_kl", fn, cases, same_values)


# --- task 3: free bits ------------------------------------------------------------------------

def _free_bits_mistakes(kl, lam) -> list[tuple[str, Tensor]]:
    mean = kl.mean(0)                                                       # (J,)
    return [("no floor at all (the plain KL): a dimension below lambda must still cost lambda",
             mean.sum()),
            ("the floor on each example (max(lambda, KL_bj), then the mean): floor the batch "
             "MEAN of each dimension", torch.clamp(kl, min=lam).mean(0).sum()),
            ("the hinge max(0, KL_j - lambda): free bits keep lambda as a constant cost, "
             "sum_j max(lambda, KL_j)", torch.clamp(mean - lam, min=0).sum()),
            ("min instead of max (clamp(max=lambda)): the floor is a LOWER bound",
             torch.clamp(mean, max=lam).sum()),
            ("one floor on the total KL (max(lambda, sum_j KL_j)): free bits floor each "
             "dimension", torch.clamp(mean.sum(), min=lam)),
            ("the batch summed instead of averaged", torch.clamp(kl.sum(0), min=lam).sum()),
            ("the dimensions averaged instead of summed", torch.clamp(mean, min=lam).mean())]


def check_free_bits(fn) -> None:
    """fn(kl_per_dim (B, J), free_bits) -> sum_j max(lambda, mean_b KL_bj), a scalar."""
    cases = [("all dimensions above the floor", (_t([1.0, 2.0], [3.0, 4.0]), 0.5)),
             ("every dimension below the floor: each costs lambda",
              (_t([0.1, 0.05], [0.1, 0.15]), 0.5)),
             ("a dead dimension costs lambda", (_t([0.0, 2.0], [0.0, 2.0]), 0.5)),
             ("floor the batch MEAN, not each example", (_t([0.0, 1.0], [2.0, 1.0]), 1.5)),
             ("lambda = 0 is the plain KL", (_t([0.3, 0.1], [0.5, 0.2]), 0.0))]
    gen = torch.Generator().manual_seed(2)
    for i, (b, j) in enumerate([(4, 3), (16, 8), (1, 5)]):
        kl = torch.rand(b, j, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}", (kl, float(torch.rand(1, generator=gen)))))
    cases = [(name, args, (vae.free_bits_kl(*args), _free_bits_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("free_bits", fn, cases, same_values)


# --- task 4: the annealing schedule ------------------------------------------------------------

def _kl_weight_mistakes(step, anneal_steps) -> list[tuple[str, float]]:
    if anneal_steps == 0:
        return [("weight 0 when anneal_steps = 0: 0 means no annealing, weight 1 from the "
                 "start", 0.0)]
    ratio = step / anneal_steps
    return [("no cap at 1: after anneal_steps the weight stays at 1", ratio),
            ("integer division (step // anneal_steps): the weight jumps from 0 to 1 instead of "
             "rising linearly", float(min(1, step // anneal_steps))),
            ("the schedule reversed (1 - step / anneal_steps): the weight RISES from 0 to 1",
             1 - min(1.0, ratio)),
            ("one step ahead ((step + 1) / anneal_steps): the weight is 0 at step 0",
             min(1.0, (step + 1) / anneal_steps))]


def check_kl_weight(fn) -> None:
    """fn(step, anneal_steps) -> linear KL weight min(1, step / anneal_steps); anneal_steps = 0
    means no annealing (weight 1); a negative step raises ValueError."""
    names = {(0, 100): "step 0: weight 0", (50, 100): "halfway: weight 1/2",
             (100, 100): "the last annealing step: weight 1",
             (250, 100): "after annealing: capped at 1",
             (0, 0): "anneal_steps = 0 means no annealing: weight 1",
             (5, 0): "anneal_steps = 0, later step: weight 1"}
    cases = []
    for step, n in [(0, 100), (25, 100), (50, 100), (99, 100), (100, 100), (250, 100),
                    (3, 7), (0, 0), (5, 0)]:
        name = names.get((step, n), f"step {step} of {n}")
        cases.append((name, (step, n), (vae.kl_weight(step, n), _kl_weight_mistakes(step, n))))
    run_naming_mistakes("kl_weight", fn, cases, same_values)
    return expect_error("kl_weight", fn, (-1, 100), ValueError, "a negative step")


# --- task 5: predict, measure, interpret: the gradient that reaches logvar ----------------------

MU, LOGVAR, SAMPLES, SEED = 1.0, 0.0, 10_000, 0


def _logvar_gradient_estimate() -> tuple[float, float]:
    """The library's Monte-Carlo estimate of d E[z^2] / d logvar at (MU, LOGVAR) through
    `vae.reparameterize` with SAMPLES draws of eps from SEED, and its standard error."""
    mu = torch.full((SAMPLES,), MU, dtype=torch.float64)
    logvar = torch.tensor(LOGVAR, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(SEED)
    z = vae.reparameterize(mu, logvar.expand(SAMPLES), gen)               # (SAMPLES,)
    sigma = math.exp(LOGVAR / 2)
    eps = (z.detach() - MU) / sigma
    per_sample = z.detach() * sigma * eps                  # d z^2 / d logvar = 2 z * sigma eps / 2
    z.pow(2).mean().backward()
    return float(logvar.grad), float(per_sample.std() / math.sqrt(SAMPLES))


def check_logvar_gradient(fn) -> None:
    """fn() -> the Monte-Carlo estimate of d E[z^2] / d logvar at mu = 1, logvar = 0 through
    the learner's reparameterize (10,000 samples). E[z^2] = mu^2 + exp(logvar), so the
    gradient is exp(logvar) = 1; the range is the library's estimate on seeded noise plus or
    minus five of its standard errors (about 0.09), which holds any correct estimator's noise."""
    estimate, error = _logvar_gradient_estimate()
    hint = ("average z^2 over the samples, backpropagate, and return logvar.grad. 2 is "
            "d E[z^2] / d mu, and also what the variance-as-sigma mistake gives for logvar; "
            "0 means no gradient reached logvar (sigma detached, or logvar used as sigma)")
    return check_measured("logvar_gradient", fn, estimate - 5 * error, estimate + 5 * error,
                          "d E[z^2] / d logvar", hint)


WHY_GRADIENT_REACHES_LOGVAR = {
    "a": "The randomness sits in eps, an input, so for each drawn eps the sample "
         "z = mu + exp(logvar / 2) eps is a smooth function of logvar; autograd differentiates "
         "it, and the average of d z^2 / d logvar over the draws estimates the gradient of the "
         "expectation, exp(logvar).",
    "b": "Sampling itself has no gradient (torch.randn's output does not depend on any "
         "parameter); the trick moves the randomness out of the parameters into eps.",
    "c": "There is no KL term in this objective, only E[z^2]; the gradient you measured "
         "flows through the samples z.",
    "d": "Each sample's d z^2 / d logvar = z sigma eps differs from draw to draw; only "
         "their average approaches exp(logvar), which is why the check accepts a range.",
}


def check_why_gradient_reaches_logvar(fn) -> None:
    """fn() -> the letter of the explanation of why a random sample carries a gradient."""
    return check_choice("why_gradient_reaches_logvar", fn, "a", WHY_GRADIENT_REACHES_LOGVAR)
