"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

A user's history s_1..s_T goes in; at every position t the model outputs F_t, a guess of
the next item's embedding, and the score of item i is the dot product with the SAME item
embedding used at the input (weight sharing, section III of the paper):

    E_t = M[s_t] sqrt(d) + P_t                       embedding + learned position
    S   = softmax(Q K^T / sqrt(d) + mask) V          causal self-attention: t sees s_1..s_t
    F   = ReLU(S W1 + b1) W2 + b2                    point-wise feed-forward
    r_{i,t} = F_t . M_i                              relevance of item i after step t

The paper's equation has no sqrt(d) (it writes E_t = M[s_t] + P_t); the authors' code scales
the item vector by it (`scale=True`, as the Transformer does), and so do we: M starts at
standard deviation 1/sqrt(d) and P at 1, so the factor lets item and position enter the first
block at the same size. The scores use M unscaled.

Each block is pre-LN, as the paper writes it: x <- x + Dropout(g(LayerNorm(x))) for
g = attention, then g = FFN; a last LayerNorm follows the blocks. (The original code
normalises only the queries before attention; we normalise queries, keys and values alike.)
Each line of code that implements one of these equations carries it as its comment.

Conventions (see `course_lib.data.sequences`): item ids are 1..I, 0 is padding, sequences are
padded on the LEFT so the newest item sits in the last column. A history longer than
`max_len` is truncated from the left: only its newest `max_len` items are read.

Three training losses (`SASRecConfig.loss_type`):
    "bce"             the paper's: -log s(r_pos) - sum_n log(1 - s(r_neg_n)) with uniform
                      negatives outside the history (one per position in the paper)
    "softmax"         full cross-entropy over all I items (every item a negative)
    "sampled_softmax" cross-entropy over the target and the batch's N sampled negatives
                      (`course_lib.losses.sampled_softmax_loss`)
With `SASRecConfig.temperature` set, "sampled_softmax" scores by cosines instead of dot
products: F_t and M are L2-normalised, the logits are cos / temperature and a negative equal
to the target is masked, HSTU's loss (`losses.normalised_sampled_softmax_loss`), so that
lesson 07 can compare the two architectures under one loss; `scores` are then cosines too.

Dimensions: B batch, T positions (= max_len), D width (d_model), H heads, I items,
N negatives per position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import losses
from course_lib.data.sequences import history_of

LOSSES = ("bce", "softmax", "sampled_softmax")


@dataclass
class SASRecConfig:
    """Defaults are the paper's small setting (ML-1M: d = 50, 2 blocks, 1 head, dropout 0.2,
    maxlen 200); `n_items` has no default. The course's profile picks d_model and max_len."""

    n_items: int
    max_len: int = 200
    d_model: int = 50
    n_blocks: int = 2
    n_heads: int = 1
    dropout: float = 0.2
    loss_type: str = "bce"
    temperature: float | None = None      # None: dot products; > 0: cosine / temperature

    def __post_init__(self):
        if self.n_items < 2:
            raise ValueError(f"n_items must be >= 2, got {self.n_items}")
        if self.max_len < 1 or self.n_blocks < 1 or self.n_heads < 1:
            raise ValueError(f"max_len, n_blocks and n_heads must be >= 1, got "
                             f"{self.max_len}, {self.n_blocks}, {self.n_heads}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by "
                             f"n_heads={self.n_heads}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.loss_type not in LOSSES:
            raise ValueError(f"loss_type must be one of {LOSSES}, got {self.loss_type!r}")
        if self.temperature is not None:
            if self.loss_type != "sampled_softmax":
                raise ValueError(f"a temperature (cosine logits) goes with loss_type="
                                 f"'sampled_softmax', got loss_type={self.loss_type!r}; set "
                                 "temperature=None for dot products")
            if not self.temperature > 0:
                raise ValueError(f"temperature must be > 0 (HSTU uses 0.05), got "
                                 f"{self.temperature}")


# --- the mask: who may attend to whom -------------------------------------------------------

def causal_mask(length: int, device=None) -> Tensor:
    """(T, T) bool, True where query t may attend to key s, i.e. s <= t (the past and itself)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def attention_mask(inputs: Tensor) -> Tensor:
    """(B, T, T) bool for a left-padded batch (B, T): causal, padding keys hidden.

    Every position also sees itself, so a padding query (all of whose keys are padding)
    still has one key and its softmax stays finite instead of 0/0 = NaN; its output is
    zeroed afterwards anyway.
    """
    length = inputs.shape[1]
    causal = causal_mask(length, inputs.device)                          # (T, T)
    real_key = (inputs > 0).unsqueeze(1)                                 # (B, 1, T)
    itself = torch.eye(length, dtype=torch.bool, device=inputs.device)  # (T, T)
    return causal & (real_key | itself)          # (B, T, T) mask: s <= t, s an item or s = t


# --- the blocks, in the order data flows through them --------------------------------------

class CausalSelfAttention(nn.Module):
    """Multi-head softmax attention through `F.scaled_dot_product_attention`."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.n_heads, self.dropout = config.n_heads, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, width = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.n_heads, width // self.n_heads)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)                      # 3 x (B, H, T, D/H)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        q, k, v = self._heads(x)                                         # (B, H, T, D/H)
        mask, p = mask.unsqueeze(1), self.dropout if self.training else 0.0  # mask: (B, 1, T, T)
        y = F.scaled_dot_product_attention(q, k, v, mask, p)  # softmax(Q K^T / sqrt(d) + mask) V
        return self.out(y.transpose(1, 2).flatten(2))                    # (B, T, D)

    def weights(self, x: Tensor, mask: Tensor) -> Tensor:
        """The attention matrix softmax(Q K^T / sqrt(d) + mask), (B, H, T, T), for plots."""
        q, k, _ = self._heads(x)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])      # (B, H, T, T)
        return logits.masked_fill(~mask.unsqueeze(1), float("-inf")).softmax(-1)


class Block(nn.Module):
    """x <- x + Dropout(Attention(LN(x))); x <- x + Dropout(FFN(LN(x))) (pre-LN)."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln_ffn = nn.LayerNorm(config.d_model)
        self.ffn = nn.Sequential(                        # F = ReLU(S W1 + b1) W2 + b2
            nn.Linear(config.d_model, config.d_model), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.d_model, config.d_model))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x), mask))      # x + Dropout(Attention(LN(x)))
        return x + self.drop(self.ffn(self.ln_ffn(x)))           # x + Dropout(FFN(LN(x)))


# --- the losses and the scores, as functions of the hidden states F (B, T, D) -------------

def bce_loss(hidden: Tensor, item_embedding: Tensor, targets: Tensor, negatives: Tensor) -> Tensor:
    """The paper's objective (section III), mean over positions with a target (targets > 0):

        -log s(F_t . M_pos) - sum_n log(1 - s(F_t . M_neg_n))

    hidden (B, T, D), item_embedding (I + 1, D), targets (B, T), negatives (B, T, N).
    log(1 - s(x)) = -softplus(x), written with softplus for numerical stability.
    """
    pos = (hidden * item_embedding[targets]).sum(-1)                 # (B, T) r_pos = F_t . M_pos
    neg = (hidden.unsqueeze(2) * item_embedding[negatives]).sum(-1)  # (B, T, N) r_neg = F_t . M_neg
    # -log s(r_pos) - sum_n log(1 - s(r_neg_n)), per position (B, T)
    per_position = F.softplus(-pos) + F.softplus(neg).sum(-1)
    valid = targets > 0
    return per_position[valid].mean()


def softmax_loss(hidden: Tensor, item_embedding: Tensor, targets: Tensor) -> Tensor:
    """Full cross-entropy: -log softmax_i(F_t . M_i)[target] over all items 1..I, mean over
    positions with a target. Logits are formed only at those positions, so memory is
    (positions with a target) x I, not B x T x I."""
    valid = targets > 0
    logits = hidden[valid] @ item_embedding.T                                 # (M, I + 1)
    logits[:, 0] = float("-inf")                                              # padding is no item
    return F.cross_entropy(logits, targets[valid])


def next_item_scores(hidden: Tensor, item_embedding: Tensor) -> Tensor:
    """r_i = F_T . M_i at the last position: (B, I + 1), column 0 (padding) = -inf."""
    scores = hidden[:, -1] @ item_embedding.T                        # (B, I + 1) r_i = F_T . M_i
    scores[:, 0] = float("-inf")
    return scores


# --- the model ------------------------------------------------------------------------------

class SASRec(nn.Module):
    """SASRec over item ids 1..I; `loss(batch)` trains it with `course_lib.train.fit`,
    `scores(batch)` ranks all items for evaluation."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        self.item_embedding = nn.Embedding(config.n_items + 1, config.d_model, padding_idx=0)  # M
        self.position_embedding = nn.Embedding(config.max_len, config.d_model)                 # P
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_blocks))
        self.ln_final = nn.LayerNorm(config.d_model)
        nn.init.normal_(self.item_embedding.weight, std=config.d_model ** -0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, inputs: Tensor) -> Tensor:
        """F (B, T, D) for a left-padded batch of item ids (B, T), T <= max_len; rows of
        padding positions are 0."""
        inputs = self._check_inputs(inputs)
        keep = (inputs > 0).unsqueeze(-1)                                # (B, T, 1)
        x = self.drop(self._embed(inputs)) * keep                        # (B, T, D)
        mask = attention_mask(inputs)                                    # (B, T, T)
        for block in self.blocks:
            x = block(x, mask) * keep                                    # (B, T, D)
        return self.ln_final(x) * keep                                   # (B, T, D)

    def _embed(self, inputs: Tensor) -> Tensor:
        """E (B, T, D); the newest item gets the last position vector, whatever T is."""
        length = inputs.shape[1]
        positions = torch.arange(self.config.max_len - length, self.config.max_len,
                                 device=inputs.device)                   # (T,)
        x = self.item_embedding(inputs) * math.sqrt(self.config.d_model)   # (B, T, D) M[s_t] sqrt(d)
        return x + self.position_embedding(positions)                   # E_t = M[s_t] sqrt(d) + P_t

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Training loss on a batch of `next_item_batches` (inputs, targets, negatives).

        Only positions with an input item and a target count (a user with one training item
        has a target but no input to predict it from). Batches wider than max_len keep their
        newest max_len columns, like `scores`.
        """
        inputs, targets = batch["inputs"], batch["targets"]
        if targets.shape != inputs.shape:
            raise ValueError(f"targets {tuple(targets.shape)} must have the shape of inputs "
                             f"{tuple(inputs.shape)}")
        self._check_ids(targets, "targets")
        newest = slice(-self.config.max_len, None)
        inputs, targets = inputs[:, newest], targets[:, newest]
        hidden = self(inputs)                                            # (B, T, D)
        targets = targets * (inputs > 0)                                 # (B, T)
        if not bool((targets > 0).any()):
            raise ValueError("the batch has no position with both an input and a target: "
                             "users need at least 2 training items")
        embedding = self.item_embedding.weight                           # (I + 1, D)
        if self.config.loss_type == "softmax":
            return softmax_loss(hidden, embedding, targets)
        negatives = batch.get("negatives")
        shape = tuple(batch["targets"].shape)
        if negatives is None or negatives.dim() != 3 or tuple(negatives.shape[:2]) != shape:
            raise ValueError(f"loss_type={self.config.loss_type!r} needs batch['negatives'] of "
                             "shape (B, T, N); make batches with next_item_batches(..., "
                             "n_negatives=N)")
        negatives = negatives[:, newest]
        self._check_ids(negatives, "negatives")
        if self.config.loss_type == "bce":
            return bce_loss(hidden, embedding, targets, negatives)
        valid = targets > 0
        if self.config.temperature is not None:                 # cosines / temperature
            return losses.normalised_sampled_softmax_loss(hidden[valid], embedding,
                                                          targets[valid], negatives[valid],
                                                          self.config.temperature)
        # Cross-entropy over the target and its N uniform negatives (Jean et al. 2015); with
        # a uniform proposal the log-q correction is a constant and drops out.
        pos = (hidden[valid] * embedding[targets[valid]]).sum(-1)                  # (M,)
        neg = torch.einsum("md,mnd->mn", hidden[valid], embedding[negatives[valid]])  # (M, N)
        return losses.sampled_softmax_loss(pos, neg)

    @torch.no_grad()
    def scores(self, batch: dict[str, Tensor] | Tensor) -> Tensor:
        """(B, I + 1) scores of every item as the next one after a left-padded history (B, T)
        (batch["history"], or the batch itself as a tensor); column 0 is -inf. Only the
        newest `max_len` items are read. Dot products F_T . M_i, or cosines when the config
        has a temperature."""
        history = self._check_inputs(history_of(batch))
        empty = ~(history > 0).any(dim=1)
        if bool(empty.any()):
            row = int(empty.nonzero()[0])
            raise ValueError(f"history row {row} is empty (all padding): SASRec needs at "
                             "least one item to predict the next; score such users with "
                             "a popularity baseline instead")
        hidden, embedding = self(history), self.item_embedding.weight
        if self.config.temperature is not None:                 # cosines, as it was trained
            hidden = F.normalize(hidden, dim=-1, eps=losses.NORM_EPS)
            embedding = F.normalize(embedding, dim=-1, eps=losses.NORM_EPS)
        return next_item_scores(hidden, embedding)                             # (B, I + 1)

    @torch.no_grad()
    def attention_maps(self, history: Tensor) -> list[Tensor]:
        """Each block's attention weights (B, H, T, T) on `history`, for plots (eval mode,
        no dropout; the extra pass recomputes the weights that SDPA keeps internal)."""
        history = self._check_inputs(history)
        was_training = self.training
        self.eval()
        keep, mask, maps = (history > 0).unsqueeze(-1), attention_mask(history), []
        x = self._embed(history) * keep                                  # (B, T, D)
        for block in self.blocks:
            maps.append(block.attn.weights(block.ln_attn(x), mask))
            x = block(x, mask) * keep
        self.train(was_training)
        return maps

    # --- input checks at the public boundary ---------------------------------------------
    def _check_ids(self, ids: Tensor, name: str) -> None:
        if not isinstance(ids, Tensor) or ids.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be a long tensor of item ids, got "
                            f"{getattr(ids, 'dtype', type(ids).__name__)}; call .long()")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > self.config.n_items):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise ValueError(f"{name} holds item id {bad}, but item ids must be in "
                             f"[1, {self.config.n_items}] (0 is padding); was the model built "
                             "with this dataset's n_items?")

    def _check_inputs(self, inputs: Tensor, name: str = "history") -> Tensor:
        """Validate a left-padded (B, T) batch; keep only its newest max_len columns."""
        self._check_ids(inputs, name)
        if inputs.dim() != 2:
            raise ValueError(f"{name} must be 2-D (B, T), got shape {tuple(inputs.shape)}; "
                             "for one user use history[None]")
        real = inputs > 0
        after_item = real[:, :-1] & ~real[:, 1:]                         # an item, then a 0
        if bool(after_item.any()):
            row = int(after_item.any(dim=1).nonzero()[0])
            raise ValueError(f"{name} row {row} has padding (0) after an item: sequences "
                             "must be padded on the LEFT (use sequences.pad_left)")
        return inputs[:, -self.config.max_len:].long()
