"""The checklist for semantic IDs (lesson 05, section 7): reconstruction level by level, the
Gini coefficient over full IDs, the pairs of colliding items, and the recall of shared-prefix
items against a behavioural neighbour list."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import small_codes
from course_lib.quantize import stats
from course_lib.quantize.residual import residual_quantize

PROPERTY = settings(max_examples=40, deadline=None)
t = torch.tensor


# --- reconstruction through the first l levels ---------------------------------------------

# The worked example of lesson 05, section 1: z = (5.3, -2.2) codes to (1, 3, 0).
BOOKS = t([[[-4.0, -4.0], [4.0, -4.0], [-4.0, 4.0], [4.0, 4.0]],
           [[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]],
           [[0.0, 0.5], [0.0, -0.5], [0.5, 0.0], [-0.5, 0.0]]])
Z = t([[5.3, -2.2]])


def test_cumulative_reconstruction_is_the_residual_norm_ratio_level_by_level():
    step = residual_quantize(Z, BOOKS)
    errors = stats.cumulative_reconstruction(Z, step.codes, BOOKS)
    expected = (step.residuals[1:, 0].pow(2).sum(-1) / Z.pow(2).sum()).tolist()
    assert errors == pytest.approx(expected)
    assert errors[0] == pytest.approx((1.3 ** 2 + 1.8 ** 2) / (5.3 ** 2 + 2.2 ** 2))


def test_cumulative_reconstruction_applies_the_decoder_to_each_partial_sum():
    step = residual_quantize(Z, BOOKS)
    doubled = stats.cumulative_reconstruction(2 * Z, step.codes, BOOKS, decoder=lambda z: 2 * z)
    assert doubled == pytest.approx(stats.cumulative_reconstruction(Z, step.codes, BOOKS))


def test_cumulative_reconstruction_is_zero_when_the_codewords_sum_to_the_target():
    codes = t([[1, 2], [0, 0]])
    books = t([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0], [0.5, 0.5]]])
    target = books[0, codes[:, 0]] + books[1, codes[:, 1]]
    errors = stats.cumulative_reconstruction(target, codes, books)
    assert errors[-1] == 0.0 and errors[0] > 0


def test_cumulative_reconstruction_rejects_a_decoder_to_another_space():
    with pytest.raises(ValueError, match="pass the decoder"):
        stats.cumulative_reconstruction(t([[1.0, 2.0, 3.0]]), t([[1, 3, 0]]), BOOKS)


def test_cumulative_reconstruction_rejects_a_zero_target_and_a_row_mismatch():
    with pytest.raises(ValueError, match="all zeros"):
        stats.cumulative_reconstruction(torch.zeros(1, 2), t([[1, 3, 0]]), BOOKS)
    with pytest.raises(ValueError, match="one row per item"):
        stats.cumulative_reconstruction(torch.ones(2, 2), t([[1, 3, 0]]), BOOKS)


# --- Gini over full IDs --------------------------------------------------------------------

def test_path_counts_count_items_per_distinct_full_id():
    codes = t([[0, 1], [0, 1], [0, 1], [2, 0]])
    assert sorted(stats.path_counts(codes).tolist()) == [1, 3]


def test_path_gini_is_zero_when_every_used_path_holds_as_many_items():
    codes = t([[0, 0], [0, 0], [1, 0], [1, 0], [1, 1], [1, 1]])
    assert stats.path_stats(codes)["path_gini"] == 0.0


def test_path_gini_of_counts_1_and_3_matches_the_formula():
    # sorted counts (1, 3): G = ((2 - 3) * 1 + (4 - 3) * 3) / (2 * 4) = 0.25
    codes = t([[0, 1], [0, 1], [0, 1], [2, 0]])
    assert stats.path_stats(codes)["path_gini"] == pytest.approx(0.25)


# --- colliding pairs -----------------------------------------------------------------------

def test_colliding_pairs_list_every_pair_of_a_group_once():
    codes = t([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    pairs = stats.colliding_pairs(codes)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 2), (0, 3), (2, 3)]


def test_colliding_pairs_are_empty_for_unique_ids():
    pairs = stats.colliding_pairs(t([[0, 1], [1, 0], [1, 1]]))
    assert pairs.shape == (0, 2)


@PROPERTY
@given(small_codes())
def test_colliding_pairs_count_n_choose_2_per_group_and_share_all_codes(codes):
    pairs = stats.colliding_pairs(codes)
    expected = sum(n * (n - 1) // 2 for n in stats.path_counts(codes).tolist())
    assert pairs.shape == (expected, 2)
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert torch.equal(codes[pairs[:, 0]], codes[pairs[:, 1]])


# --- shared-prefix neighbours against a reference list ---------------------------------------

CODES = t([[0, 0], [0, 1], [0, 1], [1, 0], [1, 0]])


def test_prefix_group_sizes_count_the_other_items_with_the_same_prefix():
    assert stats.prefix_group_sizes(CODES, 1).tolist() == [2, 2, 2, 1, 1]
    assert stats.prefix_group_sizes(CODES, 2).tolist() == [0, 1, 1, 1, 1]


def test_shared_prefix_recall_is_the_share_of_listed_neighbours_in_the_prefix_group():
    neighbours = t([[1, 3], [2, 0], [4, -1], [4, 0], [-1, -1]])
    recall = stats.shared_prefix_recall(CODES, neighbours, depth=1)
    assert recall[:4].tolist() == [0.5, 1.0, 0.0, 0.5]
    assert math.isnan(recall[4]), "no neighbour listed: undefined, not 0"
    assert stats.shared_prefix_recall(CODES, neighbours, depth=2)[:4].tolist() == [0.0, 0.5, 0.0, 0.5]


@PROPERTY
@given(small_codes(), st.integers(0, 2 ** 16))
def test_shared_prefix_recall_falls_with_depth_and_stays_in_0_1(codes, seed):
    generator = torch.Generator().manual_seed(seed)
    neighbours = torch.randint(-1, codes.shape[0], (codes.shape[0], 4), generator=generator)
    previous = None
    for depth in range(1, codes.shape[1] + 1):
        recall = stats.shared_prefix_recall(codes, neighbours, depth)
        defined = ~torch.isnan(recall)
        assert ((recall[defined] >= 0) & (recall[defined] <= 1)).all()
        if previous is not None:
            assert (recall[defined] <= previous[defined]).all(), "a longer prefix is stricter"
        previous = recall


def test_shared_prefix_recall_rejects_item_ids_and_a_bad_depth():
    with pytest.raises(ValueError, match="pass ids - 1"):
        stats.shared_prefix_recall(CODES, t([[5], [1], [1], [1], [1]]), depth=1)
    with pytest.raises(ValueError, match="depth must be in"):
        stats.shared_prefix_recall(CODES, t([[1], [1], [1], [1], [1]]), depth=3)
    with pytest.raises(ValueError, match="one row per item|with N = 5"):
        stats.shared_prefix_recall(CODES, t([[1], [1]]), depth=1)
