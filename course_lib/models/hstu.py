"""HSTU: hierarchical sequential transduction units (Zhai et al., ICML 2024, "Actions Speak
Louder than Words: Trillion-Parameter Sequential Transducers for Generative Recommendations").

SASRec reads a list of items. HSTU reads an EVENT STREAM: position t is an event
(s_t, a_t, tau_t), an item, the action taken on it (the world's exposure 1, click 2, like 3,
conversion 4; 0 is padding) and its time in seconds. Each event is one token,

    x_t = M[s_t] sqrt(d) + E[a_t] + P_t              item + action + learned position

The action is summed into its item's token (the production code adds a sum of per-action
embeddings to the item embedding). The paper's generative-training view instead interleaves
item and action tokens (s_0, a_0, s_1, a_1, ...), twice as long; summing keeps SASRec's
layout, one position per event. Labels follow the paper's retrieval task (section 2.2):
the label of position t is the next item s_{t+1} only if its action a_{t+1} is positive
(`HSTUConfig.positive_actions`); otherwise position t has no label and is masked out.

Each layer is pointwise. The paper's equations (section 3.1, eqs. 1-3), with
phi_1 = phi_2 = SiLU and Norm a layer norm:

    U, V, Q, K = Split(phi_1(f1(X)))                     (1) pointwise projection
    A(X) V(X) = phi_2(Q K^T + rab^{p,t}) V(X)            (2) pointwise aggregation
    Y(X) = f2(Norm(A(X) V(X)) (x) U(X))                  (3) pointwise transformation

This module follows the reference code (facebookresearch/generative-recommenders, research
path), which adds three things the equations do not have: a LayerNorm of the input X before
f1, the division of the weights by n, and a residual connection (dropout before f2):

    U, V, Q, K = Split(SiLU(f1(LN(X))))                  (1) + LN(X)
    A = SiLU(Q K^T + rab^{p,t}) / n  (x) Mask            (2) + the division by n
    Y = X + f2(Dropout(U (x) LN(A V)))                   (3) + the residual X + ...

with (x) the element-wise product and Mask the causal 0/1 mask (t sees the events s <= t).
There is no softmax and no 1/sqrt(d): a row of A does not sum to 1, so ten relevant events
weigh ten times one in A V, where softmax would average them away ("preference intensity",
section 3.1). Eq. 3's Norm(A V) then divides A V's overall scale out (one LayerNorm over all
heads together): what reaches Y is the shape of A V, how the events' contributions weigh
against each other within the sum (and one head's sum against another's), not its size.
A V scaled by any factor gives the same Y; lesson 07 measures what that leaves of a count.

The divisor n (`HSTUConfig.divisor`):
    "padded"  the reference's: a constant, the padded length, here max_len + 1 (max_len
              history slots + 1 candidate slot; the reference's max_len + output slots,
              211 on ML-1M), the same for every user and position, so A is a scaled sum;
    "length"  the number of events query t actually sees (its true length so far), so A is
              a mean. Dividing by the user's whole length instead would tell position t how
              many events follow it: a leak of the future.

The relative attention bias rab^{p,t}_{tj} = w_p[j - t + N - 1] + w_t[bucket(tau'_t - tau_j)]
has 2N - 1 learned position scalars (N = max_len + 1 slots) and 129 learned time scalars,

    bucket(dt) = floor(ln(max(|dt|, 1)) / 0.301), clamped to [0, 128]

(the NATURAL log divided by 0.301, as in the reference: 0.301 is log10(2), yet each bucket
spans a factor e^0.301 = 1.35 in dt, not 2). tau'_t is the query's NEXT timestamp:
tau_{t+1} for t inside the history, the request time (the target's timestamp,
batch["target_timestamps"]) at the last position. That is still causal: position t learns
WHEN it is asked, never WHAT comes; the next item stays hidden. At serving time the
request time is known (the user is here now), and a short gap (same session) or a long one
(days later) changes what comes next. Without a request time the last position's own
timestamp is used, as the reference code does.

Training (the reference's ML-1M setting): every labelled position predicts the next item by
sampled softmax over L2-normalised vectors, cosine / temperature 0.05, with 128 uniform
negatives per position from the batch (`next_item_batches(..., n_negatives=128)`); a
negative equal to the positive is masked (`losses.normalised_sampled_softmax_loss`).
The reference trains with AdamW, lr 1e-3, betas (0.9, 0.98), no weight decay (`train.fit`'s
optimizer="adamw", betas=(0.9, 0.98)).
Options: stochastic length (section 3.2, `stochastic_length`) drops events from long
sequences, and `ranking_weight` trains `ranking_head` for `score_candidates` (below).

Ranking with M-FALCON (section 3.4): m candidates are appended after the history, each sees
the whole history and itself, never another candidate, so one pass scores b_m of them at
O((n + b_m)^2 d) instead of b_m passes at O(n^2 d) each; microbatches of b_m candidates reuse
the history's keys and values (a KV cache). A candidate token carries its item, the next
position and no action (the action is what ranking predicts); `ranking_head` reads its output.
What is implemented is the MECHANICS of M-FALCON (the mask, the cache, the cost), not the
paper's ranking task: the paper interleaves item and action tokens and trains the model to
predict the action a user takes on each candidate. Here `ranking_head` is untrained unless
`ranking_weight` > 0, and then it learns to tell the next positively-acted item from
`ranking_negatives` random items (a sampled softmax over the candidates), not the action.
The candidate never carries the target's action, in training or at evaluation.

The full event stream, exposures included: `load_dataset` keeps only consumed events (every
action positive). To train on everything the user saw, build the split over all actions,
    frame = data.interactions
    split = leave_one_out(user_sequences(frame), n_items,
                          actions=user_events(frame, "action"),
                          timestamps=user_events(frame, "timestamp"))
and pass split.actions / split.timestamps to next_item_batches: exposures (action 1) are
then read as context, and a position followed by an exposure has no label. Evaluate on the
consumed-only split (a held-out exposure is not something to recommend).

Conventions as in SASRec (`course_lib.data.sequences`): item ids 1..I, 0 is padding,
sequences padded on the LEFT (the newest event in the last column) and truncated from the
left to their newest max_len events.

Dimensions: B batch, T positions (<= max_len), D width (d_model), H heads, d_qk and d_v per
head, I items, N negatives per position, m candidates, b candidates per microbatch,
S = T + b positions with candidates appended.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import losses
from course_lib.data.sequences import history_of
from course_lib.data.world import ACTIONS, CONSUMED
from course_lib.losses import normalised_sampled_softmax_loss

DIVISORS = ("padded", "length")
N_TIME_BUCKETS = 128            # buckets 0..128: 129 learned time scalars
TIME_BUCKET_WIDTH = 0.301       # ln(dt) / 0.301, as in the reference code
NORM_EPS = 1e-6                 # LayerNorm and L2-norm epsilon of the reference code
WORLD_POSITIVE_ACTIONS = tuple(ACTIONS.index(a) + 1 for a in CONSUMED)   # click, like, conversion


@dataclass
class HSTUConfig:
    """Defaults are the reference's ML-1M setting (2 blocks, 1 head, d = d_qk = d_v = 50,
    maxlen 200, dropout 0.2, temperature 0.05, divisor = the padded length, time bias on;
    the 128 negatives come with the batches); `n_items` has no default. Actions default to
    the world's: ids 1..4 (exposure, click, like, conversion), click, like and conversion
    positive.

    use_actions / use_time_bias switch the action embedding / the time part of the bias off
    (the item-only model keeps the position bias). stochastic_length_alpha in (1, 2] turns on
    stochastic length in training (None: off, as in the public code). ranking_weight > 0
    trains `ranking_head` for `score_candidates` on the last position's target against
    `ranking_negatives` of its negatives (0: retrieval only, as the reference's ML-1M run).
    """

    n_items: int
    max_len: int = 200
    d_model: int = 50
    n_blocks: int = 2
    n_heads: int = 1
    d_qk: int | None = None               # per head; None: d_model // n_heads
    d_v: int | None = None                # per head; None: d_model // n_heads
    dropout: float = 0.2
    n_actions: int = len(ACTIONS)
    positive_actions: tuple[int, ...] = WORLD_POSITIVE_ACTIONS
    use_actions: bool = True
    use_time_bias: bool = True
    divisor: str = "padded"
    temperature: float = 0.05
    stochastic_length_alpha: float | None = None
    ranking_weight: float = 0.0
    ranking_negatives: int = 8

    def __post_init__(self):
        if self.n_items < 2:
            raise ValueError(f"n_items must be >= 2, got {self.n_items}")
        if self.max_len < 1 or self.n_blocks < 1 or self.n_heads < 1 or self.n_actions < 1:
            raise ValueError(f"max_len, n_blocks, n_heads and n_actions must be >= 1, got "
                             f"{self.max_len}, {self.n_blocks}, {self.n_heads}, {self.n_actions}")
        self.d_qk = self.d_qk or self.d_model // self.n_heads
        self.d_v = self.d_v or self.d_model // self.n_heads
        if self.d_qk < 1 or self.d_v < 1:
            raise ValueError(f"d_qk and d_v must be >= 1, got {self.d_qk} and {self.d_v}; "
                             "set them, or use n_heads <= d_model")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.divisor not in DIVISORS:
            raise ValueError(f"divisor must be one of {DIVISORS}, got {self.divisor!r}")
        self.positive_actions = tuple(int(a) for a in self.positive_actions)
        if not all(1 <= a <= self.n_actions for a in self.positive_actions):
            raise ValueError(f"positive_actions must be action ids in [1, {self.n_actions}], "
                             f"got {self.positive_actions}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        alpha = self.stochastic_length_alpha
        if alpha is not None and not 1 < alpha <= 2:
            raise ValueError(f"stochastic_length_alpha must be in (1, 2] (the paper uses 1.6) "
                             f"or None for off, got {alpha}")
        if self.ranking_weight < 0 or self.ranking_negatives < 1:
            raise ValueError(f"ranking_weight must be >= 0 and ranking_negatives >= 1, got "
                             f"{self.ranking_weight} and {self.ranking_negatives}")

    @property
    def n_slots(self) -> int:
        """Positions the model knows: max_len history events + 1 slot for the next event."""
        return self.max_len + 1


# --- masks: who may attend to whom ----------------------------------------------------------

def causal_mask(length: int, device=None) -> Tensor:
    """(T, T) bool, True where query t may attend to key s, i.e. s <= t."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def attention_mask(real: Tensor) -> Tensor:
    """(B, T, T) bool for a left-padded batch whose events are `real` (B, T): causal, padding
    keys hidden. A padding query sees nothing; with no softmax its row is simply 0."""
    return causal_mask(real.shape[1], real.device) & real.unsqueeze(1)   # (B, T, T)


def falcon_mask(real: Tensor, n_candidates: int) -> Tensor:
    """(B, T + m, T + m) bool: the history (B, T) stays causal and never sees a candidate;
    each of the m candidates appended after it sees every real history event and itself,
    no other candidate (M-FALCON, section 3.4)."""
    batch, length = real.shape
    size = length + n_candidates
    mask = torch.zeros(batch, size, size, dtype=torch.bool, device=real.device)
    mask[:, :length, :length] = attention_mask(real)                    # history: causal
    mask[:, length:, :length] = real.unsqueeze(1)                       # candidate -> history
    mask[:, length:, length:] = torch.eye(n_candidates, dtype=torch.bool, device=real.device)
    return mask


# --- the relative attention bias ---------------------------------------------------------------

def time_buckets(dt: Tensor) -> Tensor:
    """floor(ln(max(|dt|, 1)) / 0.301) clamped to [0, 128], for gaps dt in seconds (any
    shape, long). The natural log, in float32, as the reference code computes it."""
    seconds = dt.abs().clamp(min=1).float()
    return (seconds.log() / TIME_BUCKET_WIDTH).floor().long().clamp(0, N_TIME_BUCKETS)


def lookup(table: Tensor, index: Tensor) -> Tensor:
    """table[index] for a 1-D table of learned scalars, written as a gather: its backward is
    a scatter-add, several times faster on a CPU than indexing's for a (B, T, T) index."""
    return table.gather(0, index.flatten()).view(index.shape)


def query_times(timestamps: Tensor, request_times: Tensor | None = None) -> Tensor:
    """tau'_t, the time position t is asked at (B, T): the next event's timestamp inside the
    history; at the last position the request time (B,) (the target's timestamp), or, when
    it is unknown, the last event's own timestamp (the reference code's choice)."""
    last = timestamps[:, -1:] if request_times is None else request_times.reshape(-1, 1)
    return torch.cat([timestamps[:, 1:], last.to(timestamps.dtype)], dim=1)  # (B, T)


def relative_pairs(query_slots: Tensor, key_slots: Tensor, query_times: Tensor | None = None,
                   key_times: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """Where each key sits as seen from each query: the signed distance j - t (Sq, Sk)
    between their slots (absolute positions 0..N-1; only differences matter, so left padding
    changes nothing), and the bucket of tau'_t - tau_j (B, Sq, Sk), or None without times.
    Every layer reads the same pairs, so a pass computes them once."""
    distance = key_slots.unsqueeze(0) - query_slots.unsqueeze(1)          # (Sq, Sk) j - t
    if query_times is None:
        return distance, None
    return distance, time_buckets(query_times.unsqueeze(2) - key_times.unsqueeze(1))


class RelativeAttentionBias(nn.Module):
    """rab^{p,t}_{tj} = w_p[j - t + N - 1] + w_t[bucket(tau'_t - tau_j)] (section 3.1).

    w_p holds 2N - 1 learned scalars, one per signed distance between N slots; w_t holds
    129, one per time bucket (None when `use_time` is off).
    """

    def __init__(self, n_slots: int, use_time: bool = True):
        super().__init__()
        self.n_slots = n_slots
        self.position = nn.Parameter(torch.empty(2 * n_slots - 1).normal_(0, 0.02))  # w_p
        self.time = (nn.Parameter(torch.empty(N_TIME_BUCKETS + 1).normal_(0, 0.02))  # w_t
                     if use_time else None)

    def forward(self, distance: Tensor, buckets: Tensor | None = None) -> Tensor:
        """The pairs of `relative_pairs`, distance (Sq, Sk) and buckets (B, Sq, Sk), ->
        (B, Sq, Sk) (or (1, Sq, Sk) without time)."""
        bias = lookup(self.position, distance + self.n_slots - 1).unsqueeze(0)  # (1, Sq, Sk)
        if self.time is None:
            return bias
        if buckets is None:
            raise ValueError("this bias has time scalars: pass the time buckets too")
        return bias + lookup(self.time, buckets)                                # rab^{p,t}


# --- pointwise attention (eq. 2) ------------------------------------------------------------

def pointwise_weights(q: Tensor, k: Tensor, bias: Tensor, mask: Tensor,
                      divisor: float | Tensor) -> Tensor:
    """A = SiLU(Q K^T + rab) / n (x) Mask: q (B, H, Sq, d_qk), k (B, H, Sk, d_qk), bias
    broadcastable to (B, H, Sq, Sk), mask (B, Sq, Sk) bool, divisor a number or a tensor
    broadcastable to (B, H, Sq, 1). No softmax, no 1/sqrt(d): rows need not sum to 1."""
    scores = q @ k.transpose(-1, -2) + bias                        # (B, H, Sq, Sk) Q K^T + rab
    return F.silu(scores) / divisor * mask.unsqueeze(1)            # SiLU(.) / n (x) Mask


def pointwise_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: Tensor,
                        divisor: float | Tensor) -> Tensor:
    """A V (B, H, Sq, d_v) with A from `pointwise_weights`; v (B, H, Sk, d_v)."""
    return pointwise_weights(q, k, bias, mask, divisor) @ v       # (B, H, Sq, d_v)


def attention_divisor(mask: Tensor, config: HSTUConfig) -> float | Tensor:
    """n of eq. 2: the padded length max_len + 1 ("padded"), or per query the number of
    events it sees, (B, 1, Sq, 1) ("length"; at least 1, so a padding row stays 0)."""
    if config.divisor == "padded":
        return float(config.n_slots)
    return mask.sum(-1).clamp(min=1)[:, None, :, None].to(torch.get_default_dtype())


# --- the layer, in the order data flows through it --------------------------------------------

class HSTULayer(nn.Module):
    """One HSTU layer (eqs. 1-3), with its own relative attention bias."""

    def __init__(self, config: HSTUConfig):
        super().__init__()
        self.n_heads, self.d_qk, self.d_v = config.n_heads, config.d_qk, config.d_v
        width = config.n_heads * (2 * config.d_v + 2 * config.d_qk)
        self.f1 = nn.Linear(config.d_model, width, bias=False)            # U, V, Q, K
        self.f2 = nn.Linear(config.n_heads * config.d_v, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.rab = RelativeAttentionBias(config.n_slots, config.use_time_bias)
        nn.init.normal_(self.f1.weight, std=0.02)                         # as the reference
        nn.init.xavier_uniform_(self.f2.weight)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Eq. 1: U (B, S, H d_v); V (B, H, S, d_v); Q, K (B, H, S, d_qk)."""
        h = F.silu(self.f1(F.layer_norm(x, x.shape[-1:], eps=NORM_EPS)))  # SiLU(f1(LN(X)))
        sizes = [self.n_heads * self.d_v] * 2 + [self.n_heads * self.d_qk] * 2
        u, v, q, k = h.split(sizes, dim=-1)
        return u, self._heads(v), self._heads(q), self._heads(k)

    def _heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, -1).transpose(1, 2)    # (B, H, S, d)

    def transform(self, x: Tensor, u: Tensor, av: Tensor) -> Tensor:
        """Eq. 3: Y = X + f2(Dropout(U (x) LN(A V))), av (B, H, S, d_v) -> Y (B, S, D)."""
        av = av.transpose(1, 2).flatten(2)                                 # (B, S, H d_v)
        normed = F.layer_norm(av, av.shape[-1:], eps=NORM_EPS)
        return x + self.f2(self.drop(u * normed))

    def forward(self, x: Tensor, pairs: tuple[Tensor, Tensor | None], mask: Tensor,
                divisor: float | Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (B, S, D) -> Y (B, S, D), and the keys and values (B, H, S, d) for a KV cache;
        pairs from `relative_pairs`, mask (B, S, S)."""
        u, v, q, k = self.project(x)
        bias = self.rab(*pairs).unsqueeze(1)                               # (B, 1, S, S)
        av = pointwise_attention(q, k, v, bias, mask, divisor)            # (B, H, S, d_v)
        return self.transform(x, u, av), (k, v)

    def extend(self, xc: Tensor, cache: tuple[Tensor, Tensor], real: Tensor,
               pairs: tuple[Tensor, Tensor | None], divisor: float | Tensor) -> Tensor:
        """The layer for b candidates xc (B, b, D) appended after a history (B, T) whose keys
        and values this layer cached: each candidate attends to the real history events and
        to itself, exactly the rows of `falcon_mask`, at O(b T d) instead of O((T + b)^2 d).
        pairs: candidates (queries) against the history (keys), from `relative_pairs`."""
        u, v, q, k = self.project(xc)                                      # (B, H, b, d)
        k_hist, v_hist = cache                                             # (B, H, T, d)
        bias = self.rab(*pairs).unsqueeze(1)                               # (B, 1, b, T)
        mask = real.unsqueeze(1).expand(-1, xc.shape[1], -1)               # (B, b, T)
        a_hist = pointwise_weights(q, k_hist, bias, mask, divisor)         # (B, H, b, T)
        itself = torch.zeros(1, 1, dtype=torch.long, device=xc.device)     # distance 0, dt 0
        self_bias = self.rab(itself, None if pairs[1] is None else itself[None])  # (1, 1, 1)
        self_score = (q * k).sum(-1, keepdim=True) + self_bias             # (B, H, b, 1)
        a_self = F.silu(self_score) / divisor                              # (B, H, b, 1)
        return self.transform(xc, u, a_hist @ v_hist + a_self * v)         # (B, b, D)


# --- pure functions of training: labels, stochastic length, the loss --------------------------

def next_item_labels(targets: Tensor, target_actions: Tensor | None,
                     positive_actions: tuple[int, ...]) -> Tensor:
    """Position t's label (B, T): the next item where the next event's action is positive,
    else 0 (no label). Without actions every event counts as positive."""
    if target_actions is None:
        return targets
    positive = torch.isin(target_actions, torch.tensor(positive_actions,
                                                       device=target_actions.device))
    return targets * positive


def stochastic_length(real: Tensor, max_len: int, alpha: float,
                      generator: torch.Generator | None = None) -> Tensor:
    """Which events to keep (B, T) bool, by the paper's stochastic length (section 3.2):
    a sequence of n events is kept whole if n <= N^(alpha/2); otherwise, with probability
    1 - N^alpha / n^2, only a random subsequence of floor(N^(alpha/2)) events (in time
    order) is kept, and with probability N^alpha / n^2 the whole sequence. N = max_len.
    The expected attention cost is then O(N^alpha) instead of O(N^2)."""
    if not 1 < alpha <= 2:
        raise ValueError(f"alpha must be in (1, 2], got {alpha}")
    batch, length = real.shape
    n = real.sum(dim=1).double()                                          # (B,) n
    budget = max_len ** (alpha / 2)                                       # N^(alpha/2)
    p_subsample = (1 - max_len ** alpha / n.clamp(min=1) ** 2).clamp(min=0)  # (B,)
    draw = torch.rand(batch, generator=generator, device=real.device).double()
    subsample = (n > budget) & (draw < p_subsample)                       # (B,)
    noise = torch.rand(batch, length, generator=generator, device=real.device)
    noise = noise.masked_fill(~real, 2.0)                                 # padding never chosen
    rank = noise.argsort(dim=1).argsort(dim=1)                            # (B, T) random order
    chosen = real & (rank < int(budget))                                  # floor(N^(alpha/2))
    return torch.where(subsample.unsqueeze(1), chosen, real)             # (B, T)


def keep_columns(x: Tensor, keep: Tensor) -> Tensor:
    """The kept entries of each row of x (B, T, ...) moved to the right end, in order, with
    zeros (padding) before them: (B, T', ...), T' the most entries a row keeps."""
    order = keep.to(torch.uint8).argsort(dim=1, stable=True)             # dropped first
    width = max(int(keep.sum(dim=1).max()), 1)
    order = order[:, -width:]                                             # (B, T')
    kept = keep.gather(1, order)
    index = order.view(*order.shape, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index) * kept.view(*kept.shape, *[1] * (x.dim() - 2))


# --- the model ----------------------------------------------------------------------------------

class HSTU(nn.Module):
    """HSTU over item ids 1..I. `loss(batch)` trains it with `course_lib.train.fit` on
    `next_item_batches(..., n_negatives=128, actions=split.actions,
    timestamps=split.timestamps)`; `scores(batch)` ranks all items (`evaluate_model`);
    `query_vectors(batch)` and `item_vectors()` feed `retrieval.ItemIndex`;
    `score_candidates(batch, candidates)` ranks a short list with M-FALCON."""

    def __init__(self, config: HSTUConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.item_embedding = nn.Embedding(config.n_items + 1, d, padding_idx=0)   # M
        self.action_embedding = (nn.Embedding(config.n_actions + 1, d, padding_idx=0)  # E
                                 if config.use_actions else None)
        self.position_embedding = nn.Embedding(config.n_slots, d)                   # P
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(HSTULayer(config) for _ in range(config.n_blocks))
        self.ranking_head = nn.Linear(d, 1)
        nn.init.normal_(self.item_embedding.weight, std=0.02)      # the reference's scales
        nn.init.normal_(self.position_embedding.weight, std=d ** -0.5)
        if self.action_embedding is not None:
            nn.init.normal_(self.action_embedding.weight, std=d ** -0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
            if self.action_embedding is not None:
                self.action_embedding.weight[0].zero_()

    def forward(self, items: Tensor, actions: Tensor | None = None,
                timestamps: Tensor | None = None, request_times: Tensor | None = None
                ) -> Tensor:
        """Hidden states (B, T, D) of a left-padded event stream: items, actions and
        timestamps (B, T), and the request times (B,) that the last position is asked at
        (None: its own timestamp). Rows longer than max_len keep their newest max_len
        events; padding rows are 0."""
        items, actions, timestamps, times = self._check_events(
            items, actions, timestamps, request=request_times)
        return self._encode_history(items, actions, timestamps, times)[0]

    def _embed(self, items: Tensor, actions: Tensor | None, slots: Tensor) -> Tensor:
        """x_t = M[s_t] sqrt(d) + E[a_t] + P_t, (B, S, D); slots (S,) absolute positions."""
        x = self.item_embedding(items) * math.sqrt(self.config.d_model)   # M[s_t] sqrt(d)
        if self.action_embedding is not None and actions is not None:
            x = x + self.action_embedding(actions)                          # + E[a_t]
        return self.drop(x + self.position_embedding(slots))               # + P_t

    def _encode(self, x: Tensor, slots: Tensor, key_times: Tensor | None,
                query_times: Tensor | None, mask: Tensor) -> tuple[Tensor, list]:
        """The layers over embedded tokens x (B, S, D) in slots (S,), with their event and
        query times (B, S) (None: no time bias) and mask (B, S, S): (B, S, D) and each
        layer's keys and values."""
        pairs = relative_pairs(slots, slots, query_times, key_times)     # (S, S), (B, S, S)
        divisor, cache = attention_divisor(mask, self.config), []
        for layer in self.layers:
            x, keys_values = layer(x, pairs, mask, divisor)                # (B, S, D)
            cache.append(keys_values)
        return x, cache

    def _history_slots(self, length: int, device) -> Tensor:
        """The newest event sits in slot max_len - 1; slot max_len is the next event's."""
        return torch.arange(self.config.max_len - length, self.config.max_len, device=device)

    def _encode_history(self, items, actions, timestamps, query_times):
        real = items > 0                                                   # (B, T)
        slots = self._history_slots(items.shape[1], items.device)          # (T,)
        x = self._embed(items, actions, slots) * real.unsqueeze(-1)        # (B, T, D)
        hidden, cache = self._encode(x, slots, timestamps, query_times, attention_mask(real))
        return hidden * real.unsqueeze(-1), cache                          # (B, T, D)

    # --- training ------------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Sampled softmax on a batch of `next_item_batches` (inputs, targets, negatives and,
        as the config needs, actions, timestamps, target_actions, target_timestamps), plus
        `ranking_weight` times the ranking loss.

        Positions whose next event's action is not positive have no label. Batches wider
        than max_len keep their newest max_len columns. In training mode, with
        stochastic_length_alpha set, long rows first lose events (`stochastic_length`; each
        kept event still predicts the event that truly followed it, and the kept events
        move into consecutive slots), and the rows cut short are encoded apart from the
        others, in a narrower tensor: that is where the time goes down.
        """
        columns = self._training_columns(batch)
        groups = [columns]
        if self.training and self.config.stochastic_length_alpha is not None:
            keep = stochastic_length(columns["inputs"] > 0, self.config.max_len,
                                     self.config.stochastic_length_alpha)
            cut = (keep != (columns["inputs"] > 0)).any(dim=1)            # (B,) rows cut short
            groups = [{name: keep_columns(value[rows], keep[rows])
                       for name, value in columns.items()}
                      for rows in (cut, ~cut) if bool(rows.any())]
        parts = zip(*[self._labelled_outputs(group) for group in groups])
        queries, labels, negatives, logits, candidates = (torch.cat(p) for p in parts)
        if len(labels) == 0:
            raise ValueError("the batch has no labelled position (an input followed by an "
                             "event with a positive action): users need at least 2 events, "
                             f"and positive_actions={self.config.positive_actions}")
        loss = normalised_sampled_softmax_loss(queries, self.item_embedding.weight, labels,
                                               negatives, self.config.temperature)
        if self.config.ranking_weight > 0 and len(candidates):
            hits = candidates[:, 1:] == candidates[:, :1]                 # a negative = the target
            loss = loss + self.config.ranking_weight * losses.sampled_softmax_loss(
                logits[:, 0], logits[:, 1:], accidental_hits=hits)
        return loss

    def _labelled_outputs(self, columns: dict[str, Tensor]) -> tuple[Tensor, ...]:
        """For the M labelled positions of a group of rows: hidden states (M, D), labels
        (M,), negatives (M, N); and, with ranking_weight > 0, for the R rows whose last
        position has a label, `ranking_head` logits (R, 1 + n) of the candidates (R, 1 + n):
        that label, then `ranking_negatives` of its negatives, appended after the row."""
        items, actions, timestamps, times = self._check_events(
            columns["inputs"], columns.get("actions"), columns.get("timestamps"),
            columns.get("target_timestamps"), name="inputs")
        hidden, cache = self._encode_history(items, actions, timestamps, times)  # (B, T, D)
        labels = next_item_labels(columns["targets"], columns.get("target_actions"),
                                  self.config.positive_actions) * (items > 0)   # (B, T)
        valid, negatives = labels > 0, columns["negatives"]
        logits = hidden.new_zeros(0, 1 + self.config.ranking_negatives)
        candidates = labels.new_zeros(0, 1 + self.config.ranking_negatives)
        if self.config.ranking_weight > 0:
            candidates = torch.cat([labels[:, -1:],
                                    negatives[:, -1, :self.config.ranking_negatives]], dim=1)
            request = None if times is None else times[:, -1]
            logits = self._candidate_logits(candidates, cache, items > 0, timestamps, request)
            rows = labels[:, -1] > 0
            logits, candidates = logits[rows], candidates[rows]          # (R, 1 + n)
        return hidden[valid], labels[valid], negatives[valid], logits, candidates

    def _training_columns(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The batch's (B, T, ...) tensors, checked and cut to the newest max_len columns."""
        if not isinstance(batch, dict) or "inputs" not in batch or "targets" not in batch:
            raise ValueError("loss needs a batch dict from next_item_batches (inputs, targets, "
                             "negatives, and the split's actions / timestamps)")
        inputs, targets = batch["inputs"], batch["targets"]
        if not torch.is_tensor(targets) or targets.shape != inputs.shape:
            raise ValueError(f"targets {tuple(getattr(targets, 'shape', ()))} must have the "
                             f"shape of inputs {tuple(inputs.shape)}")
        _check_ids(targets, "targets", self.config.n_items)
        negatives = batch.get("negatives")
        if negatives is None or negatives.dim() != 3 or negatives.shape[:2] != inputs.shape \
                or negatives.shape[2] < 1:
            raise ValueError("HSTU's sampled softmax needs batch['negatives'] of shape (B, T, N) "
                             "with N >= 1; make batches with next_item_batches(..., "
                             "n_negatives=128)")
        _check_ids(negatives, "negatives", self.config.n_items)
        names = ["inputs", "targets", "negatives", "target_actions"]   # the labels read actions
        names += ["actions"] if self.config.use_actions else []
        names += ["timestamps", "target_timestamps"] if self.config.use_time_bias else []
        newest = slice(-self.config.max_len, None)
        columns = {}
        for name in names:
            value = batch.get(name)
            if value is None:
                if name == "target_actions":        # no actions: every event is positive
                    continue
                raise ValueError(self._missing(name))
            if not torch.is_tensor(value) or value.shape[:2] != inputs.shape:
                shape = tuple(getattr(value, "shape", ()))
                raise ValueError(f"batch[{name!r}] must be shaped like inputs "
                                 f"{tuple(inputs.shape)}, got {shape}")
            columns[name] = value[:, newest]
        if "target_actions" in columns:
            _check_actions(columns["target_actions"], columns["targets"] > 0,
                           self.config.n_actions, "target_actions")
        return columns

    # --- full ranking and retrieval --------------------------------------------------------------
    @torch.no_grad()
    def query_vectors(self, batch: dict[str, Tensor] | Tensor) -> Tensor:
        """(B, D) L2-normalised hidden state at the last position: the user's query for
        `retrieval.ItemIndex(model.item_vectors()).search(query, k)`."""
        items, actions, timestamps, request = self._eval_events(batch)
        times = None if timestamps is None else query_times(timestamps, request)
        hidden = self._encode_history(items, actions, timestamps, times)[0]  # (B, T, D)
        return F.normalize(hidden[:, -1], dim=-1, eps=NORM_EPS)             # (B, D)

    @torch.no_grad()
    def item_vectors(self) -> Tensor:
        """(I + 1, D) L2-normalised item embeddings; row 0 (padding) is 0."""
        return F.normalize(self.item_embedding.weight, dim=-1, eps=NORM_EPS)

    @torch.no_grad()
    def scores(self, batch: dict[str, Tensor] | Tensor) -> Tensor:
        """(B, I + 1) cosine of the last position's output with every item, column 0 -inf.
        batch: an `EvalSet.batch` dict (history, actions, timestamps, target_timestamps as
        the config needs), or a plain history (B, T) when actions and time bias are off."""
        scores = self.query_vectors(batch) @ self.item_vectors().T         # (B, I + 1)
        scores[:, 0] = float("-inf")
        return scores

    @torch.no_grad()
    def attention_maps(self, batch: dict[str, Tensor] | Tensor) -> list[Tensor]:
        """Each layer's A = SiLU(Q K^T + rab) / n (x) Mask, (B, H, T, T), on an evaluation
        batch, for plots (eval mode, no dropout): rows need not sum to 1."""
        items, actions, timestamps, request = self._eval_events(batch)
        was_training = self.training
        self.eval()
        real = items > 0
        slots = self._history_slots(items.shape[1], items.device)
        times = None if timestamps is None else query_times(timestamps, request)
        pairs, mask = relative_pairs(slots, slots, times, timestamps), attention_mask(real)
        divisor = attention_divisor(mask, self.config)
        x, maps = self._embed(items, actions, slots) * real.unsqueeze(-1), []
        for layer in self.layers:
            _, _, q, k = layer.project(x)
            maps.append(pointwise_weights(q, k, layer.rab(*pairs).unsqueeze(1), mask, divisor))
            x, _ = layer(x, pairs, mask, divisor)                          # (B, T, D)
        self.train(was_training)
        return maps

    # --- ranking: M-FALCON ----------------------------------------------------------------------
    @torch.no_grad()
    def score_candidates(self, batch: dict[str, Tensor] | Tensor, candidates: Tensor,
                         microbatch: int = 64, reuse_history: bool = True) -> Tensor:
        """`ranking_head` logits (B, m) of m candidate items (B, m) after each history.

        Candidates go in ceil(m / microbatch) passes of `microbatch` each. reuse_history=True
        is M-FALCON: the history is encoded once and every pass attends to its cached keys
        and values. reuse_history=False encodes history + candidates anew in each pass under
        `falcon_mask` (microbatch=1: one candidate per pass, the naive way). Both give the
        same scores; the head is trained only with `ranking_weight` > 0.
        """
        items, actions, timestamps, request = self._eval_events(batch)
        candidates = _check_candidates(candidates, items.shape[0], self.config.n_items)
        if isinstance(microbatch, bool) or not isinstance(microbatch, int) or microbatch < 1:
            raise ValueError(f"microbatch must be an int >= 1 (candidates per pass), got "
                             f"{microbatch!r}")
        times = None if timestamps is None else query_times(timestamps, request)
        chunks = candidates.split(microbatch, dim=1)
        if reuse_history:
            _, cache = self._encode_history(items, actions, timestamps, times)
            logits = [self._candidate_logits(c, cache, items > 0, timestamps, request)
                      for c in chunks]
        else:
            logits = [self._candidate_logits_in_one_pass(c, items, actions, timestamps, times,
                                                         request) for c in chunks]
        return torch.cat(logits, dim=1)                                     # (B, m)

    def _candidate_logits(self, candidates, cache, real, timestamps, request) -> Tensor:
        """(B, b) head logits of candidates (B, b) from the history's KV cache."""
        slots = torch.full_like(candidates[0], self.config.max_len)       # (b,) the next slot
        history_slots = self._history_slots(real.shape[1], real.device)   # (T,)
        at_request = None if timestamps is None else request[:, None].expand_as(candidates)
        pairs = relative_pairs(slots, history_slots, at_request, timestamps)  # (b, T), (B, b, T)
        x = self._embed(candidates, None, slots)                          # (B, b, D)
        if self.config.divisor == "padded":
            divisor = float(self.config.n_slots)
        else:                                           # history events seen, plus itself
            divisor = (real.sum(1) + 1)[:, None, None, None].to(x.dtype)
        for layer, keys_values in zip(self.layers, cache):
            x = layer.extend(x, keys_values, real, pairs, divisor)        # (B, b, D)
        return self.ranking_head(x).squeeze(-1)                             # (B, b)

    def _candidate_logits_in_one_pass(self, candidates, items, actions, timestamps, times,
                                      request) -> Tensor:
        """(B, b) head logits, history and candidates encoded together under falcon_mask."""
        n_cand, length = candidates.shape[1], items.shape[1]
        slots = torch.cat([self._history_slots(length, items.device),
                           torch.full_like(candidates[0], self.config.max_len)])  # (S,)
        sequence = torch.cat([items, candidates], dim=1)                   # (B, S)
        if actions is not None:
            actions = torch.cat([actions, torch.zeros_like(candidates)], dim=1)  # unknown
        key_times = query = None
        if timestamps is not None:
            at_request = request[:, None].expand(-1, n_cand)
            key_times = torch.cat([timestamps, at_request], dim=1)         # (B, S)
            query = torch.cat([times, at_request], dim=1)                  # (B, S)
        real = items > 0
        x = self._embed(sequence, actions, slots)
        x = x * torch.cat([real, torch.ones_like(candidates, dtype=torch.bool)], 1).unsqueeze(-1)
        hidden, _ = self._encode(x, slots, key_times, query, falcon_mask(real, n_cand))
        return self.ranking_head(hidden[:, length:]).squeeze(-1)            # (B, b)

    # --- input checks at the public boundary ----------------------------------------------------
    def _eval_events(self, batch):
        """History, actions, timestamps (B, T) and request times (B,) of an evaluation batch,
        checked and cut to the newest max_len events."""
        history = history_of(batch)
        extras = batch if isinstance(batch, dict) else {}
        actions = extras.get("actions") if self.config.use_actions else None
        timestamps = extras.get("timestamps") if self.config.use_time_bias else None
        if self.config.use_actions and actions is None:
            raise ValueError(self._missing("actions"))
        if self.config.use_time_bias and timestamps is None:
            raise ValueError(self._missing("timestamps"))
        request = extras.get("target_timestamps") if self.config.use_time_bias else None
        items, actions, timestamps, times = self._check_events(history, actions, timestamps,
                                                               request=request)
        empty = ~(items > 0).any(dim=1)
        if bool(empty.any()):
            raise ValueError(f"history row {int(empty.nonzero()[0])} is empty (all padding): "
                             "HSTU needs at least one event; score such users with a "
                             "popularity baseline instead")
        return items, actions, timestamps, None if times is None else times[:, -1]

    def _check_events(self, items, actions, timestamps, times=None, request=None,
                      name: str = "history"):
        """Validate a left-padded event stream (B, T); keep its newest max_len columns. The
        query times are `times` (B, T) (a training batch's target_timestamps) or else built
        by `query_times(timestamps, request)`."""
        _check_ids(items, name, self.config.n_items)
        if items.dim() != 2:
            raise ValueError(f"{name} must be 2-D (B, T), got shape {tuple(items.shape)}; "
                             "for one user use history[None]")
        real = items > 0
        after_item = real[:, :-1] & ~real[:, 1:]
        if bool(after_item.any()):
            row = int(after_item.any(dim=1).nonzero()[0])
            raise ValueError(f"{name} row {row} has padding (0) after an item: sequences "
                             "must be padded on the LEFT (use sequences.pad_left)")
        for label, value in (("actions", actions), ("timestamps", timestamps),
                             ("query times", times)):
            if value is not None and (not torch.is_tensor(value) or value.shape != items.shape):
                raise ValueError(f"{label} {tuple(getattr(value, 'shape', ()))} must have the "
                                 f"shape of {name} {tuple(items.shape)}: one per event, built "
                                 "from the same split (next_item_batches(..., actions=split."
                                 "actions, timestamps=split.timestamps) or EvalSet.batch)")
        newest = slice(-self.config.max_len, None)
        items, real = items[:, newest].long(), real[:, newest]
        if actions is not None:
            actions = actions[:, newest].long()
            _check_actions(actions, real, self.config.n_actions, "actions")
        if timestamps is not None:
            timestamps = timestamps[:, newest].long()
            if times is None:
                times = query_times(timestamps, _check_request(request, items))
            else:
                times = times[:, newest].long()
            _check_times(timestamps, times, real)
        else:
            times = None
        return items, actions, timestamps, times

    def _missing(self, name: str) -> str:
        switch = "use_actions" if "actions" in name else "use_time_bias"
        return (f"the batch has no {name!r}, which this HSTU reads ({switch}=True): build "
                f"batches from a split that carries them (next_item_batches(..., actions=split."
                f"actions, timestamps=split.timestamps), EvalSet.batch), or set "
                f"HSTUConfig({switch}=False)")


def _check_ids(ids: Tensor, name: str, n_items: int) -> None:
    if not isinstance(ids, Tensor) or ids.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name} must be a long tensor of item ids, got "
                        f"{getattr(ids, 'dtype', type(ids).__name__)}; call .long()")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > n_items):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"{name} holds item id {bad}, but item ids must be in [1, {n_items}] "
                         "(0 is padding); was the model built with this dataset's n_items?")


def _check_actions(actions: Tensor, real: Tensor, n_actions: int, name: str) -> None:
    if actions.dtype.is_floating_point:
        raise TypeError(f"{name} must be integer action ids, got {actions.dtype}")
    bad = real & ((actions < 1) | (actions > n_actions))
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} row {row} holds action id {int(actions[row, col])}, but "
                         f"action ids must be in [1, {n_actions}] (0 is padding; the world's "
                         f"are ACTIONS index + 1: {dict(zip(ACTIONS, range(1, 5)))}); set "
                         "HSTUConfig(n_actions=...) to your vocabulary")


def _check_times(timestamps: Tensor, times: Tensor, real: Tensor) -> None:
    backwards = real[:, :-1] & (timestamps[:, 1:] < timestamps[:, :-1])
    if bool(backwards.any()):
        row, col = (int(i) for i in backwards.nonzero()[0])
        raise ValueError(f"timestamps of row {row} go backwards: {int(timestamps[row, col])} "
                         f"then {int(timestamps[row, col + 1])} (columns {col}, {col + 1}); "
                         "sort each user's events by time (user_events does)")
    early = real & (times < timestamps)
    if bool(early.any()):
        row, col = (int(i) for i in early.nonzero()[0])
        raise ValueError(f"row {row}: the next event (or request) time {int(times[row, col])} "
                         f"is before the event's own {int(timestamps[row, col])}; "
                         "target_timestamps must not go backwards either")


def _check_request(request, history) -> Tensor | None:
    if request is None:
        return None
    if not torch.is_tensor(request) or request.shape != history.shape[:1]:
        raise ValueError(f"target_timestamps must be (B,) = ({history.shape[0]},), one request "
                         f"time per user (EvalSet.batch), got "
                         f"{tuple(getattr(request, 'shape', ()))}")
    return request


def _check_candidates(candidates, batch: int, n_items: int) -> Tensor:
    _check_ids(candidates, "candidates", n_items)
    if candidates.dim() != 2 or candidates.shape[0] != batch or candidates.shape[1] < 1:
        raise ValueError(f"candidates must be (B, m) = ({batch}, m >= 1) item ids, got "
                         f"{tuple(candidates.shape)}")
    if bool((candidates == 0).any()):
        raise ValueError("candidates hold 0 (padding); every candidate must be an item id "
                         f"in [1, {n_items}]")
    return candidates.long()
