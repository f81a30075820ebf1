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
  vectors from a collaborative-filtering model (here `models.mf.svd_item_vectors`, a
  truncated SVD of the user x item matrix), split into K clusters whose sizes are capped (balanced k-means), then each
  cluster split again on its own items, L times. Unlike residual codes, a child token only
  means something under its parent.

Names: N items, D vector width, L levels, K codes per level.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.quantize.residual import residual_levels
from course_lib.quantize.semantic_ids import SemanticIds, rank_within_groups
from course_lib.quantize.vq import nearest_codes


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


class KMeansResult(NamedTuple):
    centres: Tensor       # (K, D)
    labels: Tensor        # (N,) the nearest centre of every row


def kmeans(x: Tensor, k: int, *, iters: int = 300, n_init: int = 1, init: str = "k-means++",
           sample_weight: Tensor | None = None, seed: int | None = None,
           tol: float = 1e-4) -> KMeansResult:
    """k-means (Lloyd 1982): the course's one k-means, on the device of x.

    Every iteration assigns each row to its nearest centre (`nearest_codes`) and moves each
    centre to the (weighted) mean of its rows; an empty cluster keeps its centre. Stops when
    no label changes, when the centres move less than `tol` x the data's mean variance, or
    after `iters` iterations. Of `n_init` runs the one with the lowest weighted inertia
    sum_n w_n ||x_n - e_{c_n}||^2 is kept.

    init="k-means++" (Arthur & Vassilvitskii 2007, greedy as in scikit-learn): each new centre
    is drawn with probability proportional to w_n D(x_n)^2, the best of 2 + ln k draws.
    init="random": k distinct rows (with replacement if N < k), the cheap start that
    VQ-VAE codebooks use on their first batch. `sample_weight` (N,) counts a row as if it
    appeared that many times (e.g. an item's popularity), which pulls centres towards heavy
    rows. `seed` None draws from torch's global generator (`seed_everything`).
    Names: N rows, D width, K centres.
    """
    x = _check_kmeans_input(x, k, n_init, init, iters)
    k = int(k)                                               # np.int64(8) works like 8
    weight = (torch.ones(len(x), device=x.device) if sample_weight is None
              else torch.as_tensor(sample_weight, dtype=x.dtype, device=x.device))
    if weight.shape != (len(x),) or not torch.isfinite(weight).all() or (weight < 0).any() \
            or weight.sum() <= 0:
        raise ValueError(f"sample_weight must be ({len(x)},) finite weights >= 0 with a "
                         f"positive sum, got shape {tuple(weight.shape)}")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    threshold = tol * x.var(dim=0).mean() if len(x) > 1 else torch.zeros((), device=x.device)
    best, best_inertia = None, float("inf")
    for _ in range(n_init):
        centres = (_kmeans_plus_plus(x, k, weight, generator) if init == "k-means++"
                   else _random_rows(x, k, generator))
        centres, labels = _lloyd(x, centres, weight, iters, threshold)
        inertia = float((weight * (x - centres[labels]).pow(2).sum(dim=1)).sum())
        if inertia < best_inertia:
            best, best_inertia = KMeansResult(centres, labels), inertia
    return best


def _check_kmeans_input(x, k: int, n_init: int, init: str, iters: int) -> Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 2 or len(x) == 0:
        raise ValueError(f"k-means takes a non-empty float tensor (N, D), got "
                         f"{getattr(x, 'dtype', type(x).__name__)} "
                         f"{tuple(getattr(x, 'shape', ()))}")
    if not torch.isfinite(x).all():
        raise ValueError("k-means input contains NaN or inf; fix those rows first")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if n_init < 1 or iters < 1:
        raise ValueError(f"n_init and iters must be >= 1, got {n_init} and {iters}")
    if init not in ("k-means++", "random"):
        raise ValueError(f"init must be 'k-means++' or 'random', got {init!r}")
    return x


def _random_rows(x: Tensor, k: int, generator) -> Tensor:
    if len(x) >= k:
        return x[torch.randperm(len(x), generator=generator, device=x.device)[:k]].clone()
    return x[torch.randint(len(x), (k,), generator=generator, device=x.device)].clone()


def _kmeans_plus_plus(x: Tensor, k: int, weight: Tensor, generator) -> Tensor:
    """Greedy k-means++: (K, D) starting centres, drawn one by one (see `kmeans`)."""
    trials = 2 + int(math.log(k))
    first = torch.multinomial(weight, 1, generator=generator)
    centres = [x[first[0]]]
    closest = (x - x[first]).pow(2).sum(dim=1)                             # (N,) D(x)^2
    for _ in range(1, k):
        potential = weight * closest
        if potential.sum() <= 0:                                           # fewer distinct rows
            centres.append(x[torch.multinomial(weight, 1, generator=generator)[0]])
            continue
        candidates = torch.multinomial(potential, trials, replacement=True,
                                       generator=generator)                # (C,)
        distance = torch.cdist(x[candidates], x).pow(2)                    # (C, N)
        new_closest = torch.minimum(closest[None], distance)               # (C, N)
        pick = int((weight * new_closest).sum(dim=1).argmin())
        centres.append(x[candidates[pick]])
        closest = new_closest[pick]
    return torch.stack(centres)


def _lloyd(x: Tensor, centres: Tensor, weight: Tensor, iters: int,
           threshold: Tensor) -> tuple[Tensor, Tensor]:
    labels = nearest_codes(x, centres)                                     # (N,)
    for _ in range(iters):
        mass = torch.zeros(len(centres), dtype=x.dtype, device=x.device).index_add_(
            0, labels, weight)                                             # (K,)
        sums = torch.zeros_like(centres).index_add_(0, labels, x * weight[:, None])  # (K, D)
        moved = torch.where(mass[:, None] > 0, sums / mass.clamp_min(1e-12)[:, None], centres)
        shift = (moved - centres).pow(2).sum()
        centres = moved
        new = nearest_codes(x, centres)
        if torch.equal(new, labels) or shift <= threshold:
            labels = new
            break
        labels = new
    return centres, labels


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
        rank = rank_within_groups(choice)                      # place in its queue
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
    x = check_vectors(x, n_levels, codebook_size)                         # r_0 = x  (N, D)
    if sample_weight is not None and balanced:
        raise ValueError("balanced k-means gives every item the same weight; pass "
                         "sample_weight=None with balanced=True")
    codebooks = []

    def fit_level(level: int, residual: Tensor) -> tuple[Tensor, Tensor]:
        if balanced:
            centres, labels = balanced_kmeans(residual, codebook_size, seed=seed + level,
                                             fill=fill)
        else:
            centres, labels = kmeans(residual, codebook_size, seed=seed + level,
                                     sample_weight=sample_weight, n_init=n_init)
        codebooks.append(centres)
        return labels, centres[labels]

    steps = residual_levels(x, n_levels, fit_level)
    return RQKMeansResult(steps.codes, torch.stack(codebooks))


def rq_kmeans_ids(x, fit_on: Tensor | None = None, n_levels: int = 3,
                  max_codebook: int = 256, seed: int = 0) -> SemanticIds:
    """RQ-KMeans semantic IDs of every row of `x` (N, D), standardised content of items 1..N:
    the codebooks are fitted on the rows `fit_on` (N,) bool (e.g. the items that training
    sequences hold, as a shop fits them on yesterday's catalogue; None: every row), then every
    row is coded (`residual_quantize`) and the collision token appended
    (`SemanticIds.from_codes`). K codes per level: the largest power of two up to a quarter of
    the fitted rows, at most `max_codebook` (the paper's 256), so small catalogues do not get
    mostly empty codebooks."""
    from course_lib.quantize.residual import residual_quantize
    x = torch.as_tensor(x, dtype=torch.float32)
    fit_on = torch.ones(len(x), dtype=torch.bool) if fit_on is None else torch.as_tensor(fit_on)
    if fit_on.dtype != torch.bool or fit_on.shape != (len(x),):
        raise ValueError(f"fit_on must be a bool tensor (N,) = ({len(x)},), True for the rows "
                         f"the codebooks are fitted on; got {fit_on.dtype} {tuple(fit_on.shape)}")
    fitted = int(fit_on.sum())
    if fitted < 8:
        raise ValueError(f"only {fitted} rows to fit codebooks on; need at least 8")
    codebook = min(max_codebook, 2 ** int(math.log2(max(2, fitted // 4))))
    result = rq_kmeans(x[fit_on], n_levels=n_levels, codebook_size=codebook, seed=seed)
    codes = residual_quantize(x, result.codebooks).codes                   # (N, L)
    return SemanticIds.from_codes(codes, [codebook] * n_levels)


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
