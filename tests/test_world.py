"""The toy world: seeded, long-tailed, structured as the lessons assume."""
import time

import numpy as np
import torch
import pytest

from course_lib.data.datasets import event_stream, load_dataset
from course_lib.data.world import ACTIONS, WorldConfig, make_world


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(n_users=400, n_items=300, seed=3))


def test_same_seed_gives_the_same_world():
    a, b = make_world(WorldConfig(n_users=50, n_items=100)), make_world(WorldConfig(n_users=50, n_items=100))
    assert a.interactions.equals(b.interactions)
    assert np.array_equal(a.content, b.content)


def test_other_seed_gives_another_world():
    a = make_world(WorldConfig(n_users=50, n_items=100, seed=0))
    b = make_world(WorldConfig(n_users=50, n_items=100, seed=1))
    assert not a.interactions.equals(b.interactions)


def test_ids_follow_the_padding_convention(world):
    assert world.interactions["item"].between(1, world.n_items).all()
    assert sorted(world.items["item"]) == list(range(1, world.n_items + 1))
    assert world.interactions["user"].between(1, world.n_users).all()
    assert world.content.shape == (world.n_items + 1, world.config.content_dim)
    assert not world.content[0].any()


def test_cold_items_have_content_but_no_interactions(world):
    cold = world.items.loc[world.items["is_cold"], "item"]
    assert len(cold) > 0
    assert not world.interactions["item"].isin(cold).any()
    assert np.abs(world.content[cold.to_numpy()]).sum() > 0


def test_popularity_is_long_tailed(world):
    counts = world.interactions["item"].value_counts().to_numpy()
    top_decile = counts[: world.n_items // 10].sum() / counts.sum()
    assert top_decile > 0.3


def test_user_activity_is_long_tailed(world):
    lengths = world.interactions.groupby("user").size()
    assert lengths.max() > 4 * lengths.median()


def test_content_is_closer_within_a_category(world):
    x = world.content[world.items["item"].to_numpy()]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    same_top = world.items["cat1"].to_numpy()[:, None] == world.items["cat1"].to_numpy()[None, :]
    assert sim[same_top].mean() > sim[~same_top].mean() + 0.3


def test_consecutive_items_mostly_share_a_category(world):
    consumed = world.interactions[world.interactions["action"] != "exposure"]
    cat = world.items.set_index("item")["cat1"]
    same = (consumed.groupby("user")["item"].transform(lambda s: s.map(cat).diff() == 0))
    assert same.mean() > 0.5            # far above the 1/5 of random top categories


def test_every_action_type_occurs_and_events_are_time_ordered(world):
    assert set(world.interactions["action"].unique()) == set(ACTIONS)
    assert (world.interactions.groupby("user")["timestamp"].diff().dropna() >= 0).all()


def test_quick_world_is_fast():
    start = time.perf_counter()
    make_world(WorldConfig())
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("kwargs, phrase", [
    ({"n_items": 10}, "too small"),
    ({"n_users": 0}, "n_users"),
    ({"min_events": 10, "max_events": 5}, "min_events"),
    ({"p_successor": 0.8, "p_same_leaf": 0.3}, "must be <= 1"),
])
def test_bad_world_config_says_what_to_change(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        WorldConfig(**kwargs)


def test_event_stream_keeps_exposures_and_ends_on_the_consumed_test_target():
    data = load_dataset("world")
    events = event_stream(data)
    assert events.n_actions == 4 and events.positive_actions == (2, 3, 4)
    stream, consumed = events.split, data.split
    assert sum(len(s) for s in stream.train.values()) > sum(len(s) for s in consumed.train.values())
    assert any((a == 1).any() for a in stream.actions.values()), "exposures are kept"
    test_stream, test_consumed = stream.evaluation("test"), consumed.evaluation("test")
    assert torch.equal(test_stream.users, test_consumed.users)
    assert torch.equal(test_stream.targets, test_consumed.targets)
    assert (test_stream.target_actions >= 2).all()


def test_items_have_their_own_outcome_rates_and_conversions_follow_them(world):
    rates = world.items.set_index("item")["p_conversion"]
    assert rates.std() > 0.5 * rates.mean(), "the rates vary across items"
    consumed = world.interactions[world.interactions["action"] != "exposure"]
    converted = consumed["action"] == "conversion"
    high = consumed["item"].map(rates) > rates.median()
    assert converted[high].mean() > 2 * converted[~high].mean()


def test_outcome_rates_leave_the_events_and_times_unchanged():
    a = make_world(WorldConfig(n_users=50, n_items=100, outcome_spread=0.0))
    b = make_world(WorldConfig(n_users=50, n_items=100, outcome_spread=1.5))
    assert a.interactions[["user", "item", "timestamp"]].equals(b.interactions[["user", "item", "timestamp"]])
    assert (a.interactions["action"] == "exposure").equals(b.interactions["action"] == "exposure")
