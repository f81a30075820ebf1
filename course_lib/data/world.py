"""The toy world: a generated, seeded recommendation dataset whose ground truth is known.

What it has, and why each part is there:

* items on a 3-level category tree (top > sub > leaf), so semantic-ID lessons can check that
  code prefixes recover categories;
* content vectors built from the tree (one random vector per node on the path, shrinking
  with depth) plus item noise, so similar content means similar categories;
* Zipf popularity, so the hourglass and popularity bias show up;
* cold items: content but no interactions;
* users with sparse interest mixtures over top categories and long-tailed activity;
* sessions with timestamps and real sequential structure: inside a session the next item is
  often the *successor* of the previous one in its leaf (a directed pattern only an
  order-aware model can exploit), else from the same leaf, the same sub-category, or a fresh
  top category drawn from the user's interests;
* action types: exposure (shown, not clicked), click, like and conversion. How likely a
  consumed item is to be liked or converted on depends on the item (its `p_like` and
  `p_conversion` in the item table, log-normal around the config's rates), so an outcome
  can be predicted and asked for (lesson 08).

Generation is vectorised over users, one step of every user's walk at a time, so the quick
world takes well under a second.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ACTIONS = ("exposure", "click", "like", "conversion")
CONSUMED = ACTIONS[1:]      # the actions that count as consuming an item; an exposure does not


@dataclass(frozen=True)
class WorldConfig:
    n_users: int = 1000
    n_items: int = 500
    tree: tuple[int, int, int] = (5, 3, 3)   # top categories, subs per top, leaves per sub
    content_dim: int = 32
    content_noise: float = 0.35              # item noise, relative to the top-level scale 1
    zipf_exponent: float = 1.0
    cold_fraction: float = 0.05
    mean_events: float = 40.0                # users' activity is log-normal around this
    min_events: int = 5
    max_events: int = 200
    interest_concentration: float = 0.3      # Dirichlet alpha: small means few interests
    p_successor: float = 0.4                 # next item = the successor in its leaf
    p_same_leaf: float = 0.25
    p_same_sub: float = 0.15                 # the rest: a new top category from the mixture
    mean_session_length: float = 8.0
    p_exposure: float = 0.5                  # an unclicked exposure alongside a consumed item
    p_like: float = 0.2                      # mean rates; each item's own rate varies around
    p_conversion: float = 0.05               # them by a log-normal factor of this spread:
    outcome_spread: float = 1.0              # 0 gives every item the same rates
    seed: int = 0

    def __post_init__(self):
        n_leaves = int(np.prod(self.tree))
        if self.n_users < 1:
            raise ValueError(f"n_users must be >= 1, got {self.n_users}")
        if len(self.tree) != 3 or min(self.tree) < 1:
            raise ValueError(f"tree must be three positive branching factors, got {self.tree}")
        if self.n_items < 2 * n_leaves:
            raise ValueError(f"n_items={self.n_items} is too small for {n_leaves} leaves: "
                             f"use n_items >= {2 * n_leaves} or a smaller tree")
        if not 1 <= self.min_events <= self.max_events:
            raise ValueError(f"need 1 <= min_events <= max_events, got "
                             f"{self.min_events} and {self.max_events}")
        if not 0 <= self.cold_fraction < 0.5:
            raise ValueError(f"cold_fraction must be in [0, 0.5), got {self.cold_fraction}")
        if self.outcome_spread < 0:
            raise ValueError(f"outcome_spread must be >= 0, got {self.outcome_spread}")
        if self.p_successor + self.p_same_leaf + self.p_same_sub > 1:
            raise ValueError("p_successor + p_same_leaf + p_same_sub must be <= 1")


@dataclass
class World:
    """A generated world. Item ids are 1..I (0 is padding), users 1..U.

    interactions: user, item, timestamp (int seconds), action (ordered categorical, ACTIONS)
    items: item, cat1, cat2, cat3 (the category path, globally numbered per level),
        popularity (the Zipf sampling weight), is_cold, content (the item's vector)
    users: user, n_events, top_interest (the user's strongest top category)
    content: float32 array (I + 1, D); row 0 is zeros, row i belongs to item i
    """

    config: WorldConfig
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    content: np.ndarray

    @property
    def n_users(self) -> int:
        return self.config.n_users

    @property
    def n_items(self) -> int:
        return self.config.n_items


def make_world(config: WorldConfig | None = None) -> World:
    """Generate the toy world described in the module docstring."""
    cfg = config or WorldConfig()
    rng = np.random.default_rng(cfg.seed)
    tree = _category_tree(cfg, rng)
    content = _content_vectors(cfg, tree, rng)
    weight = _popularity(cfg, tree, rng)
    users, walks, lengths = _walks(cfg, tree, weight, rng)
    outcome = _outcome_rates(cfg)
    events = _events(cfg, walks, lengths, weight, outcome, rng)

    # Internal order groups items by leaf (handy for sampling); public ids are shuffled so
    # that an item's id says nothing about its category.
    public = rng.permutation(cfg.n_items) + 1                      # internal index -> id
    events["item"] = public[events["item"]]
    order = np.argsort(public)                                      # id - 1 -> internal
    items = pd.DataFrame({
        "item": np.arange(1, cfg.n_items + 1),
        "cat1": tree["top"][order], "cat2": tree["sub"][order], "cat3": tree["leaf"][order],
        "popularity": weight[order] / weight.sum(),
        "is_cold": weight[order] == 0,
        "p_like": outcome["like"][order], "p_conversion": outcome["conversion"][order],
    })
    content_by_id = np.zeros((cfg.n_items + 1, cfg.content_dim), dtype=np.float32)
    content_by_id[1:] = content[order]
    items["content"] = list(content_by_id[1:])
    interactions = (events.sort_values(["user", "timestamp", "rank"], kind="stable")
                    .drop(columns="rank").reset_index(drop=True))
    return World(cfg, interactions, items, users, content_by_id)


def _category_tree(cfg, rng):
    """Item -> (top, sub, leaf), items contiguous per leaf; every leaf gets >= 2 items."""
    n_top, n_sub, n_leaf = cfg.tree
    n_leaves = n_top * n_sub * n_leaf
    sizes = 2 + rng.multinomial(cfg.n_items - 2 * n_leaves, np.full(n_leaves, 1 / n_leaves))
    leaf = np.repeat(np.arange(n_leaves), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return {"leaf": leaf, "sub": leaf // n_leaf, "top": leaf // (n_leaf * n_sub),
            "leaf_start": start, "leaf_end": start + sizes}


def _content_vectors(cfg, tree, rng):
    """Sum of one random vector per node on the item's path (scales 1, .6, .4) plus noise."""
    d = cfg.content_dim
    n_top, n_sub, n_leaf = cfg.tree
    top = rng.normal(size=(n_top, d))
    sub = 0.6 * rng.normal(size=(n_top * n_sub, d))
    leaf = 0.4 * rng.normal(size=(n_top * n_sub * n_leaf, d))
    noise = cfg.content_noise * rng.normal(size=(cfg.n_items, d))
    x = top[tree["top"]] + sub[tree["sub"]] + leaf[tree["leaf"]] + noise
    return (x / np.sqrt(d)).astype(np.float32)


def _popularity(cfg, tree, rng):
    """Zipf weights over a random popularity order; cold items get weight 0."""
    rank = rng.permutation(cfg.n_items) + 1
    weight = rank.astype(float) ** -cfg.zipf_exponent
    cold = rng.random(cfg.n_items) < cfg.cold_fraction
    # Every leaf keeps a warm item, so a walk can always continue inside it.
    leaf_warm = np.bincount(tree["leaf"], weights=~cold, minlength=len(tree["leaf_start"]))
    cold[tree["leaf_start"][leaf_warm == 0]] = False
    weight[cold] = 0.0
    return weight


def _sample_in_range(cum, lo, hi, rng):
    """For each row, an index in [lo, hi) drawn proportionally to the weights behind `cum`."""
    u = cum[lo] + rng.random(len(lo)) * (cum[hi] - cum[lo])
    idx = np.searchsorted(cum, u, side="right") - 1
    return np.clip(idx, lo, hi - 1)


def _walks(cfg, tree, weight, rng):
    """Every user's item walk, all users advanced one step at a time."""
    n_top, n_sub, n_leaf = cfg.tree
    n = cfg.n_users
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    # Group boundaries for top and sub categories (items are contiguous by leaf).
    leaf_start, leaf_end = tree["leaf_start"], tree["leaf_end"]
    sub_start = leaf_start[::n_leaf]
    sub_end = leaf_end[n_leaf - 1::n_leaf]
    top_start = leaf_start[::n_leaf * n_sub]
    top_end = leaf_end[n_leaf * n_sub - 1::n_leaf * n_sub]

    interests = rng.dirichlet(np.full(n_top, cfg.interest_concentration), size=n)
    interest_cum = np.cumsum(interests, axis=1)
    sigma = 1.0
    lengths = np.exp(rng.normal(np.log(cfg.mean_events) - sigma**2 / 2, sigma, size=n))
    lengths = np.clip(lengths.round().astype(int), cfg.min_events, cfg.max_events)

    succ = np.arange(cfg.n_items) + 1
    succ[leaf_end - 1] = leaf_start                                 # wrap inside the leaf
    t_max = lengths.max()
    walks = np.zeros((n, t_max), dtype=np.int64)
    new_session = rng.random((n, t_max)) < 1 / cfg.mean_session_length
    new_session[:, 0] = True
    prev = np.zeros(n, dtype=np.int64)
    for t in range(t_max):
        u = rng.random(n)
        top = np.minimum((interest_cum < rng.random(n)[:, None]).sum(axis=1), n_top - 1)
        nxt = _sample_in_range(cum, top_start[top], top_end[top], rng)
        if t > 0:
            fresh = new_session[:, t]
            leaf, sub = tree["leaf"][prev], tree["sub"][prev]
            in_leaf = _sample_in_range(cum, leaf_start[leaf], leaf_end[leaf], rng)
            in_sub = _sample_in_range(cum, sub_start[sub], sub_end[sub], rng)
            s = succ[prev]
            s = np.where(weight[s] > 0, s, in_leaf)                 # cold successors are skipped
            p1 = cfg.p_successor
            p2 = p1 + cfg.p_same_leaf
            p3 = p2 + cfg.p_same_sub
            nxt = np.select([fresh, u < p1, u < p2, u < p3], [nxt, s, in_leaf, in_sub], nxt)
            nxt = np.where(nxt == prev, s, nxt)                     # no immediate repeats
        walks[:, t] = nxt
        prev = nxt
    users = pd.DataFrame({"user": np.arange(1, n + 1), "n_events": lengths,
                          "top_interest": interests.argmax(axis=1)})
    return users, {"items": walks, "new_session": new_session}, lengths


def _outcome_rates(cfg):
    """Each item's chance that consuming it is a like / a conversion: the config's rate times
    a log-normal factor of mean 1 (sigma = outcome_spread), capped so the two sum to <= 0.9.
    Drawn from a generator of their own, so the walks, times and exposures stay those of
    the same seed without per-item rates."""
    rng = np.random.default_rng([cfg.seed, 1])
    sigma = cfg.outcome_spread
    factor = np.exp(rng.normal(-sigma ** 2 / 2, sigma, size=(2, cfg.n_items)))
    like, conversion = cfg.p_like * factor[0], cfg.p_conversion * factor[1]
    scale = np.minimum(1.0, 0.9 / (like + conversion))
    return {"like": like * scale, "conversion": conversion * scale}


def _events(cfg, walks, lengths, weight, outcome, rng):
    """Timestamps, action types and exposures for the walks; one row per event."""
    items, new_session = walks["items"], walks["new_session"]
    n, t_max = items.shape
    keep = np.arange(t_max)[None, :] < lengths[:, None]
    gap = np.where(new_session, rng.exponential(2 * 86_400, size=(n, t_max)),
                   1 + rng.exponential(90, size=(n, t_max)))
    start = 1_704_067_200 + rng.integers(0, 60 * 86_400, size=(n, 1))   # 2024-01-01 + 60 d
    timestamp = start + np.cumsum(gap, axis=1).astype(np.int64)
    r = rng.random((n, t_max))
    p_conversion, p_like = outcome["conversion"][items], outcome["like"][items]   # (n, t_max)
    action = np.where(r < p_conversion, 3, np.where(r < p_conversion + p_like, 2, 1))

    user = np.broadcast_to(np.arange(1, n + 1)[:, None], (n, t_max))
    consumed = pd.DataFrame({"user": user[keep], "item": items[keep],
                             "timestamp": timestamp[keep], "action": action[keep], "rank": 1})
    shown = rng.random(len(consumed)) < cfg.p_exposure
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    m = int(shown.sum())
    exposed = _sample_in_range(cum, np.zeros(m, dtype=int), np.full(m, cfg.n_items), rng)
    exposures = pd.DataFrame({"user": consumed["user"].to_numpy()[shown], "item": exposed,
                              "timestamp": consumed["timestamp"].to_numpy()[shown] - 1,
                              "action": 0, "rank": 0})
    events = pd.concat([consumed, exposures], ignore_index=True)
    events["action"] = pd.Categorical.from_codes(events["action"], categories=list(ACTIONS),
                                                 ordered=True)
    return events
