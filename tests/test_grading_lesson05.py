"""Lesson 05's checks: answers written from the definitions with loops and counters pass (so
the checks' expected values agree with the definitions, not only with the library), the
library's references pass, typical mistakes fail with the case named, and an unfinished task
is reported as not implemented."""
import math
from collections import Counter

import pytest
import torch

from course_lib import metrics
from course_lib.grading import lesson05 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.quantize import stats
from course_lib.quantize.residual import residual_quantize
from course_lib.quantize.semantic_ids import collision_suffix


def reference_residual_quantize(x, codebooks):
    out = residual_quantize(x, codebooks)
    return out.codes, out.quantized


def reference_entropy(codes, k):
    return torch.tensor(stats.level_stats(codes, k)["entropy_bits"].to_numpy())


def reference_gini(codes, k):
    return torch.tensor([metrics.gini(counts) for counts in stats.token_counts(codes, k)])


def residual_by_loop(x, codebooks):
    """At each level pick the codeword nearest the residual, subtract it, go on."""
    codes, x_hat, residual = [], torch.zeros_like(x), x.clone()
    for codebook in codebooks:
        distances = ((residual[:, None, :] - codebook[None]) ** 2).sum(-1)   # (B, K)
        code = distances.argmin(1)
        codes.append(code)
        x_hat, residual = x_hat + codebook[code], residual - codebook[code]
    return torch.stack(codes, 1), x_hat


def suffix_by_counting(codes):
    seen = Counter()
    suffix = []
    for row in codes.tolist():
        suffix.append(seen[tuple(row)])
        seen[tuple(row)] += 1
    return torch.tensor(suffix)


def _level_counts(codes, k):
    return [[Counter(codes[:, level].tolist())[c] for c in range(k)]
            for level in range(codes.shape[1])]


def entropy_by_counting(codes, k):
    n = len(codes)
    return torch.tensor([-sum(c / n * math.log2(c / n) for c in counts if c)
                         for counts in _level_counts(codes, k)])


def gini_by_pairs(codes, k):
    """Mean absolute difference over all pairs of counts, over twice the mean count."""
    return torch.tensor([sum(abs(a - b) for a in counts for b in counts)
                         / (2 * len(counts) * sum(counts))
                         for counts in _level_counts(codes, k)])


def test_answers_from_the_definitions_pass_every_check():
    assert checks.check_residual_quantize(residual_by_loop)
    assert checks.check_collision_suffix(suffix_by_counting)
    assert checks.check_level_entropy(entropy_by_counting)
    assert checks.check_level_gini(gini_by_pairs)


def test_library_references_pass_every_check():
    assert checks.check_residual_quantize(reference_residual_quantize)
    assert checks.check_collision_suffix(collision_suffix)
    assert checks.check_level_entropy(reference_entropy)
    assert checks.check_level_gini(reference_gini)


def test_quantizing_the_input_at_every_level_instead_of_the_residual_fails():
    def no_residual(x, codebooks):
        codes = torch.stack([torch.cdist(x, cb).argmin(1) for cb in codebooks], dim=1)
        return codes, sum(cb[codes[:, l]] for l, cb in enumerate(codebooks))

    with pytest.raises(CheckFailed, match="residual_quantize: wrong answer on case"):
        checks.check_residual_quantize(no_residual)


def test_returning_the_last_residual_instead_of_the_reconstruction_fails():
    def last_residual(x, codebooks):
        out = residual_quantize(x, codebooks)
        return out.codes, out.residuals[-1]

    with pytest.raises(CheckFailed, match="the lesson's 1-D example"):
        checks.check_residual_quantize(last_residual)


def test_a_suffix_counting_from_one_fails_and_names_the_case():
    with pytest.raises(CheckFailed, match="three items share one tuple"):
        checks.check_collision_suffix(lambda codes: collision_suffix(codes) + 1)


def test_a_suffix_that_numbers_all_items_fails():
    with pytest.raises(CheckFailed, match="collision_suffix: wrong answer"):
        checks.check_collision_suffix(lambda codes: torch.arange(len(codes)))


def test_entropy_in_nats_fails():
    with pytest.raises(CheckFailed, match="level_entropy: wrong answer"):
        checks.check_level_entropy(lambda codes, k: reference_entropy(codes, k) * torch.log(
            torch.tensor(2.0, dtype=torch.float64)))


def test_gini_over_used_codes_only_fails():
    def used_only(codes, k):
        return torch.tensor([metrics.gini(c[c > 0]) for c in stats.token_counts(codes, k)])

    with pytest.raises(CheckFailed, match="level_gini: wrong answer on case .uniform level"):
        checks.check_level_gini(used_only)


def test_a_crash_becomes_a_named_failure():
    with pytest.raises(CheckFailed, match="raised IndexError"):
        checks.check_level_entropy(lambda codes, k: codes[:, 99])


@pytest.mark.parametrize("check", [checks.check_residual_quantize, checks.check_collision_suffix,
                                   checks.check_level_entropy, checks.check_level_gini])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)
