"""One entry point to the course's data: `load_dataset` gives the toy world or MovieLens as a
leave-one-out split, with the item table and the items' content vectors.

    data = load_dataset()                 # the profile's dataset: the world (quick) or MovieLens
    data.split.train, data.split.evaluation("test"), data.content, data.items["label"]

Both datasets are turned into sequences the same way: each user's consumed items in time
order (for the world, its clicks, likes and conversions, `world.CONSUMED`; for MovieLens,
every rating), with the actions and timestamps of those events kept beside them (`Split`).
`event_stream` gives HSTU and PinRec every event instead, with actions they can read.
`standardise` is the one way lessons scale content vectors before a quantizer sees them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from course_lib.data.movielens import load_movielens, movie_content
from course_lib.data.sequences import Split, leave_one_out, user_events, user_sequences
from course_lib.data.world import ACTIONS, CONSUMED, make_world
from course_lib.device import Profile, get_profile

DATASETS = ("world", "movielens")


@dataclass
class Dataset:
    """A dataset ready for the lessons. Item ids are 1..I everywhere; row 0 of `content` is
    padding (zeros)."""

    name: str                    # "world" or "movielens"
    interactions: pd.DataFrame   # user, item, timestamp (+ action in the world, rating in MovieLens)
    items: pd.DataFrame          # one row per item, with a short `label` for plots and tables
    content: np.ndarray          # (I + 1, X) float32 content vectors
    split: Split

    @property
    def n_items(self) -> int:
        return self.split.n_items


def load_dataset(name: str | None = None, profile: Profile | None = None) -> Dataset:
    """The dataset `name` ("world" or "movielens"; default: the profile's), sized by the
    profile. When MovieLens is asked for but cannot be read (offline, no local copy), the
    reason is printed and the world is used instead, so a lesson still runs."""
    profile = profile or get_profile()
    name = name or profile.dataset
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if name == "movielens":
        try:
            return _movielens()
        except (FileNotFoundError, RuntimeError) as err:
            print("MovieLens not available, continuing with the world:\n", err)
    return _world(profile)


def _world(profile: Profile) -> Dataset:
    world = make_world(profile.world)
    frame = world.interactions
    split = leave_one_out(user_sequences(frame, CONSUMED), world.n_items,
                          actions=user_events(frame, "action", CONSUMED),
                          timestamps=user_events(frame, "timestamp", CONSUMED))
    items = world.items.assign(label=[f"{a}/{b}/{c}" for a, b, c in
                                      zip(world.items.cat1, world.items.cat2, world.items.cat3)])
    return Dataset("world", frame, items, world.content, split)


def _movielens() -> Dataset:
    ml = load_movielens()
    frame = ml.interactions
    split = leave_one_out(user_sequences(frame), ml.n_items,
                          timestamps=user_events(frame, "timestamp"))
    items = ml.items.assign(label=ml.items["title"].str.slice(0, 28))
    return Dataset("movielens", frame, items, movie_content(ml.items), split)


@dataclass
class EventStream:
    """Every event of every user, for models that read actions (HSTU, PinRec): the split over
    the whole stream, the number of action ids (1..n_actions, 0 is padding) and the ids that
    count as positive (a position followed by another action gets no label)."""

    split: Split
    n_actions: int
    positive_actions: tuple[int, ...]


def event_stream(data: Dataset) -> EventStream:
    """The whole event stream of `data` as a leave-one-out split with actions and timestamps.

    World: every event, exposures included; actions 1..4 = exposure, click, like,
    conversion, positive: click, like, conversion. An exposure is logged one second before
    the item it was shown beside, so a user's last event, the test target, is always a
    consumed item: the same target as in `data.split`.
    MovieLens: every rating, as in `data.split`; the action is the rating rounded up to whole
    stars (1..5), positive: 4 and 5 stars.
    """
    frame = data.interactions
    if data.name == "world":
        actions, positive = user_events(frame, "action"), tuple(range(2, len(ACTIONS) + 1))
    elif "rating" in frame.columns:
        stars = frame.assign(action=np.ceil(frame["rating"]).clip(1, 5).astype(np.int64))
        actions, positive = user_events(stars, "action"), (4, 5)
    else:
        raise ValueError(f"{data.name!r} has neither world actions nor ratings to turn into "
                         "actions; use data.split (items and timestamps only)")
    split = leave_one_out(user_sequences(frame), data.n_items, actions=actions,
                          timestamps=user_events(frame, "timestamp"))
    return EventStream(split, max(positive), positive)


def standardise(content, per_feature: bool = True) -> torch.Tensor:
    """Content vectors (N, X) scaled for a quantizer or an MLP, float32.

    per_feature=True: every feature to mean 0 and standard deviation 1 (a z-score), so no
    feature dominates the distances just by its units. per_feature=False: one common factor,
    x / std(x), which keeps the origin and the relative geometry of the items, what residual
    quantisation (lesson 05) measures its residuals against.
    """
    x = torch.as_tensor(content, dtype=torch.float32)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"content must be (N, X) with N >= 2 items, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("content contains NaN or inf: fill or drop those items first")
    if not per_feature:
        return x / x.std()
    std = x.std(dim=0)
    if (std == 0).any():
        constant = torch.nonzero(std == 0).flatten().tolist()
        raise ValueError(f"features {constant[:5]} are constant, so a z-score divides by 0; "
                         "drop them, or use per_feature=False")
    return (x - x.mean(dim=0)) / std


def item_lookup(items: pd.DataFrame, column: str) -> torch.Tensor:
    """One value per item id as a long tensor (I + 1,), entry 0 (padding) = 0: e.g.
    item_lookup(world.items, "cat1")[topk] gives the top category of every recommended item
    (what `metrics.entropy_at_k` takes)."""
    if "item" not in items.columns or column not in items.columns:
        raise ValueError(f"items need an 'item' column and a {column!r} column; it has "
                         f"{list(items.columns)}")
    ids = items["item"].to_numpy()
    if len(ids) == 0 or ids.min() < 1:
        raise ValueError("item ids must be >= 1 (0 is padding)")
    out = torch.zeros(int(ids.max()) + 1, dtype=torch.long)
    out[torch.as_tensor(ids)] = torch.as_tensor(items[column].to_numpy(), dtype=torch.long)
    return out
