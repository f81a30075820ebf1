"""HSTU: pointwise attention and preference intensity, causality, the divisor, the time buckets
and the relative bias, labels, stochastic length, M-FALCON, the loss, bad input, and a short
fit on the quick world (the slowest test here, 3 to 7 s)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.data.sequences import next_item_batches, pad_left
from course_lib.models import hstu
from course_lib.models.hstu import HSTU, HSTUConfig
from course_lib.retrieval import ItemIndex

N_ITEMS = 30
MAX_LEN = 8


def make_model(**overrides) -> HSTU:
    torch.manual_seed(0)
    cfg = dict(n_items=N_ITEMS, max_len=MAX_LEN, d_model=16, n_blocks=2, n_heads=2, dropout=0.0)
    model = HSTU(HSTUConfig(**{**cfg, **overrides}))
    with torch.no_grad():                # random biases, so that every bias actually matters
        for layer in model.layers:
            for scalars in (layer.rab.position, layer.rab.time):
                if scalars is not None:
                    scalars.normal_(0, 0.5)
    return model.eval()


def event_batch(batch=4, length=MAX_LEN, seed=0, min_length=1) -> dict[str, torch.Tensor]:
    """An evaluation batch: left-padded histories with actions 1..4, increasing timestamps
    (gaps of seconds to days) and a request time after each history's last event."""
    rng = np.random.default_rng(seed)
    items, actions, times, request = [], [], [], []
    for _ in range(batch):
        n = int(rng.integers(min_length, length + 1))
        items.append(rng.integers(1, N_ITEMS + 1, size=n))
        actions.append(rng.integers(1, 5, size=n))
        gaps = rng.choice([5, 60, 3_600, 86_400], size=n + 1) * rng.uniform(0.5, 2, size=n + 1)
        stamps = 1_700_000_000 + np.cumsum(gaps.astype(np.int64))
        times.append(stamps[:-1])
        request.append(stamps[-1])
    return {"history": pad_left(items, length), "actions": pad_left(actions, length),
            "timestamps": pad_left(times, length),
            "target_timestamps": torch.as_tensor(np.array(request))}


def training_batch(model, seed=0, n_negatives=5, exposures=False):
    """A batch of next_item_batches with actions (clicks and likes, or also exposures) and
    timestamps."""
    rng = np.random.default_rng(seed)
    train, actions, stamps = {}, {}, {}
    for user in range(1, 9):
        n = int(rng.integers(3, 12))
        train[user] = rng.integers(1, N_ITEMS + 1, size=n)
        actions[user] = rng.integers(1 if exposures else 2, 4, size=n)
        stamps[user] = 1_700_000_000 + np.cumsum(rng.integers(1, 10_000, size=n))
    return next(next_item_batches(train, N_ITEMS, model.config.max_len, 8, n_negatives, seed,
                                  actions=actions, timestamps=stamps))


# --- configuration ---------------------------------------------------------------------------

def test_config_defaults_are_the_reference_ml1m_setting():
    cfg = HSTUConfig(n_items=100)
    assert (cfg.n_blocks, cfg.n_heads, cfg.d_model, cfg.d_qk, cfg.d_v, cfg.max_len,
            cfg.dropout, cfg.temperature, cfg.divisor) == (2, 1, 50, 50, 50, 200, 0.2, 0.05,
                                                           "padded")
    assert cfg.use_actions and cfg.use_time_bias and cfg.stochastic_length_alpha is None
    assert cfg.positive_actions == (2, 3, 4)            # click, like, conversion


@pytest.mark.parametrize("field, value, phrase", [
    ("divisor", "mean", "divisor must be one of"),
    ("stochastic_length_alpha", 2.5, r"\(1, 2\]"),
    ("stochastic_length_alpha", 1.0, r"\(1, 2\]"),
    ("positive_actions", (2, 9), "positive_actions must be action ids"),
    ("temperature", 0.0, "temperature must be > 0"),
    ("dropout", 1.0, "dropout must be in"),
])
def test_config_rejects_bad_settings(field, value, phrase):
    with pytest.raises(ValueError, match=phrase):
        HSTUConfig(**{"n_items": 10, field: value})


# --- pointwise attention: preference intensity ----------------------------------------------

def history_keys(n_match: int):
    """A query that matches the key of a sci-fi event (value e_0) and not the key of a comedy
    (value e_1); the history holds n_match sci-fi events and one comedy."""
    q = torch.tensor([[[[1.0, 0.0]]]])                                    # (1, 1, 1, 2)
    scifi, comedy = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.0])
    k = torch.stack([scifi] * n_match + [comedy])[None, None]            # (1, 1, n + 1, 2)
    v = torch.stack([torch.eye(2)[0]] * n_match + [torch.eye(2)[1]])[None, None]
    mask = torch.ones(1, 1, n_match + 1, dtype=torch.bool)
    return q, k, v, mask


def test_pointwise_attention_rows_do_not_sum_to_one():
    q, k, v, mask = history_keys(3)
    weights = hstu.pointwise_weights(q, k, torch.zeros(1), mask, divisor=10.0)
    expected = torch.tensor([F.silu(torch.tensor(2.0))] * 3 + [F.silu(torch.tensor(-1.0))]) / 10
    assert torch.allclose(weights[0, 0, 0], expected)
    assert not math.isclose(float(weights.sum()), 1.0, abs_tol=0.05)


def test_doubling_the_matching_events_doubles_pointwise_output_but_not_softmax():
    def outputs(n_match):
        q, k, v, mask = history_keys(n_match)
        pointwise = hstu.pointwise_attention(q, k, v, torch.zeros(1), mask, divisor=50.0)
        softmax = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return pointwise[0, 0, 0, 0], softmax[0, 0, 0, 0]           # the sci-fi component
    point_5, soft_5 = outputs(5)
    point_10, soft_10 = outputs(10)
    assert torch.allclose(point_10, 2 * point_5)                     # intensity survives
    assert soft_10 / soft_5 < 1.05                                   # softmax averages it away


def test_causal_mask_sees_the_past_and_itself_and_hides_padding_keys():
    mask = hstu.attention_mask(torch.tensor([[False, True, True, True]]))[0]
    assert torch.equal(mask, torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0],
                                           [0, 1, 1, 1]], dtype=torch.bool))


def test_attention_maps_are_causal_and_not_row_stochastic():
    model = make_model()
    maps = model.attention_maps(event_batch(min_length=MAX_LEN))
    assert len(maps) == 2 and maps[0].shape == (4, 2, MAX_LEN, MAX_LEN)
    assert (maps[-1].triu(diagonal=1) == 0).all()
    assert not torch.allclose(maps[-1].sum(-1), torch.ones(4, 2, MAX_LEN), atol=0.1)


def test_attention_maps_are_the_weights_the_layer_uses():
    model = make_model()
    batch = event_batch()
    real = batch["history"] > 0
    slots = model._history_slots(MAX_LEN, "cpu")                       # 0..7
    x = model._embed(batch["history"], batch["actions"], slots) * real.unsqueeze(-1)
    times = hstu.query_times(batch["timestamps"], batch["target_timestamps"])
    pairs = hstu.relative_pairs(slots, slots, times, batch["timestamps"])
    mask = hstu.attention_mask(real)
    layer = model.layers[0]
    u, v, _, _ = layer.project(x)
    weights = model.attention_maps(batch)[0]
    expected, _ = layer(x, pairs, mask, hstu.attention_divisor(mask, model.config))
    assert torch.allclose(layer.transform(x, u, weights @ v), expected, atol=1e-5)


@pytest.mark.parametrize("divisor", hstu.DIVISORS)
@pytest.mark.parametrize("field", ["history", "actions"])
def test_changing_a_later_event_does_not_change_earlier_outputs(field, divisor):
    model = make_model(divisor=divisor)
    batch = event_batch(batch=1, min_length=MAX_LEN)
    args = lambda b: (b["history"], b["actions"], b["timestamps"], b["target_timestamps"])
    before = model(*args(batch))
    for position in range(MAX_LEN):
        changed = {name: value.clone() for name, value in batch.items()}
        changed[field][0, position] = changed[field][0, position] % 4 + 1
        after = model(*args(changed))
        assert torch.allclose(before[:, :position], after[:, :position], atol=1e-6)
        assert not torch.allclose(before[:, position], after[:, position], atol=1e-6)


def test_a_later_timestamp_reaches_only_the_position_asked_at_it():
    """Position t is asked at tau_{t+1}: a later event's time tells t WHEN it is asked (so
    t's output changes), never what comes; earlier positions do not change."""
    model = make_model()
    batch = event_batch(batch=1, min_length=MAX_LEN)
    stamps = batch["timestamps"].clone()
    stamps[0, 5:] += 10 * 86_400                                       # events 5.. come later
    request = batch["target_timestamps"] + 10 * 86_400
    before = model(batch["history"], batch["actions"], batch["timestamps"],
                   batch["target_timestamps"])
    after = model(batch["history"], batch["actions"], stamps, request)
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4], after[:, 4], atol=1e-4)


# --- the divisor n ------------------------------------------------------------------------------

def test_padded_divisor_is_max_len_plus_the_candidate_slot_for_every_user():
    mask = hstu.attention_mask(torch.tensor([[False, True, True], [True, True, True]]))
    assert hstu.attention_divisor(mask, HSTUConfig(10, max_len=MAX_LEN)) == MAX_LEN + 1


def test_length_divisor_counts_the_events_each_query_sees():
    mask = hstu.attention_mask(torch.tensor([[False, True, True], [True, True, True]]))
    divisor = hstu.attention_divisor(mask, HSTUConfig(10, max_len=MAX_LEN, divisor="length"))
    assert torch.equal(divisor.flatten(1), torch.tensor([[1.0, 1.0, 2.0], [1.0, 2.0, 3.0]]))


def test_length_divisor_makes_attention_a_mean_over_the_events_seen():
    q, k, v, _ = history_keys(3)
    k = torch.ones_like(k)                                             # every score equal
    mask = hstu.causal_mask(4)[None]                                   # (1, 4, 4)
    q = q.expand(1, 1, 4, 2)
    divisor = hstu.attention_divisor(mask, HSTUConfig(10, divisor="length"))
    out = hstu.pointwise_attention(q, k, v, torch.zeros(1), mask, divisor)[0, 0]   # (4, 2)
    running_mean = v[0, 0].cumsum(0) / torch.arange(1, 5)[:, None]
    assert torch.allclose(out, F.silu(torch.tensor(1.0)) * running_mean, atol=1e-6)


@pytest.mark.parametrize("divisor", hstu.DIVISORS)
def test_extra_left_padding_does_not_change_scores(divisor):
    model = make_model(divisor=divisor)
    batch = event_batch(length=5)
    wider = {name: torch.cat([torch.zeros_like(value[:, :3]), value], 1) if value.dim() == 2
             else value for name, value in batch.items()}                # 3 more columns of 0
    assert torch.allclose(model.scores(batch)[:, 1:], model.scores(wider)[:, 1:], atol=1e-5)


def test_the_two_divisors_give_different_models():
    batch = event_batch()
    padded, length = make_model(), make_model(divisor="length")
    assert not torch.allclose(padded.scores(batch)[:, 1:], length.scores(batch)[:, 1:])


# --- time buckets and the relative attention bias ---------------------------------------------

@pytest.mark.parametrize("dt, bucket", [
    (0, 0), (1, 0), (-1, 0),
    (2, 2),                     # ln 2 / 0.301 = 2.30 (log2 would give 3.3, log10 1.0)
    (-2, 2),                    # |dt|
    (60, 13),                   # a minute: ln 60 / 0.301 = 13.60
    (86_400, 37),               # a day: 11.37 / 0.301 = 37.77
    (10 ** 17, 128),            # 39.14 / 0.301 = 130.0, clamped to 128
])
def test_time_bucket_is_floor_of_natural_log_over_0_301_clamped(dt, bucket):
    assert hstu.time_buckets(torch.tensor([dt]))[0] == bucket
    if abs(dt) > 1 and bucket < 128:
        assert bucket == math.floor(math.log(abs(dt)) / 0.301)


def test_query_times_are_the_next_timestamps_then_the_request_time():
    stamps = torch.tensor([[0, 10, 20, 35]])
    assert torch.equal(hstu.query_times(stamps, torch.tensor([50])),
                       torch.tensor([[10, 20, 35, 50]]))
    assert torch.equal(hstu.query_times(stamps), torch.tensor([[10, 20, 35, 35]]))  # reference


def test_relative_bias_looks_up_position_and_time_scalars_by_hand():
    rab = hstu.RelativeAttentionBias(n_slots=5)
    with torch.no_grad():
        rab.position.copy_(torch.arange(9.0))                          # w_p[r] = r
        rab.time.copy_(1000.0 * torch.arange(129.0))                   # w_t[b] = 1000 b
    query_slots, key_slots = torch.tensor([2, 4]), torch.tensor([0, 3, 4])
    query_times = torch.tensor([[100, 200]])
    key_times = torch.tensor([[40, 99, 200]])
    pairs = hstu.relative_pairs(query_slots, key_slots, query_times, key_times)
    bias = rab(*pairs)[0]                                              # (2, 3)
    for i, qs in enumerate(query_slots.tolist()):
        for j, ks in enumerate(key_slots.tolist()):
            dt = abs(int(query_times[0, i] - key_times[0, j]))
            bucket = min(128, math.floor(math.log(max(dt, 1)) / 0.301))
            assert bias[i, j] == (ks - qs + 4) + 1000 * bucket          # w_p[j - i + N - 1]


def test_without_time_bias_only_the_position_scalars_remain():
    rab = hstu.RelativeAttentionBias(n_slots=3, use_time=False)
    bias = rab(*hstu.relative_pairs(torch.tensor([2]), torch.tensor([0, 1, 2])))
    assert rab.time is None                                            # w_p[j - 2 + 2]
    assert torch.equal(bias[0, 0], rab.position[[0, 1, 2]].detach())


def test_time_bias_off_ignores_timestamps_and_actions_off_ignores_actions():
    model = make_model(use_actions=False, use_time_bias=False)
    batch = event_batch()
    shuffled = dict(batch, actions=batch["actions"].flip(1),
                    timestamps=batch["timestamps"] // 2)
    assert model.action_embedding is None
    assert torch.equal(model.scores(batch), model.scores(shuffled))
    assert torch.equal(model.scores(batch), model.scores(batch["history"]))  # a plain tensor


# --- labels -------------------------------------------------------------------------------------

def test_a_position_whose_next_action_is_not_positive_has_no_label():
    targets = torch.tensor([[0, 7, 8, 9]])
    actions = torch.tensor([[0, 1, 2, 4]])                     # -, exposure, click, conversion
    labels = hstu.next_item_labels(targets, actions, positive_actions=(2, 3, 4))
    assert torch.equal(labels, torch.tensor([[0, 0, 8, 9]]))
    assert torch.equal(hstu.next_item_labels(targets, None, (2, 3, 4)), targets)


def test_the_loss_ignores_the_targets_of_unlabelled_positions():
    model = make_model()
    batch = training_batch(model, exposures=True)
    unlabelled = (batch["target_actions"] == 1) & (batch["inputs"] > 0)
    assert unlabelled.any()
    other = dict(batch, targets=batch["targets"].masked_fill(unlabelled, 3))
    assert torch.allclose(model.loss(batch), model.loss(other))
    clicked = dict(batch, target_actions=batch["target_actions"].masked_fill(unlabelled, 2))
    assert not torch.allclose(model.loss(batch), model.loss(clicked))


# --- stochastic length --------------------------------------------------------------------------

def test_stochastic_length_keeps_short_sequences_whole():
    real = torch.ones(50, 30, dtype=torch.bool)                        # n = 30 <= 100^0.75
    assert torch.equal(hstu.stochastic_length(real, max_len=100, alpha=1.5), real)
    long = torch.ones(50, 100, dtype=torch.bool)
    assert torch.equal(hstu.stochastic_length(long, max_len=100, alpha=2.0), long)


def test_stochastic_length_keeps_all_or_a_subsequence_of_n_to_the_alpha_half():
    gen = torch.Generator().manual_seed(0)
    real = pad_left([np.arange(1, 51)] * 4000, 60) > 0                 # n = 50, N = 100
    keep = hstu.stochastic_length(real, max_len=100, alpha=1.5, generator=gen)
    lengths = keep.sum(1)
    assert not (keep & ~real).any()                                    # padding never kept
    assert set(lengths.tolist()) == {50, 31}                           # floor(100^0.75) = 31
    p_subsample = 1 - 100 ** 1.5 / 50 ** 2                             # 0.6
    assert abs(float((lengths == 31).double().mean()) - p_subsample) < 0.03  # 4 s.d.


def test_stochastic_length_draws_its_subsequence_from_every_position():
    gen = torch.Generator().manual_seed(1)
    real = torch.ones(2000, 50, dtype=torch.bool)
    keep = hstu.stochastic_length(real, max_len=100, alpha=1.5, generator=gen)
    subsampled = keep[keep.sum(1) == 31].double().mean(0)              # each position ~ 31/50
    assert (subsampled - 31 / 50).abs().max() < 0.1


def test_keep_columns_moves_kept_events_right_in_order():
    x = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    keep = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 0, 1, 0]], dtype=torch.bool)
    assert torch.equal(hstu.keep_columns(x, keep), torch.tensor([[1, 3, 4], [0, 0, 8]]))


def test_stochastic_length_changes_the_training_loss_only_in_training_mode():
    model = make_model(max_len=MAX_LEN, stochastic_length_alpha=1.2)  # keeps 3 of 8 events
    batch = training_batch(model)
    plain = make_model(max_len=MAX_LEN)
    plain.load_state_dict(model.state_dict())
    assert torch.allclose(model.loss(batch), plain.loss(batch))        # eval mode: off
    torch.manual_seed(0)
    model.train(), plain.train()
    assert not torch.allclose(model.loss(batch), plain.loss(batch))


# --- M-FALCON ---------------------------------------------------------------------------------

def test_falcon_mask_lets_candidates_see_the_history_and_themselves_only():
    mask = hstu.falcon_mask(torch.tensor([[False, True, True]]), n_candidates=2)[0]
    assert torch.equal(mask.int(), torch.tensor([
        [0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],          # candidate 1: the real history and itself
        [0, 1, 1, 0, 1]]))        # candidate 2: not candidate 1


@pytest.mark.parametrize("divisor", hstu.DIVISORS)
def test_microbatched_candidates_equal_scoring_one_at_a_time(divisor):
    model = make_model(divisor=divisor)
    batch = event_batch(batch=3)
    candidates = torch.randint(1, N_ITEMS + 1, (3, 11), generator=torch.Generator().manual_seed(0))
    one_at_a_time = model.score_candidates(batch, candidates, microbatch=1, reuse_history=False)
    falcon = model.score_candidates(batch, candidates, microbatch=4)   # KV cache, 3 passes
    all_in_one_pass = model.score_candidates(batch, candidates, microbatch=11,
                                             reuse_history=False)
    assert torch.allclose(falcon, one_at_a_time, atol=1e-5)
    assert torch.allclose(all_in_one_pass, one_at_a_time, atol=1e-5)


def test_a_candidates_score_does_not_depend_on_the_other_candidates():
    model = make_model()
    batch = event_batch(batch=2)
    candidates = torch.tensor([[3, 5, 7], [9, 9, 2]])
    scores = model.score_candidates(batch, candidates, microbatch=3, reuse_history=False)
    reversed_ = model.score_candidates(batch, candidates.flip(1), microbatch=3,
                                       reuse_history=False)
    assert torch.allclose(scores, reversed_.flip(1), atol=1e-6)
    assert torch.allclose(scores[1, 0], scores[1, 1])                 # the same item twice


def test_ranking_weight_trains_the_ranking_head():
    batch = training_batch(make_model())
    for weight, trained in [(0.0, False), (1.0, True)]:
        model = make_model(ranking_weight=weight).train()
        model.loss(batch).backward()
        assert (model.ranking_head.weight.grad is not None) == trained


# --- the loss and the scores --------------------------------------------------------------------

@pytest.mark.parametrize("n_negatives", [2, 3])    # 10 items > 2 x 4: gathered; <= 3 x 4: matmul
def test_loss_is_sampled_softmax_of_cosines_over_temperature_without_accidental_hits(
        n_negatives):
    gen = torch.Generator().manual_seed(0)
    queries, table = torch.randn(3, 4, generator=gen), torch.randn(10, 4, generator=gen)
    labels = torch.tensor([1, 5, 9])
    negatives = torch.tensor([[2, 1, 4], [5, 7, 8], [3, 6, 9]])[:, :n_negatives]
    terms = []
    for m in range(3):
        cos = lambda i: F.cosine_similarity(queries[m], table[i], dim=0) / 0.05  # noqa: E731
        others = [cos(i) for i in negatives[m].tolist() if i != labels[m]]   # hits left out
        logits = torch.stack([cos(labels[m])] + others)
        terms.append(-torch.log_softmax(logits, 0)[0])
    expected = torch.stack(terms).mean()
    loss = hstu.normalised_sampled_softmax_loss(queries, table, labels, negatives, 0.05)
    assert torch.allclose(loss, expected, atol=1e-5)


def test_model_loss_is_the_normalised_sampled_softmax_of_its_labelled_positions():
    model = make_model()
    batch = training_batch(model)
    valid = (batch["targets"] > 0) & (batch["inputs"] > 0)
    hidden = model._encode_history(batch["inputs"], batch["actions"], batch["timestamps"],
                                   batch["target_timestamps"])[0]
    expected = hstu.normalised_sampled_softmax_loss(hidden[valid], model.item_embedding.weight,
                                                    batch["targets"][valid],
                                                    batch["negatives"][valid], 0.05)
    assert torch.allclose(model.loss(batch), expected)


def test_scores_are_cosines_of_the_last_output_with_every_item():
    model = make_model()
    batch = event_batch()
    hidden = model(batch["history"], batch["actions"], batch["timestamps"],
                   batch["target_timestamps"])[:, -1]                  # (B, D)
    expected = F.cosine_similarity(hidden[:, None], model.item_embedding.weight[None], dim=-1)
    scores = model.scores(batch)
    assert scores.shape == (4, N_ITEMS + 1) and (scores[:, 0] == float("-inf")).all()
    assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-5)


def test_item_index_returns_the_top_of_the_scores():
    model = make_model()
    batch = event_batch()
    index = ItemIndex(model.item_vectors())
    _, items = index.search(model.query_vectors(batch), 5)
    assert torch.equal(items, model.scores(batch).topk(5).indices)


# --- bad input ----------------------------------------------------------------------------------

def test_timestamps_that_go_backwards_raise():
    batch = event_batch(batch=1, min_length=MAX_LEN)
    batch["timestamps"][0, 3] = batch["timestamps"][0, 2] - 1
    with pytest.raises(ValueError, match="go backwards.*sort each user's events"):
        make_model().scores(batch)


def test_a_request_time_before_the_last_event_raises():
    batch = event_batch(batch=1)
    batch["target_timestamps"] = batch["timestamps"][:, -1] - 10
    with pytest.raises(ValueError, match="before the event's own"):
        make_model().scores(batch)


@pytest.mark.parametrize("bad", [5, -1])
def test_actions_outside_the_vocabulary_raise(bad):
    batch = event_batch(batch=1, min_length=MAX_LEN)
    batch["actions"][0, 2] = bad
    with pytest.raises(ValueError, match=rf"action id {bad}.*\[1, 4\]"):
        make_model().scores(batch)


@pytest.mark.parametrize("field", ["actions", "timestamps"])
def test_events_of_a_different_shape_than_the_history_raise(field):
    batch = event_batch()
    batch[field] = batch[field][:, 1:]
    with pytest.raises(ValueError, match=f"{field} .* must have the shape of history"):
        make_model().scores(batch)


def test_right_padded_history_raises_and_says_to_pad_left():
    batch = event_batch(batch=1, min_length=MAX_LEN)
    batch["history"][0, -1] = 0
    with pytest.raises(ValueError, match="padded on the LEFT"):
        make_model().scores(batch)


def test_missing_timestamps_say_how_to_switch_the_time_bias_off():
    batch = event_batch()
    del batch["timestamps"]
    with pytest.raises(ValueError, match=r"use_time_bias=False"):
        make_model().scores(batch)


def test_an_empty_history_raises():
    batch = event_batch(batch=2)
    for name in ("history", "actions", "timestamps"):
        batch[name][1] = 0
    with pytest.raises(ValueError, match="row 1 is empty"):
        make_model().scores(batch)


def test_loss_without_negatives_says_how_to_make_them():
    model = make_model()
    batch = training_batch(model, n_negatives=0)
    with pytest.raises(ValueError, match="n_negatives=128"):
        model.loss(batch)


@pytest.mark.parametrize("candidates, phrase", [
    (torch.tensor([[1, N_ITEMS + 1]] * 4), "item id 31"),
    (torch.tensor([[1, 0]] * 4), "candidates hold 0"),
    (torch.tensor([[1, 2]] * 3), r"\(4, m >= 1\)"),
])
def test_bad_candidates_raise(candidates, phrase):
    with pytest.raises(ValueError, match=phrase):
        make_model().score_candidates(event_batch(), candidates)


# --- learning -----------------------------------------------------------------------------------

@pytest.fixture
def one_thread():
    """One torch thread for a training run: on a busy 2-core machine two threads contend
    (an epoch took 14 s with two against 2 s with one when measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_one_epoch_on_the_quick_world_beats_replaying_the_history(one_thread):
    """One epoch (8 steps) of a small HSTU on the quick world (1000 users), the slowest test
    of this file: 3 to 7 s with the world built and evaluated. The world's users come back to
    what they consumed and its split allows repeats, so the honest rule to beat is the
    strongest one that learns nothing: the history replayed newest first, then popularity."""
    from course_lib.data.datasets import load_dataset
    from course_lib.models.baselines import Popularity, Replay
    from course_lib.train import evaluate_model, fit

    split = load_dataset("world").split
    valid = split.evaluation("valid")
    assert valid.seen == "allow"
    torch.manual_seed(0)
    model = HSTU(HSTUConfig(split.n_items, max_len=50, d_model=32))
    fit(model, lambda e: next_item_batches(split.train, split.n_items, 50, 128, 128, seed=e,
                                           actions=split.actions, timestamps=split.timestamps),
        epochs=1, lr=1e-2, progress=False)
    hstu_ndcg = evaluate_model(model, valid)["NDCG@10"]
    popularity = evaluate_model(Popularity(split.train, split.n_items), valid)["NDCG@10"]
    replay = evaluate_model(Replay(split.train, split.n_items), valid)["NDCG@10"]
    assert replay > popularity                  # re-consumption is worth something: .121 > .102
    # Measured with torch seeds 0, 1, 2 and 1 or 2 threads: HSTU .239-.279 (equal across
    # threads), replay .121; the margin 0.08 leaves 0.04 below the weakest seed.
    assert hstu_ndcg > replay + 0.08, (hstu_ndcg, replay, popularity)
