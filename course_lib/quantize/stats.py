"""Per-level statistics of semantic IDs: how the hourglass is measured.

Kuai et al. (2024, "Breaking the Hourglass Phenomenon of Residual Quantization") look at
each level of a residual quantizer separately: how many items each token carries (the
token-count distribution), its entropy, its Gini coefficient, the share of the codebook in
use, and how many distinct prefixes (paths) exist. In the hourglass, the middle level is
concentrated: low entropy, high Gini, a few tokens carry most items.

Entropy is in bits, H_l = -sum_k p_k log2 p_k over the items' tokens at level l, so
log2(K) is the most a level of K codes can carry. Tokens equal to -1 (removed by
`semantic_ids.variable_length_ids`) are skipped.

Names: N items, L levels, K codes per level.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import torch
from torch import Tensor

from course_lib import metrics


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


def path_stats(codes: Tensor) -> dict[str, float]:
    """Distinct full paths, the collision rate (1 - unique / N), the largest group of
    items sharing one path, and the mean number of items per used path."""
    codes = metrics.check_codes(codes, levels=True, allow_missing=True)
    _, group_sizes = torch.unique(codes, dim=0, return_counts=True)
    return {"paths": len(group_sizes),
            "collision_rate": metrics.collision_rate(codes),
            "largest_group": int(group_sizes.max()),
            "items_per_path": codes.shape[0] / len(group_sizes)}
