"""RQ-KMeans, balanced RQ-KMeans (OneRec) and hierarchical constrained k-means IDs
(ColaRec): the residual recursion, equal cluster sizes, capped hierarchical clusters,
collaborative item vectors, and clear errors on bad input."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import normalized_mutual_info_score

from course_lib.data.world import WorldConfig, make_world
from course_lib.quantize.kmeans import (balanced_kmeans, balanced_sizes, kmeans,
                                        hierarchical_kmeans_ids, rq_kmeans)
from course_lib.quantize.residual import residual_quantize

PROPERTY = settings(max_examples=15, deadline=None)


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(n_users=300, n_items=200, seed=3))


def blobs(n=120, d=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(5, d, generator=gen)
    return centres[torch.arange(n) % 5] + torch.randn(n, d, generator=gen)


# --- RQ-KMeans -----------------------------------------------------------------------------

@pytest.mark.parametrize("balanced, fill", [(False, "in_turn"), (True, "in_turn"),
                                            (True, "nearest")])
def test_mean_squared_residual_never_increases_level_by_level(balanced, fill):
    x = blobs()
    result = rq_kmeans(x, n_levels=4, codebook_size=8, balanced=balanced, fill=fill)
    recon = torch.zeros_like(x)
    errors = [float((x ** 2).sum(1).mean())]
    for level in range(4):
        recon = recon + result.codebooks[level][result.codes[:, level]]
        errors.append(float(((x - recon) ** 2).sum(1).mean()))
    assert all(b <= a + 1e-5 for a, b in zip(errors, errors[1:])), errors


def test_rq_kmeans_codes_are_the_nearest_codes_of_their_residuals():
    x = blobs(seed=1)
    result = rq_kmeans(x, n_levels=3, codebook_size=6)
    assert torch.equal(residual_quantize(x, result.codebooks).codes, result.codes)


def test_shapes_of_codes_and_codebooks():
    result = rq_kmeans(blobs(n=40, d=3), n_levels=2, codebook_size=5)
    assert result.codes.shape == (40, 2) and result.codebooks.shape == (2, 5, 3)
    assert int(result.codes.max()) < 5


def test_first_level_codes_follow_the_top_categories(world):
    result = rq_kmeans(world.content[1:], n_levels=2, codebook_size=5)
    nmi = normalized_mutual_info_score(world.items["cat1"], result.codes[:, 0])
    assert nmi > 0.5, nmi


def test_popularity_weights_pull_centres_towards_heavy_items():
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    weight = np.array([1.0, 100.0, 1.0, 1.0])
    plain = rq_kmeans(x, n_levels=1, codebook_size=2).codebooks[0].flatten().sort().values
    heavy = rq_kmeans(x, n_levels=1, codebook_size=2,
                      sample_weight=weight).codebooks[0].flatten().sort().values
    assert plain[0].item() == pytest.approx(0.5) and heavy[0].item() > 0.95


# --- balanced k-means ----------------------------------------------------------------------

@PROPERTY
@given(st.integers(1, 8), st.integers(1, 12), st.integers(0, 3),
       st.sampled_from(["in_turn", "nearest"]))
def test_balanced_clusters_have_equal_sizes(k, per_cluster, seed, fill):
    x = blobs(n=k * per_cluster, d=3, seed=seed)
    _, labels = balanced_kmeans(x, k, seed=seed, fill=fill)
    assert torch.bincount(labels, minlength=k).tolist() == [per_cluster] * k


@PROPERTY
@given(st.integers(2, 60), st.integers(1, 9), st.sampled_from(["in_turn", "nearest"]))
def test_balanced_sizes_differ_by_at_most_one(n, k, fill):
    k = min(k, n)
    _, labels = balanced_kmeans(blobs(n=n, d=2), k, fill=fill)
    sizes = torch.bincount(labels, minlength=k)
    assert sizes.max() - sizes.min() <= 1 and int(sizes.sum()) == n
    assert torch.equal(sizes, balanced_sizes(n, k))


def test_balanced_rq_kmeans_uses_every_code_equally_at_every_level():
    result = rq_kmeans(blobs(n=96), n_levels=3, codebook_size=8, balanced=True)
    for level in range(3):
        assert torch.bincount(result.codes[:, level], minlength=8).tolist() == [12] * 8


def test_balanced_centres_are_the_means_of_their_clusters():
    x = blobs(n=60)
    centres, labels = balanced_kmeans(x, 6, fill="nearest")
    for c in range(6):
        assert torch.allclose(centres[c], x[labels == c].mean(0), atol=1e-5)


# --- hierarchical (ColaRec) IDs ------------------------------------------------------------

def test_hierarchical_children_are_capped_at_an_equal_share_of_their_parent():
    x = blobs(n=200, d=4)
    branching = 4
    codes = hierarchical_kmeans_ids(x, n_levels=3, branching=branching)
    for level in range(1, 3):
        parents, parent_of = torch.unique(codes[:, :level], dim=0, return_inverse=True)
        for p in range(len(parents)):
            members = codes[parent_of == p, level]
            cap = math.ceil(len(members) / branching)
            assert torch.bincount(members).max() <= cap


def test_hierarchical_ids_with_enough_levels_are_unique():
    codes = hierarchical_kmeans_ids(blobs(n=64, d=4), n_levels=3, branching=4)
    assert torch.unique(codes, dim=0).shape[0] == 64


# --- bad input -----------------------------------------------------------------------------

def test_levels_below_one_are_rejected():
    with pytest.raises(ValueError, match="n_levels must be >= 1"):
        rq_kmeans(blobs(), n_levels=0, codebook_size=4)


def test_codebook_larger_than_the_items_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match="larger than the number of items"):
        rq_kmeans(blobs(n=10), n_levels=2, codebook_size=11)


def test_nan_vectors_are_rejected():
    x = blobs()
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rq_kmeans(x, n_levels=2, codebook_size=4)
    with pytest.raises(ValueError, match="NaN"):
        hierarchical_kmeans_ids(x, n_levels=2, branching=4)


def test_unknown_fill_rule_is_rejected():
    with pytest.raises(ValueError, match="fill must be"):
        balanced_kmeans(blobs(), 4, fill="random")


def test_sample_weights_with_balanced_clusters_are_rejected():
    with pytest.raises(ValueError, match="sample_weight=None"):
        rq_kmeans(blobs(), n_levels=1, codebook_size=4, balanced=True,
                  sample_weight=np.ones(120))


# --- the one k-means -------------------------------------------------------------------------

def inertia(x, centres, labels):
    return float((x - centres[labels]).pow(2).sum())


def test_kmeans_finds_well_separated_blobs_as_well_as_scikit_learn():
    from sklearn.cluster import KMeans
    gen = torch.Generator().manual_seed(5)
    truth = torch.arange(300) % 5
    x = 10 * torch.randn(5, 4, generator=gen)[truth] + torch.randn(300, 4, generator=gen)
    ours = kmeans(x, 5, seed=0, n_init=3)
    theirs = KMeans(n_clusters=5, n_init=3, random_state=0).fit(x.numpy())
    assert inertia(x, *ours) <= 1.01 * theirs.inertia_
    assert normalized_mutual_info_score(ours.labels.numpy(), truth.numpy()) == 1.0


def test_kmeans_labels_are_the_nearest_centres_and_centres_the_means():
    x = blobs(n=200, d=3, seed=6)
    centres, labels = kmeans(x, 7, seed=1)
    assert torch.equal(labels, torch.cdist(x, centres).argmin(dim=1))
    for c in labels.unique():
        assert torch.allclose(centres[c], x[labels == c].mean(dim=0), atol=1e-5)


def test_sample_weight_pulls_a_centre_towards_heavy_rows():
    x = torch.tensor([[0.0], [1.0], [10.0]])
    light = kmeans(x, 2, seed=0).centres.sort(dim=0).values
    heavy = kmeans(x, 2, seed=0, sample_weight=torch.tensor([1.0, 9.0, 1.0])).centres
    assert torch.allclose(light, torch.tensor([[0.5], [10.0]]))
    assert torch.allclose(heavy.sort(dim=0).values, torch.tensor([[0.9], [10.0]]))


def test_kmeans_is_repeatable_with_a_seed_and_more_restarts_never_hurt():
    x = blobs(n=150, d=5, seed=7)
    assert torch.equal(kmeans(x, 9, seed=3).labels, kmeans(x, 9, seed=3).labels)
    assert inertia(x, *kmeans(x, 9, seed=3, n_init=4)) <= inertia(x, *kmeans(x, 9, seed=3))


def test_a_numpy_integer_k_works_like_an_int():
    x = blobs(n=100, d=3, seed=8)
    assert torch.equal(kmeans(x, np.int64(4), seed=0).labels, kmeans(x, 4, seed=0).labels)


@pytest.mark.parametrize("call, phrase", [
    (lambda: kmeans(torch.ones(4, 2, dtype=torch.long), 2), "float tensor"),
    (lambda: kmeans(torch.tensor([[float("nan"), 0.0]]), 1), "NaN"),
    (lambda: kmeans(torch.ones(4, 2), 0), "k must be an int >= 1"),
    (lambda: kmeans(torch.ones(4, 2), 2, init="forgy"), "init must be"),
    (lambda: kmeans(torch.ones(4, 2), 2, sample_weight=torch.zeros(4)), "positive sum"),
])
def test_kmeans_bad_input_says_what_to_fix(call, phrase):
    with pytest.raises(ValueError, match=phrase):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_kmeans_runs_on_cuda():
    x = blobs(n=100, d=3).cuda()
    centres, labels = kmeans(x, 5, seed=0)
    assert centres.device.type == "cuda" and labels.device.type == "cuda"


def test_rq_kmeans_ids_fit_on_some_rows_and_code_every_row():
    from course_lib.quantize.kmeans import rq_kmeans_ids
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=gen)
    fit_on = torch.arange(200) < 150                       # the last 50 rows are new items
    ids = rq_kmeans_ids(x, fit_on, n_levels=2, max_codebook=16, seed=0)
    assert ids.n_items == 200 and ids.vocab_sizes[:2] == (16, 16)      # 2^floor(log2(150/4)) = 32 > 16
    again = rq_kmeans_ids(x, fit_on, n_levels=2, max_codebook=16, seed=0)
    assert torch.equal(ids.table, again.table)
    assert rq_kmeans_ids(x[:40], n_levels=2).vocab_sizes[0] == 8        # 40 / 4 = 10 -> 8
    with pytest.raises(ValueError, match="fit_on must be a bool tensor"):
        rq_kmeans_ids(x, torch.ones(10, dtype=torch.bool))
