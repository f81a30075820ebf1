"""TIGER: generative retrieval with semantic IDs (Rajput et al., NeurIPS 2023, arXiv 2305.05065).

Every item has a semantic ID c = (c_1, ..., c_M): L codes from a quantizer and a collision
token, M = L + 1 (`course_lib.quantize.semantic_ids`). TIGER reads a user's history as the
flattened tokens of its items' IDs and *writes* the next item's ID, token by token, with an
encoder-decoder Transformer (section 3.2):

    x = (u, tok(s_1), ..., tok(s_T))        encoder input: a user token, then M tokens per item
    H = Encoder(x)                          memory (S, D), S = 1 + T * M
    h_d = Decoder(BOS, c_1, ..., c_{d-1}; H)_d             causal: position d sees c_<d only
    p(c_d | c_<d, x) = softmax over level d's tokens of (h_d . E_v / sqrt(D))
    loss = -(1 / M) sum_d log p(c_d | c_<d, x)             teacher forcing, mean per token
    log p(c | x) = sum_d log p(c_d | c_<d, x)              the score of a whole ID

tok(i) = (offset_1 + c_1, ..., offset_M + c_M) puts each position's codes in its own range of
one shared vocabulary (`Vocabulary`), u is a hashed user token, and E is the token embedding,
shared by the encoder's input, the decoder's input and the output layer (as in T5).
Recommendation is a beam search over IDs (`course_lib.retrieval.beam_search`), constrained by
the trie of valid IDs so that every result is a real item (`recommend`); `sample` draws IDs
instead, as the paper's diversity experiment does. A cold item (content but no interactions)
gets its ID from the same quantizer, so it is in the trie and can be generated like any other;
`recommend(..., cold_prefix=L)` also retrieves it when a generated ID matches its first L
codes (the paper's cold-start rule), and `max_cold_share=eps` caps the share of cold items.

The blocks follow T5 (Raffel et al. 2020), written out: pre-norm residual blocks, linear
layers without biases, a ReLU MLP, and attention whose inner width H * d_head (TIGER: 6 x 64 =
384) differs from D (128), which torch's nn.Transformer layers cannot express. Differences,
said openly: LayerNorm where T5 has RMSNorm (a fused kernel, faster on a CPU); learned absolute
positions instead of T5's relative position buckets; dropout on the residual branches, the
embeddings and inside the MLP, not on the attention weights (attention dropout takes a slow
path on a CPU); the softmax at position d runs over level d's tokens only (T5X's runs over the
whole vocabulary, where tokens of other levels are never right and end near probability 0);
the beam search is constrained (the paper's is not: 0.1-1.6% of its top-10 IDs name no item;
`generate(..., constrained=False)` measures that rate here).

Conventions (`course_lib.data.sequences`): item ids 1..I, 0 is padding, histories are padded
on the LEFT and only their newest `max_items` items are read. Batches hold item ids; the model
turns them into tokens through the semantic IDs it holds.

Dimensions: B users (queries) in a batch, T history items (<= max_items), M tokens per ID,
S = 1 + T * M encoder tokens, D = d_model, H heads of width d_head, W beams, N decoder rows
(B in training, up to B * W in a beam search), C candidate IDs per user, V vocabulary size,
V_d the codes at position d, I items, K list length.
"""
from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.data.sequences import history_of
from course_lib.quantize.semantic_ids import SemanticIds, rank_within_groups
from course_lib.retrieval import (BeamResult, beam_items, beam_search, check_temperatures,
                                  in_rows, sample_ids)


@dataclass
class TIGERConfig:
    """Defaults are the paper's experimental setup: 4 encoder and 4 decoder layers, 6 heads of
    width 64 (inner width 384), d_model 128, MLP 1024, dropout 0.1, at most 20 history items,
    2000 hashed user tokens (n_user_buckets=0: no user token). The course's profile picks
    smaller sizes, e.g. 2 + 2 layers, 2 heads x 32, d_model 64."""

    encoder_layers: int = 4
    decoder_layers: int = 4
    n_heads: int = 6
    d_head: int = 64
    d_model: int = 128
    d_mlp: int = 1024
    dropout: float = 0.1
    max_items: int = 20
    n_user_buckets: int = 2000

    def __post_init__(self):
        sizes = {name: getattr(self, name) for name in (
            "encoder_layers", "decoder_layers", "n_heads", "d_head", "d_model", "d_mlp",
            "max_items")}
        bad = {name: v for name, v in sizes.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"these sizes must be ints >= 1, got {bad}")
        if not isinstance(self.n_user_buckets, int) or self.n_user_buckets < 0:
            raise ValueError(f"n_user_buckets must be an int >= 0 (0: no user token), got "
                             f"{self.n_user_buckets!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


# --- the vocabulary: every token the Transformer reads or writes ---------------------------

class Vocabulary:
    """TIGER's shared vocabulary (section 3.2): one token range per ID position, then users.

        0                         padding (PAD)
        1                         begin (BOS): the decoder's first input
        offset_d + c              code c at position d = 1..M, c in [0, V_d); position M is
                                  the collision token that makes IDs unique
        user_offset + b           user bucket b = hash(user) mod n_user_buckets

    The ranges do not overlap, so a token says which position it belongs to (the paper: 256
    codes x 4 positions = 1024 ID tokens, + 2000 user tokens). `encode` / `decode` convert
    semantic IDs (..., M) to tokens and back; `print(vocabulary)` shows the layout.
    """

    PAD, BOS = 0, 1

    def __init__(self, vocab_sizes: Sequence[int], n_user_buckets: int = 2000):
        vocab_sizes = tuple(int(v) for v in vocab_sizes)
        if len(vocab_sizes) < 2 or min(vocab_sizes) < 1:
            raise ValueError(f"need >= 2 positions (codes + collision token), each with >= 1 "
                             f"token, got vocab_sizes={vocab_sizes}")
        if not isinstance(n_user_buckets, int) or n_user_buckets < 0:
            raise ValueError(f"n_user_buckets must be an int >= 0, got {n_user_buckets!r}")
        self.vocab_sizes, self.n_user_buckets = vocab_sizes, n_user_buckets
        starts = [2]                                           # after PAD and BOS
        for size in vocab_sizes:
            starts.append(starts[-1] + size)
        self.offsets = tuple(starts[:-1])                      # offset_d, one per position
        self.code_tokens = range(starts[0], starts[-1])        # every ID token, all positions
        self.user_offset = starts[-1]
        self.size = self.user_offset + n_user_buckets          # V

    @property
    def depth(self) -> int:
        """M, tokens per semantic ID."""
        return len(self.vocab_sizes)

    def level_range(self, d: int) -> range:
        """The tokens of position d (0-based): [offset_d, offset_d + V_d)."""
        return range(self.offsets[d], self.offsets[d] + self.vocab_sizes[d])

    def encode(self, ids: Tensor) -> Tensor:
        """Semantic IDs (..., M), codes per position -> tokens (..., M): offset_d + c_d."""
        ids = torch.as_tensor(ids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"semantic IDs must be integer codes, got {ids.dtype}; use .long()")
        if ids.dim() == 0 or ids.shape[-1] != self.depth:
            raise ValueError(
                f"semantic IDs must have M = {self.depth} columns (the codes and the collision "
                f"token), got shape {tuple(ids.shape)}; quantizer codes without the collision "
                "token become IDs with SemanticIds.from_codes(codes, codebook_sizes)")
        return self.prefix_tokens(ids)

    def prefix_tokens(self, prefixes: Tensor) -> Tensor:
        """The first d positions of IDs (..., d), d <= M -> their tokens (..., d)."""
        d = prefixes.shape[-1]
        sizes = torch.tensor(self.vocab_sizes[:d], dtype=torch.long, device=prefixes.device)
        if bool(((prefixes < 0) | (prefixes >= sizes)).any()):
            raise ValueError(f"codes must lie in [0, V_d) per position, V = {self.vocab_sizes}"
                             f"[:{d}]; got a row outside it: are these IDs from another "
                             "quantizer, or tokens rather than codes?")
        return prefixes.long() + torch.tensor(self.offsets[:d], dtype=torch.long,
                                              device=prefixes.device)

    def decode(self, tokens: Tensor) -> Tensor:
        """Tokens (..., M) -> semantic IDs (..., M); every token must be in its position's range."""
        tokens = torch.as_tensor(tokens)
        if tokens.dim() == 0 or tokens.shape[-1] != self.depth:
            raise ValueError(f"token rows must have M = {self.depth} columns, got shape "
                             f"{tuple(tokens.shape)}")
        codes = tokens.long() - torch.tensor(self.offsets, device=tokens.device)
        sizes = torch.tensor(self.vocab_sizes, device=tokens.device)
        if bool(((codes < 0) | (codes >= sizes)).any()):
            raise ValueError("a token is outside its position's range (see print(vocabulary)); "
                             "tokens of position d lie in [offset_d, offset_d + V_d)")
        return codes

    def user_tokens(self, users: Tensor) -> Tensor:
        """User ids (B,) -> tokens (B,): a multiplicative hash (Knuth) into n_user_buckets
        buckets, so the vocabulary stays fixed however many users come; users sharing a bucket
        share a token."""
        if self.n_user_buckets == 0:
            raise ValueError("this vocabulary has no user tokens (n_user_buckets=0)")
        users = torch.as_tensor(users)
        if users.dtype.is_floating_point or users.dtype == torch.bool or bool((users < 0).any()):
            raise ValueError("user ids must be integers >= 0")
        bucket = (users.long() * 2654435761) % 2 ** 32 % self.n_user_buckets
        return self.user_offset + bucket

    def __repr__(self) -> str:
        rows = [("padding", range(0, 1)), ("begin (BOS)", range(1, 2))]
        for d in range(self.depth):
            name = "collision" if d == self.depth - 1 else f"level {d + 1} codes"
            rows.append((name, self.level_range(d)))
        if self.n_user_buckets:
            rows.append(("user buckets", range(self.user_offset, self.size)))
        lines = [f"  {r.start:>6} .. {r.stop - 1:<6} {name} ({len(r)})" for name, r in rows]
        return f"Vocabulary(size {self.size}):\n" + "\n".join(lines)


# --- the blocks, in the order data flows through them --------------------------------------

def stack_beams(x: Tensor, beams: tuple[Tensor, Tensor] | None, n_queries: int) -> Tensor:
    """Decoder rows (N, H, L, d_head) -> per query (B, H, W * L, d_head), W = most rows of one
    query (empty places zero). All beams of a query attend to the same encoder memory, so their
    queries are stacked into one attention call instead of copying the memory once per beam.
    beams = (rows, slots): row n belongs to query rows[n], as its slots[n]-th beam; None: row
    n is query n, nothing to do."""
    if beams is None:
        return x
    rows, slots = beams
    stacked = x.new_zeros(n_queries, int(slots.max()) + 1, *x.shape[1:])  # (B, W, H, L, d_head)
    stacked[rows, slots] = x
    return stacked.transpose(1, 2).flatten(2, 3)                         # (B, H, W * L, d_head)


def unstack_beams(y: Tensor, beams: tuple[Tensor, Tensor] | None, length: int) -> Tensor:
    """The inverse of `stack_beams`: (B, H, W * L, d_head) -> (N, H, L, d_head)."""
    if beams is None:
        return y
    rows, slots = beams
    return y.unflatten(2, (-1, length)).transpose(1, 2)[rows, slots]    # (N, H, L, d_head)


class Attention(nn.Module):
    """Multi-head attention softmax(Q K^T / sqrt(d_head) + mask) V (F.scaled_dot_product_attention)
    with H heads of width d_head: queries from x, keys and values from a context (x itself for
    self-attention, the encoder memory for cross-attention)."""

    def __init__(self, config: TIGERConfig):
        super().__init__()
        inner = config.n_heads * config.d_head                           # TIGER: 384
        self.n_heads = config.n_heads
        self.query = nn.Linear(config.d_model, inner, bias=False)
        self.key_value = nn.Linear(config.d_model, 2 * inner, bias=False)
        self.out = nn.Linear(inner, config.d_model, bias=False)

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)       # (N, H, L, d_head)

    def keys_values(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """K, V (B, H, S, d_head) of a context (B, S, D)."""
        return tuple(self._heads(kv) for kv in self.key_value(context).chunk(2, dim=-1))

    def forward(self, x: Tensor, keys_values: tuple[Tensor, Tensor], mask: Tensor | None = None,
                causal: bool = False, beams: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """x (N, L, D) attends to K, V (B, H, S, d_head); `beams` maps rows to queries when
        N != B (see `stack_beams`)."""
        q = self._heads(self.query(x))                                   # (N, H, L, d_head)
        q = stack_beams(q, beams, len(keys_values[0]))                   # (B, H, W * L, d_head)
        y = F.scaled_dot_product_attention(q, *keys_values, attn_mask=mask, is_causal=causal)
        y = unstack_beams(y, beams, x.shape[1])                          # (N, H, L, d_head)
        return self.out(y.transpose(1, 2).flatten(2))                    # (N, L, D)


def mlp(config: TIGERConfig) -> nn.Sequential:
    """T5's feed-forward layer: ReLU(x W1) W2, width d_mlp inside (TIGER: 1024)."""
    return nn.Sequential(nn.Linear(config.d_model, config.d_mlp, bias=False), nn.ReLU(),
                         nn.Dropout(config.dropout),
                         nn.Linear(config.d_mlp, config.d_model, bias=False))


class EncoderBlock(nn.Module):
    """x <- x + Dropout(SelfAttention(LN(x))); x <- x + Dropout(MLP(LN(x)))."""

    def __init__(self, config: TIGERConfig):
        super().__init__()
        self.norm_attn, self.attn = nn.LayerNorm(config.d_model), Attention(config)
        self.norm_mlp, self.mlp = nn.LayerNorm(config.d_model), mlp(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.norm_attn(x)
        x = x + self.drop(self.attn(h, self.attn.keys_values(h), mask))  # (B, S, D)
        return x + self.drop(self.mlp(self.norm_mlp(x)))                # (B, S, D)


class DecoderBlock(nn.Module):
    """Causal self-attention over the ID written so far, cross-attention to the encoder
    memory, MLP; each as x <- x + Dropout(f(LN(x)))."""

    def __init__(self, config: TIGERConfig):
        super().__init__()
        self.norm_self, self.self_attn = nn.LayerNorm(config.d_model), Attention(config)
        self.norm_cross, self.cross_attn = nn.LayerNorm(config.d_model), Attention(config)
        self.norm_mlp, self.mlp = nn.LayerNorm(config.d_model), mlp(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, memory_kv: tuple[Tensor, Tensor], memory_mask: Tensor,
                beams: tuple[Tensor, Tensor] | None) -> Tensor:
        h = self.norm_self(x)
        x = x + self.drop(self.self_attn(h, self.self_attn.keys_values(h), causal=True))
        x = x + self.drop(self.cross_attn(self.norm_cross(x), memory_kv,
                                          memory_mask[:, None, None], beams=beams))
        return x + self.drop(self.mlp(self.norm_mlp(x)))                # (N, L, D)


# --- beam lists: the cold-start cap ---------------------------------------------------------

def cap_cold_items(items: Tensor, cold_items: Tensor, max_cold: int) -> Tensor:
    """Keep at most `max_cold` cold items per list, the best ones, and move the rest of the
    list up to fill the places (TIGER's cold-start experiment caps the share of cold items in
    the top K at eps: max_cold = floor(eps * K)). items (B, W) ranked item ids, 0 = empty;
    cold_items (I + 1,) bool. Returns (B, W), the dropped items' places emptied (0) at the end."""
    cold = cold_items[items] & (items > 0)                               # (B, W)
    return _move_up(items, cold & (cold.cumsum(dim=1) > max_cold))       # cold beyond the cap


def _move_up(items: Tensor, drop: Tensor) -> Tensor:
    """items (B, N) without the places where `drop` (B, N) is True, the rest moved up in order,
    the freed places 0 at the end."""
    order = drop.to(torch.uint8).argsort(dim=1, stable=True)             # kept first, in order
    return items.masked_fill(drop, 0).gather(1, order)


def with_prefix_matches(result: BeamResult, semantic_ids: SemanticIds, cold_items: Tensor,
                        length: int) -> Tensor:
    """TIGER's rule for reaching cold items (section 4, cold-start): a generated ID whose first
    `length` codes (the paper: L = 3, every code but the collision token) match a cold item's
    retrieves that item. Returns each user's list (B, N), best first: every beam's item in beam
    order, each followed by the cold items under its first `length` codes (ascending ids), every
    item once, 0 for empty places. Cap the cold items with `cap_cold_items` (the paper's eps).

    Where a cold item joins the list (right after the ID that found it) is our choice; the
    paper does not say. result: the beams (B, W, M); cold_items (I + 1,) bool."""
    batch, width, depth = result.ids.shape
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= depth:
        raise ValueError(f"length must be an int in [1, M = {depth}] (the paper matches the "
                         f"first L = M - 1 codes), got {length!r}")
    ids = result.ids.reshape(batch * width, depth)                         # (B * W, M)
    named = semantic_ids.item_of(ids).tolist()                             # 0: no item
    real = (ids >= 0).all(dim=1)                                           # padding rows: NO_TOKEN
    matches = [[] for _ in range(batch * width)]
    rows = real.nonzero().flatten()
    for row, found in zip(rows.tolist(), semantic_ids.items_with_prefix(ids[rows, :length])):
        matches[row] = found[cold_items[found.to(cold_items.device)].cpu()].tolist()
    lists = []
    for b in range(batch):
        seen, ranked = set(), []
        for row in range(b * width, (b + 1) * width):
            for item in [named[row]] + matches[row]:
                if item > 0 and item not in seen:
                    seen.add(item)
                    ranked.append(item)
        lists.append(ranked)
    out = torch.zeros(batch, max(width, max(map(len, lists))), dtype=torch.long)
    for b, ranked in enumerate(lists):
        out[b, :len(ranked)] = torch.tensor(ranked, dtype=torch.long)
    return out.to(result.ids.device)                                       # (B, N)


@contextmanager
def _evaluating(model: nn.Module):
    """Eval mode (no dropout) and no gradients inside, the model's mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


# --- the model ------------------------------------------------------------------------------

class TIGER(nn.Module):
    """TIGER over the items of `semantic_ids` (item i has ID semantic_ids.table[i - 1]).

    Train with `course_lib.train.fit` on `loss(batch)` (batches of
    `sequences.next_item_examples`: users, history, targets); evaluate with
    `train.evaluate_model`, which calls `recommend(batch, k)`.
    """

    def __init__(self, semantic_ids: SemanticIds, config: TIGERConfig | None = None):
        super().__init__()
        config = config if config is not None else TIGERConfig()
        semantic_ids = _check_semantic_ids(semantic_ids)
        self.config = config
        self.vocabulary = Vocabulary(semantic_ids.vocab_sizes, config.n_user_buckets)
        self._semantic_ids = semantic_ids
        depth = self.vocabulary.depth
        tokens = self.vocabulary.encode(semantic_ids.table)                           # (I, M)
        padding_row = torch.full((1, depth), Vocabulary.PAD, dtype=torch.long)
        # Item id -> its M tokens, row 0 (padding) all PAD: moves with .to(device).
        self.register_buffer("item_tokens", torch.cat([padding_row, tokens.cpu()]),
                             persistent=False)                                        # (I + 1, M)
        level_of_token = torch.cat([torch.full((size,), d) for d, size in
                                    enumerate(self.vocabulary.vocab_sizes)])          # (sum V_d,)
        # Position d may only write level d's tokens.
        self.register_buffer("level_mask", level_of_token == torch.arange(depth)[:, None],
                             persistent=False)                                        # (M, sum V_d)
        width = config.d_model
        self.token_embedding = nn.Embedding(self.vocabulary.size, width)              # E
        self.encoder_positions = nn.Embedding(1 + config.max_items * depth, width)
        self.decoder_positions = nn.Embedding(depth, width)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(config) for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(width)
        self.decoder = nn.ModuleList(DecoderBlock(config) for _ in range(config.decoder_layers))
        self.decoder_norm = nn.LayerNorm(width)

    @property
    def n_items(self) -> int:
        return self._semantic_ids.n_items

    @property
    def semantic_ids(self) -> SemanticIds:
        """The items' semantic IDs and their trie, on the model's device."""
        if self._semantic_ids.device != self.item_tokens.device:
            self._semantic_ids = self._semantic_ids.to(self.item_tokens.device)
        return self._semantic_ids

    # --- encoder: history -> memory ------------------------------------------------------
    def encoder_input(self, batch: dict[str, Tensor]) -> Tensor:
        """The encoder's tokens (B, S): the user token, then the M tokens of each of the
        newest `max_items` history items (padding items -> PAD). Leading columns that are
        padding in every row are dropped; positions count from the newest item, so that
        changes nothing."""
        history = self._check_history(history_of(batch))                 # (B, T)
        tokens = self.item_tokens[history].flatten(1)                    # (B, T * M)
        if self.config.n_user_buckets:
            users = batch.get("users") if isinstance(batch, dict) else None
            if users is None or users.shape != history.shape[:1]:
                raise ValueError("this TIGER has user tokens (n_user_buckets > 0): the batch "
                                 "needs 'users' (B,), as EvalSet.batch and next_item_examples "
                                 "give; or build it with TIGERConfig(n_user_buckets=0)")
            user = self.vocabulary.user_tokens(users.to(tokens.device))[:, None]  # (B, 1)
            tokens = torch.cat([user, tokens], dim=1)                    # (B, S)
        if bool((tokens == Vocabulary.PAD).all(dim=1).any()):
            raise ValueError("a history is empty (all padding) and there is no user token: "
                             "TIGER needs an item or a user token to condition on")
        return tokens

    def encode(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder tokens (B, S) -> memory (B, S, D) and its mask (B, S), True on real tokens."""
        n_positions = self.encoder_positions.num_embeddings
        positions = torch.arange(n_positions - tokens.shape[1], n_positions,
                                 device=tokens.device)                   # newest item last
        if self.config.n_user_buckets:
            positions[0] = 0                                             # the user's own slot
        x = self.drop(self.token_embedding(tokens) + self.encoder_positions(positions))
        real = tokens != Vocabulary.PAD                                  # (B, S)
        mask = real[:, None, None, :]                                    # (B, 1, 1, S) keys
        for block in self.encoder:
            x = block(x, mask)                                           # (B, S, D)
        return self.encoder_norm(x), real

    # --- decoder: the ID so far -> the next token's logits -------------------------------
    def memory_keys_values(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each decoder layer's cross-attention K, V (B, H, S, d_head), computed once per
        query, reused by every decoding step."""
        return [block.cross_attn.keys_values(memory) for block in self.decoder]

    def decode(self, prefixes: Tensor, memory_kv: list, memory_mask: Tensor,
               rows: Tensor | None = None) -> Tensor:
        """Hidden states (N, d + 1, D) after reading (BOS, c_1, ..., c_d) for d-token ID
        prefixes (N, d), codes, d < M; row n reads query rows[n]'s memory (None: query n)."""
        bos = prefixes.new_full((len(prefixes), 1), Vocabulary.BOS)
        tokens = torch.cat([bos, self.vocabulary.prefix_tokens(prefixes)], dim=1)  # (N, d + 1)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.drop(self.token_embedding(tokens) + self.decoder_positions(positions))
        beams = None if rows is None else (rows, rank_within_groups(rows))
        for block, kv in zip(self.decoder, memory_kv):
            x = block(x, kv, memory_mask, beams)                         # (N, d + 1, D)
        return self.decoder_norm(x)

    def code_logits(self, hidden: Tensor) -> Tensor:
        """h . E_v / sqrt(D) for every ID token v (all positions' ranges): (..., sum V_d).
        The output layer is the input embedding, rescaled as in T5."""
        span = self.vocabulary.code_tokens
        codes = self.token_embedding.weight[span.start:span.stop]        # (sum V_d, D)
        return hidden @ codes.T / math.sqrt(self.config.d_model)

    def _teacher_forced_logits(self, memory_kv, memory_mask: Tensor, ids: Tensor,
                               rows: Tensor | None) -> Tensor:
        """Logits (N, M, sum V_d) of every position of IDs (N, M) given the true earlier
        tokens, over the ID tokens (column j is token vocabulary.code_tokens[j]); -inf outside
        each position's range, so a softmax is over level d's tokens only."""
        hidden = self.decode(ids[:, :-1], memory_kv, memory_mask, rows)  # (N, M, D)
        return self.code_logits(hidden).masked_fill(~self.level_mask, float("-inf"))

    def forward(self, batch: dict[str, Tensor], ids: Tensor) -> Tensor:
        """Teacher-forced logits (B, M, sum V_d) over the ID tokens of the semantic IDs `ids`
        (B, M) after each user's history (-inf outside position d's range): position d's
        logits depend on ids[:, :d] only (causal decoder)."""
        ids = self._check_ids(ids)
        memory, mask = self.encode(self.encoder_input(batch))            # (B, S, D), (B, S)
        if ids.shape[0] != memory.shape[0]:
            raise ValueError(f"ids must be (B, M) with one ID per user: B = {memory.shape[0]}, "
                             f"got shape {tuple(ids.shape)}")
        return self._teacher_forced_logits(self.memory_keys_values(memory), mask, ids, None)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Cross-entropy per token of the target item's ID, teacher-forced, mean over the
        B * M tokens; batch from `next_item_examples` (users, history, targets (B,))."""
        if "targets" not in batch:
            raise ValueError("the batch needs 'targets' (B,), the next item of each history; "
                             "make batches with sequences.next_item_examples")
        ids = self.semantic_ids.id_of(self._check_item_ids(batch["targets"], "targets"))
        logits = self(batch, ids)                                        # (B, M, sum V_d)
        columns = self.vocabulary.encode(ids) - self.vocabulary.code_tokens.start   # (B, M)
        return F.cross_entropy(logits.flatten(0, 1), columns.flatten())

    # --- retrieval -----------------------------------------------------------------------
    def generate(self, batch: dict[str, Tensor], beam: int,
                 temperature: float | Sequence[float] = 1.0,
                 constrained: bool = True) -> BeamResult:
        """Beam search over semantic IDs for each user of the batch: BeamResult(ids (B, W, M),
        log_probs (B, W)), best first. The encoder runs once; each of the M steps re-runs the
        decoder on the prefixes of all live beams. constrained=False lets the search write
        IDs that name no item (the paper's decoding), to measure how often it does."""
        check_temperatures(temperature, self.vocabulary.depth)
        with _evaluating(self):
            next_token_logits, n_queries = self._next_token_logits(batch)
            return beam_search(next_token_logits, self.semantic_ids, n_queries, beam,
                               temperature, constrained)

    def sample(self, batch: dict[str, Tensor], n: int,
               temperature: float | Sequence[float] = 1.0, constrained: bool = True,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw n semantic IDs per user from the tempered model, token by token through the
        trie (`retrieval.sample_ids`): (B, n, M) codes, independent draws that may repeat.
        This is how the paper's diversity experiment decodes (section 4, temperature-based
        sampling at tau = 1, 1.5, 2); `generate` ranks by beam search instead. `generator`
        (on the model's device) makes the draws reproducible."""
        check_temperatures(temperature, self.vocabulary.depth)
        with _evaluating(self):
            next_token_logits, n_queries = self._next_token_logits(batch)
            return sample_ids(next_token_logits, self.semantic_ids, n_queries, n, temperature,
                              constrained, generator)

    def _next_token_logits(self, batch: dict[str, Tensor]):
        """The model as a search sees it: encode the batch once, and return
        next_token_logits(rows, prefixes) -> (N, V_d), the logits of position d after each
        prefix (N, d) for user rows[n] (`retrieval.NextTokenLogits`), and the number of users."""
        memory, mask = self.encode(self.encoder_input(batch))            # (B, S, D), (B, S)
        memory_kv = self.memory_keys_values(memory)

        def next_token_logits(rows: Tensor, prefixes: Tensor) -> Tensor:
            d = prefixes.shape[1]
            hidden = self.decode(prefixes, memory_kv, mask, rows)[:, -1]      # (N, D)
            start = self.vocabulary.offsets[d] - self.vocabulary.offsets[0]
            return self.code_logits(hidden)[:, start:start + self.vocabulary.vocab_sizes[d]]
        return next_token_logits, len(memory)

    def recommend(self, batch: dict[str, Tensor], k: int, beam: int | None = None,
                  temperature: float | Sequence[float] = 1.0, cold_items: Tensor | None = None,
                  max_cold_share: float | None = None, cold_prefix: int | None = None,
                  exclude_history: bool = True) -> Tensor:
        """The top-k items (B, k) of each user, best first: constrained beam search, the
        user's history items removed (exclude_history=True, the "exclude seen" evaluation;
        False keeps them, for data where users come back to items), then the beams' order
        (`retrieval.beam_items`).

        beam: W >= k, default 2k (spare places for the history items the search finds). A
        beam of W holds at most W items, so W >= k is needed to fill a list, not enough to
        make it exact: the search keeps the W best prefixes at every position, and its top k
        equals exhaustive scoring of every valid ID (`sequence_log_probs`) only when W covers
        every valid ID (W >= the number of items); below that, an ID whose prefix ranked
        outside the W best is lost, however likely its last tokens (lesson 06 measures the
        top-10 overlap with exhaustive scoring at W = k, 2k, 4k, 8k).
        temperature: tau for all positions or one per position (M values).
        cold_items (I + 1,) bool and max_cold_share eps in [0, 1]: at most floor(eps * k)
        cold items per list, the rest filled from the next beams (`cap_cold_items`).
        cold_prefix L (with them): the paper's cold-start rule, a generated ID also retrieves
        the cold items whose first L codes match it (`with_prefix_matches`); None: a cold item
        enters a list only when a beam writes its whole ID.
        A list with fewer than k items left ends with item 0.
        """
        n_items = self.n_items
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n_items:
            raise ValueError(f"k must be an int in [1, {n_items}] (the catalogue), got {k!r}")
        beam = 2 * k if beam is None else beam
        if isinstance(beam, bool) or not isinstance(beam, numbers.Integral) or beam < k:
            raise ValueError(f"beam must be an int >= k = {k}: a beam of W holds at most W "
                             f"items, so a narrower one cannot fill a list of k (a wider one "
                             f"prunes fewer good IDs; only W >= the number of items is exact), "
                             f"got beam={beam!r}")
        k, beam = int(k), int(beam)
        cold_items, max_cold = self._check_cold(cold_items, max_cold_share, k)
        if cold_prefix is not None and cold_items is None:
            raise ValueError("cold_prefix needs cold_items and max_cold_share: it retrieves the "
                             "cold items under a generated prefix, and the cap limits them")
        result = self.generate(batch, beam, temperature)
        history = self._check_history(history_of(batch), newest_only=False)  # the whole history
        if cold_prefix is None:
            items, _ = beam_items(result, self.semantic_ids, min(beam, n_items),
                                  history if exclude_history else None)
        else:                                                            # (B, N) best first
            items = with_prefix_matches(result, self.semantic_ids, cold_items, cold_prefix)
            if exclude_history:
                items = _move_up(items, in_rows(items, history))
        if max_cold is not None:                                         # (B, W) best first
            items = cap_cold_items(items, cold_items, max_cold)
        return items[:, :k]                                              # (B, k)

    def sequence_log_probs(self, batch: dict[str, Tensor], ids: Tensor,
                           temperature: float | Sequence[float] = 1.0,
                           per_position: bool = False) -> Tensor:
        """log p(c | history) of given semantic IDs: ids (C, M) for every user, or (B, C, M)
        per user -> (B, C), or (B, C, M) per position with per_position=True (sum over the
        last axis = the ID's score). The same scores a beam search ranks by, computed for
        every candidate: with all valid IDs as candidates this is exhaustive scoring."""
        taus = check_temperatures(temperature, self.vocabulary.depth)
        with _evaluating(self):
            memory, mask = self.encode(self.encoder_input(batch))        # (B, S, D), (B, S)
            n_users = len(memory)
            ids = torch.as_tensor(ids, device=memory.device)
            if ids.dim() == 2:
                ids = ids.expand(n_users, *ids.shape)                    # (B, C, M)
            if ids.dim() != 3 or ids.shape[0] != n_users:
                raise ValueError(f"ids must be (C, M) or (B, C, M) with B = {n_users}, got "
                                 f"shape {tuple(ids.shape)}")
            n_candidates = ids.shape[1]
            flat = self._check_ids(ids.flatten(0, 1))                    # (B * C, M)
            rows = torch.arange(n_users, device=memory.device).repeat_interleave(n_candidates)
            logits = self._teacher_forced_logits(self.memory_keys_values(memory), mask, flat,
                                                 rows)                   # (B * C, M, sum V_d)
            tau = torch.tensor(taus, device=logits.device)[:, None]      # (M, 1)
            log_probs = torch.log_softmax(logits / tau, dim=-1)
            columns = self.vocabulary.encode(flat) - self.vocabulary.code_tokens.start
            per_token = log_probs.gather(-1, columns[..., None])        # (B * C, M, 1)
            per_token = per_token.view(n_users, n_candidates, -1)
        return per_token if per_position else per_token.sum(-1)          # (B, C, M) or (B, C)

    # --- input checks at the public boundary ---------------------------------------------
    def _check_item_ids(self, items: Tensor, name: str) -> Tensor:
        if not isinstance(items, Tensor) or items.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be a long tensor of item ids, got "
                            f"{getattr(items, 'dtype', type(items).__name__)}; call .long()")
        low = 0 if name == "history" else 1
        if items.numel() and (int(items.min()) < low or int(items.max()) > self.n_items):
            bad = int(items.min()) if int(items.min()) < low else int(items.max())
            raise ValueError(f"{name} holds item id {bad}, but item ids must be in "
                             f"[1, {self.n_items}]" + (" (0 is padding)" if low == 0 else "")
                             + "; does every item have a semantic ID?")
        return items.long().to(self.item_tokens.device)

    def _check_history(self, history: Tensor, newest_only: bool = True) -> Tensor:
        """A left-padded (B, T) batch of item ids; its newest max_items columns, without the
        leading columns that are padding in every row (newest_only=False: all columns)."""
        history = self._check_item_ids(history, "history")
        if history.dim() != 2:
            raise ValueError(f"history must be 2-D (B, T), got shape {tuple(history.shape)}; "
                             "for one user use history[None]")
        real = history > 0
        if bool((real[:, :-1] & ~real[:, 1:]).any()):
            row = int((real[:, :-1] & ~real[:, 1:]).any(dim=1).nonzero()[0])
            raise ValueError(f"history row {row} has padding (0) after an item: histories "
                             "must be padded on the LEFT (use sequences.pad_left)")
        if not newest_only:
            return history
        history = history[:, -self.config.max_items:]
        used = real[:, -history.shape[1]:].any(dim=0).nonzero()          # columns with an item
        return history[:, int(used[0]):] if len(used) else history[:, :0]

    def _check_ids(self, ids: Tensor) -> Tensor:
        """Semantic IDs (N, M) as codes on the model's device."""
        ids = torch.as_tensor(ids, device=self.item_tokens.device)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"ids must be integer codes, got {ids.dtype}; use .long()")
        if ids.dim() != 2:
            raise ValueError(f"ids must be (N, M) semantic IDs, got shape {tuple(ids.shape)}")
        self.vocabulary.encode(ids)                                      # checks M and ranges
        return ids.long()

    def _check_cold(self, cold_items, max_cold_share, k: int) -> tuple[Tensor | None, int | None]:
        """cold_items on the model's device and floor(eps * k), the most cold items a list
        may hold; (None, None) when there is no cap."""
        if cold_items is None and max_cold_share is None:
            return None, None
        if cold_items is None or max_cold_share is None:
            raise ValueError("the cold-item cap needs both cold_items (I + 1,) bool and "
                             "max_cold_share eps in [0, 1]")
        cold_items = torch.as_tensor(cold_items)
        if cold_items.dtype != torch.bool or tuple(cold_items.shape) != (self.n_items + 1,):
            raise ValueError(f"cold_items must be a bool tensor (I + 1,) = ({self.n_items + 1},)"
                             f", True for cold items (entry 0, padding, is ignored), got "
                             f"{cold_items.dtype} {tuple(cold_items.shape)}")
        if not 0 <= max_cold_share <= 1:
            raise ValueError(f"max_cold_share must be in [0, 1], got {max_cold_share}")
        return cold_items.to(self.item_tokens.device), math.floor(max_cold_share * k)


def _check_semantic_ids(semantic_ids) -> SemanticIds:
    """The model needs unique IDs, each with its collision token: a SemanticIds."""
    if isinstance(semantic_ids, SemanticIds):
        return semantic_ids
    if isinstance(semantic_ids, Tensor) and semantic_ids.dim() == 2:
        if torch.unique(semantic_ids, dim=0).shape[0] < semantic_ids.shape[0]:
            raise ValueError("these codes have duplicate rows, so two items would share an ID: "
                             "they lack the collision token; use "
                             "SemanticIds.from_codes(codes, codebook_sizes)")
        raise TypeError("pass the IDs as a SemanticIds (SemanticIds.from_codes(codes, "
                        "codebook_sizes) adds the collision token and builds the trie), not a "
                        "raw tensor")
    raise TypeError(f"semantic_ids must be a SemanticIds, got {type(semantic_ids).__name__}")
