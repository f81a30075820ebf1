"""Lesson 04's checks accept answers written from the definitions with loops and counters
(so their expected values agree with the formulas, not only with the library), accept the
library's functions, name the case a typical mistake fails, and report a stub as not
implemented."""
import math
from collections import Counter

import pytest
import torch

from course_lib import metrics
from course_lib.grading import lesson04 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.quantize import vq


def smoothing_by_hand(counts, eps):
    n, k = float(counts.sum()), len(counts)
    return torch.tensor([(c + eps) / (n + k * eps) * n for c in counts.tolist()])


def ema_by_hand(counts, sums, x, codes, decay, eps):
    """N_i <- decay N_i + (1 - decay) n_i; m_i <- decay m_i + (1 - decay) (sum of the batch
    vectors coded i); e_i = m_i / smoothed N_i."""
    rows, assigned, width = x.tolist(), codes.tolist(), sums.shape[1]
    new_counts, new_sums = [], []
    for i, (count, running) in enumerate(zip(counts.tolist(), sums.tolist())):
        mine = [row for row, c in zip(rows, assigned) if c == i]
        batch_sum = [sum(row[d] for row in mine) for d in range(width)]
        new_counts.append(decay * count + (1 - decay) * len(mine))
        new_sums.append([decay * m + (1 - decay) * b for m, b in zip(running, batch_sum)])
    new_counts = torch.tensor(new_counts, dtype=torch.float64)
    new_sums = torch.tensor(new_sums, dtype=torch.float64)
    return new_counts, new_sums, new_sums / smoothing_by_hand(new_counts, eps)[:, None]


def reset_by_hand(codebook, counts, x, threshold):
    new, dead = codebook.clone(), counts < threshold
    for i in dead.nonzero().flatten().tolist():
        new[i] = x[i % len(x)]
    return new, dead


def perplexity_by_counting(codes, n_codes):
    n = len(codes)
    return math.exp(-sum(c / n * math.log(c / n) for c in Counter(codes.tolist()).values()))


def test_answers_from_the_definitions_pass_every_check(capsys):
    assert checks.check_laplace_smoothing(smoothing_by_hand)
    assert checks.check_ema_update(ema_by_hand)
    assert checks.check_reset_dead_codes(reset_by_hand)
    assert checks.check_perplexity(perplexity_by_counting)
    assert capsys.readouterr().out.count("\u2705") == 4


def test_the_library_functions_pass_every_check(capsys):
    assert checks.check_laplace_smoothing(vq.laplace_smoothing)
    assert checks.check_ema_update(vq.ema_update)
    assert checks.check_reset_dead_codes(vq.reset_dead_codes)
    assert checks.check_perplexity(metrics.perplexity)
    assert capsys.readouterr().out.count("\u2705") == 4


def test_smoothing_that_forgets_to_rescale_to_the_total_fails():
    def no_rescale(counts, eps):
        return (counts + eps) / (counts.sum() + len(counts) * eps)
    with pytest.raises(CheckFailed, match="laplace_smoothing: wrong answer on case 'no zero counts'"):
        checks.check_laplace_smoothing(no_rescale)


def test_ema_with_the_decay_on_the_wrong_side_fails_on_the_hand_case():
    def swapped(counts, sums, x, codes, decay, eps):
        return vq.ema_update(counts, sums, x, codes, 1 - decay, eps)
    # decay 1/2 is its own complement: the hand case passes, the next fixed case names itself
    with pytest.raises(CheckFailed, match="a code no vector picks"):
        checks.check_ema_update(swapped)


def test_ema_without_laplace_smoothing_fails():
    def unsmoothed(counts, sums, x, codes, decay, eps):
        counts, sums, _ = vq.ema_update(counts, sums, x, codes, decay, eps)
        return counts, sums, sums / counts[:, None]
    with pytest.raises(CheckFailed, match="hand-computed"):
        checks.check_ema_update(unsmoothed)


def test_ema_that_updates_its_inputs_in_place_fails_with_that_reason():
    def in_place(counts, sums, x, codes, decay, eps):
        new = vq.ema_update(counts, sums, x, codes, decay, eps)
        counts.copy_(new[0])
        return new
    with pytest.raises(CheckFailed, match="changed its inputs in place"):
        checks.check_ema_update(in_place)


def test_reset_with_less_or_equal_instead_of_less_fails_on_the_boundary_case():
    def at_most(codebook, counts, x, threshold):
        dead = counts <= threshold
        new = codebook.clone()
        new[dead] = x[torch.randint(len(x), (int(dead.sum()),))]
        return new, dead
    with pytest.raises(CheckFailed, match="count equal to the threshold is alive"):
        checks.check_reset_dead_codes(at_most)


def test_reset_to_random_noise_instead_of_batch_rows_fails():
    def noise(codebook, counts, x, threshold):
        dead = counts < threshold
        new = codebook.clone()
        new[dead] = torch.randn(int(dead.sum()), codebook.shape[1], dtype=codebook.dtype)
        return new, dead
    with pytest.raises(CheckFailed, match="not replaced by a row of x"):
        checks.check_reset_dead_codes(noise)


def test_reset_that_moves_live_codes_fails():
    def moves_all(codebook, counts, x, threshold):
        new, dead = vq.reset_dead_codes(codebook, counts, x, threshold)
        return new + 1e-3, dead
    with pytest.raises(CheckFailed, match="live code was changed"):
        checks.check_reset_dead_codes(moves_all)


def test_entropy_instead_of_perplexity_fails():
    def entropy(codes, n_codes):
        p = torch.bincount(codes, minlength=n_codes).double() / len(codes)
        p = p[p > 0]
        return float(-(p * p.log()).sum())
    with pytest.raises(CheckFailed, match="perplexity: wrong answer on case 'one code used'"):
        checks.check_perplexity(entropy)


def test_dividing_by_the_codebook_size_instead_of_the_rows_fails():
    def wrong_p(codes, n_codes):
        p = torch.bincount(codes, minlength=n_codes).double() / n_codes
        p = p[p > 0]
        return float(torch.exp(-(p * p.log()).sum()))
    with pytest.raises(CheckFailed, match="perplexity: wrong answer"):
        checks.check_perplexity(wrong_p)


@pytest.mark.parametrize("check", [checks.check_laplace_smoothing, checks.check_ema_update,
                                   checks.check_reset_dead_codes, checks.check_perplexity])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)
