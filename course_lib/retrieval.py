"""Retrieval: from a model's scores to a ranked list of items, two ways.

* **Generative retrieval** (TIGER, Rajput et al. 2023, section 3.2): the model writes an
  item's semantic ID token by token, and beam search keeps the W most likely prefixes.
  Most token sequences name no item, so the search is *constrained* by a `PrefixTrie`: at
  position d only the tokens that keep a prefix valid may be chosen. The score of an ID
  (t_1, ..., t_M) for query q is its log-probability under the model,

      log p(t | q) = sum_d log softmax(z_d / tau_d)[t_d],   z_d = logits of position d
                                                             after the prefix t_<d,

  with a temperature tau_d per position (one value for all, or one per level). The
  softmax runs over all V_d tokens, as the model defines them; the trie removes invalid
  tokens *before* the top-W choice, not from the normaliser, so a score is the model's own
  probability of the ID, and an ID the model doubts keeps a low score even when it is the
  only valid one. `beam_search` returns the beams, one `beam_step` per position;
  `beam_items` turns them into item ids. `sample_tokens` draws one token per row from
  softmax(z / tau) instead, and `sample_ids` writes whole IDs that way, through the trie
  (sampling rather than search, as in TIGER's diversity experiment: tau -> 0 is greedy
  decoding).
* **Dense retrieval** (SASRec's shared item embedding, PinRec's outcome-conditioned query):
  the score of item i is the inner product <q, v_i>, and `ItemIndex` returns the top k.
  "exact" multiplies by every item vector (torch, any device: the reference); "faiss-flat"
  does the same in faiss, and "faiss-ivf" searches only the `nprobe` nearest of `nlist`
  k-means cells (Jegou et al. 2011, IVF), trading recall for speed at millions of items.

Names: B queries, W beam width, M tokens per semantic ID, V_d the vocabulary at position d,
N = B * W rows sent to the model at once, I items, D vector width, T history length, k the
length of a returned list. Item ids run 1..I and 0 is "no item" (padding, an invalid ID, or
an empty place in a list); item vectors are (I + 1, D) with row 0 the padding row, like the
course's score matrices with I + 1 columns.

Ties, everywhere here: among equal scores the smaller index wins, both in the order of a
list and for the last places of a top-k (for beams: the earlier beam, then the smaller
token; for items: the smaller item id). faiss is the exception: which of several items tied
at the k-th score it returns is faiss's choice (each list is then ordered by score, then
item id).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from course_lib.quantize.semantic_ids import NO_TOKEN, PrefixTrie, SemanticIds

NextTokenLogits = Callable[[Tensor, Tensor], Tensor]   # (rows (N,), prefixes (N, d)) -> (N, V_d)


def _is_count(value) -> bool:
    """An integer of any kind (Python's or numpy's, e.g. np.int64(3)), never a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def best_first(values: Tensor, columns: Tensor) -> tuple[Tensor, Tensor]:
    """Sort each row of (values, columns) (R, n) by value, largest first; equal values keep
    the smaller column first."""
    by_column = columns.argsort(dim=1, stable=True)
    values, columns = values.gather(1, by_column), columns.gather(1, by_column)
    by_value = values.argsort(dim=1, descending=True, stable=True)
    return values.gather(1, by_value), columns.gather(1, by_value)


def top_k_smaller_index_first(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest scores of each row, best first, ties to the smaller column:
    (R, C) -> (values (R, k), columns (R, k)). Scores must not be NaN.

    `torch.topk` leaves open which of several equal values it returns. A tie straddles the
    cut when the (k+1)-th largest value equals the k-th; such rows are redone: the k-th
    value is the threshold, every score above it is in, and the places left go to the tied
    columns from the left.
    """
    values, columns = scores.topk(min(k + 1, scores.shape[1]), dim=1)     # (R, k + 1)
    straddles = values[:, k] == values[:, k - 1] if values.shape[1] > k else None
    values, columns = values[:, :k], columns[:, :k]                        # (R, k)
    kth = values[:, -1:]                                                   # (R, 1)
    if straddles is not None and straddles.any():
        rows = straddles.nonzero().flatten()
        part, threshold = scores[rows], kth[rows]                          # (r, C), (r, 1)
        above, tied = part > threshold, part == threshold
        room = k - above.sum(dim=1, keepdim=True)                          # places left for ties
        take = above | (tied & (tied.cumsum(dim=1) <= room))               # exactly k per row
        columns[rows] = take.nonzero()[:, 1].view(-1, k)
        values[rows] = part.gather(1, columns[rows])
    return best_first(values, columns)


def in_rows(values: Tensor, rows: Tensor) -> Tensor:
    """Is values[b, j] one of rows[b, :]? (B, K), (B, T) -> (B, K) bool, by binary search."""
    if rows.shape[1] == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    sorted_rows = rows.sort(dim=1).values                                  # (B, T)
    pos = torch.searchsorted(sorted_rows, values.contiguous()).clamp_max(rows.shape[1] - 1)
    return sorted_rows.gather(1, pos) == values


# --- generative retrieval: constrained beam search --------------------------------------------

@dataclass
class BeamResult:
    """The W beams of each query, best first.

    ids:       (B, W, M) semantic-ID tokens; padding rows hold NO_TOKEN (-1).
    log_probs: (B, W) log p(ID | query), the sum of the per-position log-probabilities;
               -inf marks a padding row (fewer valid IDs than beams).
    """
    ids: Tensor
    log_probs: Tensor


def check_temperatures(temperature, depth: int) -> list[float]:
    """One temperature for every position, or one per position: a list of `depth` values > 0."""
    if isinstance(temperature, (int, float)):
        temperature = [float(temperature)] * depth
    temperature = [float(t) for t in temperature]
    if len(temperature) != depth:
        raise ValueError(f"temperature must be one number or one per position ({depth}), "
                         f"got {len(temperature)} values")
    if not all(t > 0 and math.isfinite(t) for t in temperature):
        raise ValueError(f"temperatures must be finite and > 0, got {temperature}; use a "
                         "small value such as 0.1 for near-greedy decoding")
    return temperature


def _check_temperature(temperature) -> float:
    """One temperature tau > 0 as a float (numbers, numpy scalars and 0-d tensors)."""
    try:
        if isinstance(temperature, bool):
            raise TypeError
        temperature = float(temperature)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"temperature must be one number, got {temperature!r}") from None
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}; use a small "
                         "value such as 0.1 for near-greedy decoding")
    return temperature


def tempered_log_probs(logits: Tensor, temperature: float) -> Tensor:
    """log softmax(z / tau) over the last axis: (..., V) -> (..., V) (TIGER, section 3.2; the
    temperature of Hinton et al. 2015, section 2).

    tau divides the logits *before* the softmax: tau < 1 sharpens the distribution (tau -> 0
    puts all mass on the argmax), tau > 1 flattens it towards uniform, tau = 1 is the model's
    own distribution. Half-precision logits are promoted to float32 first.
    """
    temperature = _check_temperature(temperature)
    if not isinstance(logits, Tensor) or not logits.dtype.is_floating_point:
        kind = logits.dtype if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a float tensor, got {kind}; use logits.float()")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return torch.log_softmax(logits.to(dtype) / temperature, dim=-1)


def sample_tokens(logits: Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """One token per row drawn from softmax(z / tau): logits (N, V) -> tokens (N,) long.

    Temperature sampling, the alternative to beam search for writing an ID token by token
    (TIGER's diversity experiment, section 4, samples IDs this way at tau = 1, 1.5, 2):
    tau = 1 samples the model's distribution, tau -> 0 approaches greedy decoding (the
    argmax of every row), tau > 1 explores more. Tokens a constraint forbids should have
    logit -inf; every row needs at least one finite logit. `generator` (on the logits'
    device) makes the draw reproducible.
    """
    log_probs = tempered_log_probs(logits, temperature)                    # (N, V)
    if log_probs.dim() != 2:
        raise ValueError(f"logits must be (N, V), got shape {tuple(log_probs.shape)}")
    if torch.isnan(log_probs).any():
        raise ValueError("a row of logits has no finite value (every token masked?) or holds "
                         "NaN/+inf: there is nothing to sample from")
    return torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)  # (N,)


def beam_step(log_probs: Tensor, step_log_probs: Tensor,
              beam: int) -> tuple[Tensor, Tensor, Tensor]:
    """One step of beam search (TIGER, section 3.2): extend every beam by every token and keep
    the `beam` best of the w x V candidates of each query.

    log_probs (B, w): log p(prefix) of each query's w beams (-inf: a dead beam).
    step_log_probs (B * w, V): log p(token | prefix); row b * w + j belongs to beam j of
        query b (-inf: a token the trie forbids).
    The score of a candidate is log p(prefix) + log p(token | prefix), the log-probability of
    the longer prefix. Returns (log_probs (B, w'), parent (B, w'), token (B, w')), best first,
    w' = min(beam, w * V): the new scores, which beam each one extends, and the token it
    adds. Ties go to the earlier beam, then the smaller token.
    """
    if not _is_count(beam) or beam < 1:
        raise ValueError(f"beam must be an int >= 1, got {beam!r}")
    beam = int(beam)
    if log_probs.dim() != 2 or step_log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (B, w) and step_log_probs (B * w, V), got shapes "
                         f"{tuple(log_probs.shape)} and {tuple(step_log_probs.shape)}")
    batch, width = log_probs.shape
    size = step_log_probs.shape[1]
    if step_log_probs.shape[0] != batch * width:
        raise ValueError(f"step_log_probs needs one row per beam, B * w = {batch} * {width} = "
                         f"{batch * width}, got {step_log_probs.shape[0]} rows")
    candidates = log_probs.reshape(-1, 1) + step_log_probs                 # (B * w, V)
    scores, index = top_k_smaller_index_first(candidates.view(batch, width * size),
                                              min(beam, width * size))     # (B, w')
    return scores, index // size, index % size


def _model_log_probs(next_token_logits: NextTokenLogits, rows: Tensor, prefixes: Tensor,
                     size: int, temperature: float) -> Tensor:
    """Ask the model for position d's logits and return log softmax(z / tau): (N, V_d)."""
    logits = next_token_logits(rows, prefixes)
    d = prefixes.shape[1]
    if not isinstance(logits, Tensor) or tuple(logits.shape) != (len(rows), size):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"next_token_logits must return (N, V_d) = ({len(rows)}, {size}) "
                         f"logits at position {d}, got {shape}")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"next_token_logits must return float logits, got {logits.dtype}")
    if logits.device != rows.device:
        raise ValueError(f"next_token_logits returned logits on {logits.device} but the trie "
                         f"is on {rows.device}; move the trie: trie.to({str(logits.device)!r})")
    log_probs = tempered_log_probs(logits, temperature)  # half logits: float32 sums
    if torch.isnan(log_probs).any():
        raise ValueError(f"next_token_logits gave NaN or +inf logits at position {d}")
    return log_probs


def beam_search(next_token_logits: NextTokenLogits, trie: PrefixTrie | SemanticIds,
                n_queries: int, beam: int, temperature: float | Sequence[float] = 1.0,
                constrained: bool = True) -> BeamResult:
    """Beam search over semantic IDs for B queries at once (TIGER, section 3.2).

    `next_token_logits(rows, prefixes)` is the model: for every n it returns the logits
    (N, V_d) of position d's token for query `rows[n]` (in 0..B-1) after the tokens
    `prefixes[n]` (N, d); for TIGER, the decoder reading query rows[n]'s encoder memory. It is
    called once per position with all live beams of all queries, on the trie's device.

    Each step extends every beam by every token, scores the (B, W * V_d) candidates by
    log p(prefix) + log softmax(z_d / tau_d), and keeps the W best per query. With
    `constrained` (the default) tokens the trie rejects are set to -inf before that choice,
    so every finished beam is a valid ID; with `constrained=False` the search keeps whatever
    the model prefers, and may return IDs that name no item (to measure how often).
    When a query has fewer valid IDs than W, its last rows are padding (log-prob -inf,
    tokens NO_TOKEN). With W at least the number of valid IDs nothing is pruned and the
    result is every valid ID ranked by its exact log-probability.

    temperature: tau for every position, or a sequence of M values, one per position.
    Returns BeamResult(ids (B, W, M), log_probs (B, W)), best first; ties go to the earlier
    beam, then the smaller token.
    """
    trie = trie.trie if isinstance(trie, SemanticIds) else trie
    if not isinstance(trie, PrefixTrie):
        raise TypeError(f"trie must be a PrefixTrie or SemanticIds, got {type(trie).__name__}")
    if not _is_count(n_queries) or n_queries < 1:
        raise ValueError(f"n_queries must be an int >= 1, got {n_queries!r}")
    if not _is_count(beam) or beam < 1:
        raise ValueError(f"beam must be an int >= 1, got {beam!r}")
    n_queries, beam = int(n_queries), int(beam)
    temperatures = check_temperatures(temperature, trie.depth)
    device = trie.device
    log_probs = torch.zeros(n_queries, 1, device=device)                   # (B, w) w = 1
    prefixes = torch.zeros(n_queries, 1, 0, dtype=torch.long, device=device)  # (B, w, d) d = 0
    for d, (size, tau) in enumerate(zip(trie.vocab_sizes, temperatures)):
        width = log_probs.shape[1]
        flat = prefixes.reshape(n_queries * width, d)                      # (B * w, d)
        alive = torch.isfinite(log_probs).flatten()                        # (B * w,)
        rows = torch.arange(n_queries, device=device).repeat_interleave(width)
        step = _model_log_probs(next_token_logits, rows[alive], flat[alive], size, tau)
        if constrained:                                                    # (N, V_d)
            step = step.masked_fill(~trie.next_token_mask(flat[alive]), float("-inf"))
        step_log_probs = torch.full((n_queries * width, size), float("-inf"),
                                    dtype=step.dtype, device=device)       # (B * w, V_d)
        step_log_probs[alive] = step
        log_probs, parent, token = beam_step(log_probs, step_log_probs, beam)  # (B, w')
        prefixes = torch.cat([prefixes.gather(1, parent[..., None].expand(-1, -1, d)),
                              token[..., None]], dim=2)                    # (B, w', d + 1)
    ids = prefixes.masked_fill(~torch.isfinite(log_probs)[..., None], NO_TOKEN)
    missing = beam - ids.shape[1]
    if missing > 0:                                                        # tiny vocabularies
        ids = torch.cat([ids, ids.new_full((n_queries, missing, trie.depth), NO_TOKEN)], 1)
        log_probs = torch.cat([log_probs, log_probs.new_full((n_queries, missing),
                                                             float("-inf"))], 1)
    return BeamResult(ids=ids, log_probs=log_probs)


def sample_ids(next_token_logits: NextTokenLogits, trie: PrefixTrie | SemanticIds,
               n_queries: int, n_samples: int, temperature: float | Sequence[float] = 1.0,
               constrained: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Draw `n_samples` semantic IDs per query, token by token, from the tempered model:
    (B, n, M) codes (TIGER, section 4: the diversity experiment samples at tau = 1, 1.5, 2).

    The same walk as `beam_search`, with `sample_tokens` in place of the top-W choice: at
    position d every draw's prefix is sent to `next_token_logits` (the rows of query b are
    b * n .. b * n + n - 1), the tokens the trie rejects get logit -inf (`constrained`), and
    one token is drawn from softmax(z_d / tau_d). So a constrained draw is always a valid ID,
    drawn with probability prod_d p_tau(c_d | c_<d) renormalised over the valid tokens at each
    step (beam search ranks by the unrenormalised log-probabilities instead); draws are
    independent, so a query's n IDs may repeat. tau -> 0 is greedy decoding (beam search with
    W = 1). `generator` (on the trie's device) makes the draws reproducible.
    """
    trie = trie.trie if isinstance(trie, SemanticIds) else trie
    if not isinstance(trie, PrefixTrie):
        raise TypeError(f"trie must be a PrefixTrie or SemanticIds, got {type(trie).__name__}")
    for name, value in (("n_queries", n_queries), ("n_samples", n_samples)):
        if not _is_count(value) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    n_queries, n_samples = int(n_queries), int(n_samples)
    temperatures = check_temperatures(temperature, trie.depth)
    device = trie.device
    rows = torch.arange(n_queries, device=device).repeat_interleave(n_samples)   # (N,) N = B * n
    prefixes = torch.zeros(len(rows), 0, dtype=torch.long, device=device)        # (N, d) d = 0
    for d, (size, tau) in enumerate(zip(trie.vocab_sizes, temperatures)):
        logits = next_token_logits(rows, prefixes)                               # (N, V_d)
        if not isinstance(logits, Tensor) or tuple(logits.shape) != (len(rows), size):
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"next_token_logits must return (N, V_d) = ({len(rows)}, {size}) "
                             f"logits at position {d}, got {shape}")
        if constrained:
            logits = logits.masked_fill(~trie.next_token_mask(prefixes), float("-inf"))
        token = sample_tokens(logits, tau, generator)                            # (N,)
        prefixes = torch.cat([prefixes, token[:, None]], dim=1)                  # (N, d + 1)
    return prefixes.view(n_queries, n_samples, trie.depth)                       # (B, n, M)


def _check_history(history, n_rows: int, n_items: int, device: torch.device,
                   name: str) -> Tensor:
    history = torch.as_tensor(history, device=None if isinstance(history, Tensor) else device)
    if history.device != device:
        raise ValueError(f"{name} is on {history.device} but the scores are on {device}; "
                         f"use {name}.to({str(device)!r})")
    if history.dtype.is_floating_point or history.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer item ids, got {history.dtype}; use .long()")
    if history.dim() != 2 or history.shape[0] != n_rows:
        raise ValueError(f"{name} must be (B, T) = ({n_rows}, T) item ids, got shape "
                         f"{tuple(history.shape)}")
    if history.numel() and (int(history.min()) < 0 or int(history.max()) > n_items):
        raise ValueError(f"{name} item ids must be in [0, {n_items}] (0 is padding), got "
                         f"[{int(history.min())}, {int(history.max())}]")
    return history.long()


def beam_items(result: BeamResult, semantic_ids: SemanticIds, k: int,
               history: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The top-k items of each query from its beams: (items (B, k), log_probs (B, k)).

    Beams whose ID names no item (unconstrained search, padding) are dropped, and so are
    the items of `history` (B, T) (left-padded item ids, 0 = padding), which a user has
    already consumed. The rest keep the beam order, best first. A query with fewer than k
    items left is padded with item 0 and log-prob -inf: always the case when the beam is
    narrower than k (a warning says so), and possible with history or invalid IDs; use a
    beam of at least k plus the history length to fill every list.
    """
    batch, width, _ = result.ids.shape
    if not _is_count(k) or not 1 <= k <= semantic_ids.n_items:
        raise ValueError(f"k must be an int in [1, {semantic_ids.n_items}] (the number of "
                         f"items), got {k!r}")
    k = int(k)
    if width < k:
        warnings.warn(f"beam width {width} < k={k}: at most {width} items per query, the rest "
                      "of each list is item 0; search with beam >= k", UserWarning,
                      stacklevel=2)
    items = semantic_ids.item_of(result.ids.reshape(batch * width, -1)).view(batch, width)
    drop = items == 0                                                      # (B, W)
    if history is not None:
        history = _check_history(history, batch, semantic_ids.n_items, items.device, "history")
        drop |= in_rows(items, history)
    log_probs = result.log_probs.masked_fill(drop, float("-inf"))
    order = torch.argsort(drop.to(torch.uint8), dim=1, stable=True)[:, :k]  # kept first, in order
    items, log_probs = items.gather(1, order), log_probs.gather(1, order)  # (B, min(W, k))
    items = items.masked_fill(torch.isinf(log_probs), 0)
    if width < k:
        items = torch.cat([items, items.new_zeros(batch, k - width)], dim=1)
        log_probs = torch.cat([log_probs, log_probs.new_full((batch, k - width),
                                                             float("-inf"))], dim=1)
    return items, log_probs


# --- dense retrieval: top-k inner product ------------------------------------------------------

BACKENDS = ("exact", "faiss-flat", "faiss-ivf")


def _import_faiss(backend: str):
    try:
        import faiss
    except ImportError as error:
        raise ImportError(f"backend={backend!r} needs faiss: pip install faiss-cpu (or use "
                          "backend='exact')") from error
    return faiss


def _check_float_matrix(x, name: str, width: int | None = None) -> Tensor:
    x = torch.as_tensor(x)
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be float, got {x.dtype}; use {name}.float()")
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be 2-D and non-empty, got shape {tuple(x.shape)}")
    if width is not None and x.shape[1] != width:
        raise ValueError(f"{name} have width {x.shape[1]} but the item vectors have {width}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(f"{bad} rows of {name} contain NaN or inf; fix them before searching")
    return x.detach()


def _distinct_rows(data, nlist: int):
    """The distinct rows of `data` (I, D), to train IVF on: k-means splits a pile of identical
    vectors into identical centres, and all but one of their cells stay empty. Fewer distinct
    rows than cells cannot fill every cell: an error that says what works instead."""
    distinct = np.unique(data, axis=0)                                     # (I', D)
    if len(distinct) < nlist:
        raise ValueError(f"faiss-ivf cannot make nlist={nlist} cells from {len(data)} item "
                         f"vectors of which only {len(distinct)} are distinct: every query "
                         "whose nearest cell is empty would get an empty list. Use nlist <= "
                         f"{len(distinct)}, or backend='exact' or 'faiss-flat' (exact); are the "
                         "item vectors trained, or all the same (e.g. all zero)?")
    return np.ascontiguousarray(distinct)


class ItemIndex:
    """Top-k items by inner product <q, v_i>, exact or approximate, one interface.

    item_vectors: (I + 1, D), row i the vector of item i; row 0 (padding) is never returned.
    backend: "exact" (the default and the reference: one matmul and a top-k per chunk of
        queries, on the vectors' device), "faiss-flat" (faiss IndexFlatIP, exact, CPU) or
        "faiss-ivf" (faiss IndexIVFFlat: k-means into `nlist` cells, a query scans the
        `nprobe` cells whose centres score highest; CPU).
    nlist: IVF cells; default round(sqrt(I)) (the usual starting point; faiss's guide
        suggests 4 * sqrt(I) to 16 * sqrt(I) at millions of items). When identical item
        vectors would leave cells empty, the cells are trained on the distinct vectors; fewer
        distinct vectors than nlist is an error (an empty cell answers with an empty list).
    nprobe: IVF cells scanned per query, 1 <= nprobe <= nlist; default 1 (faiss's). Can be
        changed later (`index.nprobe = 16`) without rebuilding; nprobe = nlist is exact.
    """

    def __init__(self, item_vectors: Tensor, backend: str = "exact", nlist: int | None = None,
                 nprobe: int = 1):
        vectors = _check_float_matrix(item_vectors, "item_vectors")       # (I + 1, D)
        if vectors.shape[0] < 2:
            raise ValueError("item_vectors must be (I + 1, D) with I >= 1: row 0 is padding, "
                             f"got {vectors.shape[0]} row(s)")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.n_items, self.dim = vectors.shape[0] - 1, vectors.shape[1]
        self.nlist = None
        if backend == "exact":
            self._vectors = vectors
            return
        faiss = _import_faiss(backend)
        data = vectors[1:].to("cpu", torch.float32).contiguous().numpy()  # (I, D), faiss id i-1
        if backend == "faiss-flat":
            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(data)
            return
        nlist = nlist if nlist is not None else max(1, round(math.sqrt(self.n_items)))
        if not _is_count(nlist) or not 1 <= nlist <= self.n_items:
            raise ValueError(f"nlist must be an int in [1, {self.n_items}] (the number of "
                             f"items), got {nlist!r}")
        self.nlist = int(nlist)
        self._build_ivf(faiss, data, data)
        if self._empty_cells():                     # duplicates: cluster the distinct ones
            self._build_ivf(faiss, data, _distinct_rows(data, self.nlist))
            if self._empty_cells():
                raise ValueError(f"faiss-ivf left {self._empty_cells()} of its nlist="
                                 f"{self.nlist} cells empty, so a query whose nearest cell is "
                                 "empty would get an empty list; lower nlist, or use "
                                 "backend='exact' or 'faiss-flat' (exact)")
        self.nprobe = nprobe

    @property
    def nprobe(self) -> int | None:
        return self._faiss.nprobe if self.backend == "faiss-ivf" else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.backend != "faiss-ivf":
            raise ValueError(f"nprobe applies to backend='faiss-ivf', not {self.backend!r}")
        if not _is_count(value) or not 1 <= value <= self.nlist:
            raise ValueError(f"nprobe must be an int in [1, nlist={self.nlist}], got {value!r}")
        self._faiss.nprobe = int(value)

    def _build_ivf(self, faiss, data, train_on) -> None:
        """k-means cells from `train_on` (I', D), then every item vector `data` (I, D) added."""
        self._coarse = faiss.IndexFlatIP(self.dim)                         # kept alive here
        self._faiss = faiss.IndexIVFFlat(self._coarse, self.dim, self.nlist,
                                         faiss.METRIC_INNER_PRODUCT)
        self._faiss.train(train_on)
        self._faiss.add(data)

    def _empty_cells(self) -> int:
        return sum(self._faiss.invlists.list_size(cell) == 0 for cell in range(self.nlist))

    def search(self, queries: Tensor, k: int,
               exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The k items with the largest <q, v_i> per query: (scores (B, k), items (B, k)).

        queries: (B, D). exclude: (B, T) item ids never to return for that query (e.g. the
        history, left-padded with 0). Best first; ties as in the module docstring. When
        fewer than k items remain (exclusions, or an IVF probe that reaches few items) the
        list ends with item 0 and score -inf. Results are on the queries' device.
        """
        queries = _check_float_matrix(queries, "queries", self.dim)        # (B, D)
        if not _is_count(k) or not 1 <= k <= self.n_items:
            raise ValueError(f"k must be an int in [1, {self.n_items}] (the number of items), "
                             f"got {k!r}")
        k = int(k)
        if exclude is not None:
            exclude = _check_history(exclude, len(queries), self.n_items, queries.device,
                                     "exclude")
        if self.backend == "exact":
            return self._search_exact(queries, k, exclude)
        return self._search_faiss(queries, k, exclude)

    def _search_exact(self, queries: Tensor, k: int, exclude: Tensor | None):
        if queries.device != self._vectors.device:
            raise ValueError(f"queries are on {queries.device} but the item vectors are on "
                             f"{self._vectors.device}; use queries.to("
                             f"{str(self._vectors.device)!r}) or build the index there")
        chunk = max(1, 2 ** 25 // (self.n_items + 1))       # (b, I + 1) scores <= 128 MB
        scores, items = [], []
        for start in range(0, len(queries), chunk):
            part = queries[start:start + chunk].to(self._vectors.dtype) @ self._vectors.T
            part[:, 0] = float("-inf")                                     # (b, I + 1)
            if exclude is not None:
                part.scatter_(1, exclude[start:start + chunk], float("-inf"))
            top, item = top_k_smaller_index_first(part, k)                 # (b, k)
            scores.append(top)
            items.append(item.masked_fill(torch.isinf(top), 0))
        return torch.cat(scores), torch.cat(items)

    def _search_faiss(self, queries: Tensor, k: int, exclude: Tensor | None):
        # faiss cannot mask per query: fetch k + T and drop the excluded ones afterwards.
        fetch = min(k + (exclude.shape[1] if exclude is not None else 0), self.n_items)
        found, ids = self._faiss.search(queries.to("cpu", torch.float32).contiguous().numpy(),
                                        fetch)
        scores = torch.from_numpy(found).to(queries.device)                # (B, k + T)
        items = torch.from_numpy(ids).to(queries.device) + 1              # faiss -1 -> item 0
        drop = items == 0
        if exclude is not None:
            drop |= in_rows(items, exclude)
        scores, items = best_first(scores.masked_fill(drop, float("-inf")), items)
        scores, items = scores[:, :k], items[:, :k]                        # (B, k)
        return scores, items.masked_fill(torch.isinf(scores), 0)
