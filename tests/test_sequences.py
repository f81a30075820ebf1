"""Sequences, the leave-one-out split, padding, batches and negatives."""
import numpy as np
import pandas as pd
import pytest
import torch

from course_lib.data.sequences import (leave_one_out, next_item_batches, pad_left,
                                       sample_negatives, split_sequence, user_sequences)


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
    (lambda: sample_negatives(torch.tensor([[1, 2]]), n_items=2, shape=(3,)), "seen every item"),
    (lambda: user_sequences(pd.DataFrame({"user": [1], "item": [1]})), "timestamp"),
    (lambda: next(next_item_batches({1: np.array([1, 2])}, 5, 3, batch_size=0)), "batch_size"),
])
def test_bad_input_says_what_to_fix(call, phrase):
    with pytest.raises(ValueError, match=phrase):
        call()
