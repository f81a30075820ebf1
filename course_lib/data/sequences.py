"""Per-user sequences, the leave-one-out split, padding, batches and negative sampling.

Every sequence model in the course trains on what this module makes. Conventions: item ids
are 1..I, 0 is padding; sequences are padded on the LEFT so the most recent item is always
in the last column, and truncated from the left (the oldest items go) when too long.

Shapes: B users in a batch, T positions, N negatives per position.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from course_lib.metrics import check_seen
from course_lib.train import shuffled_batches


def user_sequences(interactions: pd.DataFrame, actions=None) -> dict[int, np.ndarray]:
    """Each user's items in time order (ties keep the frame's order).

    `actions` keeps only those action types (e.g. `world.CONSUMED` = ("click", "like",
    "conversion") drops exposures); None keeps every row.
    """
    return user_events(interactions, "item", actions)


def user_events(interactions: pd.DataFrame, column: str, actions=None) -> dict[int, np.ndarray]:
    """Each user's values of `column` in the same order as `user_sequences` gives the items,
    so the two line up position by position: e.g. user_events(frame, "timestamp") and
    user_events(frame, "action"). A categorical column (the world's actions) becomes its
    category number + 1, so 0 stays free for padding, as for items."""
    missing = {"user", "item", "timestamp", column} - set(interactions.columns)
    if missing:
        raise ValueError(f"interactions lack columns {sorted(missing)}; expected user, item, "
                         "timestamp (and action to filter by action)")
    frame = interactions
    if actions is not None:
        if "action" not in frame.columns:
            raise ValueError("actions= was given but interactions have no 'action' column")
        frame = frame[frame["action"].isin(list(actions))]
    frame = frame.sort_values(["user", "timestamp"], kind="stable")
    if frame.empty:
        return {}
    users = frame["user"].to_numpy()
    values = frame[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.codes + 1
    values = values.to_numpy().astype(np.int64)
    bounds = np.flatnonzero(np.diff(users)) + 1
    return {int(u): s for u, s in zip(users[np.r_[0, bounds]], np.split(values, bounds))}


def split_sequence(sequence) -> tuple[np.ndarray, int, int]:
    """Leave-one-out for one user: (train = all but the last two, valid = second to last,
    test = last)."""
    seq = np.asarray(sequence)
    if seq.ndim != 1 or len(seq) < 3:
        raise ValueError(f"leave-one-out needs a 1-D sequence of >= 3 items, got {len(seq)}; "
                         "drop shorter users first (leave_one_out does)")
    return seq[:-2], int(seq[-2]), int(seq[-1])


@dataclass
class EvalSet:
    """What full-ranking evaluation needs: the users, every item they saw before the target
    (history, left-padded with 0, for the model's input and for masking), and the target.

    `seen` names the evaluation's convention (`metrics.SEEN`): "exclude" masks every history
    item (a target that repeats one is a miss), "allow" masks nothing. `n_items` is the
    catalogue size I, against which score matrices (B, I + 1) are checked.

    When the split carries actions and timestamps (HSTU and PinRec read them), `actions` and
    `timestamps` (B, T) line up with `history` (0 under padding), and `target_actions`,
    `target_timestamps` (B,) belong to the target event; otherwise they are None.
    """

    users: torch.Tensor                            # (B,)
    history: torch.Tensor                          # (B, T)
    targets: torch.Tensor                          # (B,)
    actions: torch.Tensor | None = None            # (B, T)
    timestamps: torch.Tensor | None = None         # (B, T)
    target_actions: torch.Tensor | None = None     # (B,)
    target_timestamps: torch.Tensor | None = None  # (B,)
    seen: str = "exclude"
    n_items: int | None = None

    # What a live system knows when the request comes: the user, the history with its actions
    # and times, and the time of the request itself (HSTU's time bias reads it). Never the
    # target, nor what the user will do with it (`target_actions`, kept for the metrics).
    MODEL_INPUTS = ("users", "history", "actions", "timestamps", "target_timestamps")

    def subset(self, rows: torch.Tensor) -> "EvalSet":
        """The same set for some users only: rows (R,) indices into the users, e.g. a fixed
        random sample to validate on when scoring every user is slow (TIGER's beam search)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return dataclasses.replace(self, **{
            name: getattr(self, name)[rows] for name in
            ("users", "history", "targets", "actions", "timestamps", "target_actions",
             "target_timestamps") if getattr(self, name) is not None})

    @property
    def excluded(self) -> torch.Tensor | None:
        """What the convention masks: the history (B, T) under "exclude", None under "allow".
        For the metrics' `history` argument: `metrics.target_ranks(scores, s.targets,
        s.excluded)`, `metrics.mask_history(scores, s.excluded)`."""
        return self.history if self.seen == "exclude" else None

    def batch(self, rows: slice | torch.Tensor) -> dict[str, torch.Tensor]:
        """The model input for some rows (`MODEL_INPUTS` that are present): users, history
        and, where present, the history's actions and timestamps and the request time (the
        target event's timestamp). Never the target, nor the target's action."""
        return {name: getattr(self, name)[rows] for name in self.MODEL_INPUTS
                if getattr(self, name) is not None}


@dataclass
class Split:
    """A leave-one-out split: per user, train items, a validation item and a test item.

    `actions` and `timestamps` (optional) hold each user's events over the WHOLE sequence
    (train, then valid, then test), position by position, as `user_events` gives them.
    """

    train: dict[int, np.ndarray]
    valid: dict[int, int]
    test: dict[int, int]
    n_items: int
    n_dropped: int = 0       # users with fewer than min_length items, left out
    actions: dict[int, np.ndarray] | None = None
    timestamps: dict[int, np.ndarray] | None = None
    seen: str = "exclude"    # the evaluation's convention, metrics.SEEN

    @property
    def users(self) -> np.ndarray:
        return np.fromiter(self.train.keys(), dtype=np.int64)

    def evaluation(self, which: str = "valid") -> EvalSet:
        """Validation: history = train items, target = valid item. Test: history = train
        items + the valid item, target = the test item."""
        if which not in ("valid", "test"):
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
        users = self.users
        if which == "valid":
            histories = [self.train[u] for u in users]
            targets = [self.valid[u] for u in users]
        else:
            histories = [np.append(self.train[u], self.valid[u]) for u in users]
            targets = [self.test[u] for u in users]
        longest = max(len(h) for h in histories)
        out = EvalSet(torch.as_tensor(users), pad_left(histories, longest),
                      torch.as_tensor(targets, dtype=torch.long), seen=self.seen,
                      n_items=self.n_items)
        for name in ("actions", "timestamps"):
            events = getattr(self, name)
            if events is None:
                continue
            upto = [len(h) for h in histories]                  # the target's position
            setattr(out, name, pad_left([events[u][:n] for u, n in zip(users, upto)], longest))
            setattr(out, "target_" + name,
                    torch.as_tensor([int(events[u][n]) for u, n in zip(users, upto)]))
        return out


def leave_one_out(sequences: dict[int, np.ndarray], n_items: int, min_length: int = 3,
                  actions: dict[int, np.ndarray] | None = None,
                  timestamps: dict[int, np.ndarray] | None = None,
                  seen: str = "exclude") -> Split:
    """Split every user's sequence with `split_sequence`; users shorter than `min_length`
    (at least 3) are left out and counted in `n_dropped`. `actions` and `timestamps`
    (from `user_events` with the same filter) travel with the split.

    seen: how the split is evaluated (`metrics.SEEN`). "exclude" masks every history item,
    the usual choice where users do not come back to an item (MovieLens, Amazon 5-core: no
    test target repeats its history); "allow" masks nothing, for data where they do (the
    world re-consumes by design, so a seen item may be the right answer)."""
    check_seen(seen)
    if min_length < 3:
        raise ValueError(f"min_length must be >= 3 (train, valid and test need an item "
                         f"each), got {min_length}")
    check_item_ids(sequences.values(), n_items)
    train, valid, test, dropped = {}, {}, {}, 0
    for user, seq in sequences.items():
        if len(seq) < min_length:
            dropped += 1
            continue
        train[user], valid[user], test[user] = split_sequence(seq)
    if not train:
        raise ValueError(f"no user has >= {min_length} items; nothing to split")
    events = {}
    for name, values in (("actions", actions), ("timestamps", timestamps)):
        if values is None:
            continue
        for user in train:
            if user not in values or len(values[user]) != len(sequences[user]):
                raise ValueError(f"{name} of user {user} do not line up with the user's "
                                 f"items; build both with the same filter, e.g. "
                                 f"user_events(frame, column, actions=...)")
        events[name] = {user: np.asarray(values[user]) for user in train}
    if "timestamps" in events:
        for user, times in events["timestamps"].items():
            if len(times) > 1 and (np.diff(times) < 0).any():
                raise ValueError(f"timestamps of user {user} go backwards; sort the events "
                                 "by time (user_events does)")
    return Split(train, valid, test, n_items, dropped, **events, seen=seen)


def check_item_ids(sequences, n_items: int) -> None:
    """Raise a clear error if any sequence is empty or holds an id outside 1..n_items."""
    for seq in sequences:
        seq = np.asarray(seq)
        if seq.size == 0:
            raise ValueError("a sequence is empty: every user needs at least one item")
        if seq.min() < 1 or seq.max() > n_items:
            bad = seq.min() if seq.min() < 1 else seq.max()
            hint = "; 0 is padding" if bad == 0 else ""
            raise ValueError(f"item ids must be in [1, {n_items}], found {bad}{hint}")


def pad_left(sequences, max_len: int) -> torch.Tensor:
    """(B, max_len) long tensor: each sequence right-aligned, its oldest items dropped if it
    is longer than max_len, zeros (padding) in front."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    out = torch.zeros(len(sequences), max_len, dtype=torch.long)
    for row, seq in enumerate(sequences):
        seq = np.asarray(seq)[-max_len:]
        if len(seq):
            out[row, max_len - len(seq):] = torch.as_tensor(seq, dtype=torch.long)
    return out


def history_of(batch: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """The history (B, T) in a model's input: batch["history"] of an evaluation batch
    (`EvalSet.batch`), or the batch itself when it is a plain history tensor, so that
    `model.scores(history)` reads as naturally as `model.scores(batch)`."""
    if isinstance(batch, dict):
        if "history" not in batch:
            raise ValueError(f"the batch has no 'history' (it has {sorted(batch)}); build it "
                             "with EvalSet.batch(rows)")
        return batch["history"]
    if not torch.is_tensor(batch):
        raise TypeError(f"expected a batch dict or a (B, T) history tensor, got "
                        f"{type(batch).__name__}")
    return batch


def sample_negatives(history: torch.Tensor, n_items: int, shape: tuple[int, ...],
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform negatives in 1..I that are not in the user's history.

    history (B, T) with 0 padding; returns a long tensor (B, *shape). Rejection sampling,
    batched: draw all, redraw only the rejected ones. Fine while histories are a small
    part of the catalogue.
    """
    if not torch.is_tensor(history) or history.dim() != 2 or history.dtype != torch.long:
        raise TypeError(f"history must be a (B, T) long tensor of item ids, got "
                        f"{getattr(history, 'dtype', type(history).__name__)} "
                        f"{tuple(getattr(history, 'shape', ()))}; use pad_left(...)")
    if history.numel() and (int(history.min()) < 0 or int(history.max()) > n_items):
        bad = int(history.min()) if int(history.min()) < 0 else int(history.max())
        raise ValueError(f"history holds item id {bad}, outside [1, {n_items}] (0 is "
                         "padding); is n_items this dataset's number of items?")
    batch = history.shape[0]
    seen = torch.zeros(batch, n_items + 1, dtype=torch.bool, device=history.device)
    seen.scatter_(1, history, True)
    seen[:, 0] = True
    full = seen.all(dim=1)
    if bool(full.any()):
        row = int(full.nonzero()[0])
        raise ValueError(f"history row {row} holds every one of the {n_items} items, so no "
                         "negative exists for that user; drop such users or sample "
                         "negatives with replacement from the whole catalogue")
    draw = lambda size: torch.randint(1, n_items + 1, size, generator=generator,  # noqa: E731
                                      device=history.device)
    neg = draw((batch, *shape))
    rows = torch.arange(batch, device=history.device).view(batch, *([1] * len(shape)))
    rows = rows.expand_as(neg)
    bad = seen[rows, neg]
    while bool(bad.any()):
        neg[bad] = draw((int(bad.sum()),))
        bad = seen[rows, neg]
    return neg


def next_item_batches(train: dict[int, np.ndarray], n_items: int, max_len: int,
                      batch_size: int, n_negatives: int = 1, seed: int = 0,
                      actions: dict[int, np.ndarray] | None = None,
                      timestamps: dict[int, np.ndarray] | None = None,
                      ) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled batches for next-item prediction; the seed makes an epoch repeatable.

    Each batch: users (B,), inputs (B, T) = items 1..n-1, targets (B, T) = items 2..n
    (0 where there is no target), negatives (B, T, N) drawn outside the user's history
    (N = 0 gives an empty last axis, for losses that need none). With a split's `actions` /
    `timestamps` (whole sequences, `Split.actions`), the batch also carries `actions`,
    `timestamps` (B, T) aligned with the inputs and `target_actions`, `target_timestamps`
    (B, T) aligned with the targets.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, int) or n_negatives < 0:
        raise ValueError(f"n_negatives must be an int >= 0 (negatives per position), got "
                         f"{n_negatives!r}")
    if not train:
        raise ValueError("train is empty: no user to make batches from; check the split "
                         "(leave_one_out drops users with fewer than 3 items)")
    generator = torch.Generator().manual_seed(seed)
    users = np.fromiter(train.keys(), dtype=np.int64)
    users = users[torch.randperm(len(users), generator=generator).numpy()]
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        seqs = [train[u] for u in chunk]
        padded = pad_left(seqs, max_len + 1)                     # (B, T + 1)
        inputs, targets = padded[:, :-1], padded[:, 1:]
        full_history = pad_left(seqs, max(len(s) for s in seqs))
        negatives = sample_negatives(full_history, n_items, (max_len, n_negatives), generator)
        negatives = negatives * (targets > 0).unsqueeze(-1)      # no negatives on padding
        batch = {"users": torch.as_tensor(chunk), "inputs": inputs, "targets": targets,
                 "negatives": negatives}
        for name, events in (("actions", actions), ("timestamps", timestamps)):
            if events is not None:
                aligned = pad_left([events[u][:len(s)] for u, s in zip(chunk, seqs)],
                                   max_len + 1)                  # (B, T + 1)
                batch[name], batch["target_" + name] = aligned[:, :-1], aligned[:, 1:]
        yield batch


def next_item_examples(train: dict[int, np.ndarray], max_len: int, batch_size: int,
                       seed: int = 0, last: int | None = None, by_length: bool = False
                       ) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled (history, next item) pairs, one row per target: for models that read a
    history and predict ONE item (TIGER's encoder-decoder), where `next_item_batches` gives
    a target at every position of a sequence.

    Every position p >= 1 of every training sequence s is a target, and its history is
    s[p - max_len : p], the up-to-`max_len` items before it, left-padded. `last` keeps only
    each user's `last` newest targets (a quick profile's shortcut; None keeps them all). The
    seed fixes the order, so an epoch is repeatable (`seed=epoch` in `train.fit`).

    Each batch: users (B,), history (B, max_len) item ids with 0 = padding, targets (B,).
    by_length=True puts histories of similar length in one batch (`shuffled_batches`'
    `lengths`): most histories are short (Amazon 5-core: a few items), and a model that trims
    the columns that are padding in every row (TIGER) then skips most of the padding.
    """
    for name, value in (("max_len", max_len), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise ValueError(f"last must be an int >= 1 (targets kept per user) or None for all, "
                         f"got {last!r}")
    if not train:
        raise ValueError("train is empty: no user to make examples from; check the split "
                         "(leave_one_out drops users with fewer than 3 items)")
    sequences = [np.asarray(s) for s in train.values()]
    for user, seq in zip(train, sequences):
        if seq.ndim != 1 or (seq.size and seq.min() < 1):
            raise ValueError(f"the sequence of user {user} must be 1-D item ids >= 1 (0 is "
                             f"padding), got {seq!r}")
    lengths = np.array([len(s) for s in sequences])
    flat = np.concatenate([np.zeros(1, dtype=np.int64)] + sequences).astype(np.int64)
    starts = np.cumsum(lengths) - lengths + 1                # flat[starts[u]] = s_u[0]
    # Targets: positions p in [first, n), first = 1, or n - last to keep the newest `last`.
    first = np.ones_like(lengths) if last is None else np.maximum(1, lengths - last)
    counts = np.maximum(lengths - first, 0)                  # targets per user
    if counts.sum() == 0:
        raise ValueError("no user has 2 training items, so there is no (history, target) "
                         "pair; every target needs at least one item before it")
    user_of = np.repeat(np.arange(len(lengths)), counts)     # (E,) one row per example
    nth = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    position = first[user_of] + nth                          # (E,) the target's position p
    at = starts[user_of] + position                          # (E,) target's index in flat
    window = at[:, None] + np.arange(-max_len, 0)            # (E, max_len) the items before
    window = np.where(window >= starts[user_of][:, None], window, 0)  # older than s_u[0]: pad
    examples = {"users": torch.as_tensor(np.fromiter(train, dtype=np.int64)[user_of]),
                "history": torch.as_tensor(flat[window]),
                "targets": torch.as_tensor(flat[at])}
    lengths = torch.as_tensor(np.minimum(position, max_len)) if by_length else None
    return shuffled_batches(examples, batch_size, seed=seed, lengths=lengths)
