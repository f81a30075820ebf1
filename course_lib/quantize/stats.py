"""Per-level statistics of semantic IDs: how the hourglass is measured.

Kuai et al. (2024, "Breaking the Hourglass Phenomenon of Residual Quantization") look at
each level of a residual quantizer separately: how many items each token carries (the
token-count distribution), its entropy, its Gini coefficient, the share of the codebook in
use, and how many distinct prefixes (paths) exist. In the hourglass, the middle level is
concentrated: low entropy, high Gini, a few tokens carry most items.

Entropy is in bits, H_l = -sum_k p_k log2 p_k over the items' tokens at level l, so
log2(K) is the most a level of K codes can carry. Tokens equal to -1 (removed by
`semantic_ids.variable_length_ids`) are skipped.

The last functions follow the checklist for semantic IDs (lesson 05, section 7): the
reconstruction through the first l levels, the balance of full IDs (paths), the pairs of
items that collide, and whether items sharing a prefix are the neighbours that behaviour
(item-kNN) finds.

Names: N items, L levels, K codes per level, D vector width, k neighbours per item.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import torch
from torch import Tensor

from course_lib import metrics
from course_lib.quantize.residual import residual_decode


def _check(codes, codebook_sizes) -> tuple[Tensor, list[int]]:
    codes = metrics.check_codes(codes, levels=True, allow_missing=True)
    n_levels = codes.shape[1]
    if isinstance(codebook_sizes, int):
        codebook_sizes = [codebook_sizes] * n_levels
    codebook_sizes = [int(k) for k in codebook_sizes]
    metrics.check_codes(codes, codebook_sizes, levels=True, allow_missing=True)
    return codes, codebook_sizes


def token_counts(codes: Tensor, codebook_sizes: int | Sequence[int]) -> list[Tensor]:
    """Per level, how many items carry each token: a list of L count vectors (K_l,)."""
    codes, sizes = _check(codes, codebook_sizes)
    out = []
    for level, k in enumerate(sizes):
        column = codes[:, level]
        out.append(metrics.code_counts(column[column >= 0], k))
    return out


def entropy_bits(counts: Tensor) -> float:
    """Entropy in bits of the distribution given by a count vector."""
    return float(metrics.count_entropy(counts, base=2.0))


def level_stats(codes: Tensor, codebook_sizes: int | Sequence[int]) -> pd.DataFrame:
    """One row per level: tokens used, utilisation, entropy (bits and as a share of log2 K),
    perplexity, Gini, the share of items on the most frequent token, and the number of
    distinct prefixes up to that level (paths)."""
    codes, sizes = _check(codes, codebook_sizes)
    rows = []
    for level, (k, counts) in enumerate(zip(sizes, token_counts(codes, sizes))):
        present = codes[:, level] >= 0
        h = entropy_bits(counts)
        rows.append({
            "level": level + 1,
            "codes": k,
            "items": int(present.sum()),
            "used": int((counts > 0).sum()),
            "utilisation": float((counts > 0).sum()) / k,
            "entropy_bits": h,
            "entropy_share": h / math.log2(k) if k > 1 else 1.0,
            "perplexity": 2 ** h,
            "gini": metrics.gini(counts),
            "top1_share": float(counts.max()) / max(int(present.sum()), 1),
            "prefixes": int(torch.unique(codes[:, :level + 1], dim=0).shape[0]),
        })
    return pd.DataFrame(rows).set_index("level")


def path_counts(codes: Tensor) -> Tensor:
    """How many items carry each distinct full ID (path): a count vector (P,), P used paths."""
    codes = metrics.check_codes(codes, levels=True, allow_missing=True)
    return torch.unique(codes, dim=0, return_counts=True)[1]


def path_stats(codes: Tensor) -> dict[str, float]:
    """Distinct full paths, the collision rate (1 - unique / N), the largest group of
    items sharing one path, the mean number of items per used path, and the Gini
    coefficient of the items per used path ("path_gini": 0 when every used path holds as
    many items; empty paths are left out, since K^L paths for N << K^L items would push
    any scheme's Gini to at least 1 - N / K^L)."""
    codes = metrics.check_codes(codes, levels=True, allow_missing=True)
    group_sizes = path_counts(codes)
    return {"paths": len(group_sizes),
            "collision_rate": metrics.collision_rate(codes),
            "largest_group": int(group_sizes.max()),
            "items_per_path": codes.shape[0] / len(group_sizes),
            "path_gini": metrics.gini(group_sizes)}


def cumulative_reconstruction(target: Tensor, codes: Tensor, codebooks: Tensor,
                              decoder=None) -> list[float]:
    """Relative squared error after each level l = 1..L of a residual quantizer:
    ||t - f(z_hat_l)||^2 / ||t||^2 with z_hat_l = sum_{j <= l} e^j_{c_j} (the cumulative
    quantised vector, section 1 of lesson 05) and f the decoder, or the identity when
    `decoder` is None (then `target` is the vector that was quantised: the content for
    RQ-KMeans, the encoder output for an RQ-VAE's latent). target (N, X), codes (N, L),
    codebooks (L, K, D)."""
    target = torch.as_tensor(target, dtype=torch.float32)
    codes = metrics.check_codes(codes, levels=True)
    if target.dim() != 2 or target.shape[0] != codes.shape[0]:
        raise ValueError(f"target must be (N, X) with one row per item of codes (N = "
                         f"{codes.shape[0]}), got shape {tuple(target.shape)}")
    total = target.pow(2).sum()
    if total == 0:
        raise ValueError("target is all zeros: the relative error is undefined")
    errors = []
    with torch.no_grad():
        for level in range(1, codes.shape[1] + 1):
            z_hat = residual_decode(codes[:, :level], codebooks)             # (N, D)
            x_hat = z_hat if decoder is None else decoder(z_hat)             # (N, X)
            if x_hat.shape != target.shape:
                raise ValueError(f"the reconstruction has shape {tuple(x_hat.shape)} but "
                                 f"target has {tuple(target.shape)}; pass the decoder that "
                                 "maps the quantised vector back to target's space")
            errors.append(float((target - x_hat).pow(2).sum() / total))
    return errors


def colliding_pairs(codes: Tensor) -> Tensor:
    """Every pair of items with the same full ID: (P, 2) row indices i < j, one row per pair
    (a group of n colliding items gives n (n - 1) / 2 pairs); (0, 2) when IDs are unique."""
    codes = metrics.check_codes(codes, levels=True, allow_missing=True)
    _, group, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    members = torch.split(torch.argsort(group, stable=True), counts.tolist())
    pairs = [torch.combinations(m, 2) for m in members if len(m) > 1]
    return torch.cat(pairs) if pairs else torch.zeros(0, 2, dtype=torch.long)


def _check_depth(codes: Tensor, depth: int) -> None:
    if not 1 <= depth <= codes.shape[1]:
        raise ValueError(f"depth must be in [1, {codes.shape[1]}] (the number of levels), "
                         f"got {depth}")


def prefix_group_sizes(codes: Tensor, depth: int) -> Tensor:
    """(N,): how many *other* items share each item's first `depth` codes."""
    codes = metrics.check_codes(codes, levels=True, allow_missing=True)
    _check_depth(codes, depth)
    _, group, counts = torch.unique(codes[:, :depth], dim=0, return_inverse=True,
                                    return_counts=True)
    return counts[group] - 1


def shared_prefix_recall(codes: Tensor, neighbours: Tensor, depth: int) -> Tensor:
    """(N,): for each item, the share of its reference neighbours that share its first
    `depth` codes, i.e. Recall@k of the item's "semantic neighbours" (its prefix group)
    against a neighbour list such as item-kNN's (the similar-item check of the semantic-ID
    checklist).

    neighbours (N, k): row indices of each item's k reference neighbours, -1 where there is
    none (e.g. a cold item, or a zero similarity). NaN for an item with no neighbour at all.
    A random set of the same size as the prefix group scores prefix_group_sizes / (N - 1)
    on average.
    """
    codes = metrics.check_codes(codes, levels=True, allow_missing=True)
    _check_depth(codes, depth)
    neighbours = torch.as_tensor(neighbours)
    if neighbours.dim() != 2 or neighbours.shape[0] != codes.shape[0] \
            or neighbours.dtype.is_floating_point:
        raise ValueError(f"neighbours must be integer row indices (N, k) with N = "
                         f"{codes.shape[0]}, got {neighbours.dtype} {tuple(neighbours.shape)}")
    if neighbours.numel() and (neighbours.min() < -1 or neighbours.max() >= codes.shape[0]):
        raise ValueError(f"neighbours must be row indices in [0, {codes.shape[0] - 1}] or -1 "
                         "for none; item ids start at 1, so pass ids - 1")
    prefix = codes[:, :depth]                                                  # (N, depth)
    listed = neighbours >= 0                                                   # (N, k)
    theirs = prefix[neighbours.clamp_min(0).long()]                            # (N, k, depth)
    shared = (theirs == prefix[:, None, :]).all(dim=-1) & listed               # (N, k)
    return shared.sum(dim=1) / listed.sum(dim=1)                               # 0 / 0 = NaN
