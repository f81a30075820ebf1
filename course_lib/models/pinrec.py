"""PinRec: outcome-conditioned, multi-token generative retrieval (Badrinath et al., Pinterest,
2025, "PinRec: Outcome-Conditioned, Multi-Token Generative Retrieval for Industry-Scale
Recommendation Systems", arXiv 2504.10507).

A decoder-only causal Transformer reads a user's engagements (item + action + position, the
blocks of `course_lib.models.sasrec`) and turns its hidden state h_t into a DENSE query that
an item index (`retrieval.ItemIndex`, faiss at scale) searches. Three ideas on top:

1. Outcome conditioning. The query depends on the outcome one wants, through the output head
   only; the backbone never sees it:

       q_t(c) = normalise(h_t + MLP([h_t ; E_c]))          E_c a learned outcome embedding

   Training conditions each positive on its real action (a conversion is learned as
   "what comes next, asked for a conversion"); serving asks for whichever outcome it wants.
   `conditioned=False` is the unconditioned head q_t = normalise(h_t + MLP([h_t ; 0])).

2. Multi-token (windowed) training. People do not consume a feed in a strict order, so
   position t is trained on the next `window` engagements, not only the next one: the
   engagements t+1 .. t+window that happen within `max_gap` seconds of the first of them.
   Each (t, positive) pair has a sampled-softmax loss; `window_loss` aggregates over the
   window: "min" (the paper's intra-feed relaxation: it suffices to rank one of them well)
   or "mean". window=1 is plain next-item training. The exact window and loss of the paper
   are not public; this is the course's own design.

3. Budgeted retrieval. `recommend(batch, budgets={"click": 6, "conversion": 4},
   exclude_history=...)` builds one query per outcome from ONE backbone pass (the backbone
   never sees the outcome, so its hidden state serves every query: `outcome_queries`),
   merges near-duplicate queries (cosine above `merge_cosine`, budgets summed), retrieves
   each query's budget and merges the lists without duplicates.

The loss is a sampled softmax over L2-normalised vectors (cosine / temperature) against
shared negatives: `n_in_batch` of the batch's own positives (in-batch negatives, drawn with
the items' frequency in the batch) plus `n_random` uniform items, with the count-based log-q
correction of that mixed proposal, q(i) = (n_in_batch * c_i / P + n_random / I) / N, c_i
the count of item i among the batch's P positives, N = n_in_batch + n_random
(`course_lib.losses.sampled_softmax_loss`).

Conventions as in SASRec: item ids 1..I, 0 is padding, sequences padded on the LEFT.
Outcomes are numbered 1..O in the order of `PinRecConfig.outcomes`, 0 is "none"; the input
actions are the split's action ids (the world's: exposure 1, click 2, like 3, conversion 4).

Dimensions: B batch, T positions (max_len), W window, D width, O outcomes, N negatives,
Q queries per user (outcomes asked for).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import losses
from course_lib.data.sequences import history_of, pad_left
from course_lib.models import sasrec

WINDOW_LOSSES = ("min", "mean")
NORM_EPS = 1e-6


@dataclass
class PinRecConfig:
    """outcomes: names of the outcomes a query can ask for, and outcome_actions their action
    ids in the split (the world's click 2, like 3, conversion 4 by default). n_actions: the
    largest input action id. window / max_gap / window_loss: multi-token training (window=1:
    next item). n_in_batch / n_random: the shared negatives of a batch."""

    n_items: int
    outcomes: tuple[str, ...] = ("click", "like", "conversion")
    outcome_actions: tuple[int, ...] = (2, 3, 4)
    n_actions: int = 4
    max_len: int = 50
    d_model: int = 64
    n_blocks: int = 2
    n_heads: int = 1
    dropout: float = 0.2
    conditioned: bool = True
    window: int = 1
    max_gap: float | None = None
    window_loss: str = "min"
    temperature: float = 0.05
    n_in_batch: int = 128
    n_random: int = 128

    def __post_init__(self):
        if self.n_items < 2:
            raise ValueError(f"n_items must be >= 2, got {self.n_items}")
        self.outcomes, self.outcome_actions = tuple(self.outcomes), tuple(self.outcome_actions)
        if not self.outcomes or len(self.outcomes) != len(self.outcome_actions):
            raise ValueError(f"give one action id per outcome: outcomes {self.outcomes}, "
                             f"outcome_actions {self.outcome_actions}")
        if len(set(self.outcomes)) != len(self.outcomes):
            raise ValueError(f"outcome names must be distinct, got {self.outcomes}")
        if not all(1 <= a <= self.n_actions for a in self.outcome_actions):
            raise ValueError(f"outcome_actions must be action ids in [1, n_actions="
                             f"{self.n_actions}], got {self.outcome_actions}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be an int >= 1 (engagements per position; 1 is "
                             f"next-item training), got {self.window!r}")
        if self.max_gap is not None and not self.max_gap > 0:
            raise ValueError(f"max_gap must be > 0 seconds or None (no limit), got {self.max_gap}")
        if self.window_loss not in WINDOW_LOSSES:
            raise ValueError(f"window_loss must be one of {WINDOW_LOSSES}, got {self.window_loss!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.n_in_batch < 0 or self.n_random < 0 or self.n_in_batch + self.n_random < 1:
            raise ValueError(f"need n_in_batch, n_random >= 0 and at least one negative, got "
                             f"{self.n_in_batch} and {self.n_random}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")


# --- pure functions: the window of positives, the head, the budgeted merge --------------------

def future_window(items: Tensor, times: Tensor, window: int,
                  max_gap: float | None = None) -> Tensor:
    """The positives of every position of left-padded sequences items, times (B, L): column t
    gets the items at t+1 .. t+window (B, L, window), 0 where the sequence ends, where
    position t is padding, or where an item comes more than `max_gap` seconds after the
    first of them (t+1). The first (the next item) is always kept."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    batch, length = items.shape
    pad = items.new_zeros(batch, window)
    later = torch.cat([items, pad], 1).unfold(1, window, 1)[:, 1:length + 1]       # (B, L, W)
    later_times = torch.cat([times, times.new_zeros(batch, window)], 1).unfold(1, window, 1)
    later_times = later_times[:, 1:length + 1]                                       # (B, L, W)
    keep = (later > 0) & (items > 0).unsqueeze(-1)
    if max_gap is not None:
        keep &= (later_times - later_times[..., :1]) <= max_gap
    return later * keep


def outcome_query(hidden: Tensor, outcome: Tensor, outcome_embedding: nn.Embedding,
                  mlp: nn.Module) -> Tensor:
    """q = normalise(h + MLP([h ; E_c])): hidden (..., D) and outcome ids (...) (0: none) ->
    unit queries (..., D). The outcome enters here only, never the backbone."""
    e = outcome_embedding(outcome)                                     # (..., D)
    return F.normalize(hidden + mlp(torch.cat([hidden, e], -1)), dim=-1, eps=NORM_EPS)


def merge_near_duplicates(queries: Tensor, budgets: list[int],
                          threshold: float) -> tuple[list[int], list[int]]:
    """One user's queries (Q, D), unit length, with their budgets: each query whose cosine
    with an earlier kept query is above `threshold` is merged into that one, its budget
    added. Returns the kept queries' indices and their budgets."""
    kept, merged = [], []
    for q in range(len(queries)):
        similar = [i for i, k in enumerate(kept) if float(queries[q] @ queries[k]) > threshold]
        if similar:
            merged[similar[0]] += budgets[q]
        else:
            kept.append(q)
            merged.append(budgets[q])
    return kept, merged


def budgeted_merge(lists: list[Tensor], budgets: list[int]) -> Tensor:
    """Merge ranked lists (B, k_q), one per query, into one list (B, sum of budgets): query q
    contributes its first budgets[q] items not already taken by the queries before it; 0
    (padding in a list) is skipped; a list that runs out leaves 0 at the end."""
    total = sum(budgets)
    out = torch.zeros(lists[0].shape[0], total, dtype=torch.long)
    for row in range(len(out)):
        taken: list[int] = []
        for ranked, budget in zip(lists, budgets):
            fresh = [i for i in ranked[row].tolist() if i > 0 and i not in taken][:budget]
            taken += fresh
        out[row, :len(taken)] = torch.tensor(taken, dtype=torch.long)
    return out


# --- batches --------------------------------------------------------------------------------

def engagement_batches(split, max_len: int, batch_size: int, window: int = 1,
                       max_gap: float | None = None, seed: int = 0):
    """Shuffled training batches over a split with actions and timestamps (`Split`): users
    (B,), inputs, actions, timestamps (B, T) of each user's newest max_len training events,
    and positives, positive_actions (B, T, window) from `future_window`."""
    if split.actions is None or split.timestamps is None:
        raise ValueError("PinRec trains on a split with actions and timestamps "
                         "(load_dataset(...).split has them)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    users = np.fromiter(split.train.keys(), dtype=np.int64)
    users = users[torch.randperm(len(users), generator=generator).numpy()]
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        n = [len(split.train[u]) for u in chunk]
        items = pad_left([split.train[u] for u in chunk], max_len + 1)          # (B, T + 1)
        actions = pad_left([split.actions[u][:m] for u, m in zip(chunk, n)], max_len + 1)
        times = pad_left([split.timestamps[u][:m] for u, m in zip(chunk, n)], max_len + 1)
        positives = future_window(items, times, window, max_gap)[:, :-1]       # (B, T, W)
        later_actions = future_window(actions, times, window, max_gap)[:, :-1]
        yield {"users": torch.as_tensor(chunk), "inputs": items[:, :-1],
               "actions": actions[:, :-1], "timestamps": times[:, :-1],
               "positives": positives, "positive_actions": later_actions * (positives > 0)}


# --- the model --------------------------------------------------------------------------------

class PinRec(nn.Module):
    """PinRec over item ids 1..I; `loss(batch)` trains it with `train.fit` on
    `engagement_batches`; `scores(batch)` (one outcome) feeds `evaluate_model`;
    `query_vectors` (one outcome), `outcome_queries` (several, one backbone pass) and
    `item_vectors` feed `retrieval.ItemIndex`; `recommend(batch, budgets=...,
    exclude_history=...)` is budgeted retrieval."""

    def __init__(self, config: PinRecConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        blocks = sasrec.SASRecConfig(n_items=config.n_items, max_len=config.max_len, d_model=d,
                                     n_blocks=config.n_blocks, n_heads=config.n_heads,
                                     dropout=config.dropout)
        self.item_embedding = nn.Embedding(config.n_items + 1, d, padding_idx=0)
        self.action_embedding = nn.Embedding(config.n_actions + 1, d, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, d)
        self.blocks = nn.ModuleList(sasrec.Block(blocks) for _ in range(config.n_blocks))
        self.final_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(config.dropout)
        self.outcome_embedding = nn.Embedding(len(config.outcomes) + 1, d, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d))
        action_to_outcome = torch.zeros(config.n_actions + 1, dtype=torch.long)
        for outcome, action in enumerate(config.outcome_actions, start=1):
            action_to_outcome[action] = outcome
        self.register_buffer("action_to_outcome", action_to_outcome, persistent=False)
        # SASRec's scale (std 1/sqrt(d), so M sqrt(d) enters at the size of the position): at
        # nn.Embedding's N(0, 1) the item is sqrt(d) times larger than the other tokens, the
        # query is little more than the newest item, and on MovieLens validation NDCG@10 stayed
        # at chance for 60 epochs (test .0011 against .0318 with this scale, lr 1e-2).
        nn.init.normal_(self.item_embedding.weight, std=d ** -0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    # --- the backbone: it never sees an outcome ---------------------------------------------------
    def forward(self, items: Tensor, actions: Tensor) -> Tensor:
        """Hidden states (B, T, D) of left-padded engagements items, actions (B, T), newest
        max_len kept; padding rows 0."""
        items, actions = items[:, -self.config.max_len:], actions[:, -self.config.max_len:]
        real = items > 0
        positions = torch.arange(self.config.max_len - items.shape[1], self.config.max_len,
                                 device=items.device)
        x = (self.item_embedding(items) * math.sqrt(self.config.d_model)
             + self.action_embedding(actions) + self.position_embedding(positions))
        x = self.drop(x) * real.unsqueeze(-1)
        mask = sasrec.attention_mask(items)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x) * real.unsqueeze(-1)

    def queries(self, hidden: Tensor, outcome: Tensor) -> Tensor:
        """Unit queries (..., D) of hidden states (..., D) asked for outcome ids (...)."""
        if not self.config.conditioned:
            outcome = torch.zeros_like(outcome)
        return outcome_query(hidden, outcome, self.outcome_embedding, self.head)

    def item_vectors(self) -> Tensor:
        """(I + 1, D) unit item vectors; row 0 (padding) is 0."""
        return F.normalize(self.item_embedding.weight, dim=-1, eps=NORM_EPS)

    # --- training ---------------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Sampled softmax of every (position, positive) pair, each positive asked for with
        its real outcome, aggregated over the window by `window_loss`, averaged over the
        positions that have a positive."""
        for name in ("inputs", "actions", "positives", "positive_actions"):
            if name not in batch:
                raise ValueError(f"loss needs batch[{name!r}]; make batches with "
                                 "pinrec.engagement_batches")
        hidden = self(batch["inputs"], batch["actions"])                      # (B, T, D)
        positives = batch["positives"][:, -self.config.max_len:]              # (B, T, W)
        outcomes = self.action_to_outcome[batch["positive_actions"][:, -self.config.max_len:]]
        valid = positives > 0
        if not bool(valid.any()):
            raise ValueError("the batch has no positive: users need at least 2 engagements")
        rows = valid.nonzero(as_tuple=True)
        q = self.queries(hidden[rows[0], rows[1]], outcomes[rows])            # (P, D)
        items = self.item_vectors()
        pos_items = positives[rows]                                           # (P,)
        negatives, log_q = self._negatives(pos_items)                          # (N,), (I + 1,)
        per_pair = losses.sampled_softmax_loss(
            (q * items[pos_items]).sum(-1), q @ items[negatives].T,
            log_q_pos=log_q[pos_items], log_q_neg=log_q[negatives],
            accidental_hits=negatives.unsqueeze(0) == pos_items.unsqueeze(1),
            temperature=self.config.temperature, reduction="none")           # (P,)
        table = torch.full(valid.shape, float("inf") if self.config.window_loss == "min"
                           else 0.0, device=per_pair.device)
        table[rows] = per_pair
        has_any = valid.any(-1)                                               # (B, T)
        if self.config.window_loss == "min":
            per_position = table.min(-1).values[has_any]
        else:
            per_position = table.sum(-1)[has_any] / valid.sum(-1)[has_any]
        return per_position.mean()

    def _negatives(self, positives: Tensor) -> tuple[Tensor, Tensor]:
        """Shared negatives (N,): n_in_batch drawn from the batch's positives (in-batch, so
        by their frequency), n_random uniform over the items; and log q (I + 1,) of that
        mixed proposal for every item."""
        c, n_items = self.config, self.config.n_items
        device = positives.device
        drawn = torch.randint(len(positives), (c.n_in_batch,), device=device)
        uniform = torch.randint(1, n_items + 1, (c.n_random,), device=device)
        counts = torch.bincount(positives, minlength=n_items + 1).float()     # (I + 1,)
        q = (c.n_in_batch * counts / len(positives) + c.n_random / n_items) / (c.n_in_batch + c.n_random)
        q[0] = 1.0                                                            # padding, never drawn
        return torch.cat([positives[drawn], uniform]), q.log()

    # --- retrieval ----------------------------------------------------------------------------------
    def outcome_id(self, outcome: str) -> int:
        if outcome not in self.config.outcomes:
            raise ValueError(f"unknown outcome {outcome!r}; this model knows "
                             f"{list(self.config.outcomes)}")
        return self.config.outcomes.index(outcome) + 1

    @torch.no_grad()
    def outcome_queries(self, batch: dict[str, Tensor] | Tensor, outcomes) -> Tensor:
        """(B, Q, D) unit queries at each user's last event, one per outcome asked for (names,
        in order): ONE backbone pass, whatever is asked, then the head once per outcome. The
        backbone never sees the outcome, so its hidden state serves every query."""
        outcomes = list(outcomes)
        if not outcomes:
            raise ValueError(f"ask for at least one outcome of {list(self.config.outcomes)}")
        ids = [self.outcome_id(o) for o in outcomes]
        history, actions = self._eval_inputs(batch)
        hidden = self(history, actions)[:, -1]                                # (B, D): one pass
        asked = torch.as_tensor(ids, device=hidden.device).expand(len(hidden), -1)   # (B, Q)
        return self.queries(hidden[:, None].expand(-1, len(ids), -1), asked)  # (B, Q, D)

    @torch.no_grad()
    def query_vectors(self, batch: dict[str, Tensor] | Tensor, outcome: str | None = None) -> Tensor:
        """(B, D) unit queries at each user's last event, asked for `outcome` (default: the
        first of config.outcomes). For several outcomes, `outcome_queries` reads the history
        once."""
        return self.outcome_queries(batch, [outcome or self.config.outcomes[0]])[:, 0]

    @torch.no_grad()
    def scores(self, batch: dict[str, Tensor] | Tensor, outcome: str | None = None) -> Tensor:
        """(B, I + 1) cosine of the query for `outcome` with every item, column 0 -inf."""
        scores = self.query_vectors(batch, outcome) @ self.item_vectors().T
        scores[:, 0] = float("-inf")
        return scores

    @torch.no_grad()
    def recommend(self, batch: dict[str, Tensor] | Tensor, budgets: dict[str, int],
                  index=None, merge_cosine: float = 0.99,
                  exclude_history: bool | None = None) -> Tensor:
        """(B, K) items, K = the sum of the budgets: for each outcome a query retrieves its
        budget from `index` (a `retrieval.ItemIndex` over `item_vectors()`; default exact);
        near-duplicate queries of a user (cosine > merge_cosine) are merged first, budgets
        summed; the lists are merged without duplicates (`budgeted_merge`), outcomes in the
        order given. The backbone runs once for all the outcomes (`outcome_queries`).

        exclude_history: the split's convention for seen items (`metrics.SEEN`), to be said
        every time, as there is no default that suits every dataset: True leaves the history's
        items out ("exclude", MovieLens, Amazon), False lets them be recommended again
        ("allow", the world, whose users come back to items). `split.seen == "exclude"`."""
        from course_lib.retrieval import ItemIndex

        if exclude_history is None:
            raise ValueError("say which convention the list follows: exclude_history=True leaves "
                             "the history's items out ('exclude', MovieLens, Amazon), False lets "
                             "them come back ('allow', the world); pass split.seen == 'exclude'")
        if not isinstance(budgets, dict) or not budgets:
            raise ValueError("budgets must be a dict {outcome: number of items}, e.g. "
                             "{'click': 6, 'conversion': 4}")
        for outcome, budget in budgets.items():
            self.outcome_id(outcome)
            if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 0:
                raise ValueError(f"budget of {outcome!r} must be an int >= 0, got {budget!r}")
        budgets = {outcome: int(budget) for outcome, budget in budgets.items()}
        total = sum(budgets.values())
        if total < 1:
            raise ValueError(f"the budgets must add up to a positive k, got {budgets}")
        index = index or ItemIndex(self.item_vectors(), "exact")
        history = history_of(batch)
        names = list(budgets)
        queries = self.outcome_queries(batch, names)                            # (B, Q, D)
        exclude = history if exclude_history else None
        found = [index.search(queries[:, q], min(total, index.n_items), exclude)[1].cpu()
                 for q in range(len(names))]                                      # Q x (B, K)
        out = torch.zeros(len(history), total, dtype=torch.long)
        for row in range(len(history)):
            kept, merged = merge_near_duplicates(queries[row], [budgets[o] for o in names],
                                                 merge_cosine)
            out[row] = budgeted_merge([found[q][row:row + 1] for q in kept], merged)[0]
        return out

    def _eval_inputs(self, batch) -> tuple[Tensor, Tensor]:
        history = history_of(batch)
        actions = batch.get("actions") if isinstance(batch, dict) else None
        if actions is None:
            raise ValueError("PinRec reads the history's actions: pass an EvalSet.batch of a "
                             "split with actions (load_dataset(...).split has them)")
        if actions.shape != history.shape:
            raise ValueError(f"actions {tuple(actions.shape)} must be shaped like the history "
                             f"{tuple(history.shape)}")
        if int(history.min()) < 0 or int(history.max()) > self.config.n_items:
            raise ValueError(f"history item ids must be in [0, {self.config.n_items}]")
        if int(actions.min()) < 0 or int(actions.max()) > self.config.n_actions:
            raise ValueError(f"actions must be ids in [0, {self.config.n_actions}], got "
                             f"{int(actions.min())}..{int(actions.max())}")
        return history, actions
