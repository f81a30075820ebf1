"""PinRec (course_lib.models.pinrec): the window of positives, the outcome head, the loss and
its window aggregation, budgeted retrieval with near-duplicate merging, and bad input."""
import numpy as np
import pytest
import torch

from course_lib import seed_everything
from course_lib.data.sequences import Split
from course_lib.models.pinrec import (PinRec, PinRecConfig, budgeted_merge, engagement_batches,
                                      future_window, merge_near_duplicates)
from course_lib.retrieval import ItemIndex
from course_lib.train import fit

t = torch.tensor


def tiny_split(n_users=12, n_items=30, length=9, seed=0):
    rng = np.random.default_rng(seed)
    train, actions, times = {}, {}, {}
    for u in range(1, n_users + 1):
        train[u] = rng.integers(1, n_items + 1, length)
        actions[u] = rng.integers(2, 5, length + 2)
        times[u] = np.cumsum(rng.integers(1, 100, length + 2))
    return Split(train, {u: 1 for u in train}, {u: 2 for u in train}, n_items,
                 actions=actions, timestamps=times)


def test_future_window_takes_the_next_items_and_stops_at_the_end_and_at_padding():
    items = t([[0, 5, 6, 7, 8]])
    times = t([[0, 10, 20, 30, 40]])
    got = future_window(items, times, window=2)
    assert got.tolist() == [[[0, 0], [6, 7], [7, 8], [8, 0], [0, 0]]]
    assert future_window(items, times, window=1)[..., 0].tolist() == [[0, 6, 7, 8, 0]]


def test_future_window_max_gap_is_measured_from_the_first_positive_which_is_always_kept():
    items = t([[1, 2, 3, 4]])
    times = t([[0, 1000, 1005, 5000]])
    got = future_window(items, times, window=3, max_gap=100)
    assert got[0, 0].tolist() == [2, 3, 0]        # 4 comes 4000 s after 2
    assert got[0, 2].tolist() == [4, 0, 0]        # the next item, however late


def test_budgeted_merge_skips_duplicates_and_padding_and_keeps_the_outcome_order():
    lists = [t([[1, 2, 3, 4]]), t([[2, 0, 5, 6]])]
    assert budgeted_merge(lists, [2, 2]).tolist() == [[1, 2, 5, 6]]
    assert budgeted_merge(lists[::-1], [2, 2]).tolist() == [[2, 5, 1, 3]]


def test_near_duplicate_queries_are_merged_into_the_earlier_one_with_budgets_summed():
    q = torch.nn.functional.normalize(t([[1.0, 0.0], [0.999, 0.01], [0.0, 1.0]]), dim=1)
    assert merge_near_duplicates(q, [3, 4, 5], threshold=0.99) == ([0, 2], [7, 5])
    assert merge_near_duplicates(q, [3, 4, 5], threshold=0.9999999) == ([0, 1, 2], [3, 4, 5])


def test_engagement_batches_align_positives_and_their_actions_with_the_inputs():
    split = tiny_split()
    batch = next(engagement_batches(split, max_len=5, batch_size=4, window=2))
    u = int(batch["users"][0])
    seq, acts = split.train[u], split.actions[u]
    assert batch["inputs"][0].tolist() == seq[-6:-1].tolist()
    assert batch["positives"][0, :, 0].tolist() == seq[-5:].tolist()
    assert batch["positive_actions"][0, :, 0].tolist() == acts[len(seq) - 5:len(seq)].tolist()
    assert batch["positives"][0, -1].tolist() == [seq[-1], 0]


def test_an_item_token_starts_at_the_size_of_a_position_and_padding_at_zero():
    # M sqrt(d) and P enter the first block at the same size (SASRec's scale): at torch's
    # N(0, 1) the item was sqrt(d) times larger and MovieLens stayed at chance
    seed_everything(0)
    d = 64
    model = PinRec(PinRecConfig(500, max_len=50, d_model=d))
    item = (model.item_embedding.weight[1:] * d ** 0.5).norm(dim=-1).mean()
    position = model.position_embedding.weight.norm(dim=-1).mean()
    assert 0.8 < (item / position).item() < 1.25
    assert not model.item_embedding.weight[0].any()


def test_the_outcome_changes_the_query_but_never_the_backbone():
    seed_everything(0)
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16)).eval()
    batch = {"history": t([[0, 3, 4, 5]]), "actions": t([[0, 2, 3, 4]])}
    hidden = model(batch["history"], batch["actions"])
    assert torch.allclose(hidden, model(batch["history"], batch["actions"]))
    click, conversion = model.query_vectors(batch, "click"), model.query_vectors(batch, "conversion")
    assert not torch.allclose(click, conversion)
    assert torch.allclose(click.norm(dim=-1), torch.ones(1))
    flat = PinRec(PinRecConfig(30, max_len=8, d_model=16, conditioned=False)).eval()
    assert torch.allclose(flat.query_vectors(batch, "click"), flat.query_vectors(batch, "conversion"))


@pytest.mark.parametrize("window_loss", ["min", "mean"])
def test_training_lowers_the_loss(window_loss):
    seed_everything(0)
    split = tiny_split()
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16, window=3, window_loss=window_loss,
                                n_in_batch=16, n_random=16, dropout=0.0))
    batches = lambda epoch: engagement_batches(split, 8, 12, window=3, seed=epoch)
    first = model.loss(next(batches(0))).item()
    fit(model, batches, epochs=30, lr=1e-2, progress=False)
    assert model.loss(next(batches(0))).item() < first


def test_min_window_loss_is_at_most_the_mean_one():
    seed_everything(0)
    split = tiny_split()
    batch = next(engagement_batches(split, 8, 12, window=3))
    losses = {}
    for window_loss in ("min", "mean"):
        seed_everything(1)
        model = PinRec(PinRecConfig(30, max_len=8, d_model=16, window=3, window_loss=window_loss,
                                    dropout=0.0))
        seed_everything(2)                               # the same negatives
        losses[window_loss] = model.loss(batch).item()
    assert losses["min"] <= losses["mean"]


def test_recommend_fills_the_budgets_without_duplicates_and_without_history():
    seed_everything(0)
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16)).eval()
    batch = {"history": t([[0, 3, 4, 5], [1, 2, 3, 4]]), "actions": t([[0, 2, 3, 4], [2, 2, 2, 2]])}
    top = model.recommend(batch, {"click": 4, "conversion": 3}, exclude_history=True)
    assert top.shape == (2, 7)
    for row, hist in zip(top.tolist(), batch["history"].tolist()):
        assert len(set(row)) == 7 and not set(row) & set(hist) and 0 not in row
    single = model.recommend(batch, {"click": 7}, exclude_history=True)
    exact = ItemIndex(model.item_vectors()).search(model.query_vectors(batch, "click"), 7,
                                                    exclude=batch["history"])[1]
    assert torch.equal(single, exact)
    merged = model.recommend(batch, {"click": 4, "conversion": 3}, merge_cosine=-1.0,
                             exclude_history=True)
    assert torch.equal(merged, exact)                   # everything merged into the click query


def test_recommend_under_allow_ranks_seen_items_like_any_other():
    # the world's convention ("allow"): nothing is masked, the list is the exact top k of all
    seed_everything(0)
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16)).eval()
    batch = {"history": t([[0, 3, 4, 5], [1, 2, 3, 4]]), "actions": t([[0, 2, 3, 4], [2, 2, 2, 2]])}
    query = model.query_vectors(batch, "click")
    top = model.recommend(batch, {"click": 30}, exclude_history=False)
    assert torch.equal(top, ItemIndex(model.item_vectors()).search(query, 30)[1])
    for row, hist in zip(top.tolist(), batch["history"].tolist()):
        assert set(hist) - {0} <= set(row)              # every seen item is still a candidate


def test_numpy_integer_budgets_work_like_ints():
    seed_everything(0)
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16)).eval()
    batch = {"history": t([[0, 3, 4, 5]]), "actions": t([[0, 2, 3, 4]])}
    assert torch.equal(model.recommend(batch, {"click": np.int64(4)}, exclude_history=True),
                       model.recommend(batch, {"click": 4}, exclude_history=True))


def test_recommend_asks_which_convention_for_seen_items():
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16)).eval()
    batch = {"history": t([[0, 3, 4, 5]]), "actions": t([[0, 2, 3, 4]])}
    with pytest.raises(ValueError, match="exclude_history=True leaves the history's items out"):
        model.recommend(batch, {"click": 3})


def test_one_backbone_pass_gives_the_queries_of_every_outcome():
    # "one pass serves every outcome": the queries of outcome_queries equal those computed
    # one outcome at a time (a backbone pass each), and recommend runs the backbone once
    seed_everything(0)
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16)).eval()
    batch = {"history": t([[0, 3, 4, 5], [1, 2, 3, 4], [0, 0, 7, 9]]),
             "actions": t([[0, 2, 3, 4], [2, 2, 2, 2], [0, 0, 4, 3]])}
    names = ["conversion", "click", "like"]
    together = model.outcome_queries(batch, names)                          # (B, Q, D)
    assert together.shape == (3, 3, 16)
    for q, name in enumerate(names):
        hidden = model(batch["history"], batch["actions"])[:, -1]          # a pass per outcome
        alone = model.queries(hidden, torch.full((3,), model.outcome_id(name)))
        assert torch.allclose(together[:, q], alone, atol=1e-6)
        assert torch.allclose(together[:, q], model.query_vectors(batch, name), atol=1e-6)
    passes = []
    model.register_forward_hook(lambda module, args, out: passes.append(out.shape))
    model.recommend(batch, {"click": 2, "like": 2, "conversion": 2}, exclude_history=False)
    assert len(passes) == 1


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        PinRecConfig(30, window=0)
    with pytest.raises(ValueError, match="one action id per outcome"):
        PinRecConfig(30, outcomes=("click",), outcome_actions=(2, 3))
    with pytest.raises(ValueError, match="max_gap"):
        PinRecConfig(30, max_gap=0)
    model = PinRec(PinRecConfig(30, max_len=8, d_model=16)).eval()
    batch = {"history": t([[0, 3, 4, 5]]), "actions": t([[0, 2, 3, 4]])}
    with pytest.raises(ValueError, match="unknown outcome 'save'"):
        model.recommend(batch, {"save": 3}, exclude_history=False)
    with pytest.raises(ValueError, match="add up to a positive k"):
        model.recommend(batch, {"click": 0}, exclude_history=False)
    with pytest.raises(ValueError, match="must be an int >= 0"):
        model.recommend(batch, {"click": -2, "like": 5}, exclude_history=False)
    with pytest.raises(ValueError, match="at least one outcome"):
        model.outcome_queries(batch, [])
    with pytest.raises(ValueError, match="reads the history's actions"):
        model.scores(batch["history"])
    with pytest.raises(ValueError, match="actions must be ids"):
        model.scores({"history": batch["history"], "actions": t([[0, 2, 3, 9]])})
    with pytest.raises(ValueError, match="window must be >= 1"):
        future_window(batch["history"], batch["history"], window=0)
