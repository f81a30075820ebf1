"""Exercise 02's checks: answers written from the definitions by another route pass (so the
checks' expected values agree with the formulas, not only with `course_lib.models.vae`); every
check rejects plausible mistakes, names the failing case and says which mistake it looks like;
the predict-measure-interpret task accepts a right Monte-Carlo estimate whatever its seed and
rejects the estimates of the known mistakes; a stub is reported as not implemented."""
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from course_lib.grading import lesson02 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.models import vae


def kl_by_torch_distributions(mu, logvar):
    return kl_divergence(Normal(mu, torch.exp(0.5 * logvar)),
                         Normal(torch.zeros_like(mu), torch.ones_like(mu)))


def free_bits_by_hand(kl_per_dim, free_bits):
    columns = kl_per_dim.T.tolist()                              # one list per dimension j
    return torch.tensor(sum(max(free_bits, sum(c) / len(c)) for c in columns))


def kl_weight_by_hand(step, anneal_steps):
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return 1.0 if anneal_steps == 0 else min(1.0, step / anneal_steps)


def test_answers_from_the_definitions_pass_every_check(capsys):
    checks.check_reparameterize(lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar) * eps)
    checks.check_gaussian_kl(kl_by_torch_distributions)
    checks.check_free_bits(free_bits_by_hand)
    checks.check_kl_weight(kl_weight_by_hand)
    assert capsys.readouterr().out.count("\u2713") == 5        # kl_weight: cases + the error


def test_the_library_references_pass_every_check():
    checks.check_gaussian_kl(vae.gaussian_kl)
    checks.check_free_bits(vae.free_bits_kl)
    checks.check_kl_weight(vae.kl_weight)


def test_reparameterize_that_detaches_fails_with_a_hint():
    with pytest.raises(CheckFailed, match="carries no gradient"):
        checks.check_reparameterize(
            lambda mu, logvar, eps: (mu + torch.exp(0.5 * logvar) * eps).detach())


def test_kl_weight_that_accepts_a_negative_step_fails():
    with pytest.raises(CheckFailed, match="negative step"):
        checks.check_kl_weight(lambda step, n: 1.0 if n == 0 else min(1.0, max(step, 0) / n))


def test_kl_weight_that_divides_by_zero_names_the_no_annealing_case():
    with pytest.raises(CheckFailed, match=r"case 'anneal_steps = 0 means no annealing.*"
                                          r"raised ZeroDivisionError"):
        checks.check_kl_weight(lambda step, n: min(1.0, step / n))


# --- plausible mistakes, each failing on a named case with its hint ----------------------------

def kl_weight_with(rule):
    def weight(step, anneal_steps):
        if step < 0:
            raise ValueError("negative step")
        return rule(step, anneal_steps)
    return weight


MISTAKES = [
    (checks.check_reparameterize, lambda mu, logvar, eps: mu + torch.exp(logvar) * eps,
     "standard normal", "the variance used as the standard deviation"),
    (checks.check_reparameterize, lambda mu, logvar, eps: mu + logvar * eps,
     "standard normal", "logvar used as sigma itself"),
    (checks.check_reparameterize, lambda mu, logvar, eps: mu + torch.exp(-0.5 * logvar) * eps,
     "standard normal", r"sigma = exp\(-logvar / 2\), the sign flipped"),
    (checks.check_reparameterize, lambda mu, logvar, eps: torch.exp(0.5 * logvar) + mu * eps,
     "standard normal", "mu and sigma swapped"),
    (checks.check_reparameterize, lambda mu, logvar, eps: mu,
     "standard normal", "z = mu, the noise left out"),
    (checks.check_reparameterize,
     lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar).detach() * eps,
     "standard normal", "sigma detached"),
    (checks.check_reparameterize,
     lambda mu, logvar, eps: mu.detach() + torch.exp(0.5 * logvar) * eps,
     "standard normal", "mu detached"),
    (checks.check_gaussian_kl, lambda mu, logvar: mu ** 2 + logvar.exp() - 1 - logvar,
     "mean 1, unit variance", "the KL without its 1/2"),
    (checks.check_gaussian_kl, lambda mu, logvar: 0.5 * (mu ** 2 + logvar.exp() - 1 + logvar),
     "mean 0, variance e", r"\+ log sigma\^2 where the formula subtracts it"),
    (checks.check_gaussian_kl,
     lambda mu, logvar: 0.5 * (mu ** 2 + torch.exp(0.5 * logvar) - 1 - logvar),
     "mean 0, variance e", r"sigma where the formula has sigma\^2"),
    (checks.check_gaussian_kl,
     lambda mu, logvar: 0.5 * (mu ** 2 + torch.exp(2 * logvar) - 1 - 2 * logvar),
     "mean 0, variance e", "logvar read as log sigma"),
    (checks.check_gaussian_kl, lambda mu, logvar: 0.5 * (mu + logvar.exp() - 1 - logvar),
     "mean 2, variance 1/4", r"mu where the formula has mu\^2"),
    (checks.check_gaussian_kl,
     lambda mu, logvar: 0.5 * ((1 + mu ** 2) / logvar.exp() - 1 + logvar),
     "mean 0, variance e", r"the reverse KL\(N\(0, 1\) \|\| q\)"),
    (checks.check_gaussian_kl, lambda mu, logvar: vae.gaussian_kl(mu, logvar).sum(-1),
     "the prior itself", "the KL summed over the latent dimensions"),
    (checks.check_free_bits, lambda kl, lam: torch.clamp(kl, min=lam).mean(0).sum(),
     "floor the batch MEAN", "the floor on each example"),
    (checks.check_free_bits, lambda kl, lam: torch.clamp(kl.mean(0) - lam, min=0).sum(),
     "all dimensions above the floor", r"the hinge max\(0, KL_j - lambda\)"),
    (checks.check_free_bits, lambda kl, lam: torch.clamp(kl.mean(0), max=lam).sum(),
     "all dimensions above the floor", "min instead of max"),
    (checks.check_free_bits, lambda kl, lam: torch.clamp(kl.mean(0).sum(), min=lam),
     "every dimension below the floor", "one floor on the total KL"),
    (checks.check_free_bits, lambda kl, lam: torch.clamp(kl.sum(0), min=lam).sum(),
     "all dimensions above the floor", "the batch summed instead of averaged"),
    (checks.check_free_bits, lambda kl, lam: torch.clamp(kl.mean(0), min=lam).mean(),
     "all dimensions above the floor", "the dimensions averaged instead of summed"),
    (checks.check_free_bits, lambda kl, lam: kl.mean(0).sum(),
     "every dimension below the floor", "no floor at all"),
    (checks.check_kl_weight, kl_weight_with(lambda s, n: 1.0 if n == 0 else s / n),
     "after annealing: capped at 1", "no cap at 1"),
    (checks.check_kl_weight, kl_weight_with(lambda s, n: 1.0 if n == 0 else min(1, s // n)),
     "step 25 of 100", "integer division"),
    (checks.check_kl_weight, kl_weight_with(lambda s, n: 1.0 if n == 0 else 1 - min(1, s / n)),
     "step 0: weight 0", "the schedule reversed"),
    (checks.check_kl_weight,
     kl_weight_with(lambda s, n: 1.0 if n == 0 else min(1, (s + 1) / n)),
     "step 0: weight 0", "one step ahead"),
    (checks.check_kl_weight, kl_weight_with(lambda s, n: 0.0 if n == 0 else min(1, s / n)),
     "anneal_steps = 0 means no annealing", "weight 0 when anneal_steps = 0"),
]


@pytest.mark.parametrize("check, wrong, case, hint", MISTAKES,
                         ids=[f"{c.__name__}-{h[:30]}" for c, _, _, h in MISTAKES])
def test_a_plausible_mistake_fails_on_a_named_case_and_is_recognised(check, wrong, case, hint):
    with pytest.raises(CheckFailed, match=f"(?s)wrong answer on case '{case}.*looks like "
                                          f"{hint}"):
        check(wrong)


@pytest.mark.parametrize("check", [checks.check_reparameterize, checks.check_gaussian_kl,
                                   checks.check_free_bits, checks.check_kl_weight])
def test_every_check_names_at_least_two_mistakes(check):
    assert sum(1 for c, *_ in MISTAKES if c is check) >= 2


# --- predict, measure, interpret: the gradient that reaches logvar -----------------------------

def logvar_gradient(reparameterize, seed=0, samples=checks.SAMPLES):
    """The exercise's measurement: d mean(z^2) / d logvar at mu = 1, logvar = 0 through
    `reparameterize(mu, logvar, eps)` with `samples` draws of eps."""
    mu = torch.tensor(checks.MU, dtype=torch.float64)
    logvar = torch.tensor(checks.LOGVAR, dtype=torch.float64, requires_grad=True)
    eps = torch.randn(samples, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)
    reparameterize(mu, logvar, eps).pow(2).mean().backward()
    return float(logvar.grad) if logvar.grad is not None else 0.0


def right(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_right_estimate_passes_whatever_its_noise(seed):
    checks.check_logvar_gradient(lambda: logvar_gradient(right, seed))


def test_the_range_holds_the_analytic_gradient():
    """d E[z^2] / d logvar = d (mu^2 + exp(logvar)) / d logvar = exp(logvar)."""
    estimate, error = checks._logvar_gradient_estimate()
    assert abs(estimate - math.exp(checks.LOGVAR)) < 3 * error
    assert 5 * error < 0.1


@pytest.mark.parametrize("wrong, why", [
    (lambda mu, logvar, eps: mu + torch.exp(logvar) * eps, "variance-as-sigma mistake"),
    (lambda mu, logvar, eps: mu + logvar * eps, "0 means no gradient reached logvar"),
    (lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar).detach() * eps + 0 * logvar,
     "0 means no gradient reached logvar"),
])
def test_an_estimate_through_a_known_mistake_fails_with_the_hint(wrong, why):
    with pytest.raises(CheckFailed, match=f"(?s)outside the range.*{why}"):
        checks.check_logvar_gradient(lambda: logvar_gradient(wrong))


def test_a_measurement_that_crashes_is_reported():
    def detached(mu, logvar, eps):
        return mu + torch.exp(0.5 * logvar).detach() * eps          # nothing needs a gradient

    with pytest.raises(CheckFailed, match="your function raised RuntimeError"):
        checks.check_logvar_gradient(lambda: logvar_gradient(detached))


def test_the_gradient_at_mu_instead_fails():
    with pytest.raises(CheckFailed, match=r"2 is d E\[z\^2\] / d mu"):
        checks.check_logvar_gradient(lambda: 2 * checks.MU)


def test_the_right_explanation_passes():
    checks.check_why_gradient_reaches_logvar(lambda: "a")


@pytest.mark.parametrize("letter", sorted(set(checks.WHY_GRADIENT_REACHES_LOGVAR) - {"a"}))
def test_a_wrong_explanation_fails_with_its_reason(letter):
    with pytest.raises(CheckFailed) as info:
        checks.check_why_gradient_reaches_logvar(lambda: letter)
    assert checks.WHY_GRADIENT_REACHES_LOGVAR[letter] in str(info.value)


# --- unfinished answers -----------------------------------------------------------------------

@pytest.mark.parametrize("check", [checks.check_reparameterize, checks.check_gaussian_kl,
                                   checks.check_free_bits, checks.check_kl_weight])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


@pytest.mark.parametrize("check", [checks.check_logvar_gradient,
                                   checks.check_why_gradient_reaches_logvar])
def test_an_unfinished_measurement_is_reported_as_not_done(check, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        check(stub)
