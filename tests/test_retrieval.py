"""Retrieval: trie-constrained beam search over semantic IDs, beams to ranked items, and the
inner-product item index (exact in torch, faiss flat and IVF)."""
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from course_lib.quantize.semantic_ids import NO_TOKEN, SemanticIds
from course_lib.retrieval import (BeamResult, ItemIndex, beam_items, beam_search, beam_step,
                                  sample_ids, sample_tokens, tempered_log_probs,
                                  top_k_smaller_index_first)

PROPERTY = settings(max_examples=25, deadline=None)
t = torch.tensor


# --- fixtures: a small catalogue and a deterministic "model" ----------------------------------

def catalogue(n_items=40, n_codes=4, levels=2, seed=0) -> SemanticIds:
    """Random codes over a tiny vocabulary, so IDs collide and get a collision token."""
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, n_codes, (n_items, levels), generator=gen)
    return SemanticIds.from_codes(codes, codebook_sizes=[n_codes] * levels)


def table_model(n_queries, vocab_sizes, seed=0, scale=2.0):
    """next_token_logits from fixed random tables: the logit of token t at position d for
    query q after prefix p is user[d][q, t] + transition[d][p[-1], t]. Only gathers and
    adds, so a row's logits are bit-identical however the rows are batched."""
    gen = torch.Generator().manual_seed(seed)
    user = [scale * torch.randn(n_queries, v, generator=gen) for v in vocab_sizes]
    transition = [None] + [scale * torch.randn(vocab_sizes[d - 1], vocab_sizes[d], generator=gen)
                           for d in range(1, len(vocab_sizes))]

    def next_token_logits(rows, prefixes):
        d = prefixes.shape[1]
        logits = user[d].to(rows.device)[rows]                             # (N, V_d)
        if d > 0:
            logits = logits + transition[d].to(rows.device)[prefixes[:, -1]]
        return logits
    return next_token_logits


def exhaustive_scores(model, ids: Tensor, query: int, temperature) -> Tensor:
    """log p(ID | query) of every row of `ids` (n, M), scored through the same callable."""
    temperatures = [temperature] * ids.shape[1] if isinstance(temperature, float) else temperature
    rows = torch.full((len(ids),), query)
    total = torch.zeros(len(ids))
    for d, tau in enumerate(temperatures):
        log_probs = torch.log_softmax(model(rows, ids[:, :d]) / tau, dim=-1)
        total = total + log_probs.gather(1, ids[:, d:d + 1]).squeeze(1)
    return total


# --- beam search ----------------------------------------------------------------------------

@PROPERTY
@given(seed=st.integers(0, 1000), beam=st.integers(1, 12), n_queries=st.integers(1, 4))
def test_constrained_beams_are_valid_ids_of_real_items(seed, beam, n_queries):
    ids = catalogue(seed=seed)
    result = beam_search(table_model(n_queries, ids.vocab_sizes, seed), ids, n_queries, beam)
    real = torch.isfinite(result.log_probs)
    assert real.all()                                  # 40 items: every beam finds one
    items = ids.item_of(result.ids.reshape(-1, ids.table.shape[1]))
    assert (items >= 1).all() and (items <= ids.n_items).all()


@pytest.mark.parametrize("temperature", [1.0, 0.5, (1.0, 0.3, 3.0)])
def test_a_beam_covering_the_catalogue_equals_exhaustive_scoring(temperature):
    ids = catalogue()
    model = table_model(3, ids.vocab_sizes)
    result = beam_search(model, ids, 3, beam=ids.n_items, temperature=temperature)
    for query in range(3):
        reference = exhaustive_scores(model, ids.table, query, temperature)   # (I,)
        order = torch.argsort(reference, descending=True, stable=True)
        assert torch.equal(result.ids[query], ids.table[order])
        assert torch.allclose(result.log_probs[query], reference[order], atol=1e-5)


def test_a_narrow_beam_finds_the_exhaustive_best_id_when_the_model_is_confident():
    ids = catalogue()
    model = table_model(2, ids.vocab_sizes, scale=8.0)       # peaked: greedy is optimal here
    result = beam_search(model, ids, 2, beam=3)
    for query in range(2):
        best = exhaustive_scores(model, ids.table, query, 1.0).argmax()
        assert torch.equal(result.ids[query, 0], ids.table[best])


@PROPERTY
@given(seed=st.integers(0, 1000), beam=st.integers(1, 10))
def test_batched_search_equals_one_query_at_a_time(seed, beam):
    ids = catalogue(seed=seed)
    n_queries = 4
    model = table_model(n_queries, ids.vocab_sizes, seed)
    batched = beam_search(model, ids, n_queries, beam)
    for query in range(n_queries):
        alone = beam_search(lambda rows, prefixes: model(rows + query, prefixes), ids, 1, beam)
        assert torch.equal(batched.ids[query], alone.ids[0])
        assert torch.allclose(batched.log_probs[query], alone.log_probs[0])


def test_one_temperature_equals_the_same_temperature_at_every_level():
    ids = catalogue()
    model = table_model(3, ids.vocab_sizes)
    one = beam_search(model, ids, 3, beam=6, temperature=0.7)
    per_level = beam_search(model, ids, 3, beam=6, temperature=[0.7, 0.7, 0.7])
    assert torch.equal(one.ids, per_level.ids)
    assert torch.equal(one.log_probs, per_level.log_probs)


def test_a_cold_first_level_puts_every_beam_under_the_models_favourite_first_token():
    ids = catalogue()
    model = table_model(1, ids.vocab_sizes)
    warm = beam_search(model, ids, 1, beam=6, temperature=1.0)
    cold = beam_search(model, ids, 1, beam=6, temperature=[0.01, 1.0, 1.0])
    valid_first = ids.trie.next_token_mask(torch.zeros(1, 0, dtype=torch.long))[0]
    favourite = model(t([0]), torch.zeros(1, 0, dtype=torch.long))[0].masked_fill(
        ~valid_first, float("-inf")).argmax()
    assert len(set(warm.ids[0, :, 0].tolist())) > 1         # at tau = 1 the beams spread
    assert cold.ids[0, :, 0].tolist() == [int(favourite)] * 6


def test_a_hot_last_level_ranks_ids_by_their_prefix_alone():
    ids = catalogue()
    model = table_model(1, ids.vocab_sizes)
    base = beam_search(model, ids, 1, beam=ids.n_items)
    hot_last = beam_search(model, ids, 1, beam=ids.n_items, temperature=[1.0, 1.0, 1e6])
    # At tau -> infinity the last token is uniform over its V_M tokens: only the prefix counts.
    prefix_scores = exhaustive_scores(model, ids.table[:, :2], 0, [1.0, 1.0])
    order = torch.argsort(prefix_scores, descending=True, stable=True)
    assert torch.equal(hot_last.ids[0, :, :2], ids.table[order, :2])
    assert not torch.equal(base.ids[0, :, :2], hot_last.ids[0, :, :2])


def test_unconstrained_search_can_write_invalid_ids_and_constrained_never_does():
    ids = SemanticIds(t([[0, 0], [0, 1], [1, 0]]), vocab_sizes=[3, 2])  # (2, *) names no item
    def model(rows, prefixes):                             # prefers token 2 at position 0
        logits = torch.zeros(len(rows), 3 if prefixes.shape[1] == 0 else 2)
        if prefixes.shape[1] == 0:
            logits[:, 2] = 5.0
        return logits
    free = beam_search(model, ids, 1, beam=2, constrained=False)
    assert ids.item_of(free.ids[0]).tolist()[0] == 0        # the best beam is no item
    held = beam_search(model, ids, 1, beam=2)
    assert (ids.item_of(held.ids[0]) > 0).all()


def test_fewer_valid_ids_than_beams_leaves_padding_rows():
    ids = SemanticIds(t([[0, 0], [1, 1]]), vocab_sizes=[2, 2])
    result = beam_search(table_model(1, [2, 2]), ids, 1, beam=5)
    assert result.ids.shape == (1, 5, 2) and result.log_probs.shape == (1, 5)
    assert torch.isfinite(result.log_probs[0, :2]).all()
    assert torch.isinf(result.log_probs[0, 2:]).all()
    assert (result.ids[0, 2:] == NO_TOKEN).all()


def test_the_model_sees_only_live_beams_with_valid_prefixes():
    ids = SemanticIds(t([[0, 0, 0], [1, 1, 0]]), vocab_sizes=[3, 3, 1])
    seen = []
    def model(rows, prefixes):
        seen.append(prefixes.clone())
        return torch.zeros(len(rows), ids.vocab_sizes[prefixes.shape[1]])
    beam_search(model, ids, 1, beam=4)
    for prefixes in seen[1:]:
        assert ids.trie.contains(prefixes).all()


# --- beams to items -------------------------------------------------------------------------

def test_beam_items_keep_the_beam_order_and_drop_history():
    ids = catalogue()
    result = beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=8)
    ranked = ids.item_of(result.ids[0]).tolist()
    history = t([[0, 0, ranked[0], ranked[3]]])                             # left-padded
    items, log_probs = beam_items(result, ids, k=5, history=history)
    expected = [i for i in ranked if i not in (ranked[0], ranked[3])][:5]
    assert items[0].tolist() == expected
    assert torch.equal(log_probs[0], result.log_probs[0, [1, 2, 4, 5, 6]])


def test_a_list_emptied_by_history_ends_with_item_zero():
    ids = catalogue()
    result = beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=4)
    ranked = ids.item_of(result.ids[0]).tolist()
    items, log_probs = beam_items(result, ids, k=4, history=t([ranked[1:3]]))
    assert items[0].tolist() == [ranked[0], ranked[3], 0, 0]
    assert torch.isinf(log_probs[0, 2:]).all()


def test_beam_items_drop_invalid_ids_and_pad_with_zero():
    ids = SemanticIds(t([[0, 0], [0, 1], [1, 0]]), vocab_sizes=[3, 2])
    result = BeamResult(ids=t([[[2, 0], [0, 1], [1, 1]]]), log_probs=t([[-1.0, -2.0, -3.0]]))
    items, log_probs = beam_items(result, ids, k=3)
    assert items.tolist() == [[2, 0, 0]]
    assert log_probs[0, 0] == -2.0 and torch.isinf(log_probs[0, 1:]).all()


def test_beam_items_warn_when_the_beam_is_narrower_than_k():
    ids = catalogue()
    result = beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=3)
    with pytest.warns(UserWarning, match="beam width 3 < k=5"):
        items, _ = beam_items(result, ids, k=5)
    assert (items[0, :3] > 0).all() and items[0, 3:].tolist() == [0, 0]


def test_beam_items_refuse_k_beyond_the_catalogue():
    ids = catalogue()
    result = beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=3)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 40\]"):
        beam_items(result, ids, k=41)


def test_beam_items_refuse_history_with_unknown_items():
    ids = catalogue()
    result = beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=3)
    with pytest.raises(ValueError, match="0 is padding"):
        beam_items(result, ids, k=3, history=t([[0, 41]]))


def test_numpy_integers_work_as_beam_width_query_count_and_k():
    ids = catalogue()
    model = table_model(2, ids.vocab_sizes)
    plain = beam_search(model, ids, 2, beam=6)
    numpy = beam_search(model, ids, np.int64(2), beam=np.int64(6))
    assert torch.equal(numpy.ids, plain.ids) and torch.equal(numpy.log_probs, plain.log_probs)
    assert torch.equal(beam_items(plain, ids, k=np.int32(4))[0], beam_items(plain, ids, k=4)[0])
    step = beam_step(t([[0.0, -1.0]]), t([[-1.0, -2.0], [-0.5, -3.0]]), np.int64(3))
    assert step[0].shape == (1, 3)


# --- beam search: bad input -----------------------------------------------------------------

@pytest.mark.parametrize("beam", [0, -1, 2.0])
def test_beam_below_one_is_refused(beam):
    ids = catalogue()
    with pytest.raises(ValueError, match="beam must be an int >= 1"):
        beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=beam)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), (1.0, 0.0, 1.0)])
def test_non_positive_temperature_is_refused(temperature):
    ids = catalogue()
    with pytest.raises(ValueError, match="temperatures must be finite and > 0"):
        beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=2, temperature=temperature)


def test_one_temperature_per_position_is_required():
    ids = catalogue()
    with pytest.raises(ValueError, match=r"one per position \(3\)"):
        beam_search(table_model(1, ids.vocab_sizes), ids, 1, beam=2, temperature=(1.0, 1.0))


def test_a_model_returning_the_wrong_shape_is_named():
    ids = catalogue()
    with pytest.raises(ValueError, match=r"must return \(N, V_d\) = \(1, 4\)"):
        beam_search(lambda rows, prefixes: torch.zeros(len(rows), 7), ids, 1, beam=2)


def test_a_model_returning_nan_is_named():
    ids = catalogue()
    with pytest.raises(ValueError, match="NaN or \\+inf logits at position 0"):
        beam_search(lambda rows, prefixes: torch.full((len(rows), 4), float("nan")), ids, 1, 2)


def test_a_trie_on_another_device_than_the_inputs_says_to_move_it():
    trie = catalogue().trie.to("meta")
    with pytest.raises(ValueError, match=r"trie.to\('cpu'\)"):
        trie.next_token_mask(torch.zeros(2, 1, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_beam_search_on_cuda_equals_cpu():
    ids = catalogue()
    model = table_model(3, ids.vocab_sizes)
    cpu = beam_search(model, ids, 3, beam=6)
    gpu = beam_search(model, ids.to("cuda"), 3, beam=6)
    assert torch.equal(gpu.ids.cpu(), cpu.ids)
    assert torch.allclose(gpu.log_probs.cpu(), cpu.log_probs, atol=1e-5)
    items, _ = beam_items(gpu, ids.to("cuda"), k=6, history=t([[1], [2], [3]], device="cuda"))
    assert items.device.type == "cuda"


# --- ties -----------------------------------------------------------------------------------

@PROPERTY
@given(st.lists(st.integers(-2, 2), min_size=1, max_size=30), st.data())
def test_top_k_equals_a_stable_sort_so_ties_go_to_the_smaller_index(values, data):
    scores = t(values, dtype=torch.float32)[None]
    k = data.draw(st.integers(1, len(values)))
    top, columns = top_k_smaller_index_first(scores, k)
    reference = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
    assert columns[0].tolist() == reference
    assert top[0].tolist() == [values[i] for i in reference]


# --- one beam step, tempered log-probabilities, sampling ---------------------------------------

def candidates_by_sorting(log_probs, step_log_probs, beam):
    """Every (score, parent, token) of every query, sorted: best first, then earlier beam,
    then smaller token; the first min(beam, w * V) of each query."""
    batch, width = log_probs.shape
    size = step_log_probs.shape[1]
    out = []
    for b in range(batch):
        rows = [(float(log_probs[b, j] + step_log_probs[b * width + j, v]), j, v)
                for j in range(width) for v in range(size)]
        rows.sort(key=lambda r: (-r[0], r[1], r[2]))
        out.append(rows[:min(beam, width * size)])
    return out


@PROPERTY
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 14), st.data())
def test_beam_step_keeps_the_best_sums_of_log_probabilities_ties_to_earlier_beam_then_token(
        batch, width, size, beam, data):
    def draw(n, values):                   # few distinct values and -inf: ties are common
        return t(data.draw(st.lists(st.sampled_from(values), min_size=n, max_size=n)))
    log_probs = draw(batch * width, [-1.0, -0.5, 0.0, float("-inf")])
    step = draw(batch * width * size, [-3.0, -1.0, -0.5, float("-inf")])
    log_probs, step = log_probs.view(batch, width), step.view(batch * width, size)
    scores, parent, token = beam_step(log_probs, step, beam)
    for b, expected in enumerate(candidates_by_sorting(log_probs, step, beam)):
        assert scores[b].tolist() == [r[0] for r in expected]
        finite = [i for i, r in enumerate(expected) if r[0] > float("-inf")]
        assert [parent[b, i].item() for i in finite] == [expected[i][1] for i in finite]
        assert [token[b, i].item() for i in finite] == [expected[i][2] for i in finite]


def test_beam_step_ranks_by_the_product_of_probabilities_not_their_sum():
    # p(prefix) p(token): 0.6 * 0.6 = 0.36 beats 0.3 * 0.95 = 0.285, although 0.3 + 0.95 > 1.2
    log_probs = t([[0.6, 0.3]]).log()
    step = t([[0.6, 0.4], [0.95, 0.05]]).log()
    scores, parent, token = beam_step(log_probs, step, beam=1)
    assert (parent.item(), token.item()) == (0, 0)
    assert scores.exp().item() == pytest.approx(0.36)


def test_beam_step_keeps_at_most_every_candidate():
    scores, parent, token = beam_step(torch.zeros(2, 1), torch.zeros(2, 3).log_softmax(1), 5)
    assert scores.shape == parent.shape == token.shape == (2, 3)
    assert token.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_beam_step_needs_one_row_of_step_log_probs_per_beam():
    with pytest.raises(ValueError, match=r"one row per beam, B \* w = 2 \* 3 = 6, got 3 rows"):
        beam_step(torch.zeros(2, 3), torch.zeros(3, 4), beam=2)


def test_beam_search_is_one_beam_step_per_position_over_the_masked_model():
    ids = catalogue(n_items=60, n_codes=5, levels=2, seed=3)
    n_queries, beam = 3, 4
    model = table_model(n_queries, ids.vocab_sizes, seed=3)
    log_probs = torch.zeros(n_queries, 1)
    prefixes = torch.zeros(n_queries, 1, 0, dtype=torch.long)
    for d in range(len(ids.vocab_sizes)):
        width = log_probs.shape[1]
        flat = prefixes.reshape(n_queries * width, d)
        rows = torch.arange(n_queries).repeat_interleave(width)
        step = tempered_log_probs(model(rows, flat), 1.0)
        step = step.masked_fill(~ids.trie.next_token_mask(flat), float("-inf"))
        log_probs, parent, token = beam_step(log_probs, step, beam)
        prefixes = torch.cat([prefixes.gather(1, parent[..., None].expand(-1, -1, d)),
                              token[..., None]], dim=2)
    result = beam_search(model, ids, n_queries, beam)
    assert torch.equal(result.ids, prefixes)
    assert torch.allclose(result.log_probs, log_probs)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_tempered_log_probs_divide_the_logits_before_the_softmax(temperature):
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    expected = torch.log_softmax(logits / temperature, dim=-1)
    assert torch.allclose(tempered_log_probs(logits, temperature), expected)


def test_tempered_log_probs_of_half_logits_are_float32():
    assert tempered_log_probs(torch.zeros(2, 3, dtype=torch.float16), 1.0).dtype == torch.float32


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("inf"), float("nan")])
def test_tempered_log_probs_refuse_a_temperature_that_is_not_positive_and_finite(temperature):
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        tempered_log_probs(torch.zeros(1, 3), temperature)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_sampled_token_frequencies_match_the_tempered_softmax(temperature):
    logits = t([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, float("-inf")]])
    n = 20_000
    tokens = sample_tokens(logits.repeat_interleave(n, dim=0), temperature,
                           torch.Generator().manual_seed(0)).view(2, n)   # (rows, draws)
    frequencies = torch.stack([torch.bincount(row, minlength=4) for row in tokens]) / n
    expected = torch.softmax(logits / temperature, dim=-1)
    assert (frequencies - expected).abs().max() < 0.015                    # ~4 standard errors
    assert frequencies[1, 3] == 0                                          # a masked token


def test_a_small_temperature_samples_the_argmax_like_greedy_decoding():
    logits = torch.randn(500, 7, generator=torch.Generator().manual_seed(1))
    tokens = sample_tokens(logits, 1e-3, torch.Generator().manual_seed(1))
    assert torch.equal(tokens, logits.argmax(dim=1))


def test_the_same_generator_seed_draws_the_same_tokens():
    logits = torch.zeros(100, 5)
    first = sample_tokens(logits, 1.0, torch.Generator().manual_seed(7))
    again = sample_tokens(logits, 1.0, torch.Generator().manual_seed(7))
    assert first.dtype == torch.long and first.shape == (100,)
    assert torch.equal(first, again)


def test_a_row_with_every_token_masked_cannot_be_sampled():
    with pytest.raises(ValueError, match="nothing to sample from"):
        sample_tokens(t([[0.0, 1.0], [float("-inf"), float("-inf")]]), 1.0)


def constrained_probabilities(model, ids: SemanticIds, query: int, temperature: float) -> Tensor:
    """p(ID) of every valid ID (I,) when each token is drawn from softmax(z_d / tau) over the
    tokens the trie allows after the ID's prefix: the distribution `sample_ids` draws from."""
    table = ids.table
    rows = torch.full((len(table),), query)
    log_p = torch.zeros(len(table))
    for d in range(table.shape[1]):
        logits = model(rows, table[:, :d]) / temperature
        logits = logits.masked_fill(~ids.trie.next_token_mask(table[:, :d]), float("-inf"))
        log_p = log_p + torch.log_softmax(logits, dim=-1).gather(1, table[:, d:d + 1]).squeeze(1)
    return log_p.exp()


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sampled_ids_follow_the_tempered_trie_constrained_distribution(temperature):
    ids = catalogue(n_items=12, n_codes=3)
    model = table_model(2, ids.vocab_sizes, scale=1.0)
    n = 20_000
    drawn = sample_ids(model, ids, 2, n, temperature, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (2, n, ids.table.shape[1])
    items = ids.item_of(drawn.reshape(-1, drawn.shape[-1])).view(2, n)
    assert (items > 0).all()                                   # every draw is a valid ID
    for query in range(2):
        frequencies = torch.bincount(items[query] - 1, minlength=ids.n_items) / n
        expected = constrained_probabilities(model, ids, query, temperature)
        assert expected.sum() == pytest.approx(1.0, abs=1e-5)
        assert (frequencies - expected).abs().max() < 0.015    # ~4 standard errors at n = 20k


def test_sampling_at_a_tiny_temperature_is_greedy_decoding():
    ids = catalogue()
    model = table_model(5, ids.vocab_sizes)
    drawn = sample_ids(model, ids, 5, 3, 1e-4, generator=torch.Generator().manual_seed(0))
    greedy = beam_search(model, ids, 5, beam=1).ids[:, 0]      # (B, M)
    assert torch.equal(drawn, greedy[:, None].expand_as(drawn))


def test_unconstrained_sampling_can_write_ids_that_name_no_item():
    ids = catalogue(n_items=10, n_codes=4)
    model = table_model(1, ids.vocab_sizes, scale=0.1)        # nearly uniform over all tokens
    drawn = sample_ids(model, ids, 1, 500, constrained=False,
                       generator=torch.Generator().manual_seed(0))
    assert (ids.item_of(drawn[0]) == 0).any()
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        sample_ids(model, ids, 1, 0)


# --- the item index -------------------------------------------------------------------------

def clustered_vectors(n_items=300, dim=8, n_clusters=6, seed=0):
    """(I + 1, D) item vectors from a Gaussian mixture; row 0 is padding (zeros)."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(n_clusters, dim, generator=gen)
    labels = torch.randint(0, n_clusters, (n_items,), generator=gen)
    items = centres[labels] + torch.randn(n_items, dim, generator=gen)
    return torch.cat([torch.zeros(1, dim), items])


def queries(n=20, dim=8, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def brute_force(vectors, q, k, exclude=()):
    """Every item's score, sorted: the definition ItemIndex must meet."""
    out = []
    for row in q:
        scores = (vectors[1:] @ row).tolist()
        ranked = sorted((i + 1 for i in range(len(scores)) if i + 1 not in exclude),
                        key=lambda i: (-scores[i - 1], i))
        out.append(ranked[:k])
    return out


def test_exact_index_returns_the_largest_inner_products():
    vectors, q = clustered_vectors(), queries()
    scores, items = ItemIndex(vectors).search(q, k=10)
    assert items.tolist() == brute_force(vectors, q, 10)
    assert torch.allclose(scores, (q[:, None, :] * vectors[items]).sum(-1), atol=1e-5)


def test_the_padding_row_is_never_returned():
    vectors = clustered_vectors()
    vectors[0] = 100.0                                     # the best "item", if it counted
    _, items = ItemIndex(vectors).search(torch.ones(3, 8), k=300)
    assert (items > 0).all() and len(set(items[0].tolist())) == 300


def test_exact_ties_go_to_the_smaller_item_id():
    vectors = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    _, items = ItemIndex(vectors).search(torch.tensor([[1.0, 0.0]]), k=2)
    assert items.tolist() == [[2, 3]]


@pytest.mark.parametrize("backend", ["faiss-flat", "faiss-ivf"])
def test_faiss_agrees_with_exact(backend):
    pytest.importorskip("faiss")
    vectors, q = clustered_vectors(), queries()
    exact = ItemIndex(vectors).search(q, k=10)
    index = ItemIndex(vectors, backend, **({"nlist": 8} if backend == "faiss-ivf" else {}))
    if backend == "faiss-ivf":
        index.nprobe = 8                                   # every cell: exact again
    scores, items = index.search(q, k=10)
    assert torch.equal(items, exact[1])
    assert torch.allclose(scores, exact[0], atol=1e-4)


def test_ivf_with_one_probe_misses_some_items_that_exact_finds():
    pytest.importorskip("faiss")
    vectors, q = clustered_vectors(n_items=2000, n_clusters=30), queries(50)
    _, exact = ItemIndex(vectors).search(q, k=10)
    _, approx = ItemIndex(vectors, "faiss-ivf", nlist=40, nprobe=1).search(q, k=10)
    recall = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist())) / 500
    assert 0 < recall < 1


@pytest.mark.parametrize("backend", ["exact", "faiss-flat", "faiss-ivf"])
def test_excluded_items_are_never_returned(backend):
    if backend != "exact":
        pytest.importorskip("faiss")
    vectors, q = clustered_vectors(), queries(2)
    _, first = ItemIndex(vectors).search(q, k=5)
    exclude = torch.cat([torch.zeros(2, 2, dtype=torch.long), first[:, :3]], dim=1)  # padded
    extra = {"nlist": 4, "nprobe": 4} if backend == "faiss-ivf" else {}
    _, items = ItemIndex(vectors, backend, **extra).search(q, k=5, exclude=exclude)
    for row, banned in enumerate(first[:, :3].tolist()):
        assert items[row].tolist() == brute_force(vectors, q[row:row + 1], 5, set(banned))[0]


def test_excluding_almost_everything_pads_the_list_with_zero():
    vectors = clustered_vectors(n_items=4)
    scores, items = ItemIndex(vectors).search(queries(1), k=3, exclude=t([[1, 2, 3]]))
    assert items.tolist() == [[4, 0, 0]] and torch.isinf(scores[0, 1:]).all()


# --- the item index: bad input --------------------------------------------------------------

def test_k_beyond_the_catalogue_is_refused():
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 300\]"):
        ItemIndex(clustered_vectors()).search(queries(), k=301)


def test_queries_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match="width 5 but the item vectors have 8"):
        ItemIndex(clustered_vectors()).search(torch.zeros(2, 5), k=3)


def test_nan_vectors_are_refused():
    vectors = clustered_vectors()
    vectors[7, 2] = float("nan")
    with pytest.raises(ValueError, match="1 rows of item_vectors contain NaN"):
        ItemIndex(vectors)


def test_nan_queries_are_refused():
    q = queries()
    q[0, 0] = float("nan")
    with pytest.raises(ValueError, match="rows of queries contain NaN"):
        ItemIndex(clustered_vectors()).search(q, k=3)


def test_integer_vectors_are_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"item_vectors.float\(\)"):
        ItemIndex(torch.ones(5, 3, dtype=torch.long))


def test_exclude_with_unknown_items_is_refused():
    with pytest.raises(ValueError, match=r"in \[0, 300\] \(0 is padding\)"):
        ItemIndex(clustered_vectors()).search(queries(2), k=3, exclude=t([[0, 301], [1, 2]]))


@pytest.mark.parametrize("backend", ["exact", "faiss-ivf"])
def test_numpy_integers_work_as_k_nlist_and_nprobe(backend):
    if backend != "exact":
        pytest.importorskip("faiss")
    vectors, q = clustered_vectors(), queries()
    extra = {"nlist": np.int64(4), "nprobe": np.int64(4)} if backend == "faiss-ivf" else {}
    index = ItemIndex(vectors, backend, **extra)
    assert torch.equal(index.search(q, k=np.int64(5))[1], index.search(q, k=5)[1])


def test_ivf_over_identical_vectors_is_refused_instead_of_returning_empty_lists():
    pytest.importorskip("faiss")
    same = torch.cat([torch.zeros(1, 8), torch.ones(100, 8)])
    with pytest.raises(ValueError, match="nlist=10 cells from 100 item vectors of which only 1 "
                                         "are distinct.*empty list. Use nlist <= 1"):
        ItemIndex(same, "faiss-ivf")


def test_ivf_over_many_duplicates_clusters_the_distinct_vectors_and_fills_every_list():
    pytest.importorskip("faiss")
    vectors = clustered_vectors(n_items=30)
    vectors = torch.cat([vectors, vectors[1:2].repeat(300, 1)])   # item 1 and 300 copies of it
    index = ItemIndex(vectors, "faiss-ivf", nlist=10, nprobe=1)
    _, items = index.search(queries(50), k=1)
    assert (items > 0).all()                                   # no query meets an empty cell


def test_unknown_backend_and_bad_nprobe_are_refused():
    with pytest.raises(ValueError, match="backend must be one of"):
        ItemIndex(clustered_vectors(), "annoy")
    pytest.importorskip("faiss")
    with pytest.raises(ValueError, match=r"nprobe must be an int in \[1, nlist=4\]"):
        ItemIndex(clustered_vectors(), "faiss-ivf", nlist=4, nprobe=5)
    with pytest.raises(ValueError, match="nprobe applies to backend='faiss-ivf'"):
        ItemIndex(clustered_vectors()).nprobe = 4


def test_faiss_backends_without_faiss_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)        # import faiss now fails
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        ItemIndex(clustered_vectors(), "faiss-flat")
