"""bench/hourglass.py measures the level-2 waist with the right sign.

The fixtures are built so that the answer is known: 4 well-separated level-1 groups of equal
size, level-2 offsets at unit scale, level-3 offsets at 0.1 scale, every combination present
the same number of times. RQ-KMeans with K = 4 then recovers the three factors level by
level, so the per-level token counts are the factors' counts.
"""
import importlib.util
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("hourglass", ROOT / "bench" / "hourglass.py")
hourglass = importlib.util.module_from_spec(spec)
sys.modules["hourglass"] = hourglass            # dataclasses look their module up by name
spec.loader.exec_module(hourglass)
listings, measure_waist, waist_of_codes = (hourglass.listings, hourglass.measure_waist,
                                           hourglass.waist_of_codes)

K = 4


def factor_vectors(level2_counts, level3_counts):
    """Vectors A[a] + B[b] + C[c] (N, 7): a uniform over 4 groups 20 apart, b and c drawn
    with the given multiplicities (the number of rows per value, per group)."""
    a_part = 10.0 * torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=torch.float32)
    b_part = torch.cat([torch.zeros(1, 3), torch.eye(3)])             # 0 and three unit offsets
    c_part = 0.1 * torch.tensor([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=torch.float32)
    bs = [b for b, n in enumerate(level2_counts) for _ in range(n)]
    cs = [c for c, n in enumerate(level3_counts) for _ in range(n)]
    rows = [torch.cat([a_part[a], b_part[b], c_part[c]])
            for a, b, c in itertools.product(range(4), bs, cs)]
    return torch.stack(rows)


def entropy_bits(counts):
    p = np.asarray(counts, dtype=float) / sum(counts)
    return float(-(p * np.log2(p)).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crowded_level_two_gives_a_positive_waist(seed):
    counts = [17, 1, 1, 1]                                  # 85 % of rows on one level-2 code
    waist = measure_waist(factor_vectors(counts, [1, 1, 1, 1]), K, seed=seed)
    expected = 2.0 - entropy_bits(counts)                   # levels 1 and 3 carry log2 4 bits
    assert waist["entropy_waist"] == pytest.approx(expected, abs=1e-6)
    assert waist["entropy_waist"] > 1.0
    assert waist["gini_waist"] > 0.5
    assert waist["entropy_waist_mean"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_crowded_level_three_gives_a_negative_waist(seed):
    waist = measure_waist(factor_vectors([1, 1, 1, 1], [17, 1, 1, 1]), K, seed=seed)
    assert waist["H2"] == pytest.approx(2.0)
    assert waist["entropy_waist"] < -1.0 and waist["gini_waist"] < -0.5


def test_even_levels_have_no_waist():
    waist = measure_waist(factor_vectors([2, 2, 2, 2], [1, 1, 1, 1]), K, seed=0)
    assert waist["entropy_waist"] == pytest.approx(0.0, abs=1e-6)
    assert waist["gini_waist"] == pytest.approx(0.0, abs=1e-6)


def test_waist_needs_three_levels():
    with pytest.raises(ValueError, match="3-level codes"):
        waist_of_codes(torch.zeros(10, 2, dtype=torch.long), K)


def test_listings_follow_popularity_and_keep_items_once_without_spread():
    content = torch.eye(4)
    popularity = np.array([4.0, 2.0, 1.0, 1.0])             # p = .5, .25, .125, .125
    assert listings(content, popularity, None, 1.0) is content
    x = listings(content, popularity, 0.0, 1.0)
    copies = [1 + math.floor(p * 3 * 4) for p in popularity / popularity.sum()]
    assert len(x) == sum(copies) == 7 + 4 + 2 + 2
    assert torch.equal(x[:7], content[[0] * 7])


def test_a_sweep_row_summarises_every_seed():
    setting = hourglass.Setting("test", n_items=100, codebook_size=8)
    row = hourglass.run_setting(setting, seeds=[0, 1])
    source = hourglass.world_source(100)
    copies = 1 + np.floor(source.popularity / source.popularity.sum() * 3 * 100).astype(int)
    assert row["vectors"] == copies.sum() and row["leaves"] == 45
    assert all(len(values) == 2 for values in row["runs"].values())
    lines = hourglass.markdown_table([row]).splitlines()
    assert len(lines) == 3 and lines[2].startswith("| world 100, world seed 0 | 5x3x3 (45) |")
