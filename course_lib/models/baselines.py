"""The baselines every model in the course must beat: popularity and item-kNN, and, where
users come back to what they consumed (the world, evaluated with repeats allowed), replaying
the history.

Both are fit on the training sequences of a `Split` and give a (B, I + 1) score matrix for
a batch (an `EvalSet.batch` dict, or a history tensor (B, T)), like every model in
`course_lib.models`.
"""
from __future__ import annotations

import numpy as np
import torch

from course_lib.data.sequences import check_item_ids, history_of


def _interaction_matrix(train: dict[int, np.ndarray], n_items: int) -> torch.Tensor:
    """Binary user x item matrix (U, I + 1) of the training sequences (column 0 unused)."""
    check_item_ids(train.values(), n_items)
    x = torch.zeros(len(train), n_items + 1)
    for row, seq in enumerate(train.values()):
        x[row, torch.as_tensor(seq, dtype=torch.long)] = 1.0
    return x


class Popularity:
    """Score every item by how many training interactions it has; the same list for all."""

    def __init__(self, train: dict[int, np.ndarray], n_items: int):
        if not train:
            raise ValueError("train is empty: popularity needs at least one training sequence")
        check_item_ids(train.values(), n_items)
        items = np.concatenate(list(train.values()))
        self.counts = torch.as_tensor(np.bincount(items, minlength=n_items + 1),
                                      dtype=torch.float32)  # (I + 1,)

    def scores(self, batch: dict | torch.Tensor) -> torch.Tensor:
        """(B, I + 1) item counts for every user of the batch (or history tensor)."""
        history = history_of(batch)
        return self.counts.expand(history.shape[0], -1).clone()   # (B, I + 1)


class Replay:
    """Replay the history, then popularity: the user's own items first, the newest first,
    then every other item by its training count. It learns nothing about sequences; where
    repeats are allowed (`metrics.SEEN` "allow") it earns what re-consumption is worth, and
    where seen items are excluded it ranks exactly like `Popularity`."""

    def __init__(self, train: dict[int, np.ndarray], n_items: int):
        self.popularity = Popularity(train, n_items)

    def scores(self, batch: dict | torch.Tensor) -> torch.Tensor:
        """(B, I + 1): seen items above every count, by recency (the newest occurrence)."""
        history = history_of(batch)                                        # (B, T)
        scores = self.popularity.scores(history)                           # (B, I + 1)
        order = torch.arange(1, history.shape[1] + 1, dtype=scores.dtype)  # later is newer
        recency = torch.zeros_like(scores).scatter_reduce(
            1, history, (order * (history > 0)).expand_as(history), reduce="amax")
        recency[:, 0] = 0.0                                                # padding is no item
        top = scores.max() + 1.0
        return torch.where(recency > 0, top + recency, scores)             # (B, I + 1)


class ItemKNN:
    """Item-based kNN (Sarwar et al. 2001): cosine similarity of items' user vectors, keep
    each item's `n_neighbours` most similar items, score = sum of similarities to the
    items in the history."""

    def __init__(self, train: dict[int, np.ndarray], n_items: int, n_neighbours: int = 100,
                 chunk: int = 2048):
        if n_neighbours < 1:
            raise ValueError(f"n_neighbours must be >= 1, got {n_neighbours}")
        x = _interaction_matrix(train, n_items)                   # (U, I + 1)
        norms = x.sum(dim=0).sqrt()                               # (I + 1,)
        k = min(n_neighbours, n_items)
        self.neighbours = torch.zeros(n_items + 1, k, dtype=torch.long)
        self.similarity = torch.zeros(n_items + 1, k)
        for start in range(0, n_items + 1, chunk):                # rows in chunks: memory
            rows = slice(start, min(start + chunk, n_items + 1))
            co = x[:, rows].T @ x                                 # (C, I + 1) co-counts
            sim = co / (norms[rows, None] * norms[None, :]).clamp_min(1e-8)
            idx = torch.arange(rows.start, rows.stop)
            sim[idx - start, idx] = 0.0                           # an item is not its neighbour
            sim[:, 0] = 0.0
            self.similarity[rows], self.neighbours[rows] = sim.topk(k, dim=1)

    def scores(self, batch: dict | torch.Tensor) -> torch.Tensor:
        """(B, I + 1): the summed similarities of every item to the batch's histories."""
        history = history_of(batch)
        rows = history.shape[0]
        weight = self.similarity[history] * (history > 0).unsqueeze(-1)   # (B, T, k)
        out = torch.zeros(rows, self.neighbours.shape[0])
        out.scatter_add_(1, self.neighbours[history].reshape(rows, -1), weight.reshape(rows, -1))
        return out                                                         # (B, I + 1)
