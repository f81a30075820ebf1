"""SASRec: causality, padding, truncation, the three losses, the shared output layer, bad
input, learning a simple pattern. (Lesson 01's grading checks: tests/test_grading_lesson01.py.)"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.data.sequences import leave_one_out, next_item_batches, pad_left
from course_lib.models import sasrec
from course_lib.models.sasrec import SASRec, SASRecConfig
from course_lib.train import evaluate_model, fit

N_ITEMS = 30


def make_model(**overrides) -> SASRec:
    torch.manual_seed(0)
    cfg = dict(n_items=N_ITEMS, max_len=8, d_model=16, n_blocks=2, n_heads=2, dropout=0.2)
    model = SASRec(SASRecConfig(**{**cfg, **overrides}))
    return model.eval()


def random_history(batch=4, length=8, seed=0):
    """Left-padded histories of random lengths 1..length."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, N_ITEMS + 1, size=rng.integers(1, length + 1)) for _ in range(batch)]
    return pad_left(seqs, length)


def a_batch(model, seed=0, n_negatives=1):
    rng = np.random.default_rng(seed)
    train = {u: rng.integers(1, N_ITEMS + 1, size=rng.integers(2, 12)) for u in range(1, 9)}
    return next(next_item_batches(train, N_ITEMS, model.config.max_len, 8, n_negatives, seed))


# --- configuration ---------------------------------------------------------------------------

def test_config_defaults_are_the_papers_small_setting():
    cfg = SASRecConfig(n_items=100)
    assert (cfg.d_model, cfg.n_blocks, cfg.n_heads, cfg.dropout, cfg.max_len, cfg.loss_type) == (
        50, 2, 1, 0.2, 200, "bce")


@pytest.mark.parametrize("field, value, phrase", [
    ("loss_type", "hinge", "loss_type must be one of"),
    ("n_heads", 3, "divisible"),
    ("dropout", 1.0, "dropout must be in"),
    ("max_len", 0, ">= 1"),
    ("temperature", 0.0, "temperature must be > 0"),
])
def test_config_rejects_bad_settings(field, value, phrase):
    with pytest.raises(ValueError, match=phrase):
        SASRecConfig(**{"n_items": 10, "d_model": 16, "n_heads": 2,
                        "loss_type": "sampled_softmax", field: value})


@pytest.mark.parametrize("loss_type", ["bce", "softmax"])
def test_a_temperature_goes_with_the_sampled_softmax_only(loss_type):
    with pytest.raises(ValueError, match="goes with loss_type='sampled_softmax'"):
        SASRecConfig(n_items=10, loss_type=loss_type, temperature=0.05)


# --- the mask and causality ------------------------------------------------------------------

def test_causal_mask_lets_each_position_see_only_itself_and_the_past():
    mask = sasrec.causal_mask(4)
    assert torch.equal(mask, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0],
                                           [1, 1, 1, 1]], dtype=torch.bool))


def test_attention_mask_hides_padding_keys_but_keeps_the_diagonal():
    mask = sasrec.attention_mask(torch.tensor([[0, 0, 5, 7]]))[0]
    assert torch.equal(mask, torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                           [0, 0, 1, 1]], dtype=torch.bool))


@settings(max_examples=25, deadline=None)
@given(position=st.integers(0, 7), new_item=st.integers(1, N_ITEMS))
def test_changing_an_item_does_not_change_outputs_before_it(position, new_item):
    model = make_model()
    history = torch.arange(1, 9).unsqueeze(0)                    # (1, 8), no padding
    changed = history.clone()
    changed[0, position] = new_item
    before, after = model(history), model(changed)
    assert torch.allclose(before[:, :position], after[:, :position], atol=1e-6)


def test_padding_positions_are_zero_and_never_nan():
    model = make_model()
    history = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 3], [0, 0, 0, 4, 5, 6, 7, 8]])
    hidden = model(history)
    assert torch.isfinite(hidden).all()
    assert (hidden[0, :7] == 0).all() and (hidden[1, :3] == 0).all()


def test_more_left_padding_does_not_change_scores():
    model = make_model()
    history = torch.tensor([[0, 0, 4, 9, 2]])
    wider = torch.cat([torch.zeros(1, 3, dtype=torch.long), history], dim=1)
    assert torch.allclose(model.scores(history)[:, 1:], model.scores(wider)[:, 1:], atol=1e-5)


def test_history_longer_than_max_len_is_truncated_from_the_left():
    model = make_model(max_len=4)
    long = torch.tensor([[11, 12, 13, 1, 2, 3, 4]])
    assert torch.allclose(model.scores(long)[:, 1:], model.scores(long[:, -4:])[:, 1:])


def test_sdpa_attention_equals_the_explicit_softmax_weights():
    model = make_model()
    attn, ln = model.blocks[0].attn, model.blocks[0].ln_attn
    history = random_history()
    x = ln(torch.randn(*history.shape, 16))
    mask = sasrec.attention_mask(history)
    weights = attn.weights(x, mask)                                  # (B, H, T, T)
    _, _, v = attn._heads(x)
    explicit = attn.out((weights @ v).transpose(1, 2).flatten(2))
    assert torch.allclose(attn(x, mask), explicit, atol=1e-5)


def test_attention_maps_are_causal_rows_that_sum_to_one():
    model = make_model()
    maps = model.attention_maps(random_history())
    assert len(maps) == 2 and maps[0].shape == (4, 2, 8, 8)
    assert torch.allclose(maps[-1].sum(-1), torch.ones(4, 2, 8), atol=1e-5)
    assert (maps[-1].triu(diagonal=1) == 0).all()


# --- scores: the shared item embedding as output layer -----------------------------------------

def test_scores_are_dot_products_with_the_input_item_embedding():
    model = make_model()
    history = random_history()
    scores = model.scores(history)
    expected = model(history)[:, -1] @ model.item_embedding.weight.T
    assert scores.shape == (4, N_ITEMS + 1)
    assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-5)
    assert (scores[:, 0] == float("-inf")).all()


def test_with_a_temperature_scores_are_cosines_with_the_item_embedding():
    model = make_model(loss_type="sampled_softmax", temperature=0.05)
    history = random_history()
    expected = F.cosine_similarity(model(history)[:, -1, None],
                                   model.item_embedding.weight[None], dim=-1)   # (B, I + 1)
    scores = model.scores(history)
    assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-5)
    assert (scores[:, 0] == float("-inf")).all()


def test_scores_are_batched_row_independent():
    model = make_model()
    history = random_history(batch=6)
    one_by_one = torch.cat([model.scores(history[i:i + 1]) for i in range(6)])
    assert torch.allclose(model.scores(history)[:, 1:], one_by_one[:, 1:], atol=1e-5)


# --- losses -----------------------------------------------------------------------------------

def test_bce_loss_is_the_papers_objective_written_out():
    gen = torch.Generator().manual_seed(0)
    hidden, emb = torch.randn(2, 3, 4, generator=gen), torch.randn(6, 4, generator=gen)
    targets = torch.tensor([[0, 2, 3], [1, 4, 5]])
    negatives = torch.tensor([[[0], [5], [1]], [[2], [2], [3]]])
    terms = []
    for b in range(2):
        for t in range(3):
            if targets[b, t] > 0:
                pos = torch.sigmoid(hidden[b, t] @ emb[targets[b, t]])
                neg = torch.sigmoid(hidden[b, t] @ emb[negatives[b, t, 0]])
                terms.append(-torch.log(pos) - torch.log(1 - neg))
    expected = torch.stack(terms).mean()
    assert torch.allclose(sasrec.bce_loss(hidden, emb, targets, negatives), expected, atol=1e-5)


def test_bce_loss_of_a_blank_state_is_log_two_per_item_scored():
    hidden, emb = torch.zeros(1, 2, 3), torch.randn(4, 3)
    targets, negatives = torch.tensor([[1, 2]]), torch.tensor([[[3, 1], [1, 3]]])
    assert math.isclose(float(sasrec.bce_loss(hidden, emb, targets, negatives)),
                        3 * math.log(2), rel_tol=1e-6)      # 1 positive + 2 negatives


def test_softmax_loss_is_cross_entropy_over_all_items_but_padding():
    gen = torch.Generator().manual_seed(1)
    hidden, emb = torch.randn(2, 3, 4, generator=gen), torch.randn(6, 4, generator=gen)
    targets = torch.tensor([[0, 2, 3], [1, 4, 5]])
    valid = targets > 0
    logits = hidden[valid] @ emb[1:].T                               # items 1..I only
    expected = F.cross_entropy(logits, targets[valid] - 1)
    assert torch.allclose(sasrec.softmax_loss(hidden, emb, targets), expected, atol=1e-5)


def test_sampled_softmax_with_every_other_item_as_negative_equals_full_softmax():
    model = make_model(loss_type="sampled_softmax", dropout=0.0)
    inputs = torch.tensor([[0, 0, 0, 0, 0, 4, 9, 2]])
    targets = torch.tensor([[0, 0, 0, 0, 0, 9, 2, 5]])
    everything = torch.arange(1, N_ITEMS + 1)
    negatives = torch.stack([everything[everything != t] if t else everything[:-1]
                             for t in targets[0].tolist()])[None]    # (1, T, I - 1)
    batch = {"inputs": inputs, "targets": targets, "negatives": negatives}
    sampled = model.loss(batch)
    model.config.loss_type = "softmax"
    assert torch.allclose(sampled, model.loss(batch), atol=1e-5)


def test_with_a_temperature_the_loss_is_hstus_cosine_sampled_softmax():
    from course_lib.losses import normalised_sampled_softmax_loss

    model = make_model(loss_type="sampled_softmax", temperature=0.05, dropout=0.0)
    batch = a_batch(model, n_negatives=5)
    valid = (batch["targets"] > 0) & (batch["inputs"] > 0)
    expected = normalised_sampled_softmax_loss(model(batch["inputs"])[valid],
                                               model.item_embedding.weight,
                                               batch["targets"][valid],
                                               batch["negatives"][valid], 0.05)
    assert torch.allclose(model.loss(batch), expected)
    model.config.temperature = None                                    # dot products
    assert not torch.allclose(model.loss(batch), expected)


@pytest.mark.parametrize("loss_type", sasrec.LOSSES)
def test_loss_ignores_what_sits_at_padding_positions(loss_type):
    model = make_model(loss_type=loss_type, dropout=0.0)
    batch = a_batch(model, n_negatives=2)
    padded = batch["targets"] == 0
    assert padded.any()
    other = dict(batch, negatives=batch["negatives"].masked_fill(padded.unsqueeze(-1), 7))
    assert torch.allclose(model.loss(batch), model.loss(other))


def test_a_position_without_input_item_does_not_count():
    model = make_model(loss_type="softmax", dropout=0.0)
    batch = a_batch(model)
    extra = dict(batch)
    extra["targets"] = batch["targets"].clone()
    extra["targets"][:, 0] = torch.where(batch["inputs"][:, 0] == 0, 3, batch["targets"][:, 0])
    assert torch.allclose(model.loss(batch), model.loss(extra))


def test_loss_gradients_reach_the_shared_embedding_from_both_ends():
    model = make_model(loss_type="bce")
    model.train()
    model.loss(a_batch(model)).backward()
    grad = model.item_embedding.weight.grad
    assert grad is not None and grad[1:].abs().sum() > 0 and (grad[0] == 0).all()


# --- bad input ------------------------------------------------------------------------------

def test_scores_reject_an_empty_history():
    with pytest.raises(ValueError, match="row 1 is empty"):
        make_model().scores(torch.tensor([[0, 3], [0, 0]]))


@pytest.mark.parametrize("bad, phrase", [(N_ITEMS + 1, "item id 31"), (-2, "item id -2")])
def test_item_ids_out_of_range_raise(bad, phrase):
    with pytest.raises(ValueError, match=phrase):
        make_model().scores(torch.tensor([[1, 2, bad]]))


def test_right_padded_history_raises_and_says_to_pad_left():
    with pytest.raises(ValueError, match="padded on the LEFT"):
        make_model().scores(torch.tensor([[4, 5, 0]]))


def test_float_ids_raise_a_type_error():
    with pytest.raises(TypeError, match="long tensor"):
        make_model().scores(torch.tensor([[1.0, 2.0]]))


def test_bce_without_negatives_says_how_to_make_them():
    model = make_model(loss_type="bce")
    batch = a_batch(model)
    del batch["negatives"]
    with pytest.raises(ValueError, match="n_negatives"):
        model.loss(batch)


def test_targets_out_of_range_raise():
    model = make_model()
    batch = a_batch(model)
    batch["targets"] = batch["targets"].clone()
    batch["targets"][0, -1] = N_ITEMS + 5
    with pytest.raises(ValueError, match="targets holds item id 35"):
        model.loss(batch)


# --- learning -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def successor_split():
    rng = np.random.default_rng(0)
    seqs = {}
    for user in range(1, 121):                  # item i is followed by i + 1 (mod I)
        start = rng.integers(1, N_ITEMS + 1)
        seqs[user] = (start - 1 + np.arange(rng.integers(6, 12))) % N_ITEMS + 1
    return leave_one_out(seqs, N_ITEMS)


@pytest.mark.parametrize("loss_type", sasrec.LOSSES)
def test_sasrec_learns_a_successor_pattern_with_every_loss(successor_split, loss_type):
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(N_ITEMS, max_len=10, d_model=16, dropout=0.1,
                                loss_type=loss_type))
    valid = successor_split.evaluation("valid")
    fit(model, lambda e: next_item_batches(successor_split.train, N_ITEMS, 10, 32, 4, seed=e),
        lambda m: evaluate_model(m, valid)["MRR"], epochs=8, lr=1e-2, progress=False)
    assert evaluate_model(model, successor_split.evaluation("test"))["MRR"] > 0.8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_scores_match_cpu_scores():
    model = make_model()
    history = random_history()
    on_gpu = model.to("cuda").scores(history.to("cuda")).cpu()
    assert torch.allclose(on_gpu[:, 1:], model.to("cpu").scores(history)[:, 1:], atol=1e-4)
