"""Training-free semantic IDs from k-means: RQ-KMeans, balanced RQ-KMeans and hierarchical
(ColaRec-style) k-means on collaborative item vectors.

* **RQ-KMeans** (used by OneRec, 2025): level by level, cluster the current residuals with
  k-means, take the cluster centre as the codeword and subtract it,
  r_0 = x, c_l = argmin_k ||r_l - e_k||, r_{l+1} = r_l - e_{c_l}  (the same recursion as the
  RQ-VAE, with codebooks fit by k-means instead of gradients).
* **Balanced RQ-KMeans** (OneRec technical report, 2025, "balanced k-means"): every cluster
  takes exactly |V| / K items. Clusters are filled one after another, each taking the w
  unassigned items nearest to its centre, then its centre moves to their mean; repeat.
  Equal cluster sizes remove the token imbalance behind the hourglass.
* **Hierarchical constrained k-means IDs** (the ColaRec recipe, Wang et al. 2024): item
  vectors from a collaborative-filtering model (here a truncated SVD of the user x item
  matrix), split into K clusters whose sizes are capped (balanced k-means), then each
  cluster split again on its own items, L times. Unlike residual codes, a child token only
  means something under its parent.

Names: N items, D vector width, L levels, K codes per level.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from torch import Tensor


class RQKMeansResult(NamedTuple):
    codes: Tensor         # (N, L) the code of every item at every level
    codebooks: Tensor     # (L, K, D) the cluster centres, level by level


def check_vectors(x, n_levels: int, codebook_size: int) -> Tensor:
    """Validate the inputs shared by every quantizer here; return x as float32 (N, D)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"vectors must be 2-D (items, dim) and non-empty, got shape "
                         f"{tuple(x.shape)}")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(f"{bad} item vectors contain NaN or inf; fix or drop those items "
                         "before quantizing")
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
    if codebook_size > x.shape[0]:
        raise ValueError(f"codebook_size={codebook_size} is larger than the number of items "
                         f"{x.shape[0]}: k-means cannot fill it; use codebook_size <= "
                         f"{x.shape[0]}")
    return x


def weighted_kmeans(x: Tensor, k: int, seed: int = 0, sample_weight=None,
                    n_init: int = 3) -> tuple[Tensor, Tensor]:
    """k-means with sample weights and k-means++ restarts (scikit-learn): (centres (K, D),
    labels (N,)).

    Why not `course_lib.quantize.vq.kmeans` (torch Lloyd from random rows, used to
    initialise a codebook on one batch)? RQ-KMeans *is* the codebook, fit once on all items,
    so it wants the better k-means++ start with `n_init` restarts, and the hourglass study
    needs `sample_weight` (N,): an item counts as if it appeared that many times (e.g. its
    popularity), which moves centres towards heavy items.
    """
    with warnings.catch_warnings():   # tiny residuals can have fewer distinct points than K
        warnings.simplefilter("ignore")
        fit = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(
            x.numpy(), sample_weight=None if sample_weight is None else np.asarray(sample_weight))
    return (torch.as_tensor(fit.cluster_centers_, dtype=torch.float32),
            torch.as_tensor(fit.labels_, dtype=torch.long))


def balanced_sizes(n: int, k: int) -> Tensor:
    """Cluster sizes for n items in k clusters: n // k each, the first n % k one more."""
    return n // k + (torch.arange(k) < n % k).long()


def _fill_in_turn(x: Tensor, centres: Tensor, sizes: Tensor) -> Tensor:
    """OneRec's fill: cluster after cluster takes its nearest unassigned items and moves its
    centre to their mean (in place). Returns labels (N,)."""
    labels = torch.full((x.shape[0],), -1, dtype=torch.long)
    # Cluster c only moves at its own turn, so all distances can be taken at the start.
    # ||x - e_c||^2 up to ||e_c||^2, a constant per column that does not change its order.
    dist = (x * x).sum(dim=1, keepdim=True) - 2 * x @ centres.T            # (N, K)
    for c in range(len(centres)):
        dist_c = dist[:, c].masked_fill(labels >= 0, float("inf"))         # taken items last
        take = torch.topk(dist_c, int(sizes[c]), largest=False).indices
        labels[take] = c
        centres[c] = x[take].mean(dim=0)
    return labels


def _rank_within_groups(groups: Tensor, n_groups: int) -> Tensor:
    """0 for the first row of each group, 1 for the second, ... (rows in their order)."""
    order = torch.argsort(groups, stable=True)
    sizes = torch.bincount(groups, minlength=n_groups)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty_like(groups)
    rank[order] = torch.arange(len(groups)) - starts[groups[order]]
    return rank


def _fill_nearest_first(x: Tensor, centres: Tensor, sizes: Tensor) -> Tensor:
    """All clusters fill at once, nearest pairs first: in rounds, every unassigned item asks
    its nearest cluster that still has room, and each cluster keeps the nearest askers it
    has room for. Returns labels (N,)."""
    dist = torch.cdist(x, centres)                                         # (N, K)
    labels = torch.full((x.shape[0],), -1, dtype=torch.long)
    room = sizes.clone()
    while (labels < 0).any():
        free = torch.nonzero(labels < 0).flatten()
        best, choice = dist[free].masked_fill(room == 0, float("inf")).min(dim=1)
        order = torch.argsort(best)                                        # nearest first
        choice = choice[order]
        rank = _rank_within_groups(choice, len(room))                      # place in its queue
        accept = rank < room[choice]
        labels[free[order[accept]]] = choice[accept]
        room = room - torch.bincount(choice[accept], minlength=len(room))
    return labels


def balanced_kmeans(x: Tensor, k: int, seed: int = 0, n_iter: int = 20,
                    fill: str = "in_turn") -> tuple[Tensor, Tensor]:
    """Balanced k-means: every cluster takes exactly n / k items (the first n % k one more).

    fill="in_turn" is OneRec's greedy rule: each round visits the clusters in turn, cluster
    c takes its `size[c]` nearest unassigned items and moves its centre to their mean. The
    last clusters get whatever is left, so outlying items tend to land together.
    fill="nearest" keeps the sizes but lets all clusters fill at once, nearest pairs first.
    Starts from k random items; stops when a round changes no label.
    Returns (centres (K, D), labels (N,)).
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= number of items ({n}), got k={k}")
    if fill not in ("in_turn", "nearest"):
        raise ValueError(f"fill must be 'in_turn' (OneRec) or 'nearest', got {fill!r}")
    sizes = balanced_sizes(n, k)
    gen = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(n, generator=gen)[:k]].clone()              # (K, D)
    labels = torch.full((n,), -1, dtype=torch.long)
    for _ in range(n_iter):
        if fill == "in_turn":
            new = _fill_in_turn(x, centres, sizes)                         # moves the centres
        else:
            new = _fill_nearest_first(x, centres, sizes)
            members = F.one_hot(new, k).T.to(x.dtype)                      # (K, N)
            centres = members @ x / sizes[:, None]                         # cluster means
        if torch.equal(new, labels):
            break
        labels = new
    return centres, labels


def rq_kmeans(x, n_levels: int = 3, codebook_size: int = 256, *, balanced: bool = False,
              fill: str = "in_turn", sample_weight=None, seed: int = 0,
              n_init: int = 3) -> RQKMeansResult:
    """Residual k-means: k-means on the residuals, level by level (see module docstring).

    balanced=True uses `balanced_kmeans` at every level (exactly N / K items per code),
    with its `fill` rule (OneRec's "in_turn" by default).
    `sample_weight` (N,) weights items in plain k-means (e.g. by popularity, to study
    long-tailed data); balanced k-means counts every item once and refuses it. `n_init`
    k-means++ restarts per level keep the best (plain k-means only).
    """
    residual = check_vectors(x, n_levels, codebook_size).clone()          # r_0 = x  (N, D)
    if sample_weight is not None and balanced:
        raise ValueError("balanced k-means gives every item the same weight; pass "
                         "sample_weight=None with balanced=True")
    codes, codebooks = [], []
    for level in range(n_levels):
        if balanced:
            centres, labels = balanced_kmeans(residual, codebook_size, seed=seed + level,
                                             fill=fill)
        else:
            centres, labels = weighted_kmeans(residual, codebook_size, seed=seed + level,
                                              sample_weight=sample_weight, n_init=n_init)
        residual = residual - centres[labels]                              # r_{l+1}
        codes.append(labels)
        codebooks.append(centres)
    return RQKMeansResult(torch.stack(codes, dim=1), torch.stack(codebooks))


def svd_item_vectors(interactions: pd.DataFrame, n_items: int, dim: int = 32,
                     seed: int = 0, actions=("click", "like", "conversion")) -> Tensor:
    """Collaborative item vectors: truncated SVD of the binary user x item matrix.

    Returns (I, dim), row i - 1 for item i, each row scaled to unit length so that k-means
    compares items by the direction of their user profile, not by popularity. Items with no
    interaction (cold items) get a zero row: collaborative IDs cannot place them.
    """
    if "action" in interactions and actions is not None:
        interactions = interactions[interactions["action"].isin(actions)]
    users = interactions["user"].astype("category").cat.codes.to_numpy()
    items = interactions["item"].to_numpy() - 1
    if items.size == 0:
        raise ValueError("no interactions to factorise; check the `actions` filter")
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"item ids must be in [1, {n_items}]; 0 is padding")
    if not 1 <= dim < min(users.max() + 1, n_items):
        raise ValueError(f"dim must be in [1, min(users, items) - 1], got {dim}")
    from scipy.sparse import csr_matrix
    matrix = csr_matrix((np.ones(len(items)), (users, items)),
                        shape=(users.max() + 1, n_items))
    matrix.data[:] = 1.0                                                   # binary, repeats once
    svd = TruncatedSVD(n_components=dim, random_state=seed).fit(matrix)
    vectors = svd.components_.T * svd.singular_values_                     # (I, dim)
    seen = np.bincount(items, minlength=n_items) > 0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=seen[:, None])
    return torch.as_tensor(vectors, dtype=torch.float32)


def hierarchical_kmeans_ids(x, n_levels: int = 3, branching: int = 16, seed: int = 0,
                            fill: str = "nearest") -> Tensor:
    """ColaRec-style IDs: recursive constrained k-means, (N, D) -> codes (N, L).

    Level 1 splits all items into `branching` clusters of capped, equal size (balanced
    k-means, nearest-first fill by default); every cluster is then split again on its own
    items, and so on. A node with fewer items than `branching` gives each item its own child.
    """
    x = check_vectors(x, n_levels, branching)
    codes = torch.zeros(x.shape[0], n_levels, dtype=torch.long)
    nodes = [torch.arange(x.shape[0])]                                     # items per node
    for level in range(n_levels):
        children = []
        for members in nodes:
            k = min(branching, len(members))
            if k == len(members):                                          # one item per child
                labels = torch.arange(k)
            else:
                _, labels = balanced_kmeans(x[members], k, seed=seed + level, fill=fill)
            codes[members, level] = labels
            children += [members[labels == c] for c in range(k)]
        nodes = children
    return codes
