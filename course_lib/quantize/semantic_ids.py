"""Semantic IDs: per-level codes -> unique item IDs, lookups both ways, and a prefix trie.

A quantizer (RQ-VAE, RQ-KMeans, hierarchical k-means) gives every item a tuple of L codes
(c_1, ..., c_L), coarse to fine. Two items can get the same tuple: a *collision*. TIGER
(Rajput et al. 2023, section 3.1) makes IDs unique by appending one more token, 0 for the
first item with a given tuple, 1 for the second, and so on. The result is a semantic ID of
M = L + 1 tokens per item.

A generative recommender decodes an ID token by token; most token sequences name no item.
`PrefixTrie` stores every prefix of every valid ID, so a constrained beam search can ask
which next tokens keep a prefix valid (`valid_next_tokens`, or `next_token_mask` for a whole
batch of beams at once); `SemanticIds.items_with_prefix` lists the items below a prefix,
which is how a generated prefix reaches cold items. Both `PrefixTrie` and `SemanticIds`
live on one device (`.to(device)` gives a moved copy); tensors passed to them must be on
that device.

Names: N items, L code levels, M = L + 1 tokens per semantic ID, B a batch of IDs or
prefixes, V_d the vocabulary size at position d. Item ids run 1..I; 0 means "no item".
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import Tensor

from course_lib.metrics import check_codes

NO_TOKEN = -1   # marks a token removed from a variable-length ID (see `variable_length_ids`)


def _on_device(x, device: torch.device, name: str, owner: str = "trie") -> Tensor:
    """`x` as a long tensor on `device`; lists go there, tensors elsewhere are refused."""
    if isinstance(x, Tensor) and x.device != device:
        raise ValueError(f"{name} are on {x.device} but the {owner} is on {device}; move one "
                         f"of them: {name}.to({str(device)!r}) or {owner}.to({str(x.device)!r})")
    return torch.as_tensor(x, dtype=torch.long, device=device)


def rank_within_groups(groups: Tensor) -> Tensor:
    """0 for the first row of each group, 1 for the second, ... (rows in their order): (N,).

    `groups` (N,) holds non-negative integer labels. Vectorised: sort stably by group, and
    subtract from each row's place in that order the place where its group starts.
    """
    groups = torch.as_tensor(groups)
    if groups.dtype.is_floating_point or groups.dtype == torch.bool:
        raise TypeError(f"groups must hold integer labels, got {groups.dtype}; use "
                        "groups.long()")
    if groups.dim() != 1:
        raise ValueError(f"groups must be 1-D (N,), got shape {tuple(groups.shape)}; use "
                         "groups.flatten()")
    if len(groups) and int(groups.min()) < 0:
        raise ValueError(f"group labels must be >= 0, got {int(groups.min())}")
    groups = groups.long()
    order = torch.argsort(groups, stable=True)                             # rows by group
    sizes = torch.bincount(groups)
    starts = torch.cumsum(sizes, 0) - sizes                                # first row of a group
    rank = torch.empty_like(groups)
    rank[order] = torch.arange(len(groups), device=groups.device) - starts[groups[order]]
    return rank


def collision_suffix(codes: Tensor) -> Tensor:
    """The extra token that makes IDs unique (TIGER, section 3.1): (N, L) -> (N,).

    Items sharing a code tuple are numbered 0, 1, 2, ... in item order; an item whose tuple
    is unique gets 0: the rank of each item within its group of equal rows.
    """
    codes = check_codes(codes, levels=True, allow_missing=True)
    _, group = torch.unique(codes, dim=0, return_inverse=True)            # (N,)
    return rank_within_groups(group)


def assign_semantic_ids(codes: Tensor) -> Tensor:
    """Codes (N, L) -> unique semantic IDs (N, L + 1): the codes plus the collision token."""
    codes = check_codes(codes, levels=True, allow_missing=True)
    return torch.cat([codes, collision_suffix(codes)[:, None]], dim=1)


def variable_length_ids(codes: Tensor, level: int = 1, top_k: int = 1) -> Tensor:
    """Remove the `top_k` most frequent tokens at `level` (0-based), one hourglass fix.

    Kuai et al. (2024, section 4) shorten the IDs of items whose middle-level token is one of
    the most crowded ones: that token carries little information. Removed tokens become
    `NO_TOKEN` (-1); the remaining tokens keep their positions, so level statistics stay
    comparable (`course_lib.quantize.stats` skips -1).
    """
    codes = check_codes(codes, levels=True).clone()
    if not 0 <= level < codes.shape[1]:
        raise ValueError(f"level must be in [0, {codes.shape[1] - 1}], got {level}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    counts = torch.bincount(codes[:, level])
    crowded = torch.argsort(counts, descending=True, stable=True)[:top_k]
    codes[torch.isin(codes[:, level], crowded), level] = NO_TOKEN
    return codes


def _keys(ids: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """Mixed-radix keys of every prefix: keys[d] (N,) encodes ids[:, :d], d = 0..M."""
    keys = [torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)]
    for d, size in enumerate(sizes):
        keys.append(keys[-1] * size + ids[:, d])
    return keys


def _key_ranges(sorted_keys: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """Where each range [low_b, high_b) falls in `sorted_keys`: (rows (C,), positions (C,)),
    one entry per key inside a range, rows ascending. Two binary searches, no loop.

    The descendants of a prefix with key p, s positions further down, are exactly the keys
    in [p * S, (p + 1) * S), S = V_d * ... * V_{d+s-1}: a subtree is one contiguous range.
    """
    start = torch.searchsorted(sorted_keys, low)                           # (B,)
    counts = torch.searchsorted(sorted_keys, high) - start                 # keys per range
    rows = torch.repeat_interleave(torch.arange(len(low), device=low.device), counts)  # (C,)
    offset = torch.arange(len(rows), device=low.device) - (torch.cumsum(counts, 0) - counts)[rows]
    return rows, start[rows] + offset


class PrefixTrie:
    """Every prefix of every valid semantic ID, for constrained decoding (TIGER, 3.2).

    A trie node is a prefix; its children are the tokens that extend it to another valid
    prefix. The nodes of depth d are kept as one sorted tensor of integer keys (the prefix
    read as a number in mixed radix V_0, V_1, ...), so checking B prefixes is one
    `searchsorted`, not B dictionary walks.
    """

    def __init__(self, ids: Tensor, vocab_sizes: Sequence[int] | None = None):
        ids = check_codes(ids, levels=True, name="ids")
        if vocab_sizes is None:
            vocab_sizes = (ids.max(dim=0).values + 1).tolist()
        vocab_sizes = tuple(int(v) for v in vocab_sizes)
        if len(vocab_sizes) != ids.shape[1]:
            raise ValueError(f"need one vocabulary size per position: {ids.shape[1]} "
                             f"positions, got {len(vocab_sizes)} sizes")
        too_big = ids >= torch.tensor(vocab_sizes, device=ids.device)
        if too_big.any():
            raise ValueError(f"ids have tokens >= their vocabulary size {vocab_sizes}")
        if torch.tensor(vocab_sizes, dtype=torch.float64).log2().sum() > 62:
            raise ValueError(f"vocabulary sizes {vocab_sizes} are too large for int64 keys")
        self.vocab_sizes = vocab_sizes
        self.depth = len(vocab_sizes)
        self._nodes = [torch.unique(k) for k in _keys(ids, vocab_sizes)]   # sorted

    def __len__(self) -> int:
        """Number of distinct full IDs."""
        return len(self._nodes[-1])

    @property
    def device(self) -> torch.device:
        return self._nodes[0].device

    def to(self, device) -> "PrefixTrie":
        """A copy of the trie on `device` (e.g. "cuda"); this one stays where it is."""
        moved = copy.copy(self)
        moved._nodes = [nodes.to(device) for nodes in self._nodes]
        return moved

    def _member(self, keys: Tensor, depth: int) -> Tensor:
        nodes = self._nodes[depth]
        pos = torch.searchsorted(nodes, keys).clamp_max(len(nodes) - 1)
        return nodes[pos] == keys

    def _prefix_keys(self, prefixes: Tensor) -> Tensor:
        if prefixes.dim() != 2 or prefixes.shape[1] > self.depth:
            raise ValueError(f"prefixes must be (B, d) with d <= {self.depth}, got shape "
                             f"{tuple(prefixes.shape)}")
        sizes = self.vocab_sizes[:prefixes.shape[1]]
        limits = torch.tensor(sizes, dtype=torch.long, device=prefixes.device)
        out_of_range = (prefixes < 0) | (prefixes >= limits)
        keys = _keys(torch.where(out_of_range, 0, prefixes), sizes)[-1]
        return torch.where(out_of_range.any(dim=1), torch.full_like(keys, -1), keys)

    def contains(self, prefixes: Tensor) -> Tensor:
        """Is each row of `prefixes` (B, d) a prefix of some valid ID? (B,) bool.

        With d = M this asks whether each row is a valid ID.
        """
        prefixes = _on_device(prefixes, self.device, "prefixes")
        keys = self._prefix_keys(prefixes)
        return self._member(keys, prefixes.shape[1]) & (keys >= 0)

    def __contains__(self, semantic_id) -> bool:
        semantic_id = _on_device(semantic_id, self.device, "semantic_id").flatten()
        return len(semantic_id) == self.depth and bool(self.contains(semantic_id[None])[0])

    def next_token_mask(self, prefixes: Tensor) -> Tensor:
        """(B, d) prefixes, d < M -> (B, V_d) bool: which next tokens keep each one valid."""
        prefixes = _on_device(prefixes, self.device, "prefixes")
        d = prefixes.shape[1] if prefixes.dim() == 2 else -1
        if not 0 <= d < self.depth:
            raise ValueError(f"prefixes must be (B, d) with 0 <= d < {self.depth}, got shape "
                             f"{tuple(prefixes.shape)}; a full ID has no next token")
        size = self.vocab_sizes[d]
        keys = self._prefix_keys(prefixes)                                 # (B,) -1: invalid
        nodes = self._nodes[d + 1]                                         # sorted, depth d + 1
        # The children of prefix key p are the nodes in [p * V_d, (p + 1) * V_d); mark the
        # tokens inside each prefix's range. (Key -1 gives [-V_d, 0), which holds no node.)
        rows, positions = _key_ranges(nodes, keys * size, (keys + 1) * size)  # (C,), (C,)
        mask = torch.zeros(len(keys), size, dtype=torch.bool, device=self.device)
        mask[rows, nodes[positions] % size] = True                         # (B, V_d)
        return mask

    def valid_next_tokens(self, prefix: Sequence[int]) -> list[int]:
        """The tokens that may follow `prefix` (sorted); [] if the prefix is not valid."""
        if isinstance(prefix, Tensor):
            prefix = _on_device(prefix, self.device, "prefix")
        else:
            prefix = torch.tensor(list(prefix), dtype=torch.long, device=self.device)
        prefix = prefix.reshape(1, -1)
        return torch.nonzero(self.next_token_mask(prefix)[0]).flatten().tolist()

    def ids(self) -> Tensor:
        """All valid IDs (len(self), M), decoded from the trie's leaves, sorted."""
        keys = self._nodes[-1].clone()
        tokens = []
        for size in reversed(self.vocab_sizes):
            tokens.append(keys % size)
            keys = keys // size
        return torch.stack(tokens[::-1], dim=1)


class SemanticIds:
    """The item <-> semantic-ID tables and the trie of valid IDs.

    `table[i - 1]` is the ID of item i. Build it from quantizer codes with
    `SemanticIds.from_codes(codes)`, which appends the collision token.
    """

    def __init__(self, table: Tensor, vocab_sizes: Sequence[int] | None = None):
        table = check_codes(table, levels=True, name="table")
        if torch.unique(table, dim=0).shape[0] != table.shape[0]:
            raise ValueError("semantic IDs must be unique; build them with "
                             "SemanticIds.from_codes(codes), which adds the collision token")
        self.table = table                                                 # (I, M)
        self.trie = PrefixTrie(table, vocab_sizes)
        self.vocab_sizes = self.trie.vocab_sizes
        full = _keys(table, self.vocab_sizes)[-1]                          # (I,)
        self._sorted_keys, order = torch.sort(full)
        self._items_by_key = order + 1                                     # item ids 1..I

    @classmethod
    def from_codes(cls, codes: Tensor, codebook_sizes: Sequence[int] | None = None):
        """IDs from quantizer codes (N, L) for items 1..N; the last position's vocabulary
        is the largest collision group."""
        table = assign_semantic_ids(codes)
        if codebook_sizes is not None:
            codebook_sizes = list(codebook_sizes) + [int(table[:, -1].max()) + 1]
        return cls(table, codebook_sizes)

    @property
    def n_items(self) -> int:
        return self.table.shape[0]

    @property
    def device(self) -> torch.device:
        return self.table.device

    def to(self, device) -> "SemanticIds":
        """A copy of the tables and trie on `device` (e.g. "cuda"); this one stays put."""
        moved = copy.copy(self)
        moved.table = self.table.to(device)
        moved.trie = self.trie.to(device)
        moved._sorted_keys = self._sorted_keys.to(device)
        moved._items_by_key = self._items_by_key.to(device)
        return moved

    def id_of(self, items: Tensor) -> Tensor:
        """Item ids (B,) in 1..I -> their semantic IDs (B, M)."""
        items = _on_device(items, self.device, "items", "semantic_ids")
        if ((items < 1) | (items > self.n_items)).any():
            raise ValueError(f"item ids must be in [1, {self.n_items}]; 0 is padding")
        return self.table[items - 1]

    def item_of(self, ids: Tensor) -> Tensor:
        """Semantic IDs (B, M) -> item ids (B,); 0 where a row is not a valid ID."""
        ids = _on_device(ids, self.device, "ids", "semantic_ids")
        if ids.dim() != 2 or ids.shape[1] != self.table.shape[1]:
            raise ValueError(f"ids must be (B, {self.table.shape[1]}), got shape "
                             f"{tuple(ids.shape)}")
        valid = self.trie.contains(ids)
        keys = self.trie._prefix_keys(ids)
        pos = torch.searchsorted(self._sorted_keys, keys).clamp_max(self.n_items - 1)
        return torch.where(valid, self._items_by_key[pos], torch.zeros_like(pos))

    def items_with_prefix(self, prefixes: Tensor) -> list[Tensor]:
        """Every item whose semantic ID starts with each prefix: (B, d), 0 <= d <= M -> a list
        of B long tensors of item ids, each ascending (empty when no ID has the prefix).

        Retrieval by prefix, the way TIGER reaches cold items (its cold-start experiment,
        section 4: a generated ID whose first L codes match an unseen item retrieves it). A
        cold item (content, no interactions) gets its codes from the same quantizer as every
        other item, so it sits under the same prefixes as warm items with similar content, and
        a generated prefix finds it although no training ID ever named it. The IDs under a
        prefix form one contiguous range of the sorted mixed-radix keys, found by two binary
        searches per prefix (no loop over items). d = 0 gives every item; d = M at most one.
        A list, not a padded tensor: the number of items per prefix varies widely.
        """
        prefixes = _on_device(prefixes, self.device, "prefixes", "semantic_ids")
        depth = self.table.shape[1]
        if prefixes.dim() != 2 or prefixes.shape[1] > depth:
            raise ValueError(f"prefixes must be (B, d) with d <= M = {depth}, got shape "
                             f"{tuple(prefixes.shape)}; for one prefix use prefix[None]")
        d = prefixes.shape[1]
        span = math.prod(self.vocab_sizes[d:])                   # full IDs below one prefix
        keys = self.trie._prefix_keys(prefixes)                  # (B,) -1: token out of range
        rows, positions = _key_ranges(self._sorted_keys, keys * span, (keys + 1) * span)
        items = self._items_by_key[positions]                              # (C,) in key order
        order = torch.argsort(rows * (self.n_items + 1) + items)           # by row, then item
        counts = torch.bincount(rows, minlength=len(prefixes)).tolist()
        return list(items[order].split(counts))
