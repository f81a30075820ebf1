"""Semantic IDs: the collision token, lookups both ways, the prefix trie of valid IDs, the
variable-length fix, and the per-level statistics of the hourglass."""
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy as scipy_entropy

from conftest import small_codes
from course_lib import metrics
from course_lib.quantize import stats
from course_lib.quantize.semantic_ids import (NO_TOKEN, PrefixTrie, SemanticIds,
                                              assign_semantic_ids, collision_suffix,
                                              rank_within_groups, variable_length_ids)

PROPERTY = settings(max_examples=40, deadline=None)
t = torch.tensor


# --- the collision token -------------------------------------------------------------------

def test_collision_suffix_numbers_items_sharing_codes_in_item_order():
    codes = t([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    assert collision_suffix(codes).tolist() == [0, 0, 1, 2, 0]


def test_semantic_ids_append_the_suffix_to_the_codes():
    codes = t([[3, 1], [3, 1]])
    assert assign_semantic_ids(codes).tolist() == [[3, 1, 0], [3, 1, 1]]


@PROPERTY
@given(small_codes())
def test_ids_are_unique_after_suffixing(codes):
    ids = assign_semantic_ids(codes)
    assert torch.unique(ids, dim=0).shape[0] == len(ids)
    assert metrics.collision_rate(ids) == 0.0


@PROPERTY
@given(small_codes())
def test_suffix_runs_from_zero_to_group_size_minus_one(codes):
    suffix = collision_suffix(codes)
    _, group, sizes = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    for g in range(len(sizes)):
        assert sorted(suffix[group == g].tolist()) == list(range(int(sizes[g])))


@PROPERTY
@given(st.lists(st.integers(0, 5), max_size=40))
def test_rank_within_groups_counts_earlier_rows_of_the_same_group(labels):
    seen = {}
    expected = []
    for label in labels:
        expected.append(seen.get(label, 0))
        seen[label] = seen.get(label, 0) + 1
    assert rank_within_groups(t(labels, dtype=torch.long)).tolist() == expected


def test_rank_within_groups_rejects_negative_labels():
    with pytest.raises(ValueError, match="group labels must be >= 0, got -1"):
        rank_within_groups(t([0, -1, 2]))


def test_rank_within_groups_rejects_float_labels_with_the_fix():
    with pytest.raises(TypeError, match=r"groups.long\(\)"):
        rank_within_groups(t([0.0, 1.0]))


# --- lookups both ways ---------------------------------------------------------------------

@PROPERTY
@given(small_codes())
def test_item_of_inverts_id_of(codes):
    table = SemanticIds.from_codes(codes)
    items = torch.arange(1, len(codes) + 1)
    assert torch.equal(table.item_of(table.id_of(items)), items)


def test_item_of_gives_zero_for_ids_that_name_no_item():
    table = SemanticIds.from_codes(t([[0, 1], [1, 0]]), codebook_sizes=[2, 2])
    assert table.item_of(t([[0, 1, 0], [1, 1, 0], [0, 1, 1]])).tolist() == [1, 0, 0]


def test_item_of_gives_zero_for_tokens_beyond_the_vocabulary():
    table = SemanticIds.from_codes(t([[0, 1], [1, 0]]), codebook_sizes=[2, 2])
    assert table.item_of(t([[5, 1, 0], [-1, 0, 0]])).tolist() == [0, 0]


def test_id_of_rejects_the_padding_id():
    table = SemanticIds.from_codes(t([[0], [1]]))
    with pytest.raises(ValueError, match="0 is padding"):
        table.id_of(t([0]))


def test_duplicate_ids_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="collision token"):
        SemanticIds(t([[1, 2], [1, 2]]))


# --- the prefix trie -----------------------------------------------------------------------

@PROPERTY
@given(small_codes(max_items=12, max_levels=2, max_code=2))
def test_trie_contains_exactly_the_valid_ids(codes):
    ids = assign_semantic_ids(codes)
    sizes = (ids.max(dim=0).values + 1).tolist()
    trie = PrefixTrie(ids, sizes)
    valid = {tuple(row) for row in ids.tolist()}
    everything = list(itertools.product(*[range(s) for s in sizes]))
    inside = trie.contains(t(everything))
    assert {e for e, yes in zip(everything, inside.tolist()) if yes} == valid
    assert len(trie) == len(valid)


@PROPERTY
@given(small_codes(max_items=12, max_levels=3, max_code=2))
def test_trie_contains_exactly_the_prefixes_of_valid_ids(codes):
    ids = assign_semantic_ids(codes)
    sizes = (ids.max(dim=0).values + 1).tolist()
    trie = PrefixTrie(ids, sizes)
    for depth in range(ids.shape[1] + 1):
        prefixes = {tuple(row[:depth]) for row in ids.tolist()}
        candidates = list(itertools.product(*[range(s) for s in sizes[:depth]]))
        inside = trie.contains(t(candidates, dtype=torch.long).reshape(len(candidates), depth))
        assert {c for c, yes in zip(candidates, inside.tolist()) if yes} == prefixes


def test_valid_next_tokens_lists_the_children_of_a_prefix():
    trie = PrefixTrie(t([[0, 1, 0], [0, 3, 0], [2, 1, 0], [2, 1, 1]]), [3, 4, 2])
    assert trie.valid_next_tokens([]) == [0, 2]
    assert trie.valid_next_tokens([0]) == [1, 3]
    assert trie.valid_next_tokens([2, 1]) == [0, 1]
    assert trie.valid_next_tokens([1]) == []


@PROPERTY
@given(small_codes(max_items=12, max_levels=2, max_code=2))
def test_batched_mask_agrees_with_one_prefix_at_a_time(codes):
    ids = assign_semantic_ids(codes)
    trie = PrefixTrie(ids)
    prefixes = ids[:, :1]
    mask = trie.next_token_mask(prefixes)
    for row, prefix in zip(mask, prefixes.tolist()):
        assert torch.nonzero(row).flatten().tolist() == trie.valid_next_tokens(prefix)


@PROPERTY
@given(small_codes(max_items=12, max_levels=3, max_code=2), st.data())
def test_next_token_mask_marks_exactly_the_children_the_trie_contains(codes, data):
    ids = assign_semantic_ids(codes)
    sizes = (ids.max(dim=0).values + 1).tolist()
    trie = PrefixTrie(ids, sizes)
    d = data.draw(st.integers(0, ids.shape[1] - 1))
    prefixes = t(data.draw(st.lists(st.lists(st.integers(-1, 3), min_size=d, max_size=d),
                                    min_size=1, max_size=6)), dtype=torch.long)
    prefixes = prefixes.reshape(len(prefixes), d)                          # (B, d), d may be 0
    mask = trie.next_token_mask(prefixes)                                  # (B, V_d)
    for row, prefix in zip(mask.tolist(), prefixes.tolist()):
        children = t([prefix + [token] for token in range(sizes[d])], dtype=torch.long)
        assert row == trie.contains(children).tolist()


def test_trie_lists_its_ids_back():
    ids = t([[2, 0], [0, 1], [1, 1]])
    assert PrefixTrie(ids).ids().tolist() == sorted(ids.tolist())


def test_a_full_id_has_no_next_token():
    with pytest.raises(ValueError, match="no next token"):
        PrefixTrie(t([[0, 1]])).next_token_mask(t([[0, 1]]))


def test_trie_rejects_tokens_beyond_their_vocabulary():
    with pytest.raises(ValueError, match="vocabulary size"):
        PrefixTrie(t([[0, 5]]), [2, 2])


# --- retrieval by prefix (cold items) -----------------------------------------------------

@PROPERTY
@given(small_codes(max_items=20, max_levels=3, max_code=2), st.data())
def test_items_with_prefix_are_exactly_the_items_whose_id_starts_with_it(codes, data):
    ids = SemanticIds.from_codes(codes)
    d = data.draw(st.integers(0, ids.table.shape[1]))
    prefixes = t(data.draw(st.lists(st.lists(st.integers(-1, 3), min_size=d, max_size=d),
                                    min_size=1, max_size=6)), dtype=torch.long)
    prefixes = prefixes.reshape(len(prefixes), d)                          # (B, d), d may be 0
    found = ids.items_with_prefix(prefixes)
    assert len(found) == len(prefixes)
    for items, prefix in zip(found, prefixes.tolist()):
        expected = [i + 1 for i, row in enumerate(ids.table.tolist()) if row[:d] == prefix]
        assert items.tolist() == expected                                  # ascending item ids


def test_the_empty_prefix_reaches_every_item_and_a_full_id_its_own():
    ids = SemanticIds.from_codes(t([[1, 2], [0, 0], [1, 2], [1, 0]]))
    every = ids.items_with_prefix(torch.zeros(1, 0, dtype=torch.long))
    own = ids.items_with_prefix(ids.table)
    assert every[0].tolist() == [1, 2, 3, 4]
    assert [items.tolist() for items in own] == [[1], [2], [3], [4]]


def test_a_cold_item_quantized_like_the_others_is_found_by_its_prefix():
    warm = t([[1, 2], [0, 0], [1, 0]])
    cold = t([[1, 2]])                     # no interactions, but the same quantizer's codes
    ids = SemanticIds.from_codes(torch.cat([warm, cold]), codebook_sizes=[2, 3])
    assert ids.items_with_prefix(t([[1, 2]]))[0].tolist() == [1, 4]
    assert ids.items_with_prefix(t([[1]]))[0].tolist() == [1, 3, 4]


def test_a_prefix_with_a_token_outside_its_vocabulary_names_no_item():
    ids = SemanticIds.from_codes(t([[0, 1], [1, 0]]), codebook_sizes=[2, 2])
    assert [items.tolist() for items in ids.items_with_prefix(t([[2], [-1], [0]]))] == \
        [[], [], [1]]


def test_a_prefix_longer_than_an_id_is_refused_with_the_shape():
    ids = SemanticIds.from_codes(t([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match=r"prefixes must be \(B, d\) with d <= M = 3, got "
                                         r"shape \(1, 4\)"):
        ids.items_with_prefix(t([[0, 1, 0, 0]]))


# --- devices -------------------------------------------------------------------------------
# The "meta" device holds shapes but no data, and refuses to mix with CPU tensors: a trie
# moved there shows, without a GPU, that a method creates no CPU-only tensor on the way.

def test_to_gives_a_moved_copy_and_leaves_the_original_in_place():
    ids = SemanticIds.from_codes(t([[0, 1], [1, 0], [0, 1]]))
    moved = ids.to("meta")
    assert moved.device.type == "meta" and moved.trie.device.type == "meta"
    assert ids.device.type == "cpu" and ids.trie.device.type == "cpu"
    assert ids.item_of(t([[1, 0, 0]])).tolist() == [2]


def test_lookups_run_on_the_device_of_the_trie():
    ids = SemanticIds.from_codes(t([[0, 1], [1, 0], [0, 1]])).to("meta")
    assert ids.trie.contains([[0, 1, 0], [1, 1, 0]]).device.type == "meta"
    assert ids.trie.contains([[0], [1]]).device.type == "meta"
    assert ids.item_of([[0, 1, 1]]).device.type == "meta"


@pytest.mark.parametrize("call", [
    lambda ids, x: ids.trie.contains(x),
    lambda ids, x: ids.trie.next_token_mask(x[:, :1]),
    lambda ids, x: ids.trie.valid_next_tokens(x[0, :1]),
    lambda ids, x: ids.item_of(x),
    lambda ids, x: ids.id_of(x[:, 0]),
    lambda ids, x: ids.items_with_prefix(x[:, :2]),
])
def test_inputs_on_another_device_are_refused_with_the_fix(call):
    ids = SemanticIds.from_codes(t([[0, 1], [1, 0]])).to("meta")
    with pytest.raises(ValueError, match=r"are on cpu but the (trie|semantic_ids) is on meta; "
                                         r"move one of them: .*\.to\('meta'\)"):
        call(ids, t([[0, 1, 0]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_lookup_on_cuda_equals_cpu():
    codes = torch.randint(0, 3, (50, 2), generator=torch.Generator().manual_seed(0))
    cpu = SemanticIds.from_codes(codes, codebook_sizes=[3, 3])
    built_there = SemanticIds.from_codes(codes.cuda(), codebook_sizes=[3, 3])
    for gpu in (cpu.to("cuda"), built_there):
        probe = torch.cat([cpu.table[:10], t([[2, 2, 9], [0, 0, 0]])])
        assert torch.equal(gpu.item_of(probe.cuda()).cpu(), cpu.item_of(probe))
        assert torch.equal(gpu.id_of(t([1, 7]).cuda()).cpu(), cpu.id_of(t([1, 7])))
        for d in range(3):
            assert torch.equal(gpu.trie.contains(probe[:, :d].cuda()).cpu(),
                               cpu.trie.contains(probe[:, :d]))
            assert torch.equal(gpu.trie.next_token_mask(probe[:, :d].cuda()).cpu(),
                               cpu.trie.next_token_mask(probe[:, :d]))
            for on_gpu, on_cpu in zip(gpu.items_with_prefix(probe[:, :d].cuda()),
                                      cpu.items_with_prefix(probe[:, :d])):
                assert torch.equal(on_gpu.cpu(), on_cpu)
        assert gpu.trie.valid_next_tokens([0]) == cpu.trie.valid_next_tokens([0])
        assert torch.equal(gpu.trie.ids().cpu(), cpu.trie.ids())
        assert cpu.table[3].tolist() in gpu.trie
    assert torch.equal(collision_suffix(codes.cuda()).cpu(), collision_suffix(codes))
    assert rank_within_groups(t([2, 0, 2]).cuda()).tolist() == [0, 0, 1]


# --- variable-length IDs -------------------------------------------------------------------

def test_variable_length_ids_remove_the_most_frequent_middle_tokens():
    codes = t([[0, 7, 1], [1, 7, 2], [2, 7, 3], [0, 4, 1], [1, 4, 0], [2, 5, 0]])
    out = variable_length_ids(codes, level=1, top_k=2)
    assert out[:, 1].tolist() == [NO_TOKEN] * 5 + [5]
    assert torch.equal(out[:, [0, 2]], codes[:, [0, 2]])


# --- per-level statistics ------------------------------------------------------------------

def test_uniform_level_has_full_entropy_and_zero_gini():
    codes = torch.arange(8)[:, None].repeat(4, 1)                          # 8 codes x 4 items
    row = stats.level_stats(codes, 8).loc[1]
    assert row["entropy_bits"] == pytest.approx(3.0)
    assert row["gini"] == pytest.approx(0.0)
    assert row["utilisation"] == 1.0


@PROPERTY
@given(small_codes(max_code=5))
def test_level_entropy_matches_scipy_and_perplexity(codes):
    table = stats.level_stats(codes, 6)
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level].numpy(), minlength=6)
        assert table.loc[level + 1, "entropy_bits"] == pytest.approx(scipy_entropy(counts, base=2))
        assert table.loc[level + 1, "perplexity"] == pytest.approx(
            metrics.perplexity(codes[:, level], 6))


def test_prefix_counts_grow_with_depth_and_end_at_distinct_paths():
    codes = t([[0, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]])
    table = stats.level_stats(codes, 2)
    assert table["prefixes"].tolist() == [2, 3, 4]
    paths = stats.path_stats(codes)
    assert paths["paths"] == 4 and paths["largest_group"] == 2
    assert paths["collision_rate"] == pytest.approx(1 - 4 / 5)


def test_level_stats_skip_removed_tokens():
    codes = t([[0, NO_TOKEN], [1, NO_TOKEN], [1, 2]])
    row = stats.level_stats(codes, 3).loc[2]
    assert row["items"] == 1 and row["used"] == 1 and row["entropy_bits"] == 0.0


def test_entropy_bits_of_two_equal_counts_is_one():
    assert stats.entropy_bits(t([5, 5, 0])) == pytest.approx(1.0)
    assert math.isclose(stats.entropy_bits(t([1, 1, 1, 1])), 2.0)


# --- bad input -----------------------------------------------------------------------------

def test_float_codes_are_rejected():
    with pytest.raises(TypeError, match="integer"):
        assign_semantic_ids(t([[0.5, 1.0]]))


def test_one_dimensional_codes_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"codes\[:, None\]"):
        assign_semantic_ids(t([1, 2, 3]))


def test_one_codebook_size_per_level_is_required():
    with pytest.raises(ValueError, match="one codebook size per level"):
        stats.level_stats(t([[0, 1]]), [4])
