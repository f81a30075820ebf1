"""Lesson 05's checks: answers written from the definitions with loops and counters pass (so
the checks' expected values agree with the definitions, not only with the library), the
library's references pass, every plausible wrong answer fails with the hint that names the
mistake, an unfinished task is reported as not implemented, and the predict-measure-interpret
task accepts the right measurement, rejects the wrong ones, and its reasons hold on the data."""
import math
from collections import Counter

import numpy as np
import pytest
import torch

from course_lib import get_profile, metrics
from course_lib.data.world import make_world
from course_lib.grading import lesson05 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.quantize import stats
from course_lib.quantize.kmeans import rq_kmeans
from course_lib.quantize.residual import residual_quantize
from course_lib.quantize.semantic_ids import collision_suffix

get_profile()                  # the quick profile's threads: k-means on 300 items runs on one


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
    checks.check_residual_quantize(residual_by_loop)
    checks.check_collision_suffix(suffix_by_counting)
    checks.check_level_entropy(entropy_by_counting)
    checks.check_level_gini(gini_by_pairs)


def test_library_references_pass_every_check():
    checks.check_residual_quantize(reference_residual_quantize)
    checks.check_collision_suffix(collision_suffix)
    checks.check_level_entropy(reference_entropy)
    checks.check_level_gini(reference_gini)


# --- every named mistake fails with its hint ----------------------------------------------------

def quantizer(residual_after, pick=torch.argmin):
    """A residual quantizer in which level l + 1 codes residual_after(x, r, e); x_hat is the
    sum of the chosen codewords."""
    def quantize(x, codebooks):
        residual, codes, x_hat = x, [], torch.zeros_like(x)
        for codebook in codebooks:
            c = pick(torch.cdist(residual, codebook), dim=1)
            codes.append(c)
            x_hat = x_hat + codebook[c]
            residual = residual_after(x, residual, codebook[c])
        return torch.stack(codes, 1), x_hat
    return quantize


def reference_then(change):
    def wrong(x, codebooks):
        out = residual_quantize(x, codebooks)
        return change(out, codebooks)
    return wrong


RESIDUAL_MISTAKES = [
    ("the input quantized at every level", quantizer(lambda x, r, e: x)),
    (r"r_\{l\+1\} = x - e\^l_\{c_l\}, the input minus the last codeword",
     quantizer(lambda x, r, e: x - e)),
    ("the codeword added to the residual", quantizer(lambda x, r, e: r + e)),
    ("the farthest codeword at each level", quantizer(lambda x, r, e: r - e, torch.argmax)),
    ("the last residual r_L instead of the reconstruction",
     reference_then(lambda out, books: (out.codes, out.residuals[-1]))),
    ("the first level's codeword alone",
     reference_then(lambda out, books: (out.codes, books[0][out.codes[:, 0]]))),
    (r"codes of shape \(L, B\)", reference_then(lambda out, books: (out.codes.T, out.quantized))),
    (r"\(x_hat, codes\) in the wrong order",
     reference_then(lambda out, books: (out.quantized, out.codes))),
]


@pytest.mark.parametrize("hint, wrong", RESIDUAL_MISTAKES,
                         ids=[hint for hint, _ in RESIDUAL_MISTAKES])
def test_a_wrong_residual_quantizer_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed,
                       match=rf"(?s)residual_quantize: wrong answer.*looks like {hint}"):
        checks.check_residual_quantize(wrong)


def rank_by_group_order(codes):
    _, group = torch.unique(codes, dim=0, return_inverse=True)
    return group


SUFFIX_MISTAKES = [
    ("counting from 1", lambda codes: collision_suffix(codes) + 1),
    ("every item numbered", lambda codes: torch.arange(len(codes))),
    ("the group's size minus one", lambda codes: torch.tensor(
        [Counter(map(tuple, codes.tolist()))[tuple(row)] - 1 for row in codes.tolist()])),
    ("the group number", rank_by_group_order),
    (r"a flag \(0 for the first", lambda codes: (collision_suffix(codes) > 0).long()),
    ("numbered from the last item", lambda codes: collision_suffix(codes.flip(0)).flip(0)),
    ("collisions of the first level only", lambda codes: collision_suffix(codes[:, :1])),
]


@pytest.mark.parametrize("hint, wrong", SUFFIX_MISTAKES, ids=[hint for hint, _ in SUFFIX_MISTAKES])
def test_a_wrong_collision_suffix_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)collision_suffix: wrong answer on case 'three "
                                          rf"items share one tuple'.*looks like {hint}"):
        checks.check_collision_suffix(wrong)


def test_a_suffix_that_compares_only_the_first_code_fails_on_its_own_case():
    def first_code_only(codes):
        return collision_suffix(codes[:, :1])

    codes = torch.tensor([[1, 2], [0, 0], [1, 3]])       # passes where rows differ in level 1
    assert not torch.equal(first_code_only(codes), collision_suffix(codes))
    with pytest.raises(CheckFailed, match="collisions of the first level only"):
        checks.check_collision_suffix(first_code_only)


def entropy_with(log):
    def entropy(codes, k):
        out = []
        for column in codes.T:
            p = torch.bincount(column, minlength=k).double() / len(column)
            p = p[p > 0]
            out.append(-(p * log(p)).sum())
        return torch.stack(out)
    return entropy


ENTROPY_MISTAKES = [
    ("the entropy in nats", entropy_with(torch.log)),
    ("the entropy in log10", entropy_with(torch.log10)),
    ("the entropy as a share of its maximum", lambda codes, k: reference_entropy(codes, k)
     / math.log2(k)),
    (r"the perplexity 2 \*\* H", lambda codes, k: 2 ** reference_entropy(codes, k)),
    ("p_k = count / K", lambda codes, k: torch.tensor([
        -sum(c / k * math.log2(c / k) for c in counts if c)
        for counts in _level_counts(codes, k)])),
    (r"one entropy per item \(row\)", lambda codes, k: entropy_by_counting(codes.T, k)),
    ("NaN: codes nobody uses", lambda codes, k: torch.stack([
        -(p * p.log2()).sum() for p in (torch.bincount(c, minlength=k).double() / len(c)
                                        for c in codes.T)])),
    ("the right entropies times 3: a log of another base",
     lambda codes, k: 3 * reference_entropy(codes, k)),
]


@pytest.mark.parametrize("hint, wrong", ENTROPY_MISTAKES,
                         ids=[hint for hint, _ in ENTROPY_MISTAKES])
def test_a_wrong_entropy_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)level_entropy: wrong answer.*looks like {hint}"):
        checks.check_level_entropy(wrong)


def gini_of(counts_of, order=lambda x: x.sort().values, start=1, factor=1.0):
    def gini(codes, k):
        out = []
        for counts in stats.token_counts(codes, k):
            x = order(counts_of(counts.double()))
            n = len(x)
            i = torch.arange(start, start + n, dtype=torch.float64)
            out.append(factor * ((2 * i - n - 1) * x).sum() / (n * x.sum()))
        return torch.stack(out)
    return gini


GINI_MISTAKES = [
    ("unused codes left out", gini_of(lambda c: c[c > 0])),
    ("the counts sorted descending",
     gini_of(lambda c: c, lambda x: x.sort(descending=True).values)),
    ("the counts not sorted", gini_of(lambda c: c, lambda x: x)),
    (r"the Gini rescaled by K / \(K - 1\)",
     lambda codes, k: reference_gini(codes, k) * k / (k - 1)),
    (r"i from 0 to K - 1 in \(2i - K - 1\)", gini_of(lambda c: c, start=0)),
    ("twice the Gini", gini_of(lambda c: c, factor=2.0)),
]


@pytest.mark.parametrize("hint, wrong", GINI_MISTAKES, ids=[hint for hint, _ in GINI_MISTAKES])
def test_a_wrong_gini_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)level_gini: wrong answer.*looks like {hint}"):
        checks.check_level_gini(wrong)


# --- unfinished and crashing answers ------------------------------------------------------------

def test_a_crash_becomes_a_named_failure():
    with pytest.raises(CheckFailed, match="raised IndexError"):
        checks.check_level_entropy(lambda codes, k: codes[:, 99])


@pytest.mark.parametrize("check", [checks.check_residual_quantize, checks.check_collision_suffix,
                                   checks.check_level_entropy, checks.check_level_gini])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


# --- predict, measure, interpret: how often semantic IDs collide --------------------------------

@pytest.fixture(scope="module")
def world_codes():
    """The RQ-KMeans codes of the exercise's world (seed 0), as the exercise builds them."""
    return rq_kmeans(checks.collision_world(), n_levels=3, codebook_size=16, seed=0,
                     n_init=1).codes


def test_the_measured_rate_of_the_right_suffix_passes(world_codes, capsys):
    checks.check_measured_collision_rate(
        lambda: float((suffix_by_counting(world_codes) > 0).double().mean()))
    assert "= 0.24," in capsys.readouterr().out


def test_the_share_of_items_in_some_collision_group_fails_with_the_hint(world_codes):
    def in_a_group():
        _, group, sizes = torch.unique(world_codes, dim=0, return_inverse=True, return_counts=True)
        return float((sizes[group] > 1).double().mean())

    with pytest.raises(CheckFailed, match=r"(?s)is outside the range.*hint: .*not the share of "
                                          r"items that are in some collision group"):
        checks.check_measured_collision_rate(in_a_group)


def test_the_rate_of_uniformly_drawn_paths_fails():
    assert checks.uniform_collision_rate() == pytest.approx(0.0356, abs=1e-3)
    with pytest.raises(CheckFailed, match="is outside the range"):
        checks.check_measured_collision_rate(checks.uniform_collision_rate)


def test_the_uniform_rate_matches_a_simulation():
    gen = torch.Generator().manual_seed(0)
    rates = [float((collision_suffix(torch.randint(16, (300, 3), generator=gen)) > 0)
                   .double().mean()) for _ in range(200)]
    assert np.mean(rates) == pytest.approx(checks.uniform_collision_rate(), abs=0.003)


def test_colliding_items_share_their_leaf_category_as_the_right_reason_says(world_codes):
    leaf = make_world(checks.WORLD).items["cat3"].to_numpy()
    _, group = torch.unique(world_codes, dim=0, return_inverse=True)
    group = group.numpy()
    same = pairs = 0
    for g in np.unique(group):
        members = leaf[group == g]
        pairs += len(members) * (len(members) - 1) // 2
        same += sum((members[i] == members[i + 1:]).sum() for i in range(len(members)))
    assert pairs > 50 and same / pairs > 0.9
    assert torch.unique(world_codes, dim=0).shape[0] < 4096 / 10, "most paths stay empty"


def test_every_seed_collides_several_times_more_than_uniform_paths_as_reason_c_says():
    assert min(checks._rates_over_seeds()) > 4 * checks.uniform_collision_rate()


def test_two_levels_collide_more_than_three_as_reason_d_says():
    content = checks.collision_world()
    for seed in range(2):
        two = rq_kmeans(content, n_levels=2, codebook_size=16, seed=seed, n_init=1).codes
        three = rq_kmeans(content, n_levels=3, codebook_size=16, seed=seed, n_init=1).codes
        assert metrics.collision_rate(two) > metrics.collision_rate(three) + 0.2


def test_the_right_reason_passes(capsys):
    checks.check_why_collisions(lambda: "a")
    assert "leaf category" in capsys.readouterr().out


@pytest.mark.parametrize("letter", sorted(set(checks.WHY_COLLISIONS) - {"a"}))
def test_each_wrong_reason_fails_with_its_explanation(letter):
    with pytest.raises(CheckFailed, match=rf"\({letter}\) does not explain") as failure:
        checks.check_why_collisions(lambda: letter)
    assert checks.WHY_COLLISIONS[letter] in str(failure.value)


@pytest.mark.parametrize("check", [checks.check_measured_collision_rate,
                                   checks.check_why_collisions])
def test_an_unfinished_measurement_is_reported_as_not_done(check, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        check(stub)
