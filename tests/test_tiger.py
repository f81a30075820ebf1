"""TIGER: the vocabulary, teacher forcing, training with `fit`, constrained beam search against
exhaustive scoring, temperatures, the cold-item cap, and the errors at its boundary."""
import math

import numpy as np
import pytest
import torch

from course_lib.data.sequences import next_item_examples
from course_lib.models.tiger import (TIGER, TIGERConfig, Vocabulary, cap_cold_items,
                                     with_prefix_matches)
from course_lib.retrieval import BeamResult
from course_lib.quantize.semantic_ids import SemanticIds
from course_lib.train import evaluate_model, fit

N_ITEMS = 24


def tiny_config(**changes) -> TIGERConfig:
    sizes = dict(encoder_layers=1, decoder_layers=1, n_heads=2, d_head=8, d_model=16, d_mlp=32,
                 dropout=0.0, max_items=4, n_user_buckets=8)
    return TIGERConfig(**{**sizes, **changes})


@pytest.fixture
def semantic_ids() -> SemanticIds:
    """24 items, 2 code levels of 4 codes: 16 code pairs, so some items collide."""
    codes = torch.randint(0, 4, (N_ITEMS, 2), generator=torch.Generator().manual_seed(0))
    return SemanticIds.from_codes(codes, [4, 4])


@pytest.fixture
def model(semantic_ids) -> TIGER:
    torch.manual_seed(0)
    return TIGER(semantic_ids, tiny_config()).eval()


@pytest.fixture
def batch() -> dict:
    return {"users": torch.tensor([3, 11, 5]),
            "history": torch.tensor([[0, 0, 4, 9], [1, 2, 3, 5], [0, 0, 0, 17]])}


# --- the vocabulary ---------------------------------------------------------------------------

def test_vocabulary_gives_each_position_its_own_range_after_the_special_tokens():
    vocabulary = Vocabulary([256, 256, 256, 4], n_user_buckets=2000)
    ranges = [vocabulary.level_range(d) for d in range(4)]
    tokens = [t for r in ranges for t in r] + list(range(vocabulary.user_offset, vocabulary.size))
    assert len(tokens) == len(set(tokens)) == 3 * 256 + 4 + 2000    # no overlap
    assert min(tokens) == 2 and Vocabulary.PAD == 0 and Vocabulary.BOS == 1  # specials reserved
    assert vocabulary.size == 2 + 3 * 256 + 4 + 2000
    assert [r.start for r in ranges] == [2, 258, 514, 770]


def test_vocabulary_encode_and_decode_are_inverse(semantic_ids):
    vocabulary = Vocabulary(semantic_ids.vocab_sizes, 8)
    tokens = vocabulary.encode(semantic_ids.table)                    # (I, M)
    assert torch.equal(vocabulary.decode(tokens), semantic_ids.table)
    for d in range(vocabulary.depth):
        assert set(tokens[:, d].tolist()) <= set(vocabulary.level_range(d))


def test_vocabulary_prints_its_layout():
    text = repr(Vocabulary([4, 4, 2], n_user_buckets=8))
    assert "padding" in text and "begin" in text and "collision" in text and "user" in text
    assert "2 .. 5" in text and "10 .. 11" in text and "12 .. 19" in text


def test_user_tokens_are_hashed_into_the_user_range():
    vocabulary = Vocabulary([4, 4, 2], n_user_buckets=8)
    tokens = vocabulary.user_tokens(torch.arange(1000))
    assert tokens.min() >= vocabulary.user_offset and tokens.max() < vocabulary.size
    assert len(tokens.unique()) == 8                                  # every bucket used
    assert torch.equal(tokens, vocabulary.user_tokens(torch.arange(1000)))  # deterministic


def test_config_defaults_are_the_papers():
    config = TIGERConfig()
    assert (config.encoder_layers, config.decoder_layers) == (4, 4)
    assert (config.n_heads, config.d_head) == (6, 64)
    assert (config.d_model, config.d_mlp, config.dropout) == (128, 1024, 0.1)
    assert (config.max_items, config.n_user_buckets) == (20, 2000)


# --- teacher forcing and training --------------------------------------------------------------

def test_teacher_forcing_is_causal(model, batch, semantic_ids):
    ids = semantic_ids.table[[0, 5, 7]]                                # (B, M)
    before = model(batch, ids)                                         # (B, M, sum V_d)
    for d in range(ids.shape[1]):
        changed = ids.clone()
        changed[:, d] = (changed[:, d] + 1) % semantic_ids.vocab_sizes[d]
        after = model(batch, changed)
        assert torch.equal(before[:, :d + 1], after[:, :d + 1]), f"token {d} leaked backwards"
        if d + 1 < ids.shape[1]:
            assert not torch.allclose(before[:, d + 1], after[:, d + 1])


def test_logits_live_only_in_each_positions_range(model, batch, semantic_ids):
    logits = model(batch, semantic_ids.table[:3])
    for d in range(logits.shape[1]):
        start = model.vocabulary.level_range(d).start - model.vocabulary.code_tokens.start
        inside = torch.zeros(logits.shape[-1], dtype=torch.bool)
        inside[start:start + semantic_ids.vocab_sizes[d]] = True
        assert torch.isfinite(logits[:, d, inside]).all()
        assert torch.isinf(logits[:, d, ~inside]).all()


def test_loss_falls_on_a_tiny_overfit_task(semantic_ids):
    torch.manual_seed(0)
    train = {u: np.array([u, u + 1, u + 2, u + 3]) for u in range(1, 9)}
    model = TIGER(semantic_ids, tiny_config())
    first = model.loss(next(next_item_examples(train, 4, 64))).item()
    result = fit(model, lambda epoch: next_item_examples(train, 4, 64, seed=epoch), steps=30,
                 lr=1e-2, optimizer="adamw", progress=False)
    assert result.train_loss[-1] < 0.3 * first


def test_fit_learns_a_successor_pattern(successor_split):
    """Item i is followed by i + 1: TIGER learns it from the tokens of the semantic IDs."""
    torch.manual_seed(0)
    n_items = successor_split.n_items
    codes = torch.stack([torch.arange(n_items) // 6, torch.arange(n_items) % 6], dim=1)
    model = TIGER(SemanticIds.from_codes(codes, [5, 6]), tiny_config(d_model=32, d_mlp=64))
    fit(model, lambda epoch: next_item_examples(successor_split.train, 4, 64, seed=epoch),
        epochs=5, lr=1e-2, optimizer="adamw", progress=False)
    hr = evaluate_model(model, successor_split.evaluation("valid"))["HR@10"]
    assert hr > 0.9


# --- beam search, exhaustive scoring and recommend ---------------------------------------------

def test_recommend_returns_k_distinct_real_items_outside_the_history(model, batch):
    top = model.recommend(batch, k=8, beam=16)                         # (B, k)
    assert top.shape == (3, 8)
    for row, history in zip(top.tolist(), batch["history"].tolist()):
        assert all(1 <= item <= N_ITEMS for item in row)
        assert len(set(row)) == 8 and not set(row) & set(history)


def test_full_beam_equals_ranking_every_valid_id_by_sequence_log_probs(model, batch, semantic_ids):
    k = 10
    top = model.recommend(batch, k=k, beam=N_ITEMS)                    # beam covers the catalogue
    scores = model.sequence_log_probs(batch, semantic_ids.table)       # (B, I): item i at i - 1
    for row in range(3):
        seen = batch["history"][row]
        scores[row, seen[seen > 0] - 1] = float("-inf")
    exhaustive = scores.argsort(dim=1, descending=True, stable=True)[:, :k] + 1
    assert torch.equal(top, exhaustive)


def test_beam_scores_are_the_ids_log_probabilities(model, batch):
    result = model.generate(batch, beam=5, temperature=0.7)
    exact = model.sequence_log_probs(batch, result.ids, temperature=0.7)   # (B, W)
    assert torch.allclose(result.log_probs, exact, atol=1e-5)
    assert (result.log_probs[:, :-1] >= result.log_probs[:, 1:]).all()     # best first


def test_numpy_integers_work_as_k_and_beam(model, batch):
    assert torch.equal(model.recommend(batch, k=np.int64(5), beam=np.int64(10)),
                       model.recommend(batch, k=5, beam=10))


def test_batched_recommendations_equal_one_user_at_a_time(model, batch):
    together = model.recommend(batch, k=5, beam=10)
    alone = torch.cat([model.recommend({name: value[row:row + 1] for name, value in batch.items()},
                                       k=5, beam=10) for row in range(3)])
    assert torch.equal(together, alone)


def test_per_position_temperature_scales_each_position_alone(model, batch, semantic_ids):
    ids = semantic_ids.table[:6]
    plain = model.sequence_log_probs(batch, ids, per_position=True)    # (B, C, M)
    hot = model.sequence_log_probs(batch, ids, temperature=[1e4, 1.0, 1.0], per_position=True)
    assert torch.allclose(hot[..., 0], torch.full_like(hot[..., 0], -math.log(4)), atol=1e-3)
    assert torch.allclose(hot[..., 1:], plain[..., 1:])                # other positions untouched
    assert torch.allclose(plain.sum(-1), model.sequence_log_probs(batch, ids))
    same = model.recommend(batch, k=5, beam=10, temperature=[0.5, 0.5, 0.5])
    assert torch.equal(same, model.recommend(batch, k=5, beam=10, temperature=0.5))


def test_unconstrained_search_can_write_ids_that_name_no_item(semantic_ids):
    sparse = SemanticIds(semantic_ids.table[:6], semantic_ids.vocab_sizes)  # 6 of 48 IDs valid
    torch.manual_seed(0)
    small = TIGER(sparse, tiny_config())
    batch = {"users": torch.tensor([1, 2]), "history": torch.tensor([[0, 1, 2], [3, 4, 5]])}
    free = small.generate(batch, beam=6, constrained=False)
    kept = small.generate(batch, beam=6)
    assert (sparse.item_of(free.ids.flatten(0, 1)) == 0).any()
    assert (sparse.item_of(kept.ids.flatten(0, 1)) > 0).all()


def test_cold_cap_keeps_the_best_cold_items_and_fills_from_the_next_beams():
    cold = torch.zeros(10, dtype=torch.bool)
    cold[[2, 3, 4]] = True
    items = torch.tensor([[2, 5, 3, 6, 4, 7, 0]])
    assert cap_cold_items(items, cold, 1).tolist() == [[2, 5, 6, 7, 0, 0, 0]]
    assert cap_cold_items(items, cold, 0).tolist() == [[5, 6, 7, 0, 0, 0, 0]]
    assert torch.equal(cap_cold_items(items, cold, 3), items)


def test_recommend_caps_the_share_of_cold_items(model, batch):
    cold = torch.zeros(N_ITEMS + 1, dtype=torch.bool)
    cold[1::2] = True                                                  # odd items are cold
    free = model.recommend(batch, k=6, beam=20)
    capped = model.recommend(batch, k=6, beam=20, cold_items=cold, max_cold_share=0.34)
    assert (cold[capped].sum(dim=1) <= 2).all()                        # floor(0.34 * 6) = 2
    assert (cold[free].sum(dim=1) > 2).any(), "the cap should have had something to remove"
    assert torch.equal(model.recommend(batch, k=6, beam=20, cold_items=cold, max_cold_share=1.0),
                       free)


def test_a_generated_id_retrieves_the_cold_items_under_its_first_codes():
    table = torch.tensor([[0, 1, 0], [0, 1, 1], [2, 0, 0], [0, 2, 0], [2, 0, 1]])   # items 1..5
    ids = SemanticIds(table, [3, 3, 2])
    cold = torch.tensor([False, False, True, False, False, True])          # items 2 and 5
    beams = BeamResult(ids=torch.tensor([[[0, 1, 0], [0, 2, 0], [-1, -1, -1]]]),
                       log_probs=torch.tensor([[-1.0, -2.0, float("-inf")]]))
    # item 1, then cold item 2 (same first two codes), then item 4; item 5 is under no beam
    assert with_prefix_matches(beams, ids, cold, 2).tolist() == [[1, 2, 4]]
    assert with_prefix_matches(beams, ids, cold, 3).tolist() == [[1, 4, 0]]   # full IDs only
    assert with_prefix_matches(beams, ids, cold, 1).tolist() == [[1, 2, 4]]   # 5 starts with 2
    with pytest.raises(ValueError, match="length must be an int in"):
        with_prefix_matches(beams, ids, cold, 0)


def test_recommend_with_a_cold_prefix_reaches_cold_items_only_through_the_cap(model, batch):
    cold = torch.zeros(N_ITEMS + 1, dtype=torch.bool)
    cold[1::3] = True
    by_prefix = model.recommend(batch, k=6, beam=6, cold_items=cold, max_cold_share=0.5,
                                cold_prefix=1, exclude_history=False)
    none = model.recommend(batch, k=6, beam=6, cold_items=cold, max_cold_share=0.0,
                           cold_prefix=1, exclude_history=False)
    assert (cold[by_prefix].sum(dim=1) <= 3).all() and not cold[none].any()
    beams = model.recommend(batch, k=6, beam=6, exclude_history=False)     # the 6 beams' items
    assert any(set(p) - set(b) for p, b in zip(by_prefix.tolist(), beams.tolist())), \
        "a prefix reaches cold items that no beam wrote"
    seen = model.recommend(batch, k=6, beam=6, cold_items=cold, max_cold_share=0.5,
                           cold_prefix=1)
    assert not any(set(r) & (set(h) - {0}) for r, h in zip(seen.tolist(),
                                                            batch["history"].tolist()))


def test_sampled_ids_are_valid_and_a_tiny_temperature_is_greedy(model, batch):
    drawn = model.sample(batch, 50, temperature=2.0, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 50, model.vocabulary.depth)
    assert (model.semantic_ids.item_of(drawn.flatten(0, 1)) > 0).all()
    greedy = model.sample(batch, 2, temperature=1e-4)
    assert torch.equal(greedy[:, 0], model.generate(batch, beam=1).ids[:, 0])
    assert torch.equal(greedy[:, 0], greedy[:, 1])


def test_the_model_works_without_user_tokens(semantic_ids, batch):
    torch.manual_seed(0)
    model = TIGER(semantic_ids, tiny_config(n_user_buckets=0))
    assert model.recommend({"history": batch["history"]}, k=3).shape == (3, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_semantic_ids_move_with_the_model(model, batch):
    moved = model.to("cuda")
    top = moved.recommend({k: v.cuda() for k, v in batch.items()}, k=5, beam=10)
    assert top.device.type == "cuda" and moved.semantic_ids.device.type == "cuda"


# --- errors that say what to fix ----------------------------------------------------------------

@pytest.mark.parametrize("call, phrase", [
    (lambda m, b, s: TIGER(torch.tensor([[0, 1], [0, 1]]), tiny_config()), "collision token"),
    (lambda m, b, s: TIGER(s.table, tiny_config()), "SemanticIds"),
    (lambda m, b, s: m.vocabulary.encode(s.table[:, :2]), "collision token"),
    (lambda m, b, s: m(b, s.table[:3, :2]), "M = 3 columns"),
    (lambda m, b, s: m.recommend(b, k=N_ITEMS + 1), r"k must be an int in \[1, 24\]"),
    (lambda m, b, s: m.recommend(b, k=5, beam=4), "beam must be an int >= k = 5"),
    (lambda m, b, s: m.recommend({**b, "history": b["history"] + 30}, k=5), "item id 47"),
    (lambda m, b, s: m.recommend({**b, "history": b["history"] - 1}, k=5), "item id -1"),
    (lambda m, b, s: m.recommend(b, k=5, temperature=0.0), "temperatures must be finite and > 0"),
    (lambda m, b, s: m.recommend(b, k=5, temperature=[1.0, -1.0, 1.0]), "> 0"),
    (lambda m, b, s: m.recommend(b, k=5, temperature=[1.0, 1.0]), "one per position"),
    (lambda m, b, s: m.recommend({**b, "history": b["history"].flip(1)}, k=5), "LEFT"),
    (lambda m, b, s: m.recommend({"history": b["history"]}, k=5), "needs 'users'"),
    (lambda m, b, s: m.loss({**b, "targets": torch.tensor([1, 0, 2])}), "item id 0"),
    (lambda m, b, s: m.loss(b), "'targets'"),
    (lambda m, b, s: m.recommend(b, k=5, max_cold_share=0.5), "needs both"),
    (lambda m, b, s: m.recommend(b, k=5, cold_items=torch.zeros(5, dtype=torch.bool),
                                 max_cold_share=0.5), r"\(I \+ 1,\) = \(25,\)"),
    (lambda m, b, s: m.sequence_log_probs(b, s.table[None, :2]), "B = 3"),
    (lambda m, b, s: TIGERConfig(n_heads=0), "sizes must be ints >= 1"),
])
def test_bad_input_says_what_to_fix(model, batch, semantic_ids, call, phrase):
    with pytest.raises((ValueError, TypeError), match=phrase):
        call(model, batch, semantic_ids)
