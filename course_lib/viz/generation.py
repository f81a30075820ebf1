"""Watch TIGER generate: its beam search over the semantic-ID trie, position by position,
linked to lesson 05's codebook map.

    explorer = BeamExplorer(tiger, test, xy, labels=..., cold_items=unseen)
    explorer.show()                        # the widget app, or one search as a static figure
    trace = explorer.search(row=17, beam=20, temperature=1.0, constrained=True)
    ranked = explorer.ranked(trace, k=10, max_cold_share=0.1)

The data layer (`trace_search`, `rank_beams`) runs the library's own search
(`retrieval.beam_search`) on the model's decoder and records what it saw: at every position d
the live prefixes the decoder extended, the tempered probability of every token after each
(log softmax(z_d / tau_d), over all V_d tokens, as the search scores them), which tokens the
trie allows, which W candidates survived with their cumulative log-probabilities, and how many
catalogue items sit under each surviving prefix (`SemanticIds.items_with_prefix`). The finished
beams become a list exactly as `TIGER.recommend` makes one (`retrieval.beam_items`, then
`models.tiger.cap_cold_items`), with the reason each beam is or is not in it.

The view is one ipywidgets app: a user (search box, random button, or an edited history), the
beam width W, a temperature per position, constrained or free decoding, the cold-item cap eps
(TIGER's cold-start protocol: at most floor(eps k) unseen items in a top k), k, and the
position up to which to show the search. It draws
* the search tree, one column per position: each surviving prefix with its code, p(code |
  prefix), log p(prefix) and the items under it; prefixes whose every extension was pruned
  later are faded, and each live prefix's best pruned candidates leave it as faded stubs
  (dashed red: tokens the trie blocks). Hovering a prefix lists every candidate the decoder
  scored after it;
* the list: every beam in order, its item, semantic ID, log p, its place in the top k or why
  it is not there (names no item, history excluded, cold over the cap, beyond k), markers for
  the true next item, history items and unseen items;
* the codebook map (`CodebookExplorer`, coloured by level-1 code) with the listed items, the
  target, the history and the region under the live prefixes.
Hovering a prefix, a list row or an item on the map highlights the same thing in the other
views. The hover is done by the browser (CSS `:has()` over one HTML widget), so it costs no
round trip to the kernel; every control change redraws from the cached search as HTML, with
the map's PNG drawn once. A static figure of one search stands in where widgets cannot run.

Names: M tokens per semantic ID (positions d = 1..M, the last the collision token), V_d the
tokens at position d, W the beam width, P the live prefixes at a position, I items, k the list.
"""
from __future__ import annotations

import base64
import html
import math
import numbers
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib.models.tiger import cap_cold_items
from course_lib.quantize.semantic_ids import SemanticIds
from course_lib.retrieval import BeamResult, beam_items, beam_search, check_temperatures, \
    tempered_log_probs
from course_lib.viz.display import items_text, png_bytes, show_explorer
from course_lib.viz.explorer import CodebookExplorer, point_groups, spread_overlaps

# What the explorer calls on a model: TIGER's encoder-decoder, step by step.
DECODER_INTERFACE = ("encoder_input", "encode", "memory_keys_values", "decode", "code_logits",
                     "vocabulary", "semantic_ids")


# --- the model as the search sees it ---------------------------------------------------------

def check_generator(model, semantic_ids: SemanticIds | None = None) -> SemanticIds:
    """The semantic IDs a model writes, checked: a model with TIGER's decoder interface, and IDs
    with one vocabulary size per position that match the model's."""
    missing = [name for name in DECODER_INTERFACE if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"the beam explorer shows a model that writes semantic IDs token by token with "
            f"TIGER's decoder interface ({', '.join(DECODER_INTERFACE)}); "
            f"{type(model).__name__} has no {', '.join(missing)}. A dense retriever (SASRec, "
            "HSTU, PinRec) scores every item in one pass: it has no search to show")
    semantic_ids = model.semantic_ids if semantic_ids is None else semantic_ids
    if not isinstance(semantic_ids, SemanticIds):
        raise TypeError(f"semantic_ids must be a SemanticIds (SemanticIds.from_codes(codes, "
                        f"sizes)), got {type(semantic_ids).__name__}")
    sizes = tuple(model.vocabulary.vocab_sizes)
    if tuple(semantic_ids.vocab_sizes) != sizes or semantic_ids.n_items != model.n_items:
        raise ValueError(
            f"these semantic IDs ({semantic_ids.n_items} items, vocabulary sizes "
            f"{tuple(semantic_ids.vocab_sizes)}) are not the ones the model writes "
            f"({model.n_items} items, {sizes}); pass the SemanticIds the model was built with, "
            "or none (model.semantic_ids)")
    return semantic_ids


def encode_history(model, batch: dict) -> tuple[list, torch.Tensor]:
    """The encoder's memory of one batch as the decoder reads it: (each decoder layer's
    cross-attention keys and values, the memory's mask). Computed once per history."""
    with torch.no_grad():
        memory, mask = model.encode(model.encoder_input(batch))          # (B, S, D), (B, S)
        return model.memory_keys_values(memory), mask


def next_token_logits_of(model, memory) -> callable:
    """`retrieval.NextTokenLogits` of a TIGER-like model over an encoded history: the logits
    (N, V_d) of position d after each prefix (N, d), the decoder run on the prefixes with the
    user's memory, as `TIGER.generate` runs it."""
    memory_kv, mask = memory
    vocabulary = model.vocabulary

    def next_token_logits(rows: torch.Tensor, prefixes: torch.Tensor) -> torch.Tensor:
        d = prefixes.shape[1]
        hidden = model.decode(prefixes, memory_kv, mask, rows)[:, -1]     # (N, D)
        start = vocabulary.offsets[d] - vocabulary.offsets[0]
        return model.code_logits(hidden)[:, start:start + vocabulary.vocab_sizes[d]]
    return next_token_logits


# --- the search, position by position --------------------------------------------------------

@dataclass
class Position:
    """Position d (1-based) of the search: the P live prefixes the decoder extended, what it
    scored after each, and the survivors.

    parents (P, d - 1) and parent_log_probs (P,): the live prefixes, best first, and log p.
    log_probs (P, V_d): log p_tau(token | parent) for every token, temperature applied, over
        all V_d tokens (the trie removes tokens before the top-W choice, not from the softmax).
    allowed (P, V_d): tokens the trie allows after the parent (it leads to an item).
    prefixes (W_d, d), parent (W_d,), token (W_d,), prefix_log_probs (W_d,): the survivors,
        best first, the parent each extends, the token it adds, its log p.
    items_under: the catalogue items whose ID starts with each survivor (ascending ids).
    """

    d: int
    parents: np.ndarray
    parent_log_probs: np.ndarray
    log_probs: np.ndarray
    allowed: np.ndarray
    prefixes: np.ndarray
    parent: np.ndarray
    token: np.ndarray
    prefix_log_probs: np.ndarray
    items_under: list

    @property
    def n_items(self) -> np.ndarray:
        """(W_d,) catalogue items under each surviving prefix (0: no item has that prefix)."""
        return np.array([len(items) for items in self.items_under], dtype=int)

    @property
    def token_probs(self) -> np.ndarray:
        """(W_d,) p_tau(token | parent) of each survivor."""
        return np.exp(self.log_probs[self.parent, self.token])

    @cached_property
    def kept(self) -> np.ndarray:
        """(P, V_d) bool: which (parent, token) candidates survived."""
        kept = np.zeros_like(self.allowed)
        kept[self.parent, self.token] = True
        return kept

    @cached_property
    def order(self) -> np.ndarray:
        """(P, V_d) every parent's tokens, most likely first (ties: the smaller token)."""
        return np.argsort(-self.log_probs, axis=1, kind="stable")

    def candidates(self, parent: int, few: int = 3, kept: bool | None = None
                   ) -> list[tuple[int, float, bool, bool]]:
        """The `few` tokens the decoder found most likely after live prefix `parent`, and every
        token that survived from it: (token, p_tau, allowed by the trie, survived), by p.
        kept=False: the `few` most likely that did not survive instead."""
        order = self.order[parent]
        survived = self.kept[parent][order]
        if kept is False:
            shown = order[~survived][:few]
        else:
            shown = order[(np.arange(len(order)) < few) | survived]
        probs = np.exp(self.log_probs[parent, shown])
        return [(int(t), float(p), bool(self.allowed[parent, t]), bool(self.kept[parent, t]))
                for t, p in zip(shown, probs)]


@dataclass
class SearchTrace:
    """One user's beam search, position by position, and its W finished beams.

    result: the search's BeamResult (1, W, M) on the model's device, as `beam_search` returned.
    ids (W, M), log_probs (W,): the finished beams, best first (padding rows: -1, -inf).
    items (W,): the item each beam names; 0 for an ID that names no item (free decoding) and
        for padding rows.
    """

    history: np.ndarray                 # (T,) the user's items, oldest first
    user: int | None
    beam: int
    temperatures: tuple
    constrained: bool
    positions: list
    result: BeamResult
    ids: np.ndarray
    log_probs: np.ndarray
    items: np.ndarray
    semantic_ids: SemanticIds = field(repr=False)
    target: int | None = None

    @property
    def depth(self) -> int:
        return self.ids.shape[1]

    @property
    def finished(self) -> np.ndarray:
        """(W,) bool: the rows that hold a beam (not padding)."""
        return np.isfinite(self.log_probs)

    @property
    def invalid(self) -> np.ndarray:
        """(W,) bool: finished beams whose ID names no item (only free decoding writes them)."""
        return self.finished & (self.items == 0)

    @property
    def invalid_share(self) -> float:
        """The measured share of finished beams that name no item (0 when constrained)."""
        return float(self.invalid.sum() / max(1, self.finished.sum()))

    def left_trie_at(self) -> np.ndarray:
        """(W,) the first position d (1-based) at which each beam's prefix is no item's prefix;
        0 for a beam that names an item (and for padding)."""
        out = np.zeros(len(self.ids), dtype=int)
        for position in self.positions:
            gone = {tuple(p) for p, n in zip(position.prefixes.tolist(), position.n_items)
                    if n == 0}
            for w in np.flatnonzero(self.invalid & (out == 0)):
                if tuple(self.ids[w, :position.d]) in gone:
                    out[w] = position.d
        return out


def trace_search(model, batch: dict, beam: int, temperature=1.0, constrained: bool = True,
                 semantic_ids: SemanticIds | None = None, memory=None) -> SearchTrace:
    """Beam search for one user (`batch` of one row: users (1,), history (1, T)) with the model's
    decoder, through `retrieval.beam_search` itself, recording every position.

    The search calls the decoder once per position with the live prefixes, best first; those
    calls are the parents of each position, and the next call's prefixes (or the finished IDs)
    are its survivors. The probabilities are recomputed from the recorded logits with
    `retrieval.tempered_log_probs`, the function the search uses, so a survivor's log p is its
    parent's plus its token's, the numbers `beam_step` compared. `memory`: the encoded history
    (`encode_history`), to skip the encoder when the same history is searched again.
    """
    semantic_ids = check_generator(model, semantic_ids)
    history = batch.get("history") if isinstance(batch, dict) else None
    if history is None or history.dim() != 2 or len(history) != 1:
        raise ValueError("trace_search shows one user's search: batch needs 'history' (1, T) "
                         "(and 'users' (1,) for a model with user tokens), e.g. "
                         "eval_set.batch(slice(row, row + 1))")
    taus = tuple(check_temperatures(temperature, semantic_ids.trie.depth))
    device = semantic_ids.device
    batch = {name: value.to(device) for name, value in batch.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            memory = encode_history(model, batch) if memory is None else memory
            decoder = next_token_logits_of(model, memory)
            calls = []

            def recorded(rows, prefixes):
                logits = decoder(rows, prefixes)
                calls.append((prefixes, logits))
                return logits

            result = beam_search(recorded, semantic_ids, 1, beam, taus, constrained)
    finally:
        model.train(was_training)
    ids = result.ids[0].cpu().numpy()                                     # (W, M)
    log_probs = result.log_probs[0].float().cpu().numpy()                 # (W,)
    finished = np.isfinite(log_probs)
    items = np.zeros(len(ids), dtype=int)
    if finished.any():
        items[finished] = semantic_ids.item_of(result.ids[0][torch.from_numpy(finished).to(
            device)]).cpu().numpy()
    positions, parent_log_probs = [], np.zeros(1)
    for d, (parents, logits) in enumerate(calls, start=1):
        survivors = calls[d][0] if d < len(calls) else result.ids[0][torch.from_numpy(finished)
                                                                     .to(device)]
        positions.append(_position(d, parents, logits, survivors, parent_log_probs, taus[d - 1],
                                   semantic_ids))
        parent_log_probs = positions[-1].prefix_log_probs
    raw = history[0].cpu().numpy()
    users = batch.get("users")
    return SearchTrace(history=raw[raw > 0], user=None if users is None else int(users[0]),
                       beam=int(beam), temperatures=taus, constrained=bool(constrained),
                       positions=positions, result=result, ids=ids, log_probs=log_probs,
                       items=items, semantic_ids=semantic_ids)


def _position(d, parents, logits, survivors, parent_log_probs, tau, semantic_ids) -> Position:
    """What the search did at position d: parents (P, d - 1) and their logits (P, V_d) as the
    decoder got and gave them, survivors (W_d, d) as the search kept them."""
    log_probs = tempered_log_probs(logits, tau)                          # (P, V_d)
    allowed = semantic_ids.trie.next_token_mask(parents)                  # (P, V_d)
    parents_np, survivors_np = parents.cpu().numpy(), survivors.cpu().numpy()
    index = {tuple(p): i for i, p in enumerate(parents_np.tolist())}
    parent = np.array([index[tuple(s[:-1])] for s in survivors_np.tolist()], dtype=int)
    token = survivors_np[:, -1].astype(int) if len(survivors_np) else np.zeros(0, dtype=int)
    log_probs = log_probs.float().cpu().numpy()
    return Position(d=d, parents=parents_np, parent_log_probs=np.asarray(parent_log_probs),
                    log_probs=log_probs, allowed=allowed.cpu().numpy(), prefixes=survivors_np,
                    parent=parent, token=token,
                    prefix_log_probs=(np.asarray(parent_log_probs)[parent]
                                      + log_probs[parent, token]).astype(np.float32),
                    items_under=[i.cpu().numpy() for i in semantic_ids.items_with_prefix(
                        survivors)] if len(survivors_np) else [])


# --- the list the user gets ------------------------------------------------------------------

REASONS = {"invalid": "names no item", "history": "in the history (excluded)",
           "cap": "unseen, over the cap", "beyond": "beyond k", "padding": "no beam"}


@dataclass
class Listed:
    """One finished beam and what became of it in the list.

    beam: its rank among the W beams (0 = best). place: 1-based place in the top k, or None,
    with `reason` the key of `REASONS` saying why not. target, in_history, cold: the item is
    the true next item, is in the user's history, is unseen (no training interactions)."""

    beam: int
    semantic_id: tuple
    log_prob: float
    item: int
    place: int | None
    reason: str | None
    target: bool = False
    in_history: bool = False
    cold: bool = False


def rank_beams(trace: SearchTrace, k: int, exclude_history: bool,
               cold_items: torch.Tensor | None = None,
               max_cold_share: float | None = None) -> list[Listed]:
    """Every beam of the trace in order, with its place in the top-k list or why it has none.

    The list is made as `TIGER.recommend` makes it: the beams' items in order without IDs that
    name no item and, with `exclude_history` (the split's "exclude" rule, `EvalSet.seen`),
    without the history's items (`retrieval.beam_items`); then at most floor(eps k) items of
    `cold_items` (I + 1,) bool, the best ones (`cap_cold_items`, eps = max_cold_share); the
    first k. So for constrained decoding the places equal `recommend(batch, k, beam=W, ...)`.
    """
    width = len(trace.ids)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= width:
        raise ValueError(f"k must be an int in [1, W = {width}]: a beam of W holds at most W "
                         f"items, got k={k!r}; widen the beam or shorten the list")
    if (cold_items is None) != (max_cold_share is None):
        raise ValueError("the cold-item cap needs both cold_items (I + 1,) bool and "
                         "max_cold_share eps in [0, 1]")
    if max_cold_share is not None and not 0 <= max_cold_share <= 1:
        raise ValueError(f"max_cold_share must be in [0, 1], got {max_cold_share}")
    semantic_ids, result = trace.semantic_ids, trace.result
    device = result.ids.device
    history = torch.as_tensor(trace.history, dtype=torch.long, device=device)[None]
    kept, _ = beam_items(result, semantic_ids, min(width, semantic_ids.n_items),
                         history if exclude_history else None)           # (1, W') best first
    capped = kept
    if cold_items is not None:
        cold_items = torch.as_tensor(cold_items, dtype=torch.bool, device=device)
        capped = cap_cold_items(kept, cold_items, math.floor(max_cold_share * k))
    after_rules = [i for i in kept[0].tolist() if i > 0]
    after_cap = [i for i in capped[0].tolist() if i > 0]
    top = after_cap[:k]
    history_set = set(trace.history.tolist())
    cold = set() if cold_items is None else set(torch.nonzero(cold_items).flatten().tolist())
    rows = []
    for w in range(width):
        item = int(trace.items[w])
        if not np.isfinite(trace.log_probs[w]):
            reason = "padding"
        elif item == 0:
            reason = "invalid"
        elif item not in after_rules:
            reason = "history"
        elif item not in after_cap:
            reason = "cap"
        elif item not in top:
            reason = "beyond"
        else:
            reason = None
        rows.append(Listed(beam=w, semantic_id=tuple(int(c) for c in trace.ids[w]),
                           log_prob=float(trace.log_probs[w]), item=item,
                           place=None if reason else top.index(item) + 1, reason=reason,
                           target=item > 0 and item == trace.target,
                           in_history=item in history_set, cold=item in cold))
    return rows


def list_items(listed: list[Listed]) -> list[int]:
    """The top-k items of `rank_beams`' answer, in their places."""
    return [row.item for row in sorted((r for r in listed if r.place), key=lambda r: r.place)]


# --- the tree's layout, shared by the widget's SVG and the static figure ---------------------

@dataclass
class Node:
    """A prefix on the drawing: level d (0 = BOS) and its index among the level's survivors."""

    key: str
    d: int
    index: int
    row: float
    token: int = -1
    prob: float = 1.0
    log_prob: float = 0.0
    n_items: int = 0
    alive: bool = True            # a prefix shown at the last drawn position descends from it
    parent: str | None = None
    beams: list = field(default_factory=list)   # last-position survivors below it (indices)
    stubs: list = field(default_factory=list)   # best candidates after it that did not survive


@dataclass
class TreeLayout:
    """The search tree drawn up to position `step`: nodes by key, kept edges (parent, child),
    in pixels of an SVG (x to the right, y down)."""

    nodes: dict
    edges: list
    step: int
    depth: int
    rows: int

    BOS_W, BOX_W, GAP, ROW_H, BOX_H, TOP, BADGE = 34, 128, 24, 22, 18, 46, 62

    def left(self, d: int) -> float:
        return 4 + (0 if d == 0 else self.BOS_W + self.GAP + (d - 1) * (self.BOX_W + self.GAP))

    def width_of(self, d: int) -> float:
        return self.BOS_W if d == 0 else self.BOX_W

    def y(self, row: float) -> float:
        return self.TOP + row * self.ROW_H + self.ROW_H / 2

    @property
    def width(self) -> float:
        return self.left(self.depth) + self.BOX_W + self.BADGE

    @property
    def height(self) -> float:
        return self.TOP + self.rows * self.ROW_H + 6


def tree_layout(trace: SearchTrace, step: int | None = None, few: int = 3) -> TreeLayout:
    """Where every prefix of the search goes. Column d holds position d's survivors; a level's
    survivors are ordered by their parent's row, then by rank, so kept edges never cross.
    A node is alive when a survivor of the last drawn position `step` descends from it;
    its stubs are its `few` most likely candidates that did not survive."""
    step = trace.depth if step is None else step
    if not 1 <= step <= trace.depth:
        raise ValueError(f"step must be in [1, M = {trace.depth}], got {step}")
    positions = trace.positions[:step]
    nodes = {"0-0": Node("0-0", 0, 0, 0.0)}
    rows_of = {0: np.zeros(1)}
    for position in positions:
        parent_rows = rows_of[position.d - 1][position.parent]
        order = np.lexsort((np.arange(len(position.token)), parent_rows))
        rows = np.empty(len(order))
        rows[order] = np.arange(len(order))
        rows_of[position.d] = rows
        n_items, probs = position.n_items, position.token_probs
        for i in range(len(position.token)):
            nodes[f"{position.d}-{i}"] = Node(
                f"{position.d}-{i}", position.d, i, float(rows[i]), int(position.token[i]),
                float(probs[i]), float(position.prefix_log_probs[i]), int(n_items[i]),
                parent=f"{position.d - 1}-{int(position.parent[i])}")
    first = rows_of.get(1, np.zeros(1))
    nodes["0-0"].row = float(first.max() / 2) if len(first) else 0.0
    nodes["0-0"].n_items = trace.semantic_ids.n_items
    for node in nodes.values():
        node.alive = node.d == step
    for i in range(len(positions[-1].token) if positions else 0):
        key = f"{step}-{i}"
        while key is not None:
            nodes[key].beams.append(i)
            nodes[key].alive = True
            key = nodes[key].parent
    for position in positions:                      # stubs: the best candidates that lost
        for p in range(len(position.parents)):
            nodes[f"{position.d - 1}-{p}"].stubs = position.candidates(p, few, kept=False)
    edges = [(node.parent, key) for key, node in nodes.items() if node.parent is not None]
    n_rows = max([len(rows_of[d]) for d in rows_of] + [1])
    return TreeLayout(nodes, edges, step, trace.depth, n_rows)


def _number(value: float, digits: int = 2) -> str:
    """-1.23 with a real minus sign; probabilities as .61, <.01."""
    return f"{value:.{digits}f}".replace("-", "\u2212")


def _prob(p: float) -> str:
    return "<.01" if p < 0.005 else ("1.0" if p > 0.995 else f"{p:.2f}".lstrip("0"))


def _position_name(d: int, depth: int) -> str:
    return "collision token" if d == depth else f"code {d}"


def _note(row: Listed, seen_excluded: bool) -> str:
    """What the list says about a beam: its reason, and its markers."""
    parts = [REASONS[row.reason]] if row.reason else []
    if row.target:
        parts.append("\u2605 the next item")
    if row.in_history and row.reason != "history":
        parts.append("in the history" + (" (repeats allowed)" if not seen_excluded else ""))
    if row.cold:
        parts.append("unseen item")
    return ", ".join(parts)


# --- drawing: the tree, the list and the map as HTML, hover linked by CSS ----------------------

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
COLOURS = {"edge": "#4a4a4a", "faded": "#c8c8c8", "pruned": "#a8a8a8", "blocked": "#d9534f",
           "box": "#6b6b6b", "hover": "#ff7f00", "listed": "#1a1a1a", "cold": "#1f77b4",
           "target": "#ffd700", "history": "#555555", "region": "#8e24aa"}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _box_texts(layout: TreeLayout, node: Node) -> list[tuple[float, str, str, dict]]:
    """(x offset, anchor, text, style) of the numbers in a prefix's box."""
    if node.d == 0:
        return [(layout.BOS_W / 2, "middle", "BOS", {"font-weight": "bold"})]
    style = {"fill": COLOURS["blocked"]} if node.n_items == 0 else {}
    return [(5, "start", str(node.token), {"font-weight": "bold"}),
            (48, "end", _prob(node.prob), {}),
            (88, "end", _number(node.log_prob), {}),
            (layout.BOX_W - 5, "end", str(node.n_items), style)]


def _box_header(layout: TreeLayout) -> list[tuple[float, str, str]]:
    """The column heads over the numbers of `_box_texts`."""
    return [(5, "start", "code"), (48, "end", "p"), (88, "end", "log p"),
            (layout.BOX_W - 5, "end", "items")]


def _column_title(d: int, depth: int, trace: SearchTrace) -> str:
    if d == 0:
        return "start"
    name = "collision" if d == depth else f"code {d}"
    return f"{d}: {name} (\u03c4 {trace.temperatures[d - 1]:.3g})"


def tree_svg(layout: TreeLayout, trace: SearchTrace, listed: list[Listed] | None,
             labels: dict | None = None) -> str:
    """The search tree as SVG (boxes, kept edges, faded stubs, headers, the list's verdict on
    each finished beam) and, over it, a hidden HTML tip per prefix that the explorer's CSS
    shows while the prefix is pointed at. Edges and stubs are one path per style, and a tip is
    one text node: a redraw stays a few hundred elements."""
    out = [f'<div class="bx-treewrap"><svg class="bx-tree" width="{layout.width:.0f}" '
           f'height="{layout.height:.0f}" viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" '
           f'font-family="{FONT}" font-size="11">']
    for d in range(layout.step + 1):
        x = layout.left(d)
        out.append(f'<text x="{x:.1f}" y="14" font-weight="bold" font-size="11.5">'
                   f'{_e(_column_title(d, layout.depth, trace))}</text>')
        if d:
            out += [f'<text x="{x + dx:.1f}" y="{layout.TOP - 8}" text-anchor="{a}" fill="#555" '
                    f'font-size="10">{t}</text>' for dx, a, t in _box_header(layout)]
    nodes = layout.nodes
    paths = {"alive": [], "faded": [], "pruned": [], "blocked": []}
    for parent, child in layout.edges:                                     # kept edges
        p, c = nodes[parent], nodes[child]
        paths["alive" if c.alive else "faded"].append(
            f"M{layout.left(p.d) + layout.width_of(p.d):.0f} {layout.y(p.row):.1f}"
            f"L{layout.left(c.d):.0f} {layout.y(c.row):.1f}")
    for node in nodes.values():                                             # pruned stubs
        x0, y0 = layout.left(node.d) + layout.width_of(node.d), layout.y(node.row)
        for (_, _, allowed, _), dy in zip(node.stubs, _stub_offsets(len(node.stubs))):
            paths["pruned" if allowed else "blocked"].append(f"M{x0:.0f} {y0:.1f}l20 {dy:.1f}")
    styles = {"alive": f'stroke="{COLOURS["edge"]}" stroke-width="1.3"',
              "faded": f'stroke="{COLOURS["faded"]}" stroke-width="1"',
              "pruned": f'stroke="{COLOURS["pruned"]}" stroke-width="1"',
              "blocked": f'stroke="{COLOURS["blocked"]}" stroke-width="1" stroke-dasharray="3,2"'}
    out += [f'<path fill="none" {styles[kind]} d="{"".join(segments)}"/>'
            for kind, segments in paths.items() if segments]
    places = {row.beam: row for row in listed} if listed else {}
    for key, node in nodes.items():                                        # boxes
        x, y = layout.left(node.d), layout.y(node.row) - layout.BOX_H / 2
        opacity = "" if node.alive else ' opacity="0.38"'
        stroke = COLOURS["blocked"] if node.n_items == 0 and node.d else COLOURS["box"]
        dash = ' stroke-dasharray="4,2"' if node.n_items == 0 and node.d else ""
        out.append(f'<g class="node n-{key} {_classes(node, "b")}"{opacity}>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{layout.width_of(node.d)}" '
                   f'height="{layout.BOX_H}" rx="3" fill="white" stroke="{stroke}"{dash}/>')
        for dx, anchor, text, style in _box_texts(layout, node):
            extra = "".join(f' {k}="{v}"' for k, v in style.items())
            out.append(f'<text x="{x + dx:.1f}" y="{y + 13:.1f}" text-anchor="{anchor}"{extra}>'
                       f'{_e(text)}</text>')
        if node.d == layout.depth and node.index in places:              # the list's verdict
            row = places[node.index]
            out.append(f'<text x="{x + layout.BOX_W + 6:.1f}" y="{y + 13:.1f}" font-weight='
                       f'"{"bold" if row.place else "normal"}" fill="'
                       f'{"#111" if row.place else "#6e6e6e"}">{_e(_badge(row))}</text>')
        out.append("</g>")
    out.append("</svg>")
    out += [_tip_html(layout, trace, node, places, labels) for node in nodes.values()]
    out.append("</div>")
    return "".join(out)


def _stub_offsets(n: int) -> list[float]:
    """Where a prefix's n stubs end, in px below its centre: fanned 8 px apart."""
    return [(j - (n - 1) / 2) * 8 for j in range(n)]


def _badge(row: Listed) -> str:
    """A finished beam's verdict beside its box: its place, or why it has none."""
    badge = f"#{row.place}" if row.place else {"invalid": "no item", "history": "history",
                                              "cap": "over cap", "beyond": "> k",
                                              "padding": ""}[row.reason]
    return badge + (" \u2605" if row.target else "")


def _classes(node: Node, prefix: str) -> str:
    return " ".join(f"{prefix}-{i}" for i in node.beams)


def _tip_lines(layout: TreeLayout, trace: SearchTrace, node: Node, places: dict,
               labels: dict | None) -> list[str]:
    """What pointing at a prefix says: the prefix, its numbers, what the decoder scored after
    it."""
    depth = trace.depth
    if node.d == 0:
        lines = [f"start (BOS): all {node.n_items} items lie below it"]
    else:
        prefix = tuple(int(c) for c in trace.positions[node.d - 1].prefixes[node.index])
        lines = [f"prefix {prefix}",
                 f"p({node.token} | {'the history' if node.d == 1 else prefix[:-1]}) = "
                 f"{node.prob:.3f}, log p(prefix) = {_number(node.log_prob, 3)}",
                 "no item has this prefix: it left the trie" if node.n_items == 0 else
                 f"{items_text(node.n_items)} under it"]
    if node.d == depth:
        row = places.get(node.index)
        item = int(trace.items[node.index])
        if item:
            label = f" ({labels[item]})" if labels and item in labels else ""
            lines.append(f"item {item}{label}")
        if row is not None:
            lines.append(f"place {row.place} in the list" if row.place else REASONS[row.reason])
        return lines
    if node.d < layout.step:
        position = trace.positions[node.d]
        parent = node.index
        size = position.log_probs.shape[1]
        lines.append(f"position {node.d + 1} ({_position_name(node.d + 1, depth)}): "
                     f"{size} tokens scored, {int(position.allowed[parent].sum())} lead to items")
        for token, prob, allowed, kept in position.candidates(parent, few=3)[:8]:
            verdict = "kept" if kept else ("pruned (outside the best W)" if allowed else
                                           "blocked: no item below" if trace.constrained else
                                           "pruned; no item below")
            if kept and not allowed:
                verdict = "kept, but no item below"
            lines.append(f"   {token:>4}   p {_prob(prob):>4}   {verdict}")
    return lines


def _tip_html(layout, trace, node, places, labels) -> str:
    """A prefix's tip, an HTML box over the tree: hidden until the prefix is pointed at."""
    lines = _tip_lines(layout, trace, node, places, labels)
    width = 14 + 6.4 * max(len(line) for line in lines)
    height = 8 + 15 * len(lines)
    x = min(layout.left(node.d) + layout.width_of(node.d) + 8, layout.width - width)
    y = max(2.0, min(layout.y(node.row) - 10, layout.height - height - 2))
    return (f'<div class="tip t-{node.key}" style="left:{x:.0f}px;top:{y:.0f}px">'
            f'{_e(chr(10).join(lines))}</div>')


def list_html(listed: list[Listed], trace: SearchTrace, labels: dict | None,
              ancestors: dict, seen_excluded: bool) -> str:
    """Every beam in order: its place in the list (or why none), item, label, ID, log p."""
    head = "".join(f"<th>{h}</th>" for h in ("place", "beam", "item", "label", "semantic ID",
                                             "log p", "note"))
    rows = []
    for row in listed:
        if row.reason == "padding":
            continue
        label = labels.get(row.item, "") if labels and row.item else ""
        classes = f"row r-{row.beam} " + " ".join(f"a-{k}" for k in ancestors.get(row.beam, ()))
        faded = "" if row.place else " out"
        place = str(row.place) if row.place else ""
        item = str(row.item) if row.item else "\u2014"
        rows.append(f'<tr class="{classes}{faded}"><td class="num"><b>{place}</b></td>'
                    f'<td class="num">{row.beam + 1}</td><td class="num">{item}</td>'
                    f'<td>{_e(label)}</td><td class="mono">{_e(row.semantic_id)}</td>'
                    f'<td class="num">{_number(row.log_prob)}</td>'
                    f'<td>{_e(_note(row, seen_excluded))}</td></tr>')
    return (f'<table class="bx-list"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            '</tbody></table>')


def _star(x: float, y: float, r: float) -> str:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = math.pi / 2 + i * math.pi / 5
        points.append(f"{x + radius * math.cos(angle):.1f},{y - radius * math.sin(angle):.1f}")
    return " ".join(points)


def explorer_css(root: str, depth: int, max_beam: int, map_png: str | None = None) -> str:
    """The explorer's style, scoped to `root`: sent once, not with every redraw.

    Pointing links the views through CSS `:has()`, one rule per possible prefix (position
    d <= depth, rank i < max_beam) and beam: pointing at prefix d-i shows its tip (t-d-i) and
    its items on the map (g-d-i) and lights the rows and markers of the beams below it (a-d-i);
    pointing at beam b's row (r-b) or marker (m-b) lights the other and its path (b-b).
    Tips and regions are display: none until then, so a hidden one costs no layout.
    `map_png`: the base map as base64 PNG, the background of every redraw's map.
    """
    hover = COLOURS["hover"]
    r = f".{root}"
    rules = [
        f"{r} {{font-family: {FONT}; font-size: 12px; line-height: 1.35; color: #111}}",
        f"{r} .tip, {r} .reg {{display: none}}",
        f"{r} .bx-treewrap {{position: relative}}",
        f"{r} .tip {{position: absolute; z-index: 5; pointer-events: none; white-space: pre;"
        f" background: #fffdf3; border: 1px solid #444; border-radius: 4px; padding: 3px 6px;"
        f" font: 10.5px/15px DejaVu Sans Mono, monospace; color: #111}}",
        f"{r} .reg, {r} .live {{stroke-width: 14; stroke-linejoin: round; stroke-linecap: round}}",
        f"{r} .reg {{fill: {hover}; fill-opacity: 0.3; stroke: {hover}; stroke-opacity: 0.5}}",
        f"{r} .live {{fill: {COLOURS['region']}; fill-opacity: 0.25; stroke: {COLOURS['region']};"
        f" stroke-opacity: 0.4}}",
        f"{r} .bx-body {{display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: flex-start}}",
        f"{r} .bx-list-box {{flex-basis: 100%}}",
        f"{r} .bx-title {{font-weight: bold; font-size: 12.5px; margin: 6px 0 2px}}",
        f"{r} .bx-note {{color: #333; margin: 2px 0; max-width: 1000px}}",
        f"{r} table.bx-list {{border-collapse: collapse; font-size: 11.5px; line-height: 1.3}}",
        f"{r} table.bx-list th {{text-align: left; font-weight: bold; padding: 1px 6px;"
        " border-bottom: 1px solid #999}",
        f"{r} table.bx-list td {{padding: 1px 6px; border-bottom: 1px solid #eee;"
        " white-space: nowrap}",
        f"{r} table.bx-list td.num {{text-align: right}}",
        f"{r} .mono {{font-family: DejaVu Sans Mono, monospace; font-size: 11px}}",
        f"{r} tr.out {{color: #767676}}",
        f"{r} .hc {{display: inline-block; border: 1px solid #bbb; border-radius: 3px;"
        " padding: 0 4px; margin: 1px 2px; font-size: 11.5px; background: #fafafa;"
        " line-height: 1.4}",
        f"{r} .hc.read {{border: 1.5px solid #333; font-weight: bold}}",
        f"{r} .key {{font-size: 11.5px; color: #222; line-height: 1.5; columns: 2; width: 400px}}",
        f"{r} .key svg {{vertical-align: middle}}",
    ]
    if map_png:
        rules.append(f"{r} .bx-mapimg {{background: url(data:image/png;base64,{map_png}) "
                     "no-repeat; background-size: 100% 100%}")
    for b in range(max_beam):
        rules.append(", ".join(f"{r}:has(.{s}-{b}:hover) .b-{b} > rect" for s in "rm")
                     + f" {{stroke: {hover}; stroke-width: 2.5}}")
        rules.append(", ".join(f"{r}:has(.{s}-{b}:hover) .r-{b}" for s in "rm")
                     + " {background: #ffe3bf}")
        rules.append(", ".join(f"{r}:has(.{s}-{b}:hover) .m-{b} circle" for s in "rm")
                     + f" {{stroke: {hover}; stroke-width: 3.5}}")
    keys = ["0-0"] + [f"{d}-{i}" for d in range(1, depth + 1) for i in range(max_beam)]
    for key in keys:
        on = f"{r}:has(.n-{key}:hover)"
        rules.append(f"{on} .t-{key} {{display: block}}")
        rules.append(f"{on} .g-{key} {{display: inline}}")
        rules.append(f"{on} .n-{key} > rect {{stroke: {hover}; stroke-width: 2.5}}")
        rules.append(f"{on} tr.a-{key} {{background: #ffe3bf}}")
        rules.append(f"{on} .mk.a-{key} circle {{stroke: {hover}; stroke-width: 3.5}}")
    return "<style>" + "\n".join(rules) + "</style>"


def _key_html() -> str:
    """The map's key: what each overlay marker means."""
    def icon(body: str) -> str:
        return f'<svg width="18" height="16" viewBox="-9 -8 18 16">{body}</svg>'
    c = COLOURS
    entries = [
        (icon(f'<circle r="6.5" fill="{c["listed"]}" stroke="white"/><text y="3.5" font-size="9" '
              f'fill="white" text-anchor="middle">3</text>'), "item in the list (its place)"),
        (icon(f'<circle r="6.5" fill="{c["cold"]}" stroke="white"/>'), "unseen item in the list"),
        (icon(f'<circle r="4.5" fill="white" stroke="{c["listed"]}" stroke-dasharray="2,1.5"/>'),
         "a beam's item, left out"),
        (icon(f'<polygon points="{_star(0, 0, 7.5)}" fill="{c["target"]}" stroke="black"/>'),
         "the true next item (gold: listed)"),
        (icon(f'<rect x="-4.5" y="-4.5" width="9" height="9" fill="{c["history"]}"/>'),
         "history item the model reads"),
        (icon(f'<rect x="-4" y="-4" width="8" height="8" fill="white" stroke="{c["history"]}" '
              'stroke-width="1.3"/>'), "older history item"),
        (icon(f'<circle r="6" fill="{c["region"]}" fill-opacity="0.3"/>'),
         "items under the live prefixes"),
        (icon(f'<circle r="6" fill="{c["hover"]}" fill-opacity="0.55"/>'),
         "under the prefix pointed at"),
    ]
    return '<div class="key">' + "<br>".join(f"{i} {_e(t)}" for i, t in entries) + "</div>"


class BeamExplorer:
    """TIGER's beam search for one user at a time, drawn level by level and linked to the map.

    model: a TIGER (anything with its decoder interface, `DECODER_INTERFACE`), on any device.
    eval_set: an `EvalSet` (users, history, targets, seen) whose users can be picked; its `seen`
        rule ("exclude" or "allow") decides whether history items leave the list.
    xy: (I, 2) the items' map, row i - 1 for item i (`umap_embedding` of the content, lesson 05's
        layout and disk cache). labels: {item: text} or a DataFrame with item and label columns.
    cold_items: (I + 1,) bool, the unseen items the cap eps limits (TIGER's cold start).
    semantic_ids: the IDs the model writes (default: its own).
    """

    MAX_BEAM = 40          # the widest beam the tree draws (22 px a row)
    CACHE = 64             # searches and encoded histories kept
    FEW = 3                # candidates a prefix's stubs show
    HISTORY_SHOWN = 16     # newest history items written out above the search

    def __init__(self, model, eval_set, xy, labels=None, cold_items=None, title: str = "items",
                 semantic_ids: SemanticIds | None = None):
        self.model = model
        self.semantic_ids = check_generator(model, semantic_ids)
        for name in ("users", "history", "targets", "batch"):
            if not hasattr(eval_set, name):
                raise TypeError(f"eval_set must be an EvalSet (split.evaluation('test')), got "
                                f"{type(eval_set).__name__} without {name!r}")
        self.eval_set = eval_set
        n_items = self.semantic_ids.n_items
        xy = np.asarray(xy, dtype=float)
        if xy.shape != (n_items, 2):
            raise ValueError(f"xy must be the map of the model's {n_items} items, (I, 2) with row "
                             f"i - 1 for item i, got shape {xy.shape}")
        table = self.semantic_ids.table.cpu().numpy()
        sizes = list(self.semantic_ids.vocab_sizes)
        self.map = CodebookExplorer(xy, table[:, :-1], sizes[:-1], title=title)
        self.labels = _labels(labels)
        if cold_items is not None:
            cold_items = torch.as_tensor(cold_items, dtype=torch.bool).cpu()
            if cold_items.shape != (n_items + 1,):
                raise ValueError(f"cold_items must be (I + 1,) = ({n_items + 1},) bool, True for "
                                 f"unseen items, got shape {tuple(cold_items.shape)}")
        self.cold_items = cold_items
        self.depth = len(sizes)
        self.reads = getattr(getattr(model, "config", None), "max_items", None)
        self.seen_excluded = getattr(eval_set, "seen", "exclude") == "exclude"
        self.root = f"bx{id(self):x}"
        self.redraw_seconds: list[float] = []     # the widget's redraws, in the kernel
        self.drawn = 0                             # views drawn (the page sees data-drawn)
        self._memory, self._traces, self._regions = OrderedDict(), OrderedDict(), OrderedDict()
        self._base = None

    # --- data -------------------------------------------------------------------------------

    def batch(self, row: int | None = None, history=None) -> dict:
        """The model input of user `row` of the eval set, or of an edited `history` (item ids,
        oldest first; the row's user token is kept when a row is given)."""
        n_users = len(self.eval_set.users)
        if row is not None and not (isinstance(row, numbers.Integral) and 0 <= row < n_users):
            raise ValueError(f"row must be an int in [0, {n_users}) (a user of the eval set), "
                             f"got {row!r}")
        if history is None:
            if row is None:
                raise ValueError("pick a user (row) or give a history")
            return self.eval_set.batch(slice(row, row + 1))
        history = torch.as_tensor(list(history), dtype=torch.long)
        n_items = self.semantic_ids.n_items
        if history.dim() != 1 or len(history) == 0 or int(history.min()) < 1 or \
                int(history.max()) > n_items:
            raise ValueError(f"a history is a list of item ids in [1, {n_items}], oldest first, "
                             f"got {history.tolist()}")
        user = (self.eval_set.users[row:row + 1] if row is not None
                else torch.zeros(1, dtype=torch.long))
        return {"users": user, "history": history[None]}

    def search(self, row: int | None = 0, history=None, beam: int = 20, temperature=1.0,
               constrained: bool = True) -> SearchTrace:
        """The traced search (`trace_search`) for a user or an edited history; cached per
        history and setting, the encoded history per history. The target is the eval set's
        next item for an unedited user, else None."""
        if isinstance(beam, bool) or not isinstance(beam, numbers.Integral) or beam < 1:
            raise ValueError(f"beam must be an int >= 1, got {beam!r}")
        taus = tuple(check_temperatures(temperature, self.depth))
        batch = self.batch(row, history)
        key = (tuple(batch["users"].tolist()), tuple(batch["history"][0].tolist()))
        setting = key + (int(beam), taus, bool(constrained))
        if setting in self._traces:
            self._traces.move_to_end(setting)
            return self._traces[setting]
        if key not in self._memory:
            device = self.semantic_ids.device
            self._memory[key] = encode_history(self.model, {n: v.to(device)
                                                            for n, v in batch.items()})
            _trim(self._memory, self.CACHE)
        trace = trace_search(self.model, batch, int(beam), taus, constrained, self.semantic_ids,
                             memory=self._memory[key])
        if history is None:
            trace.target = int(self.eval_set.targets[row])
        self._traces[setting] = trace
        _trim(self._traces, self.CACHE)
        return trace

    def ranked(self, trace: SearchTrace, k: int = 10,
               max_cold_share: float | None = None) -> list[Listed]:
        """`rank_beams` under the eval set's rule for seen items, with this explorer's unseen
        items capped at eps = max_cold_share (None: no cap)."""
        cold = self.cold_items if max_cold_share is not None else None
        if max_cold_share is not None and cold is None:
            raise ValueError("max_cold_share needs the explorer's cold_items (I + 1,) bool: "
                             "BeamExplorer(..., cold_items=unseen)")
        listed = rank_beams(trace, k, self.seen_excluded, cold, max_cold_share)
        return listed

    # --- drawing ----------------------------------------------------------------------------

    def _base_map(self):
        """The codebook map (level-1 codes) as a PNG, drawn once, and every item's pixel."""
        if self._base is None:
            fig = plt.figure(figsize=(4.0, 3.8), dpi=100)
            ax = fig.add_axes((0.04, 0.03, 0.93, 0.83))
            key = fig.add_axes((0.0, 0.0, 0.01, 0.01))
            points = self.map.draw_map(ax, level=1, colour="code", key=key)
            key.set_visible(False)
            points.set_alpha(0.4)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.set_title(f"UMAP of {self.map.title}, coloured by level-1 code\n(lesson 05's map; "
                         "numbers: the clusters' codes)", fontsize=9)
            fig.canvas.draw()
            height = fig.bbox.height
            px = ax.transData.transform(self.map.shown_xy)                # (I, 2) display
            px[:, 1] = height - px[:, 1]
            self._png = png_bytes(fig)
            self._base = (base64.b64encode(self._png).decode(), px, (fig.bbox.width, height))
        return self._base

    def map_svg(self, trace: SearchTrace, listed: list[Listed], layout: TreeLayout,
                ancestors: dict) -> str:
        """The codebook map with the search on it: history, the region under the live prefixes
        (or, after the last position, the list), the target; hidden rings per prefix."""
        _, px, (width, height) = self._base_map()
        c = COLOURS
        out = [f'<div class="bx-mapimg" style="width:{width:.0f}px;height:{height:.0f}px">'
               f'<svg class="bx-map" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 '
               f'{width:.0f} {height:.0f}" font-family="{FONT}">']
        for key, node in layout.nodes.items():                            # hidden, per prefix
            if node.d == 0:
                continue
            position = trace.positions[node.d - 1]
            region = self._region(tuple(position.prefixes[node.index].tolist()),
                                  position.items_under[node.index])
            out.append(f'<path class="reg g-{key}" d="{region}"/>')
        if layout.step < self.depth:                                      # the live region
            position = trace.positions[layout.step - 1]
            live = sorted(set(np.concatenate(position.items_under).tolist())) \
                if len(position.items_under) else []
            region = self._region(tuple(map(tuple, position.prefixes.tolist())), live)
            out.append(f'<path class="live" d="{region}"/>')
        reads = set(self._read(trace))
        for item in dict.fromkeys(trace.history.tolist()):                # history squares
            x, y = px[item - 1]
            style = (f'fill="{c["history"]}" stroke="white" stroke-width="0.8"' if item in reads
                     else f'fill="white" stroke="{c["history"]}" stroke-width="1.3"')
            size = 9 if item in reads else 8
            out.append(f'<rect class="hs h-{item}" x="{x - size / 2:.1f}" y="{y - size / 2:.1f}" '
                       f'width="{size}" height="{size}" {style}/>')
        finished = layout.step == self.depth
        if finished:
            out.append(self._markers_svg(listed, px, ancestors, in_list=False))
        if trace.target:                        # over the left-out items, under the list's
            x, y = px[trace.target - 1]
            out.append(f'<polygon points="{_star(x, y, 10)}" fill="{c["target"]}" stroke="black" '
                       'stroke-width="1"/>')
        if finished:
            out.append(self._markers_svg(listed, px, ancestors, in_list=True))
        out.append("</svg></div>")
        return "".join(out)

    def _read(self, trace: SearchTrace) -> list[int]:
        """The history items the model reads: its newest max_items (all, for a model without
        that setting)."""
        return trace.history[-self.reads:].tolist() if self.reads else trace.history.tolist()

    def _region(self, key: tuple, items) -> str:
        """`_region` of the items under a prefix (or a set of them), cached by prefix."""
        if key not in self._regions:
            self._regions[key] = _region(self._base_map()[1], items)
            _trim(self._regions, 20 * self.CACHE)
        return self._regions[key]

    def _markers_svg(self, listed: list[Listed], px: np.ndarray, ancestors: dict,
                     in_list: bool) -> str:
        """A circle per beam's item: numbered for the list (in_list), hollow for the left out;
        moved apart where they would overlap, with a line back to the item."""
        c = COLOURS
        out = []
        for row, (x0, y0), (x, y) in _marker_places(listed, px):
            if (row.place is not None) != in_list:
                continue
            classes = f"mk m-{row.beam} " + " ".join(f"a-{k}" for k in ancestors.get(row.beam, ()))
            line = (f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#222" '
                    'stroke-width="0.8"/>' if math.hypot(x - x0, y - y0) > 2 else "")
            if row.place:
                fill, ink = _marker_colours(row)
                edge = "black" if row.target else "white"
                body = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7.5" fill="{fill}" stroke="{edge}" '
                        f'stroke-width="1"/><text x="{x:.1f}" y="{y + 3.5:.1f}" font-size="10" '
                        f'font-weight="bold" fill="{ink}" text-anchor="middle">{row.place}</text>')
            else:
                body = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="white" stroke="'
                        f'{c["listed"]}" stroke-width="1.2" stroke-dasharray="2,1.5"/>')
            out.append(f'<g class="{classes}">{line}{body}</g>')
        return "".join(out)

    def style_html(self) -> str:
        """The explorer's `<style>` (`explorer_css`) with the base map inside: the widget sends
        it once; `html(..., style=True)` puts it in front of a view."""
        image = self._base_map()[0]
        return explorer_css(self.root, self.depth, self.MAX_BEAM, image)

    def html(self, trace: SearchTrace, listed: list[Listed], step: int | None = None,
             style: bool = True) -> str:
        """The whole view of one search as HTML: summary, history, tree, map and list; with
        the style in front unless `style=False` (the widget holds it apart)."""
        layout = tree_layout(trace, step, self.FEW)
        if len(trace.ids) > self.MAX_BEAM:
            raise ValueError(f"the tree draws at most {self.MAX_BEAM} beams, got W = "
                             f"{len(trace.ids)}; the data layer (trace_search) takes any W")
        ancestors = {}
        if layout.step == self.depth:
            for key, node in layout.nodes.items():
                for b in node.beams:
                    ancestors.setdefault(b, []).append(key)
        self.drawn += 1
        n_listed = sum(r.place is not None for r in listed)
        finished = layout.step == self.depth
        title = "The list" if finished else "The list, once every position is written"
        return (f'<div class="bx {self.root}" data-drawn="{self.drawn}">'
                f'{self.style_html() if style else ""}'
                f'{self._summary_html(trace, listed, layout)}'
                '<div class="bx-body"><div class="bx-tree-box">'
                '<div class="bx-title">The search, position by position (point at a prefix: '
                'what the decoder scored after it)</div>'
                f'{tree_svg(layout, trace, listed if finished else None, self.labels)}'
                '</div><div class="bx-map-box"><div class="bx-title">Where the items lie on the '
                f'codebook map</div>{self.map_svg(trace, listed, layout, ancestors)}{_key_html()}'
                '</div><div class="bx-list-box">'
                f'<div class="bx-title">{title}: the top {n_listed} of '
                f'{int(trace.finished.sum())} beams (point at a row: its item and its path)</div>'
                f'{list_html(listed, trace, self.labels, ancestors, self.seen_excluded)}'
                '</div></div></div>')

    def _summary_html(self, trace: SearchTrace, listed: list[Listed], layout: TreeLayout) -> str:
        labels = self.labels or {}
        reads = self.reads or len(trace.history)
        n = len(trace.history)
        chips = [f"({n - self.HISTORY_SHOWN} older)"] if n > self.HISTORY_SHOWN else []
        for i, item in enumerate(trace.history.tolist()):
            if i < n - self.HISTORY_SHOWN:
                continue
            read = " read" if i >= n - reads else ""
            chips.append(f'<span class="hc h-{item}{read}">{item} '
                         f'{_e(labels.get(item, ""))}</span>')
        who = f"user {trace.user}" if trace.user is not None else "an edited history"
        target = (f"; the true next item: <b>{trace.target}</b> {_e(labels.get(trace.target, ''))}"
                  if trace.target else "")
        lines = [f"<b>{who}</b>: {items_text(n)} in the history, oldest first; the model reads the "
                 f"newest {min(reads, n)} (bold){target}", " \u2192 ".join(chips)]
        finished = int(trace.finished.sum())
        mode = "constrained by the trie" if trace.constrained else "free (no trie)"
        invalid = int(trace.invalid.sum())
        stats = (f"W = {trace.beam}, decoding {mode}: {finished} finished beams, "
                 f"{invalid} name no item ({trace.invalid_share:.0%})")
        if invalid:
            left = trace.left_trie_at()
            where = sorted(set(int(d) for d in left[left > 0]))
            stats += f"; they left the trie at position {', '.join(map(str, where))}"
        elif trace.constrained:
            stats += " (by construction: the trie allows only valid IDs)"
        if layout.step < self.depth:
            live = trace.positions[layout.step - 1]
            covered = (len(set(np.concatenate(live.items_under).tolist()))
                       if len(live.items_under) else 0)
            stats += (f". After position {layout.step}: {len(live.token)} live prefixes hold "
                      f"{items_text(covered)} of {self.semantic_ids.n_items} (shaded on the map)")
        target_row = next((r for r in listed if r.target), None)
        if trace.target:
            stats += (f". The next item is #{target_row.place} of the list" if target_row and
                      target_row.place else ". The next item is " + (
                          REASONS[target_row.reason] if target_row else "not among the beams"))
        return (f'<div class="bx-note">{lines[0]}</div><div class="bx-note">{lines[1]}</div>'
                f'<div class="bx-note">{_e(stats)}</div>')


    # --- the app, the static figure ---------------------------------------------------------

    def view(self, row: int | None = 0, history=None, beam: int = 20, k: int = 10,
             temperature=1.0, constrained: bool = True, max_cold_share: float | None = None,
             step: int | None = None, style: bool = True) -> str:
        """Search (cached), rank and draw: the HTML of one setting."""
        trace = self.search(row, history, beam, temperature, constrained)
        listed = self.ranked(trace, min(k, beam), max_cold_share)
        return self.html(trace, listed, step, style)

    def widget(self, row: int = 0, beam: int = 20, k: int = 10, temperature=1.0,
               constrained: bool = True, max_cold_share: float | None = None):
        """The interactive app (ipywidgets), returned undisplayed (`show()` displays it).

        A user search box (type an id) with a random-user button, the history as editable item
        ids (Enter applies it; the target is then unknown), the beam width W, k (at most W), a
        temperature per position, constrained or free decoding, the cold cap eps (1: no cap),
        and the position up to which the search is shown. Every change redraws once, as HTML
        from the cached search; pointing at things is handled by the browser.
        """
        import ipywidgets as w

        users = self.eval_set.users.tolist()
        row_of = {str(u): i for i, u in enumerate(users)}
        taus = check_temperatures(temperature, self.depth)
        wide = {"style": {"description_width": "96px"}, "layout": w.Layout(width="300px")}
        user = w.Combobox(value=str(users[row]), options=list(row_of), ensure_option=True,
                          description="user", placeholder="type a user id", **wide)
        pick = w.Button(description="random user", layout=w.Layout(width="110px"))
        edit = w.Text(description="history", continuous_update=False,
                      style={"description_width": "60px"}, layout=w.Layout(width="460px"))
        beam_w = w.IntSlider(value=beam, min=1, max=self.MAX_BEAM, description="beam W", **wide)
        k_w = w.IntSlider(value=min(k, beam), min=1, max=self.MAX_BEAM, description="k", **wide)
        mode = w.ToggleButtons(options=["constrained", "free"],
                               value="constrained" if constrained else "free",
                               description="decoding", style={"button_width": "100px",
                                                               "description_width": "70px"})
        cold = w.FloatSlider(value=1.0 if max_cold_share is None else max_cold_share, min=0.0,
                             max=1.0, step=0.05, description="\u03b5 cold cap",
                             disabled=self.cold_items is None, **wide)
        temps = [w.FloatLogSlider(value=t, base=2, min=-2, max=2, step=0.25, readout_format=".2f",
                                  description="\u03c4 " + ("collision" if d == self.depth
                                                            else f"code {d}"), **wide)
                 for d, t in enumerate(taus, start=1)]
        step = w.IntSlider(value=self.depth, min=1, max=self.depth, description="show positions",
                           **wide)
        note = w.HTML()
        view = w.HTML()
        style = w.HTML(self.style_html())                   # once: rules and the base map
        state = {"row": row, "history": None, "quiet": False}
        rng = np.random.default_rng(0)

        def history_text(r):
            h = self.eval_set.history[r]
            return " ".join(str(i) for i in h[h > 0].tolist())

        def redraw(*_):
            if state["quiet"]:
                return
            start = time.perf_counter()
            try:
                view.value = self.view(state["row"], state["history"], beam_w.value,
                                       min(k_w.value, beam_w.value), [t.value for t in temps],
                                       mode.value == "constrained",
                                       cold.value if self.cold_items is not None else None,
                                       step.value, style=False)
            except ValueError as err:
                note.value = f'<span style="color:#b00">{_e(err)}</span>'
                return
            self.redraw_seconds.append(time.perf_counter() - start)
            if not note.value.startswith("<span"):
                return
            note.value = ""

        def quietly(widget, value):
            state["quiet"] = True
            try:
                widget.value = value
            finally:
                state["quiet"] = False

        def user_changed(change):
            if change["new"] not in row_of:
                return
            state["row"], state["history"] = row_of[change["new"]], None
            quietly(edit, history_text(state["row"]))
            note.value = ""
            redraw()

        def history_edited(change):
            if state["quiet"]:
                return
            try:
                items = [int(t) for t in change["new"].replace(",", " ").split()]
                self.batch(state["row"], items)
            except ValueError:
                note.value = (f'<span style="color:#b00">a history is item ids in [1, '
                              f'{self.semantic_ids.n_items}], oldest first, separated by spaces'
                              '</span>')
                return
            same = items == [int(i) for i in history_text(state["row"]).split()]
            state["history"] = None if same else items
            note.value = "" if same else ("an edited history: the model reads it as this "
                                          "user's; the true next item is unknown")
            redraw()

        def beam_changed(change):
            if k_w.value > change["new"]:
                quietly(k_w, change["new"])
                note.value = f"k follows the beam down to {change['new']}: W beams hold W items"
            redraw()

        def k_changed(change):
            if change["new"] > beam_w.value:
                quietly(k_w, beam_w.value)
                note.value = f"k is at most the beam width W = {beam_w.value}"
            redraw()

        pick.on_click(lambda _: setattr(user, "value", str(users[int(rng.integers(len(users)))])))
        user.observe(user_changed, names="value")
        edit.observe(history_edited, names="value")
        beam_w.observe(beam_changed, names="value")
        k_w.observe(k_changed, names="value")
        for control in (mode, cold, step, *temps):
            control.observe(redraw, names="value")
        quietly(edit, history_text(row))
        redraw()
        app = w.VBox([w.HBox([user, pick, edit]), w.HBox([beam_w, k_w, mode]),
                      w.HBox([cold, step]), w.GridBox(temps, layout=w.Layout(
                          grid_template_columns="repeat(auto-fill, 300px)")), note, style, view])
        app.add_class("beam-explorer")
        return app

    def show(self, row: int = 0, interactive: bool | None = None, **settings) -> None:
        """The widget app in a live kernel; where widgets cannot run (no kernel, no ipywidgets,
        the HTML book with $COURSE_WIDGETS=0), a static figure of one search. `settings`: beam,
        k, temperature, constrained, max_cold_share (as `widget`)."""
        show_explorer(lambda: self.widget(row, **settings),
                      lambda: self.static_figure(row, **settings), interactive,
                      "In JupyterLab this is an explorer: pick a user, change the beam, the "
                      "temperatures, constrained or free decoding, the cold cap and k, and point "
                      "at a prefix, a list row or an item. Here, one search:")

    def static_figure(self, row: int = 0, beam: int = 20, k: int = 10, temperature=1.0,
                      constrained: bool = True, max_cold_share: float | None = None,
                      step: int | None = None, history=None):
        """One search as a matplotlib figure, laid out as the widget: the tree and the list on
        the left, the map with the search on it on the right (same positions, 1 px = 1 px at
        100 dpi)."""
        trace = self.search(row, history, beam, temperature, constrained)
        listed = self.ranked(trace, min(k, beam), max_cold_share)
        layout = tree_layout(trace, step, self.FEW)
        _, px, (map_w, map_h) = self._base_map()
        shown = [r for r in listed if r.reason != "padding"]
        list_h = 18 * (len(shown) + 1) + 30
        left_w, gap, top = max(layout.width, 700), 24, 100
        width, height = left_w + gap + map_w + 10, top + max(layout.height + 30 + list_h,
                                                             map_h + 170)
        fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)

        def pixels(x, y, w_, h_):
            return fig.add_axes((x / width, 1 - (y + h_) / height, w_ / width, h_ / height))

        self._summary_texts(fig, trace, listed, layout, width, height)
        tree = pixels(0, top, layout.width, layout.height)
        _draw_tree(tree, layout, trace, listed if layout.step == self.depth else None)
        table = pixels(0, top + layout.height + 30, left_w, list_h)
        _draw_list(table, shown, self.labels, self.seen_excluded, left_w, list_h,
                   finished=layout.step == self.depth)
        area = pixels(left_w + gap, top, map_w, map_h)
        self._draw_map_overlay(area, trace, listed, layout, px, map_w, map_h)
        return fig

    def _summary_texts(self, fig, trace, listed, layout, width, height) -> None:
        labels = self.labels or {}
        reads = self.reads or len(trace.history)
        newest = ", ".join(f"{i} ({labels.get(i, '')})" for i in trace.history[-reads:].tolist())
        target = (f"; true next item {trace.target} ({labels.get(trace.target, '')})"
                  if trace.target else "")
        who = f"user {trace.user}" if trace.user is not None else "an edited history"
        mode = "constrained by the trie" if trace.constrained else "free (no trie)"
        taus = ", ".join(f"{t:g}" for t in trace.temperatures)
        lines = [f"TIGER's beam search for {who}: {items_text(len(trace.history))} in the history, "
                 f"the model reads the newest {min(reads, len(trace.history))}: {newest}{target}",
                 f"W = {trace.beam}, decoding {mode}, temperatures ({taus}); "
                 f"{int(trace.invalid.sum())} of {int(trace.finished.sum())} beams name no item "
                 f"({trace.invalid_share:.0%})",
                 "Boxes: code, p(code | prefix), log p(prefix), items under the prefix; faded: "
                 "pruned at a later position; grey stubs: the best pruned candidates, dashed red: "
                 "tokens under which no item lies (blocked by the trie when constrained)"]
        import textwrap

        rows = [(i, part) for i, line in enumerate(lines)
                for part in textwrap.wrap(line, width=int(width / 6.6))]
        for n, (i, part) in enumerate(rows):
            fig.text(4 / width, 1 - (12 + 16 * n) / height, part, fontsize=8.3, va="top",
                     fontweight="bold" if i == 0 else "normal")

    def _draw_map_overlay(self, ax, trace, listed, layout, px, width, height) -> None:
        from matplotlib.patches import Circle, Polygon, Rectangle
        import io

        ax.imshow(plt.imread(io.BytesIO(self._png)), extent=(0, width, height, 0))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_axis_off()
        c = COLOURS
        if layout.step < self.depth:
            live = set(np.concatenate(trace.positions[layout.step - 1].items_under).tolist())
            for corners in region_shapes(px, sorted(live)):
                ax.add_patch(Polygon(corners, closed=len(corners) > 2, fc=c["region"],
                                     ec=c["region"], alpha=0.2, lw=10, joinstyle="round",
                                     capstyle="round"))
        reads = set(self._read(trace))
        for item in dict.fromkeys(trace.history.tolist()):
            x, y = px[item - 1]
            read = item in reads
            ax.add_patch(Rectangle((x - 4.5, y - 4.5), 9, 9, fc=c["history"] if read else "white",
                                   ec="white" if read else c["history"], lw=0.6 if read else 1.0))
        if trace.target:
            star = [tuple(map(float, p.split(",")))
                    for p in _star(*px[trace.target - 1], 10).split()]
            ax.add_patch(Polygon(star, closed=True, fc=c["target"], ec="black", lw=0.8,
                                 zorder=4.5))                 # over the left out, under the list
        if layout.step == self.depth:
            for row, (x0, y0), (x, y) in _marker_places(listed, px):
                if math.hypot(x - x0, y - y0) > 2:
                    ax.plot([x0, x], [y0, y], color="#222", lw=0.6, zorder=4)
                if row.place:
                    fill, ink = _marker_colours(row)
                    ax.add_patch(Circle((x, y), 7.5, fc=fill, ec="black" if row.target else "white",
                                        lw=0.8, zorder=5))
                    ax.text(x, y + 0.5, str(row.place), color=ink, fontsize=7.2,
                            fontweight="bold", ha="center", va="center", zorder=6)
                else:
                    ax.add_patch(Circle((x, y), 4.5, fc="white", ec=c["listed"], lw=0.9,
                                        ls=(0, (2, 1.5)), zorder=4))
        handles = _static_key()
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.01), ncols=2,
                  fontsize=7.5, frameon=False, handletextpad=0.3, columnspacing=1.0,
                  borderaxespad=0)


def region_shapes(px: np.ndarray, items, gap: float = 18.0) -> list[np.ndarray]:
    """Where the items (1-based ids) lie on the map: the corners (n, 2) of the convex hull of
    every group of them closer than `gap` px (`point_groups`); one or two points for groups of
    one or two. Drawn with a wide round stroke, the hulls read as padded regions."""
    from scipy.spatial import ConvexHull, QhullError

    points = px[np.asarray(list(items), dtype=int) - 1]
    if len(points) == 0:
        return []
    group = point_groups(points, gap) if len(points) > 1 else np.zeros(1, dtype=int)
    shapes = []
    for g in np.unique(group):
        members = points[group == g]
        try:
            corners = members[ConvexHull(members).vertices] if len(members) > 2 else members
        except QhullError:                                    # all on one line
            corners = members[[np.argmin(members.sum(1)), np.argmax(members.sum(1))]]
        shapes.append(np.repeat(corners, 2, axis=0) if len(corners) == 1 else corners)
    return shapes


def _region(px: np.ndarray, items) -> str:
    """`region_shapes` as one SVG path."""
    return "".join("M" + "L".join(f"{x:.0f} {y:.0f}" for x, y in corners)
                   + ("Z" if len(corners) > 2 else "") for corners in region_shapes(px, items))


def _marker_colours(row: Listed) -> tuple[str, str]:
    """(fill, number) of a list item's marker: gold for the true next item, blue for an unseen
    item, black for the rest."""
    if row.target:
        return COLOURS["target"], "black"
    return (COLOURS["cold"] if row.cold else COLOURS["listed"]), "white"


def _marker_places(listed: list[Listed], px: np.ndarray) -> list:
    """(row, item's pixel, marker's pixel) for every beam that names an item, the left-out ones
    first (drawn under the list's); markers 15 px apart or more (`spread_overlaps`)."""
    shown = [row for row in listed if row.item]
    if not shown:
        return []
    true = np.array([px[row.item - 1] for row in shown])
    placed = spread_overlaps(true, 15.0, seed=0) if len(shown) > 1 else true
    return sorted(zip(shown, true, placed), key=lambda t: t[0].place is not None)


def _labels(labels) -> dict | None:
    """{item: text} from a mapping or an items table with 'item' and 'label' columns."""
    if labels is None:
        return None
    if hasattr(labels, "columns"):
        if not {"item", "label"} <= set(labels.columns):
            raise ValueError("labels as a table need 'item' and 'label' columns")
        return dict(zip(labels["item"].astype(int).tolist(), labels["label"].astype(str).tolist()))
    return {int(k): str(v) for k, v in dict(labels).items()}


def _trim(cache: OrderedDict, size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)


# --- the static figure's pieces (matplotlib, the SVG's layout) -------------------------------

PT = 0.72          # points per pixel at 100 dpi: the SVG's 11 px text is 7.9 pt
ANCHORS = {"start": "left", "middle": "center", "end": "right"}     # SVG's names -> matplotlib's


def _draw_tree(ax, layout: TreeLayout, trace: SearchTrace, listed: list[Listed] | None) -> None:
    """The tree of `tree_svg` in matplotlib, on axes spanning layout.width x layout.height px."""
    from matplotlib.patches import FancyBboxPatch

    ax.set_xlim(0, layout.width)
    ax.set_ylim(layout.height, 0)
    ax.set_axis_off()
    for d in range(layout.step + 1):
        x = layout.left(d)
        ax.text(x, 14, _column_title(d, layout.depth, trace), fontsize=11.5 * PT,
                fontweight="bold", va="baseline")
        if d:
            for dx, anchor, text in _box_header(layout):
                ax.text(x + dx, layout.TOP - 8, text, ha=ANCHORS[anchor],
                        fontsize=10 * PT, color="#555", va="baseline")
    nodes = layout.nodes
    for parent, child in layout.edges:
        p, c = nodes[parent], nodes[child]
        ax.plot([layout.left(p.d) + layout.width_of(p.d), layout.left(c.d)],
                [layout.y(p.row), layout.y(c.row)], color=COLOURS["edge"] if c.alive else
                COLOURS["faded"], lw=1.0 if c.alive else 0.8)
    for node in nodes.values():
        x0, y0 = layout.left(node.d) + layout.width_of(node.d), layout.y(node.row)
        for (_, _, allowed, _), dy in zip(node.stubs, _stub_offsets(len(node.stubs))):
            ax.plot([x0, x0 + 20], [y0, y0 + dy], lw=0.8, alpha=0.8,
                    color=COLOURS["pruned"] if allowed else COLOURS["blocked"],
                    ls="-" if allowed else (0, (3, 2)))
    places = {row.beam: row for row in listed} if listed else {}
    for node in nodes.values():
        x, y = layout.left(node.d), layout.y(node.row) - layout.BOX_H / 2
        alpha = 1.0 if node.alive else 0.38
        invalid = node.n_items == 0 and node.d > 0
        ax.add_patch(FancyBboxPatch((x, y), layout.width_of(node.d), layout.BOX_H,
                                    boxstyle="round,pad=0,rounding_size=3", fc="white",
                                    ec=COLOURS["blocked"] if invalid else COLOURS["box"], lw=0.8,
                                    ls=(0, (4, 2)) if invalid else "-", alpha=alpha))
        for dx, anchor, text, style in _box_texts(layout, node):
            ax.text(x + dx, y + 13, text, ha=ANCHORS[anchor],
                    fontsize=11 * PT, alpha=alpha, va="baseline", color=style.get("fill", "#111"),
                    fontweight=style.get("font-weight", "normal"))
        if node.d == layout.depth and node.index in places:
            row = places[node.index]
            ax.text(x + layout.BOX_W + 6, y + 13, _badge(row),
                    fontsize=11 * PT, va="baseline", fontweight="bold" if row.place else "normal",
                    color="#111" if row.place else "#777")


def _draw_list(ax, shown: list[Listed], labels: dict | None, seen_excluded: bool, width: float,
               height: float, finished: bool = True) -> None:
    """The list of `list_html` as text rows, on axes of width x height px."""
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    title = "The list" if finished else "The list, once every position is written"
    ax.text(0, 12, f"{title}: the top {sum(r.place is not None for r in shown)} of {len(shown)} "
            "beams", fontsize=12.5 * PT, fontweight="bold", va="baseline")
    columns = [(36, "right", "place"), (76, "right", "beam"), (114, "right", "item"),
               (124, "left", "label"), (206, "left", "semantic ID"), (352, "right", "log p"),
               (364, "left", "note")]
    for x, anchor, name in columns:
        ax.text(x, 32, name, ha=anchor, fontsize=11 * PT, fontweight="bold", va="baseline")
    ax.plot([0, width - 4], [36, 36], color="#999", lw=0.6)
    for i, row in enumerate(shown):
        y = 50 + 18 * i
        values = [str(row.place or ""), str(row.beam + 1), str(row.item or "\u2014"),
                  (labels or {}).get(row.item, "") if row.item else "", str(row.semantic_id),
                  _number(row.log_prob), _note(row, seen_excluded)]
        for (x, anchor, _), value in zip(columns, values):
            ax.text(x, y, value, ha=anchor, fontsize=11 * PT, va="baseline",
                    color="#111" if row.place else "#8a8a8a",
                    fontweight="bold" if row.place and x == columns[0][0] else "normal")


def _static_key() -> list:
    """The map's key as legend handles (`_key_html` in matplotlib)."""
    from course_lib.viz.display import marker

    c = COLOURS
    return [marker("item in the list (its place)", markersize=9, color=c["listed"]),
            marker("unseen item in the list", markersize=9, color=c["cold"]),
            marker("a beam's item left out", markersize=6, markerfacecolor="white",
                   markeredgecolor=c["listed"]),
            marker("the true next item (gold: listed)", marker="*", markersize=12,
                   markerfacecolor=c["target"],
                   markeredgecolor="black"),
            marker("history item the model reads", marker="s", markersize=6, color=c["history"]),
            marker("older history item", marker="s", markersize=6, markerfacecolor="white",
                   markeredgecolor=c["history"]),
            marker("items under the live prefixes", markersize=9, color=c["region"], alpha=0.3)]
