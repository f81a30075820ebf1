"""Properties of the metrics that lesson 09 relies on and tests/test_metrics.py does not
already state: NDCG is 1 exactly for the ideal order and does not depend on the order of the
candidate columns, recall and hits grow with K, precision and recall count the same hits,
Entropy@K is bounded and ignores the order of the list, and a sampled rank never exceeds the
full rank, and sampling every unseen item gives the full rank among the unseen items."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import graded_case, tied_scores
from course_lib import metrics as M

PROPERTY = settings(max_examples=50, deadline=None)
t = torch.tensor


def _permute_columns(x: torch.Tensor, perm: list[int]) -> torch.Tensor:
    """Relabel items 1..I by `perm`, keeping column 0 (padding) in place."""
    return torch.cat([x[:, :1], x[:, 1:][:, perm]], dim=1)


@PROPERTY
@given(st.integers(1, 50), st.integers(1, 20))
def test_leave_one_out_ndcg_is_1_iff_the_target_is_ranked_first(rank, k):
    ndcg = M.ndcg_at_k(t([rank]), k).item()
    assert (ndcg == 1.0) == (rank == 1)
    assert 0.0 <= ndcg <= 1.0


@PROPERTY
@given(graded_case(distinct_scores=False), st.randoms(use_true_random=False))
def test_graded_ndcg_does_not_depend_on_the_order_of_candidate_columns(case, rnd):
    scores, relevance, k = case
    perm = list(range(scores.shape[1] - 1))
    rnd.shuffle(perm)
    permuted = M.graded_ndcg_at_k(_permute_columns(scores, perm),
                                  _permute_columns(relevance, perm), k)
    assert torch.allclose(permuted, M.graded_ndcg_at_k(scores, relevance, k))


@PROPERTY
@given(graded_case(distinct_scores=False))
def test_recall_and_hits_never_fall_as_k_grows(case):
    scores, relevance, _ = case
    ks = range(1, scores.shape[1])
    recall = torch.stack([M.recall_at_k(scores, relevance, k) for k in ks])   # (I, B)
    hits = torch.stack([M.hits_at_k(scores, relevance, k) for k in ks])
    assert (recall[1:] >= recall[:-1]).all() and (hits[1:] >= hits[:-1]).all()
    assert torch.allclose(recall[-1], torch.ones_like(recall[-1]))             # k = I finds all


@PROPERTY
@given(graded_case(distinct_scores=False))
def test_precision_times_k_equals_recall_times_the_number_of_relevant_items(case):
    scores, relevance, k = case
    n_relevant = (relevance[:, 1:] > 0).sum(dim=1).float()
    assert torch.allclose(M.precision_at_k(scores, relevance, k) * k,
                          M.recall_at_k(scores, relevance, k) * n_relevant)


@PROPERTY
@given(graded_case(distinct_scores=False))
def test_binary_ndcg_is_0_exactly_when_no_relevant_item_is_in_the_top_k(case):
    scores, relevance, k = case
    binary = (relevance > 0).float()
    ndcg = M.graded_ndcg_at_k(scores, binary, k)
    hits = M.hits_at_k(scores, binary, k)
    assert torch.equal(ndcg == 0, hits == 0)


@PROPERTY
@given(st.integers(1, 8).flatmap(lambda c: st.tuples(
    st.just(c), st.lists(st.integers(0, c - 1), min_size=3, max_size=30))),
    st.integers(1, 10), st.randoms(use_true_random=False))
def test_entropy_at_k_is_bounded_and_ignores_the_order_of_the_list(case, k, rnd):
    n_categories, categories = case
    item_category = t([0] + categories)                       # items 1..len(categories)
    n_items = len(categories)
    k = min(k, n_items)
    topk = t([rnd.sample(range(1, n_items + 1), k)])
    shuffled = topk[:, t(rnd.sample(range(k), k))]
    entropy = M.entropy_at_k(topk, item_category).item()
    distinct = len(set(item_category[topk[0]].tolist()))
    assert -1e-6 <= entropy <= math.log2(distinct) + 1e-6
    assert M.entropy_at_k(shuffled, item_category).item() == entropy


def brute_force_rank(scores: list[float], target: int, seen: set[int]) -> int:
    """1 + how many items j in 1..I (not the target, not seen) score at least the target's."""
    return 1 + sum(1 for j in range(1, len(scores))
                   if j != target and j not in seen and scores[j] >= scores[target])


@PROPERTY
@given(tied_scores(min_items=3), st.data())
def test_sampling_every_unseen_item_gives_the_brute_force_rank_among_unseen_items(case, data):
    scores, targets = case
    n_items = scores.shape[1] - 1
    for row, target in zip(scores, targets.tolist()):
        others = [j for j in range(1, n_items + 1) if j != target]
        seen = data.draw(st.lists(st.sampled_from(others), max_size=len(others) - 1,
                                  unique=True))
        history = torch.tensor([[0] + seen])                         # (1, T) left-padded
        n_unseen = len(others) - len(seen)
        rank = M.sampled_ranks(row[None], torch.tensor([target]), history,
                               n_negatives=n_unseen,
                               generator=torch.Generator().manual_seed(len(seen)))
        assert rank.tolist() == [brute_force_rank(row.tolist(), target, set(seen))]


@PROPERTY
@given(tied_scores(min_items=2), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_a_sampled_rank_is_never_worse_than_the_brute_force_full_rank(case, n_negatives, seed):
    scores, targets = case
    n_negatives = min(n_negatives, scores.shape[1] - 2)              # I - 1 items to sample
    ranks = M.sampled_ranks(scores, targets, n_negatives=n_negatives,
                            generator=torch.Generator().manual_seed(seed))
    full = [brute_force_rank(row.tolist(), target, set())
            for row, target in zip(scores, targets.tolist())]
    assert all(1 <= r <= f for r, f in zip(ranks.tolist(), full))
