"""Sequences, the leave-one-out split, padding, batches and negatives."""
import numpy as np
import pandas as pd
import pytest
import torch

from course_lib.data.sequences import (leave_one_out, next_item_batches, pad_left,
                                       sample_negatives, split_sequence, user_events,
                                       user_sequences)


@pytest.fixture
def frame():
    return pd.DataFrame({"user": [2, 1, 1, 1, 2, 2, 1],
                         "item": [5, 3, 1, 2, 4, 6, 7],
                         "timestamp": [10, 30, 10, 20, 20, 30, 40],
                         "action": ["click", "click", "click", "exposure", "like", "click", "click"]})


def test_sequences_are_in_time_order(frame):
    seqs = user_sequences(frame)
    assert seqs[1].tolist() == [1, 2, 3, 7] and seqs[2].tolist() == [5, 4, 6]


def test_actions_filter_drops_exposures(frame):
    assert user_sequences(frame, actions=("click", "like"))[1].tolist() == [1, 3, 7]


def test_leave_one_out_takes_last_for_test_and_second_to_last_for_valid(frame):
    split = leave_one_out(user_sequences(frame), n_items=7)
    assert split.train[1].tolist() == [1, 2] and split.valid[1] == 3 and split.test[1] == 7
    assert split.train[2].tolist() == [5] and split.valid[2] == 4 and split.test[2] == 6


def test_short_users_are_dropped_and_counted():
    split = leave_one_out({1: np.array([1, 2, 3]), 2: np.array([1, 2])}, n_items=3)
    assert list(split.train) == [1] and split.n_dropped == 1


def test_test_history_includes_the_valid_item(frame):
    split = leave_one_out(user_sequences(frame), n_items=7)
    test = split.evaluation("test")
    row = test.users.tolist().index(1)
    assert test.history[row].tolist()[-3:] == [1, 2, 3] and test.targets[row] == 7


def test_pad_left_right_aligns_and_truncates_oldest():
    out = pad_left([[1, 2], [1, 2, 3, 4, 5]], max_len=3)
    assert out.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_negatives_never_come_from_the_history():
    history = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    neg = sample_negatives(history, n_items=10, shape=(200,), generator=torch.Generator().manual_seed(0))
    assert not np.isin(neg[0].numpy(), [1, 2, 3]).any()
    assert not np.isin(neg[1].numpy(), [4, 5, 6, 7]).any()
    assert neg.min() >= 1 and neg.max() <= 10


def test_batches_are_shifted_by_one_and_repeat_with_the_seed():
    train = {u: np.arange(1, 8) for u in range(1, 6)}
    a = list(next_item_batches(train, n_items=20, max_len=4, batch_size=2, seed=5))
    b = list(next_item_batches(train, n_items=20, max_len=4, batch_size=2, seed=5))
    assert a[0]["inputs"][0].tolist() == [3, 4, 5, 6] and a[0]["targets"][0].tolist() == [4, 5, 6, 7]
    assert all(torch.equal(x["negatives"], y["negatives"]) for x, y in zip(a, b))
    assert sum(len(x["users"]) for x in a) == 5


def test_no_negatives_on_padding_positions():
    batch = next(next_item_batches({1: np.array([3, 4])}, n_items=9, max_len=5, batch_size=1))
    assert (batch["negatives"][batch["targets"] == 0] == 0).all()
    assert (batch["negatives"][batch["targets"] > 0] > 0).all()


@pytest.mark.parametrize("call, phrase", [
    (lambda: split_sequence([1, 2]), ">= 3 items"),
    (lambda: leave_one_out({1: np.array([0, 1, 2])}, n_items=5), "0 is padding"),
    (lambda: leave_one_out({1: np.array([1, 2, 9])}, n_items=5), r"must be in \[1, 5\]"),
    (lambda: leave_one_out({1: np.array([], dtype=int)}, n_items=5), "empty"),
    (lambda: leave_one_out({1: np.array([1, 2])}, n_items=5), "no user has"),
    (lambda: leave_one_out({1: np.array([1, 2, 3])}, n_items=5, min_length=2), "min_length"),
    (lambda: pad_left([[1]], max_len=0), "max_len"),
    (lambda: sample_negatives(torch.tensor([[1, 0], [1, 2]]), n_items=2, shape=(3,)),
     "history row 1 holds every one of the 2 items"),
    (lambda: sample_negatives(torch.tensor([[1, 7]]), n_items=5, shape=(3,)),
     "item id 7, outside"),
    (lambda: sample_negatives(torch.tensor([[1.0, 2.0]]), n_items=5, shape=(3,)),
     "long tensor"),
    (lambda: next(next_item_batches({1: np.array([1, 2])}, 5, 4, 2, n_negatives=-1)),
     "n_negatives must be an int >= 0"),
    (lambda: next(next_item_batches({}, 5, 4, 2)), "train is empty"),
    (lambda: leave_one_out({1: np.array([1, 2, 3])}, 5, actions={1: np.array([1, 1])}),
     "actions of user 1 do not line up"),
    (lambda: leave_one_out({1: np.array([1, 2, 3])}, 5, timestamps={1: np.array([5, 3, 9])}),
     "timestamps of user 1 go backwards"),
    (lambda: user_sequences(pd.DataFrame({"user": [1], "item": [1]})), "timestamp"),
    (lambda: next(next_item_batches({1: np.array([1, 2])}, 5, 3, batch_size=0)), "batch_size"),
])
def test_bad_input_says_what_to_fix(call, phrase):
    with pytest.raises((ValueError, TypeError), match=phrase):
        call()


# --- actions and timestamps travel with the items --------------------------------------------

def _events_frame():
    actions = pd.Categorical(["click", "exposure", "like", "click", "conversion", "click",
                              "click", "like"], categories=["exposure", "click", "like",
                                                            "conversion"], ordered=True)
    return pd.DataFrame({"user": [1, 1, 1, 1, 1, 2, 2, 2], "item": [5, 6, 7, 8, 9, 1, 2, 3],
                         "timestamp": [50, 10, 20, 30, 40, 1, 2, 3], "action": actions})


def test_user_events_line_up_with_user_sequences_under_the_same_filter():
    frame, keep = _events_frame(), ("click", "like", "conversion")
    items = user_sequences(frame, actions=keep)
    times = user_events(frame, "timestamp", actions=keep)
    actions = user_events(frame, "action", actions=keep)
    assert items[1].tolist() == [7, 8, 9, 5]             # by time; the exposure (6) is gone
    assert times[1].tolist() == [20, 30, 40, 50]
    assert actions[1].tolist() == [3, 2, 4, 2]           # category number + 1: 0 is padding


def test_evaluation_sets_carry_the_history_events_and_the_target_event():
    frame, keep = _events_frame(), ("click", "like", "conversion")
    split = leave_one_out(user_sequences(frame, actions=keep), 9,
                          actions=user_events(frame, "action", actions=keep),
                          timestamps=user_events(frame, "timestamp", actions=keep))
    test = split.evaluation("test")
    row = int((test.users == 1).nonzero())
    assert test.history[row].tolist() == [7, 8, 9]
    assert test.timestamps[row].tolist() == [20, 30, 40]
    assert test.target_timestamps[row].item() == 50 and test.target_actions[row].item() == 2
    other = 1 - row                                      # user 2 has a shorter history
    assert test.history[other].tolist() == [0, 1, 2]
    assert test.timestamps[other].tolist() == [0, 1, 2]
    # a model sees the request time, never what the user will do with the target
    assert set(test.batch(slice(0, 1))) == {"users", "history", "actions", "timestamps",
                                            "target_timestamps"}
    assert split.evaluation("valid").target_timestamps[row].item() == 40


def test_batches_carry_events_aligned_with_inputs_and_targets():
    frame, keep = _events_frame(), ("click", "like", "conversion")
    split = leave_one_out(user_sequences(frame, actions=keep), 9,
                          timestamps=user_events(frame, "timestamp", actions=keep))
    batch = next(next_item_batches({1: split.train[1]}, 9, 3, 4, timestamps=split.timestamps))
    assert batch["inputs"].tolist() == [[0, 0, 7]] and batch["targets"].tolist() == [[0, 7, 8]]
    assert batch["timestamps"].tolist() == [[0, 0, 20]]
    assert batch["target_timestamps"].tolist() == [[0, 20, 30]]
    assert "actions" not in batch


# --- (history, next item) examples for models that predict one item -----------------------------

from course_lib.data.sequences import next_item_examples  # noqa: E402


def _all_examples(train, max_len, **kwargs):
    batches = list(next_item_examples(train, max_len, batch_size=3, **kwargs))
    return {name: torch.cat([b[name] for b in batches]) for name in batches[0]}


def test_examples_pair_every_target_with_the_items_before_it():
    train = {7: np.array([1, 2, 3, 4]), 9: np.array([5]), 3: np.array([6, 8])}
    out = _all_examples(train, max_len=2)
    rows = sorted(zip(out["users"].tolist(), out["history"].tolist(), out["targets"].tolist()))
    assert rows == [(3, [0, 6], 8),                      # left-padded
                    (7, [0, 1], 2), (7, [1, 2], 3), (7, [2, 3], 4)]  # oldest dropped at max_len
    # user 9 has one item: no target with a history, no example


def test_last_keeps_only_each_users_newest_targets():
    train = {1: np.arange(1, 8), 2: np.array([8, 9])}
    out = _all_examples(train, max_len=3, last=2)
    rows = sorted(zip(out["users"].tolist(), out["targets"].tolist()))
    assert rows == [(1, 6), (1, 7), (2, 9)]


def test_examples_repeat_with_the_seed_and_reshuffle_without_it():
    train = {u: np.arange(1, 10) for u in range(1, 6)}
    first = _all_examples(train, max_len=4, seed=1)
    assert all(torch.equal(first[k], _all_examples(train, max_len=4, seed=1)[k]) for k in first)
    assert not torch.equal(first["targets"], _all_examples(train, max_len=4, seed=2)["targets"])
    batch = next(next_item_examples(train, 4, batch_size=16))
    assert batch["history"].shape == (16, 4)
    assert batch["targets"].shape == batch["users"].shape == (16,)


@pytest.mark.parametrize("call, phrase", [
    (lambda: next_item_examples({1: np.array([1, 2])}, 0, 4), "max_len must be an int >= 1"),
    (lambda: next_item_examples({1: np.array([1, 2])}, 3, 0), "batch_size must be an int >= 1"),
    (lambda: next_item_examples({1: np.array([1, 2])}, 3, 4, last=0), "last must be an int >= 1"),
    (lambda: next_item_examples({}, 3, 4), "train is empty"),
    (lambda: next_item_examples({1: np.array([1]), 2: np.array([3])}, 3, 4), "no user has 2"),
    (lambda: next_item_examples({1: np.array([1, 0, 2])}, 3, 4), "0 is padding"),
])
def test_bad_example_arguments_say_what_to_fix(call, phrase):
    with pytest.raises(ValueError, match=phrase):
        call()


def test_a_split_names_its_evaluation_convention_and_passes_it_on():
    seqs = {1: np.array([1, 2, 3, 2]), 2: np.array([3, 1, 2, 4])}
    assert leave_one_out(seqs, 4).seen == "exclude"
    split = leave_one_out(seqs, 4, seen="allow")
    assert split.evaluation("test").seen == "allow" and split.evaluation("valid").n_items == 4
    with pytest.raises(ValueError, match="seen must be one of"):
        leave_one_out(seqs, 4, seen="keep the target")


def test_an_evaluation_set_says_what_its_convention_masks():
    seqs = {1: np.array([1, 2, 3, 2]), 2: np.array([3, 1, 2, 4])}
    excluded = leave_one_out(seqs, 4).evaluation("test")
    assert torch.equal(excluded.excluded, excluded.history)
    assert leave_one_out(seqs, 4, seen="allow").evaluation("test").excluded is None


def test_examples_by_length_are_the_same_examples_with_less_padding_per_batch():
    rng = np.random.default_rng(3)
    train = {u: rng.integers(1, 40, rng.integers(2, 25)) for u in range(1, 200)}

    def rows_and_padding(**kwargs):
        batches = list(next_item_examples(train, 20, batch_size=16, seed=1, **kwargs))
        rows = sorted(zip(torch.cat([b["users"] for b in batches]).tolist(),
                          torch.cat([b["targets"] for b in batches]).tolist(),
                          map(tuple, torch.cat([b["history"] for b in batches]).tolist())))
        width = sum(int((b["history"] > 0).any(0).sum()) * len(b["users"]) for b in batches)
        return rows, width                      # the examples; the columns a model computes
    plain, plain_width = rows_and_padding()
    bucketed, bucketed_width = rows_and_padding(by_length=True)
    assert bucketed == plain                                         # every example, once
    assert bucketed_width < 0.7 * plain_width
    again, _ = rows_and_padding(by_length=True)
    assert again == bucketed


def test_a_subset_of_an_evaluation_set_keeps_its_rows_aligned_and_its_convention():
    frame, keep = _events_frame(), ("click", "like", "conversion")
    split = leave_one_out(user_sequences(frame, actions=keep), 9, seen="allow",
                          actions=user_events(frame, "action", actions=keep),
                          timestamps=user_events(frame, "timestamp", actions=keep))
    test = split.evaluation("test")
    one = test.subset(torch.tensor([1]))
    assert one.seen == "allow" and one.n_items == 9 and len(one.targets) == 1
    for name in ("users", "history", "targets", "actions", "timestamps", "target_timestamps"):
        assert torch.equal(getattr(one, name)[0], getattr(test, name)[1]), name
