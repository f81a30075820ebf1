"""Exercise 02's checks: answers written from the definitions by another route pass (so the
checks' expected values agree with the formulas, not only with `course_lib.models.vae`), a
typical mistake fails with CheckFailed naming the case, and a stub is reported as not
implemented."""
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
    assert checks.check_reparameterize(lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar) * eps)
    assert checks.check_gaussian_kl(kl_by_torch_distributions)
    assert checks.check_free_bits(free_bits_by_hand)
    assert checks.check_kl_weight(kl_weight_by_hand)
    assert capsys.readouterr().out.count("\u2705") == 5        # kl_weight: cases + the error


def test_the_library_references_pass_every_check():
    assert checks.check_gaussian_kl(vae.gaussian_kl)
    assert checks.check_free_bits(vae.free_bits_kl)
    assert checks.check_kl_weight(vae.kl_weight)


def test_reparameterize_with_variance_instead_of_std_fails():
    with pytest.raises(CheckFailed, match="wrong answer on case .standard normal"):
        checks.check_reparameterize(lambda mu, logvar, eps: mu + torch.exp(logvar) * eps)


def test_reparameterize_that_detaches_fails_with_a_hint():
    with pytest.raises(CheckFailed, match="carries no gradient"):
        checks.check_reparameterize(
            lambda mu, logvar, eps: (mu + torch.exp(0.5 * logvar) * eps).detach())


def test_gaussian_kl_without_the_half_fails_on_a_named_case():
    with pytest.raises(CheckFailed, match="mean 1, unit variance"):
        checks.check_gaussian_kl(lambda mu, logvar: mu ** 2 + logvar.exp() - 1 - logvar)


def test_free_bits_floored_per_example_fails_on_the_batch_mean_case():
    def per_example(kl, lam):
        return torch.clamp(kl, min=lam).mean(0).sum()
    with pytest.raises(CheckFailed, match="floor the batch MEAN"):
        checks.check_free_bits(per_example)


def test_kl_weight_without_the_cap_fails():
    with pytest.raises(CheckFailed, match="step 250 of 100"):
        checks.check_kl_weight(lambda step, n: 1.0 if n == 0 else step / n)


def test_kl_weight_that_accepts_a_negative_step_fails():
    with pytest.raises(CheckFailed, match="negative step"):
        checks.check_kl_weight(lambda step, n: 1.0 if n == 0 else min(1.0, max(step, 0) / n))


@pytest.mark.parametrize("check", [checks.check_reparameterize, checks.check_gaussian_kl,
                                   checks.check_free_bits, checks.check_kl_weight])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)
