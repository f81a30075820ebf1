"""Lesson 04's checks accept answers written from the definitions with loops and counters
(so their expected values agree with the formulas, not only with the library) and the
library's functions; every plausible wrong answer fails with the hint that names the mistake;
a function that updates its inputs in place fails for that reason, while the message still
shows the inputs as they were; a stub is reported as not implemented; and the
predict-measure-interpret task accepts the right measurement and rejects the wrong ones."""
import math
from collections import Counter

import pytest
import torch

from course_lib import metrics
from course_lib.grading import checks as machinery
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
    checks.check_laplace_smoothing(smoothing_by_hand)
    checks.check_ema_update(ema_by_hand)
    checks.check_reset_dead_codes(reset_by_hand)
    checks.check_perplexity(perplexity_by_counting)
    assert capsys.readouterr().out.count("\u2713") == 4


def test_the_library_functions_pass_every_check(capsys):
    checks.check_laplace_smoothing(vq.laplace_smoothing)
    checks.check_ema_update(vq.ema_update)
    checks.check_reset_dead_codes(vq.reset_dead_codes)
    checks.check_perplexity(metrics.perplexity)
    assert capsys.readouterr().out.count("\u2713") == 4


# --- every named mistake fails with its hint ----------------------------------------------------

def add_eps_in_place(counts, eps):
    n = counts.sum()
    counts += eps
    return counts / (n + len(counts) * eps) * n


SMOOTHING_MISTAKES = [
    ("probabilities .* without the factor n", lambda c, eps: (c + eps) / (c.sum() + len(c) * eps)),
    ("eps added to the counts only", lambda c, eps: c + eps),
    (r"n \+ eps in the denominator", lambda c, eps: (c + eps) / (c.sum() + eps) * c.sum()),
    ("rescaled by K instead of n", lambda c, eps: (c + eps) / (c.sum() + len(c) * eps) * len(c)),
    ("the counts unchanged", lambda c, eps: c.clone()),
    ("an update in place: your function changed counts", add_eps_in_place),
]


@pytest.mark.parametrize("hint, wrong", SMOOTHING_MISTAKES,
                         ids=[hint for hint, _ in SMOOTHING_MISTAKES])
def test_a_wrong_smoothing_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed,
                       match=rf"(?s)laplace_smoothing: wrong answer.*looks like {hint}"):
        checks.check_laplace_smoothing(wrong)


def batch_counts_and_sums(counts, sums, x, codes):
    n_i = torch.bincount(codes, minlength=len(counts)).to(counts.dtype)
    return n_i, torch.zeros_like(sums).index_add_(0, codes, x)


def ema_in_place(counts, sums, x, codes, decay, eps):
    """The right numbers, computed by updating the caller's counts and sums."""
    n_i, sum_i = batch_counts_and_sums(counts, sums, x, codes)
    counts.mul_(decay).add_((1 - decay) * n_i)
    sums.mul_(decay).add_((1 - decay) * sum_i)
    return counts, sums, sums / vq.laplace_smoothing(counts, eps)[:, None]


def ema_of_batch_means(counts, sums, x, codes, decay, eps):
    n_i, sum_i = batch_counts_and_sums(counts, sums, x, codes)
    counts = decay * counts + (1 - decay) * n_i
    sums = decay * sums + (1 - decay) * sum_i / n_i.clamp(min=1)[:, None]
    return counts, sums, sums / vq.laplace_smoothing(counts, eps)[:, None]


def ema_then(change):
    """The library's step, then `change(new counts, new sums, codebook, old inputs)`."""
    def wrong(counts, sums, x, codes, decay, eps):
        return change(*vq.ema_update(counts, sums, x, codes, decay, eps), counts, sums, eps)
    return wrong


EMA_MISTAKES = [
    ("decay 0.9 keeps 90%", "the decay on the wrong side",
     lambda counts, sums, x, codes, decay, eps:
         vq.ema_update(counts, sums, x, codes, 1 - decay, eps)),
    ("hand-computed", "no Laplace smoothing",
     ema_then(lambda n, m, e, n0, m0, eps: (n, m, m / n[:, None]))),
    ("hand-computed", "the codebook from the old counts",
     ema_then(lambda n, m, e, n0, m0, eps: (n, m, m / vq.laplace_smoothing(n0, eps)[:, None]))),
    ("hand-computed", "the counts not updated",
     ema_then(lambda n, m, e, n0, m0, eps: (n0, m, m / vq.laplace_smoothing(n0, eps)[:, None]))),
    ("hand-computed", "the batch's mean per code in m_i instead of its sum", ema_of_batch_means),
    ("hand-computed", "the sums not updated",
     ema_then(lambda n, m, e, n0, m0, eps: (n, m0, m0 / vq.laplace_smoothing(n, eps)[:, None]))),
    ("hand-computed", "an update in place: your function changed counts and sums", ema_in_place),
    ("hand-computed", "right counts and sums, a wrong codebook",
     ema_then(lambda n, m, e, n0, m0, eps: (n, m, 1.01 * e))),
    ("hand-computed", "an answer that is not the tuple", ema_then(lambda n, m, e, n0, m0, eps: e)),
]


@pytest.mark.parametrize("case, hint, wrong", EMA_MISTAKES,
                         ids=[hint for _, hint, _ in EMA_MISTAKES])
def test_a_wrong_ema_step_fails_and_is_named(case, hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)ema_update: wrong answer on case '{case}.*"
                                          rf"looks like {hint}"):
        checks.check_ema_update(wrong)


def test_an_in_place_update_does_not_change_what_the_message_shows():
    """The learner's function runs on copies: the failure shows, and keeps, the counts and sums
    as they were before the call ((1, 1) and (0, 2) in the lesson's example), not the counts
    (1, 1.5) the in-place update left behind."""
    with pytest.raises(CheckFailed) as failure:
        checks.check_ema_update(ema_in_place)
    message = str(failure.value)
    assert "input:    ([1.0, 1.0], [[0.0], [2.0]]," in message
    assert "1.5" not in message.split("expected:")[0]
    counts, sums = machinery.last_failure.args[:2]
    assert torch.equal(counts, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert torch.equal(sums, torch.tensor([[0.0], [2.0]], dtype=torch.float64))


def test_rerunning_the_kept_case_shows_the_in_place_change_to_the_learner():
    with pytest.raises(CheckFailed, match=r"rerun it: .*ema_in_place\(\*last_failure.args\)"):
        checks.check_ema_update(ema_in_place)
    counts = machinery.last_failure.args[0].clone()
    ema_in_place(*machinery.last_failure.args)
    assert not torch.equal(machinery.last_failure.args[0], counts), \
        "run by hand on the kept case, the learner's function changes it: what the hint said"


def dead_by(rule):
    def reset(codebook, counts, x, threshold):
        dead = rule(counts, threshold)
        new = codebook.clone()
        new[dead] = x[0]
        return new, dead
    return reset


def reset_then(change):
    def wrong(codebook, counts, x, threshold):
        new, dead = vq.reset_dead_codes(codebook, counts, x, threshold)
        return change(new, dead, codebook, x)
    return wrong


def reset_in_place(codebook, counts, x, threshold):
    dead = counts < threshold
    codebook[dead] = x[0]
    return codebook.clone(), dead


RESET_MISTAKES = [
    ("count equal to the threshold is alive", "count <= threshold",
     dead_by(lambda counts, threshold: counts <= threshold)),
    ("one dead code", "the mask inverted", dead_by(lambda counts, threshold: counts >= threshold)),
    ("one dead code", "the dead codes left as they were",
     reset_then(lambda new, dead, codebook, x: (codebook.clone(), dead))),
    ("one dead code", "dead codes copied from live codes",
     reset_then(lambda new, dead, codebook, x: (torch.where(dead[:, None], codebook[(~dead).int()
                                                                                    .argmax()],
                                                            codebook), dead))),
    ("one dead code", "every code replaced by a row of x",
     reset_then(lambda new, dead, codebook, x: (x[torch.zeros(len(codebook), dtype=torch.long)],
                                                dead))),
    ("one dead code", "a dead code not replaced by a row of x",
     reset_then(lambda new, dead, codebook, x:
                (torch.where(dead[:, None], -x[0], codebook), dead))),
    ("one dead code", "a live code was changed",
     reset_then(lambda new, dead, codebook, x: (new + 1e-3, dead))),
    ("one dead code", "the right mask as torch.float32 values",
     reset_then(lambda new, dead, codebook, x: (new, dead.float()))),
    ("one dead code", r"\(dead, new codebook\) in the wrong order",
     reset_then(lambda new, dead, codebook, x: (dead, new))),
    ("one dead code", "an update in place: your function changed codebook", reset_in_place),
]


@pytest.mark.parametrize("case, hint, wrong", RESET_MISTAKES,
                         ids=[hint for _, hint, _ in RESET_MISTAKES])
def test_a_wrong_reset_fails_and_is_named(case, hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)reset_dead_codes: wrong answer on case '{case}'.*"
                                          rf"looks like {hint}"):
        checks.check_reset_dead_codes(wrong)


def usage(codes, n_codes):
    counts = torch.bincount(codes, minlength=n_codes).double()
    return counts, counts[counts > 0] / len(codes)


def entropy_nats(codes, n_codes):
    p = usage(codes, n_codes)[1]
    return float(-(p * p.log()).sum())


PERPLEXITY_MISTAKES = [
    ("the entropy -sum p log p, not its exponential", entropy_nats),
    ("exp of the entropy in bits", lambda codes, k: math.exp(entropy_nats(codes, k) / math.log(2))),
    ("exp of the entropy in log10",
     lambda codes, k: math.exp(entropy_nats(codes, k) / math.log(10))),
    ("the entropy in bits, not its exponential",
     lambda codes, k: entropy_nats(codes, k) / math.log(2)),
    ("the number of codes used", lambda codes, k: int((usage(codes, k)[0] > 0).sum())),
    (r"the utilisation \(codes used / K\)", lambda codes, k: metrics.utilisation(codes, k)),
    ("p_k = count / K", lambda codes, k: math.exp(-sum(
        c / k * math.log(c / k) for c in Counter(codes.tolist()).values()))),
    ("the perplexity divided by K", lambda codes, k: metrics.perplexity(codes, k) / k),
    (r"exp\(\+sum p log p\) = 1 / perplexity", lambda codes, k: 1 / metrics.perplexity(codes, k)),
    ("NaN: unused codes have p = 0", lambda codes, k: float(torch.exp(-(
        (torch.bincount(codes, minlength=k).double() / len(codes))
        * (torch.bincount(codes, minlength=k).double() / len(codes)).log()).sum()))),
    ("an answer that is not one number", lambda codes, k: [metrics.perplexity(codes, k)] * 2),
]


@pytest.mark.parametrize("hint, wrong", PERPLEXITY_MISTAKES,
                         ids=[hint for hint, _ in PERPLEXITY_MISTAKES])
def test_a_wrong_perplexity_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)perplexity: wrong answer.*looks like {hint}"):
        checks.check_perplexity(wrong)


# --- unfinished answers -------------------------------------------------------------------------

@pytest.mark.parametrize("check", [checks.check_laplace_smoothing, checks.check_ema_update,
                                   checks.check_reset_dead_codes, checks.check_perplexity])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


# --- predict, measure, interpret: how many codes EMA keeps alive --------------------------------

@pytest.fixture(scope="module")
def items():
    return checks.world_items()


def test_the_measured_share_of_the_right_ema_passes(items):
    checks.check_measured_utilisation(
        lambda: checks.utilisation_after_ema(ema_by_hand, items.double(),
                                             checks.tiny_ball(0).double()))


def test_the_share_before_any_step_fails_with_the_hint(items):
    def before_the_steps():
        return metrics.utilisation(vq.nearest_codes(items, checks.tiny_ball(0)), 64)

    assert before_the_steps() > 0.5
    with pytest.raises(CheckFailed, match=r"(?s)is outside the range.*hint: .*after\* the 20"):
        checks.check_measured_utilisation(before_the_steps)


def test_a_perplexity_instead_of_a_share_fails(items):
    def perplexity_after_the_steps():
        counts, sums, codebook = torch.ones(64), checks.tiny_ball(0), checks.tiny_ball(0)
        for _ in range(20):
            counts, sums, codebook = vq.ema_update(counts, sums, items,
                                                   vq.nearest_codes(items, codebook), 0.99, 1e-5)
        return metrics.perplexity(vq.nearest_codes(items, codebook), 64)

    with pytest.raises(CheckFailed, match="is outside the range"):
        checks.check_measured_utilisation(perplexity_after_the_steps)


def test_a_faster_decay_keeps_more_codes_alive_as_the_right_reason_says(items):
    for seed in range(3):
        ball = checks.tiny_ball(seed)
        slow = checks.utilisation_after_ema(vq.ema_update, items, ball, decay=0.99)
        fast = checks.utilisation_after_ema(vq.ema_update, items, ball, decay=0.5)
        assert fast > 2 * slow


def test_an_unchosen_code_stays_where_it_is_as_reason_c_says(items):
    ball = checks.tiny_ball(0)
    codes = vq.nearest_codes(items, ball)
    unchosen = torch.bincount(codes, minlength=64) == 0
    _, _, moved = vq.ema_update(torch.ones(64), ball.clone(), items, codes, 0.99, 1e-5)
    assert unchosen.any()
    assert torch.allclose(moved[unchosen], ball[unchosen], rtol=1e-3, atol=1e-7)


def test_the_right_reason_passes(capsys):
    checks.check_why_codes_die(lambda: "a")
    assert "rich get richer" in capsys.readouterr().out


@pytest.mark.parametrize("letter", sorted(set(checks.WHY_CODES_DIE) - {"a"}))
def test_each_wrong_reason_fails_with_its_explanation(letter):
    with pytest.raises(CheckFailed, match=rf"\({letter}\) does not explain") as failure:
        checks.check_why_codes_die(lambda: letter)
    assert checks.WHY_CODES_DIE[letter] in str(failure.value)


@pytest.mark.parametrize("check", [checks.check_measured_utilisation, checks.check_why_codes_die])
def test_an_unfinished_measurement_is_reported_as_not_done(check, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        check(stub)
