"""Losses: BPR, InfoNCE and sampled softmax with the log-q correction, by hand, by property
and against the full softmax."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import losses as L

PROPERTY = settings(max_examples=50, deadline=None)
t = torch.tensor
finite = st.floats(-20, 20, allow_nan=False, width=32)


# --- BPR ----------------------------------------------------------------------------------

def test_bpr_is_minus_log_sigmoid_of_the_score_gap():
    assert L.bpr_loss(t([2.0]), t([[0.5]])).item() == pytest.approx(
        -math.log(1 / (1 + math.exp(-1.5))))


def test_bpr_of_equal_scores_is_ln_2():
    assert L.bpr_loss(t([1.0, -3.0]), t([[1.0, 1.0], [-3.0, -3.0]])).item() == pytest.approx(
        math.log(2))


def test_bpr_averages_over_every_positive_negative_pair():
    pos, neg = t([1.0, 0.0]), t([[0.0, 2.0], [1.0, -1.0]])
    pairs = [(1.0, 0.0), (1.0, 2.0), (0.0, 1.0), (0.0, -1.0)]
    expected = sum(-math.log(1 / (1 + math.exp(n - p))) for p, n in pairs) / 4
    assert L.bpr_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)


def test_bpr_accepts_sequences_of_positions():
    pos, neg = torch.randn(3, 5), torch.randn(3, 5, 2)
    assert L.bpr_loss(pos, neg).item() == pytest.approx(
        L.bpr_loss(pos.reshape(15), neg.reshape(15, 2)).item())


def test_bpr_stays_finite_for_a_huge_gap_in_the_wrong_direction():
    pos = t([0.0], requires_grad=True)
    loss = L.bpr_loss(pos, t([[1000.0]]))
    loss.backward()
    assert loss.item() == pytest.approx(1000.0)
    assert pos.grad.item() == pytest.approx(-1.0)


def test_bpr_gradient_raises_the_positive_and_lowers_the_negative():
    pos, neg = t([0.3], requires_grad=True), t([[0.1]], requires_grad=True)
    L.bpr_loss(pos, neg).backward()
    assert pos.grad.item() < 0 < neg.grad.item()


@PROPERTY
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=10), st.floats(0.1, 5.0))
def test_bpr_is_positive_and_falls_when_every_positive_score_rises(pairs, step):
    pos, neg = t([p for p, _ in pairs]), t([[n] for _, n in pairs])
    before, after = L.bpr_loss(pos, neg), L.bpr_loss(pos + step, neg)
    assert before.item() > 0
    assert after.item() < before.item()


# --- InfoNCE ------------------------------------------------------------------------------

def test_info_nce_is_cross_entropy_with_positives_on_the_diagonal():
    gen = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    by_hand = sum(-(queries[b] @ keys[b] - torch.logsumexp(keys @ queries[b], 0))
                  for b in range(6)) / 6
    assert L.info_nce_loss(queries, keys).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_info_nce_temperature_divides_the_similarities():
    gen = torch.Generator().manual_seed(1)
    queries, keys = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    assert L.info_nce_loss(queries, keys, temperature=0.1).item() == pytest.approx(
        L.info_nce_loss(queries / 0.1, keys).item(), rel=1e-5)


def test_info_nce_of_a_batch_of_one_is_zero():
    assert L.info_nce_loss(torch.randn(1, 8), torch.randn(1, 8)).item() == 0.0


def test_info_nce_with_b_orthonormal_pairs_falls_to_zero_as_temperature_falls():
    eye = torch.eye(4)
    assert L.info_nce_loss(eye, eye, temperature=0.01).item() < 1e-6
    assert L.info_nce_loss(eye, eye, temperature=1.0).item() > 0.5


# --- sampled softmax ----------------------------------------------------------------------

def test_sampled_softmax_over_every_other_item_is_the_full_softmax():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 7, generator=gen)                    # 4 users, 7 items
    targets = t([0, 3, 6, 2])
    others = torch.stack([torch.cat([row[:j], row[j + 1:]]) for row, j in zip(logits, targets)])
    sampled = L.sampled_softmax_loss(logits[torch.arange(4), targets], others)
    assert sampled.item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)


@PROPERTY
@given(st.lists(finite, min_size=3, max_size=12), st.data())
def test_sampled_softmax_without_correction_never_exceeds_the_full_softmax(logits, data):
    logits = t(logits)
    target = data.draw(st.integers(0, len(logits) - 1))
    others = [j for j in range(len(logits)) if j != target]
    chosen = data.draw(st.lists(st.sampled_from(others), min_size=1, max_size=len(others),
                                unique=True))
    sampled = L.sampled_softmax_loss(logits[target:target + 1], logits[chosen][None])
    full = F.cross_entropy(logits[None], t([target]))
    assert sampled.item() <= full.item() + 1e-5


def test_log_q_correction_subtracts_ln_q_from_every_logit():
    pos, neg = t([1.0]), t([[0.5, -0.2]])
    log_q_pos, log_q_neg = t([math.log(0.5)]), t([[math.log(0.3), math.log(0.2)]])
    corrected = t([[1.0 - math.log(0.5), 0.5 - math.log(0.3), -0.2 - math.log(0.2)]])
    expected = F.cross_entropy(corrected, t([0]))
    assert L.sampled_softmax_loss(pos, neg, log_q_pos, log_q_neg).item() == pytest.approx(
        expected.item(), rel=1e-6)


def test_uniform_proposal_needs_no_correction():
    gen = torch.Generator().manual_seed(3)
    pos, neg = torch.randn(5, generator=gen), torch.randn(5, 8, generator=gen)
    log_q = math.log(1 / 100)
    corrected = L.sampled_softmax_loss(pos, neg, torch.full((5,), log_q),
                                       torch.full((5, 8), log_q))
    assert corrected.item() == pytest.approx(L.sampled_softmax_loss(pos, neg).item(), rel=1e-6)


def test_shared_negatives_take_one_log_q_vector():
    gen = torch.Generator().manual_seed(4)
    pos, neg = torch.randn(3, generator=gen), torch.randn(3, 5, generator=gen)
    log_q_pos, log_q_neg = torch.rand(3, generator=gen).log(), torch.rand(5, generator=gen).log()
    shared = L.sampled_softmax_loss(pos, neg, log_q_pos, log_q_neg)
    expanded = L.sampled_softmax_loss(pos, neg, log_q_pos, log_q_neg.expand(3, 5))
    assert shared.item() == pytest.approx(expanded.item())


def test_accidental_hits_are_removed_from_the_softmax():
    pos, neg = t([1.0]), t([[1.0, 0.2]])                 # the first "negative" is the positive
    removed = L.sampled_softmax_loss(pos, neg, accidental_hits=t([[True, False]]))
    assert removed.item() == pytest.approx(L.sampled_softmax_loss(pos, t([[0.2]])).item())


def test_temperature_divides_the_scores_before_the_correction():
    pos, neg, lq = t([0.2]), t([[0.1, 0.4]]), t([math.log(0.1)])
    lqn = t([math.log(0.2), math.log(0.7)])
    assert L.sampled_softmax_loss(pos, neg, lq, lqn, temperature=0.05).item() == pytest.approx(
        L.sampled_softmax_loss(pos / 0.05, neg / 0.05, lq, lqn).item(), rel=1e-6)


# --- bad inputs ---------------------------------------------------------------------------

def test_negatives_without_their_own_axis_are_rejected():
    with pytest.raises(ValueError, match=r"neg_scores must have the shape of pos_scores plus"):
        L.bpr_loss(t([1.0, 2.0]), t([0.5, 0.5]))


def test_integer_scores_are_rejected():
    with pytest.raises(TypeError, match="pos_scores must be a floating-point tensor"):
        L.bpr_loss(t([1, 2]), t([[0.5], [0.5]]))


def test_empty_negatives_are_rejected():
    with pytest.raises(ValueError, match="sample at least one"):
        L.sampled_softmax_loss(t([1.0]), torch.zeros(1, 0))


def test_half_a_correction_is_rejected():
    with pytest.raises(ValueError, match="pass both log_q_pos and log_q_neg"):
        L.sampled_softmax_loss(t([1.0]), t([[0.5]]), log_q_pos=t([0.0]))


def test_log_q_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="log_q_neg must be shaped like neg_scores"):
        L.sampled_softmax_loss(t([1.0, 0.0]), torch.zeros(2, 3), torch.zeros(2), torch.zeros(2))


def test_accidental_hits_must_be_a_bool_mask_like_the_negatives():
    with pytest.raises(ValueError, match="accidental_hits must be a bool tensor"):
        L.sampled_softmax_loss(t([1.0]), t([[0.5, 0.1]]), accidental_hits=t([[1, 0]]))


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature must be a number > 0, got 0"):
        L.info_nce_loss(torch.randn(2, 3), torch.randn(2, 3), temperature=0)


def test_info_nce_needs_queries_and_keys_of_one_shape():
    with pytest.raises(ValueError, match=r"queries and keys must both be \(B, D\)"):
        L.info_nce_loss(torch.randn(2, 3), torch.randn(3, 3))


def test_sampled_softmax_reduction_none_gives_each_rows_loss_and_their_mean_is_the_default():
    pos, neg = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.5, 0.5]])
    rows = L.sampled_softmax_loss(pos, neg, reduction="none")
    expected = -torch.log_softmax(torch.cat([pos[:, None], neg], 1), 1)[:, 0]
    assert torch.allclose(rows, expected)
    assert torch.allclose(rows.mean(), L.sampled_softmax_loss(pos, neg))
    with pytest.raises(ValueError, match="reduction"):
        L.sampled_softmax_loss(pos, neg, reduction="sum")
