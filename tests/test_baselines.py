"""Popularity, replay and item-kNN baselines."""
import numpy as np
import pytest
import torch

from course_lib import metrics
from course_lib.models.baselines import ItemKNN, Popularity, Replay


@pytest.fixture
def train():
    return {1: np.array([1, 2, 3]), 2: np.array([1, 2]), 3: np.array([1, 4]), 4: np.array([5])}


def test_popularity_scores_are_training_counts(train):
    scores = Popularity(train, n_items=5).scores(torch.zeros(2, 1, dtype=torch.long))
    assert scores.shape == (2, 6)
    assert scores[0].tolist() == [0, 3, 2, 1, 1, 1]


def test_replay_ranks_the_history_newest_first_then_by_popularity(train):
    history = torch.tensor([[0, 4, 2, 4, 5]])          # item 4 twice: its newest place counts
    ranking = Replay(train, n_items=5).scores(history)[0, 1:].argsort(descending=True) + 1
    assert ranking.tolist() == [5, 4, 2, 1, 3]          # 5, 4, 2 seen; then counts 3 > 1


def test_replay_excluding_seen_items_ranks_like_popularity(train):
    history, targets = torch.tensor([[0, 4, 2], [1, 3, 5]]), torch.tensor([1, 2])
    replay = Replay(train, n_items=5).scores(history)
    popularity = Popularity(train, n_items=5).scores(history)
    assert torch.equal(metrics.target_ranks(replay, targets, history),
                       metrics.target_ranks(popularity, targets, history))


def test_item_knn_prefers_co_occurring_items(train):
    knn = ItemKNN(train, n_items=5, n_neighbours=4)
    scores = knn.scores(torch.tensor([[0, 2]]))           # history: item 2 (padding ignored)
    assert scores[0, 1] > scores[0, 4] and scores[0, 3] > scores[0, 5]
    assert scores[0, 5] == 0                               # never co-occurs with item 2


def test_item_knn_matches_dense_cosine_when_keeping_all_neighbours(train):
    knn = ItemKNN(train, n_items=5, n_neighbours=5, chunk=2)
    x = torch.zeros(4, 6)
    for row, seq in enumerate(train.values()):
        x[row, seq] = 1
    sim = (x.T @ x) / (x.sum(0).sqrt()[:, None] * x.sum(0).sqrt()[None, :]).clamp_min(1e-8)
    sim.fill_diagonal_(0)
    sim[:, 0] = 0
    history = torch.tensor([[1, 3]])
    assert torch.allclose(knn.scores(history)[0], sim[1] + sim[3])


def test_item_knn_refuses_zero_neighbours(train):
    with pytest.raises(ValueError, match="n_neighbours"):
        ItemKNN(train, n_items=5, n_neighbours=0)


@pytest.mark.parametrize("model", [Popularity, ItemKNN])
def test_baselines_refuse_item_ids_outside_the_catalogue(model):
    # An id above n_items would silently widen the score matrix past the catalogue.
    with pytest.raises(ValueError, match=r"must be in \[1, 5\], found 9"):
        model({1: np.array([1, 9])}, n_items=5)
    with pytest.raises(ValueError, match="0 is padding"):
        model({1: np.array([0, 2])}, n_items=5)
