"""Metrics: hand-computed cases, the pessimistic tie policy, properties, and cross-checks
against independent implementations (sklearn, torchmetrics, scipy)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import ndcg_score
from torchmetrics.functional.retrieval import (retrieval_hit_rate, retrieval_normalized_dcg,
                                               retrieval_reciprocal_rank)

from conftest import graded_case, tied_scores
from course_lib import metrics as M

PROPERTY = settings(max_examples=50, deadline=None)
t = torch.tensor


def random_scores(n_users, n_items, seed):
    """Continuous random scores: no ties, for comparisons with libraries that average ties."""
    return torch.randn(n_users, n_items + 1, generator=torch.Generator().manual_seed(seed))


# --- leave-one-out ranks and metrics, by hand ---------------------------------------------

def test_best_item_has_rank_1_and_full_metrics():
    ranks = M.target_ranks(t([[0.0, 0.9, 0.1, 0.5]]), t([1]))
    assert ranks.tolist() == [1]
    assert M.hr_at_k(ranks, 1).item() == 1.0
    assert M.ndcg_at_k(ranks, 1).item() == 1.0
    assert M.mrr(ranks).item() == 1.0


def test_rank_3_gives_ndcg_one_half():
    ranks = M.target_ranks(t([[0.0, 0.9, 0.8, 0.7, 0.1]]), t([3]))
    assert ranks.tolist() == [3]
    assert M.ndcg_at_k(ranks, 3).item() == pytest.approx(0.5)
    assert M.mrr(ranks).item() == pytest.approx(1 / 3)


def test_a_miss_scores_zero_hr_and_ndcg_but_keeps_mrr():
    ranks = t([5])
    assert M.hr_at_k(ranks, 4).item() == 0.0
    assert M.ndcg_at_k(ranks, 4).item() == 0.0
    assert M.mrr(ranks).item() == pytest.approx(0.2)


def test_padding_column_is_never_ranked():
    assert M.target_ranks(t([[9.0, 0.2, 0.1, 0.5]]), t([1])).tolist() == [2]


def test_target_tied_with_two_others_gets_rank_3():
    assert M.target_ranks(t([[0.0, 0.5, 0.5, 0.5, 0.1]]), t([2])).tolist() == [3]


def test_constant_model_ranks_every_target_last():
    flat = torch.zeros(3, 8)
    assert M.target_ranks(flat, t([1, 4, 7])).tolist() == [7, 7, 7]


def test_history_items_are_masked_and_do_not_count():
    scores = t([[0.0, 0.9, 0.8, 0.1, 0.7]])
    assert M.target_ranks(scores, t([3])).tolist() == [4]
    assert M.target_ranks(scores, t([3]), history=t([[0, 1, 2]])).tolist() == [2]


def test_a_target_in_the_history_is_masked_with_it_and_ranks_after_every_candidate():
    scores = t([[0.0, 0.9, 0.8, 0.1, 0.2]])
    # history {1, 2}: items 3 and 4 are the candidates; target 1 is seen, so a miss: rank
    # I + 1 = 5, past the catalogue, even where the candidates are fewer than a cut-off
    assert M.target_ranks(scores, t([1]), history=t([[1, 2, 0]])).tolist() == [5]
    assert M.target_ranks(scores, t([1])).tolist() == [1]              # allow repeats
    masked = M.mask_history(scores, t([[1, 2, 0]]))
    assert torch.equal(masked, t([[-math.inf, -math.inf, -math.inf, 0.1, 0.2]]))


def test_the_leak_keeping_the_target_would_reward_replaying_the_history():
    # The rule the course once had, "mask the history except the target", ranked a repeated
    # target 1 among the unseen items only: rank 1 for a model that just replays the history.
    replay = t([[0.0, 3.0, 2.0, 0.5, 0.4]])                              # seen items first
    history, target = t([[2, 1]]), t([1])
    assert M.target_ranks(replay, target, history).item() == 5          # excluded: a miss
    assert M.target_ranks(replay, target).item() == 1                   # allowed: honest rank 1
    leaky = replay.clone()
    leaky[0, 2] = -math.inf                                              # every seen item but 1
    assert M.target_ranks(leaky, target).item() == 1                    # what the leak gave


@st.composite
def scores_with_history(draw):
    """(scores (B, I + 1) with ties, history (B, T) of item ids or 0) for a few users."""
    scores, _ = draw(tied_scores(min_items=3))
    n_items = scores.shape[1] - 1
    length = draw(st.integers(1, n_items))
    values = draw(st.lists(st.integers(0, n_items), min_size=len(scores) * length,
                           max_size=len(scores) * length))
    return scores, t(values).reshape(len(scores), length)


def every_target(scores):
    """Each user's row repeated once per item, with that item as the target: (B * I, I + 1)."""
    n_items = scores.shape[1] - 1
    return scores.repeat_interleave(n_items, 0), torch.arange(1, n_items + 1).repeat(len(scores))


@PROPERTY
@given(scores_with_history())
def test_the_mask_depends_on_the_history_alone_whichever_item_is_the_target(case):
    # Mask the scores once, with no target in sight, then rank every item as the target: the
    # ranks must be those target_ranks gives with the history. The old rule (keep the target)
    # gives a seen target its score back, so its rank depended on which item was the answer.
    scores, history = case
    n_items = scores.shape[1] - 1
    all_scores, targets = every_target(scores)
    all_history = history.repeat_interleave(n_items, 0)
    premasked = M.target_ranks(M.mask_history(all_scores, all_history), targets)
    assert torch.equal(M.target_ranks(all_scores, targets, all_history), premasked)
    # swapping which item is the target never changes what the other items are
    ranks = premasked.view(len(scores), n_items)                         # (B, I)
    masked = M.mask_history(scores, history)[:, 1:]
    for row in range(len(scores)):
        for a in range(n_items):
            for b in range(n_items):
                if masked[row, a] > masked[row, b]:
                    assert ranks[row, a] < ranks[row, b]


@PROPERTY
@given(scores_with_history(), st.floats(0.5, 100.0))
def test_boosting_the_history_changes_nothing_when_seen_items_are_excluded(case, boost):
    # "History first, then popularity" cannot beat its honest value: under "exclude seen" a
    # seen item is out, however high it is scored, so boosting the history changes no rank.
    scores, history = case
    all_scores, targets = every_target(scores)
    all_history = history.repeat_interleave(scores.shape[1] - 1, 0)
    seen = torch.zeros_like(all_scores, dtype=torch.bool).scatter_(1, all_history, True)
    boosted = all_scores + boost * seen.float()
    assert torch.equal(M.target_ranks(boosted, targets, all_history),
                       M.target_ranks(all_scores, targets, all_history))
    lists = M.topk_items(M.mask_history(boosted, all_history), 2)       # what a recommender shows
    ranks = M.ranks_from_topk(lists, targets, scores.shape[1] - 1, all_history)
    repeated = M.repeated_targets(all_history, targets)
    assert (ranks[repeated] == scores.shape[1]).all()                    # a seen target: I + 1


def test_repeated_targets_are_found_in_their_own_row_only():
    history = t([[0, 3, 5], [1, 2, 4], [0, 0, 7]])
    assert M.repeated_targets(history, t([5, 5, 7])).tolist() == [True, False, True]


def test_mask_history_without_targets_masks_every_seen_item_and_keeps_the_input():
    scores = t([[5.0, 1.0, 2.0, 3.0], [5.0, 1.0, 2.0, 3.0]])
    masked = M.mask_history(scores, t([[0, 3], [2, 1]]))
    assert masked.tolist() == [[-math.inf, 1.0, 2.0, -math.inf],
                               [-math.inf, -math.inf, -math.inf, 3.0]]
    assert scores[0, 0] == 5.0


def test_already_masked_items_never_count_against_the_target():
    scores = t([[-math.inf, -math.inf, -math.inf, 0.3, 0.1]])
    assert M.target_ranks(scores, t([4])).tolist() == [2]


def test_evaluate_reports_hr_ndcg_per_cutoff_and_mrr():
    scores = t([[0.0, 0.9, 0.8, 0.7, 0.1],   # target 3 at rank 3
                [0.0, 0.1, 0.2, 0.3, 0.9]])  # target 4 at rank 1
    result = M.evaluate(scores, t([3, 4]), ks=(1, 3))
    assert list(result) == ["HR@1", "NDCG@1", "HR@3", "NDCG@3", "MRR"]
    assert result["HR@1"] == pytest.approx(0.5)
    assert result["HR@3"] == pytest.approx(1.0)
    assert result["NDCG@3"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["MRR"] == pytest.approx((1 / 3 + 1) / 2)


# --- properties ---------------------------------------------------------------------------

@PROPERTY
@given(tied_scores(), st.integers(1, 12))
def test_ndcg_at_k_lies_in_0_1(case, k):
    scores, targets = case
    ndcg = M.ndcg_at_k(M.target_ranks(scores, targets), k)
    assert ((ndcg >= 0) & (ndcg <= 1)).all()


@PROPERTY
@given(tied_scores())
def test_hr_is_non_decreasing_in_k(case):
    scores, targets = case
    ranks = M.target_ranks(scores, targets)
    hr = torch.stack([M.hr_at_k(ranks, k) for k in range(1, scores.shape[1])])  # (I, B)
    assert (hr[1:] >= hr[:-1]).all()


@PROPERTY
@given(tied_scores(), st.randoms(use_true_random=False))
def test_ranks_do_not_depend_on_the_order_of_candidate_columns(case, rnd):
    scores, targets = case
    n_items = scores.shape[1] - 1
    history = t([[rnd.randint(0, n_items) for _ in range(3)] for _ in range(len(targets))])
    perm = list(range(n_items))
    rnd.shuffle(perm)
    new_column = torch.zeros(n_items + 1, dtype=torch.long)   # old item id -> new item id
    new_column[torch.tensor(perm) + 1] = torch.arange(1, n_items + 1)
    permuted = torch.cat([scores[:, :1], scores[:, 1:][:, perm]], dim=1)
    assert torch.equal(M.target_ranks(permuted, new_column[targets], new_column[history]),
                       M.target_ranks(scores, targets, history))


@PROPERTY
@given(tied_scores(), st.integers(1, 12))
def test_recall_equals_hr_with_exactly_one_relevant_item(case, k):
    scores, targets = case
    k = min(k, scores.shape[1] - 1)
    relevance = torch.zeros_like(scores)
    relevance[torch.arange(len(targets)), targets] = 1.0
    hr = M.hr_at_k(M.target_ranks(scores, targets), k)
    assert torch.equal(M.recall_at_k(scores, relevance, k), hr)
    assert torch.equal(M.hits_at_k(scores, relevance, k), hr)


@PROPERTY
@given(graded_case())
def test_graded_ndcg_lies_in_0_1(case):
    scores, relevance, k = case
    ndcg = M.graded_ndcg_at_k(scores, relevance, k)
    assert ((ndcg >= 0) & (ndcg <= 1 + 1e-6)).all()


@PROPERTY
@given(graded_case())
def test_graded_ndcg_is_1_when_scores_are_the_relevance_itself(case):
    _, relevance, k = case
    # Equal scores here mean equal gains, so the pessimistic tie rule cannot hurt.
    assert torch.allclose(M.graded_ndcg_at_k(relevance, relevance, k), torch.ones(len(relevance)))


@PROPERTY
@given(graded_case())
def test_graded_ndcg_is_1_iff_no_less_relevant_item_sits_above_a_more_relevant_one(case):
    scores, relevance, k = case
    ndcg = M.graded_ndcg_at_k(scores, relevance, k)
    for user in range(len(scores)):
        order = np.argsort(-scores[user, 1:].numpy())[:k]       # distinct scores
        gains = relevance[user, 1:].numpy()
        top = gains[order]
        best_rest = np.delete(gains, order).max(initial=0.0)
        inverted = any(top[p] < top[q] for p in range(k) for q in range(p + 1, k))
        ideal = not inverted and top.min() >= best_rest
        if ideal:
            assert ndcg[user].item() == pytest.approx(1.0)
        else:
            assert ndcg[user].item() < 1.0 - 1e-6


def test_graded_ndcg_ties_put_the_less_relevant_item_first():
    scores = t([[0.0, 1.0, 1.0]])
    relevance = t([[0.0, 2.0, 0.0]])
    # pessimistic order: item 2 (gain 0), then item 1 (gain 2): DCG = 2 / log2(3)
    assert M.graded_ndcg_at_k(scores, relevance, 2).item() == pytest.approx(1 / math.log2(3))


def test_graded_ndcg_by_hand_with_click_and_conversion_gains():
    # ranked list: item 1 (click, 1), item 2 (exposure, 0), item 3 (conversion, alpha = 4)
    scores = t([[0.0, 0.9, 0.5, 0.1]])
    relevance = t([[0.0, 1.0, 0.0, 4.0]])
    dcg = 1 / math.log2(2) + 4 / math.log2(4)
    idcg = 4 / math.log2(2) + 1 / math.log2(3)
    assert M.graded_ndcg_at_k(scores, relevance, 3).item() == pytest.approx(dcg / idcg)


def test_recall_divides_by_all_relevant_items_not_by_k():
    scores = t([[0.0, 0.9, 0.8, 0.7, 0.6]])
    relevance = t([[0.0, 1.0, 1.0, 1.0, 0.0]])
    assert M.recall_at_k(scores, relevance, 1).item() == pytest.approx(1 / 3)
    assert M.precision_at_k(scores, relevance, 2).item() == pytest.approx(1.0)
    assert M.precision_at_k(scores, relevance, 4).item() == pytest.approx(3 / 4)


def test_hits_at_k_is_1_if_any_relevant_item_is_in_the_top_k():
    scores = t([[0.0, 0.9, 0.8, 0.7], [0.0, 0.9, 0.8, 0.7]])
    relevance = t([[False, False, True, True], [False, False, False, True]])
    assert M.hits_at_k(scores, relevance, 2).tolist() == [1.0, 0.0]


def test_topk_items_skips_padding_and_breaks_ties_by_lower_item_id():
    scores = t([[99.0, 0.5, 0.9, 0.5, 0.5, -math.inf]])
    assert M.topk_items(scores, 3).tolist() == [[2, 1, 3]]
    assert M.topk_items(scores, 5).tolist() == [[2, 1, 3, 4, 5]]


def test_entropy_of_the_worked_example_is_1_371_bits():
    item_category = t([0, 0, 0, 0, 1, 2])  # items 1-3 in a, 4 in b, 5 in c
    topk = t([[1, 2, 3, 4, 5], [1, 2, 3, 1, 2]])
    assert M.entropy_at_k(topk, item_category).tolist() == [pytest.approx(1.371, abs=1e-3), 0.0]


def test_coverage_counts_distinct_recommended_items():
    assert M.coverage(t([[1, 2], [2, 3], [1, 3]]), n_items=6) == pytest.approx(0.5)


@PROPERTY
@given(st.lists(st.integers(0, 50), min_size=1, max_size=30).filter(any))
def test_gini_lies_in_0_1(counts):
    assert 0.0 <= M.gini(t(counts)) < 1.0


@PROPERTY
@given(st.integers(1, 50), st.integers(1, 100))
def test_gini_is_0_for_uniform_counts(n, c):
    assert M.gini(torch.full((n,), c)) == pytest.approx(0.0, abs=1e-12)


def test_gini_by_hand_when_one_entry_holds_everything():
    assert M.gini(t([0, 0, 0, 10])) == pytest.approx(0.75)   # 1 - 1/n


@PROPERTY
@given(st.integers(1, 16).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1), min_size=1, max_size=64))))
def test_perplexity_lies_between_1_and_n_codes_and_utilisation_in_0_1(case):
    n_codes, codes = case
    codes = t(codes)
    assert 1.0 - 1e-9 <= M.perplexity(codes, n_codes) <= n_codes + 1e-9
    assert 0.0 < M.utilisation(codes, n_codes) <= 1.0


def test_uniform_codes_have_perplexity_n_codes_and_full_utilisation():
    codes = torch.arange(8).repeat(3)
    assert M.code_counts(codes, 8).tolist() == [3] * 8
    assert M.perplexity(codes, 8) == pytest.approx(8.0)
    assert M.utilisation(codes, 8) == 1.0
    assert M.utilisation(t([0, 0, 1]), 8) == pytest.approx(0.25)


def test_collision_rate_counts_duplicate_semantic_ids():
    ids = t([[1, 2], [1, 2], [1, 3], [4, 2]])
    assert M.collision_rate(ids) == pytest.approx(0.25)
    assert M.collision_rate(t([[0, 1], [1, 0]])) == 0.0


# --- cross-checks against independent implementations (continuous scores, no ties) --------

def test_hr_ndcg_mrr_agree_with_torchmetrics():
    # torchmetrics' reciprocal rank drops items with scores <= 0, so keep scores positive.
    scores = random_scores(20, 30, seed=0).sigmoid()
    targets = torch.randint(1, 31, (20,), generator=torch.Generator().manual_seed(1))
    ranks = M.target_ranks(scores, targets)
    for user in range(20):
        relevant = torch.zeros(30, dtype=torch.bool)
        relevant[targets[user] - 1] = True
        preds = scores[user, 1:]
        for k in (1, 5, 10):
            assert M.hr_at_k(ranks, k)[user] == pytest.approx(
                retrieval_hit_rate(preds, relevant, top_k=k).item())
            assert M.ndcg_at_k(ranks, k)[user] == pytest.approx(
                retrieval_normalized_dcg(preds, relevant, top_k=k).item(), abs=1e-6)
        assert M.mrr(ranks)[user] == pytest.approx(
            retrieval_reciprocal_rank(preds, relevant).item(), abs=1e-6)


def test_graded_ndcg_agrees_with_sklearn():
    scores = random_scores(15, 25, seed=2)
    gen = torch.Generator().manual_seed(3)
    relevance = torch.randint(0, 4, (15, 26), generator=gen).float()
    relevance[:, 1] += 1.0   # every user has some gain
    for k in (1, 5, 25):
        ours = M.graded_ndcg_at_k(scores, relevance, k)
        for user in range(15):
            theirs = ndcg_score(relevance[user:user + 1, 1:].numpy(),
                                scores[user:user + 1, 1:].numpy(), k=k)
            assert ours[user].item() == pytest.approx(theirs, abs=1e-6)


def test_entropy_agrees_with_scipy():
    gen = torch.Generator().manual_seed(4)
    item_category = torch.randint(0, 5, (41,), generator=gen)
    topk = M.topk_items(random_scores(10, 40, seed=5), 10)
    ours = M.entropy_at_k(topk, item_category)
    for user in range(10):
        counts = np.bincount(item_category[topk[user]].numpy(), minlength=5)
        assert ours[user].item() == pytest.approx(scipy_entropy(counts, base=2), abs=1e-6)


# --- sampled ranks ------------------------------------------------------------------------

@PROPERTY
@given(tied_scores(min_items=6), st.integers(0, 2**31 - 1))
def test_sampled_rank_is_never_worse_than_the_full_rank(case, seed):
    scores, targets = case
    other = targets % (scores.shape[1] - 1) + 1          # a seen item that is not the target
    history = torch.stack([other, torch.zeros_like(targets)], dim=1)
    gen = torch.Generator().manual_seed(seed)
    sampled = M.sampled_ranks(scores, targets, history, n_negatives=3, generator=gen)
    assert (sampled <= M.target_ranks(scores, targets, history)).all()


def test_negatives_never_include_the_history_or_the_target():
    # Items 1-3 (history) outscore the target 4; items 5-6 (the only allowed ones) do not.
    scores = t([[0.0, 9.0, 9.0, 9.0, 0.5, 0.1, 0.2]]).repeat(50, 1)
    targets = torch.full((50,), 4)
    history = t([[1, 2, 3]]).repeat(50, 1)
    ranks = M.sampled_ranks(scores, targets, history, n_negatives=2,
                            generator=torch.Generator().manual_seed(0))
    assert (ranks == 1).all()


def test_every_sampled_negative_that_outscores_the_target_counts():
    scores = t([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]).repeat(10, 1)
    ranks = M.sampled_ranks(scores, torch.full((10,), 1), n_negatives=3,
                            generator=torch.Generator().manual_seed(0))
    assert (ranks == 4).all()


def test_negatives_are_drawn_uniformly():
    # Target 1 scores 0.5; half of the 100 other items score above it.
    row = torch.cat([t([0.0, 0.5]), torch.ones(50), torch.zeros(50)])
    scores = row.repeat(2000, 1)
    ranks = M.sampled_ranks(scores, torch.ones(2000, dtype=torch.long), n_negatives=10,
                            generator=torch.Generator().manual_seed(0))
    assert (ranks - 1).float().mean().item() == pytest.approx(5.0, abs=0.2)


def test_sampled_ranks_repeat_with_a_seeded_generator():
    scores = random_scores(64, 200, seed=6)
    targets = torch.randint(1, 201, (64,), generator=torch.Generator().manual_seed(7))
    run = [M.sampled_ranks(scores, targets, n_negatives=20,
                           generator=torch.Generator().manual_seed(seed)) for seed in (0, 0, 1)]
    assert torch.equal(run[0], run[1])
    assert not torch.equal(run[0], run[2])


def test_evaluate_sampled_is_optimistic_compared_with_full_ranking():
    scores = random_scores(100, 300, seed=8)
    targets = torch.randint(1, 301, (100,), generator=torch.Generator().manual_seed(9))
    full = M.evaluate(scores, targets, ks=(10,))
    sampled = M.evaluate_sampled(scores, targets, n_negatives=50, ks=(10,),
                                 generator=torch.Generator().manual_seed(0))
    assert list(sampled) == list(full)
    assert all(sampled[key] >= full[key] for key in full)


def test_the_sampled_rank_distribution_is_scipys_hypergeometric():
    from scipy.stats import hypergeom
    scores = random_scores(20, 120, seed=13)
    targets = torch.randint(1, 121, (20,), generator=torch.Generator().manual_seed(14))
    history = torch.randint(0, 121, (20, 15), generator=torch.Generator().manual_seed(15))
    p = M.sampled_rank_distribution(scores, targets, history, n_negatives=30)
    full = M.target_ranks(scores, targets, history)
    repeated = M.repeated_targets(history, targets)
    pool = torch.isfinite(M.mask_history(scores, history)).sum(1) - 1 + repeated.long()
    by_scipy = hypergeom.pmf(np.arange(31)[None], pool.numpy()[:, None], (full - 1).numpy()[:, None], 30)
    by_scipy[repeated.numpy()] = np.eye(31)[30]                  # a masked target: all 30 beat it
    assert repeated.any() and not repeated.all()
    assert p.shape == (20, 31)
    np.testing.assert_allclose(p.numpy(), by_scipy, atol=1e-10)
    np.testing.assert_allclose(p.sum(1).numpy(), 1.0, atol=1e-10)


def test_the_sampled_rank_distribution_predicts_the_mean_of_many_draws():
    scores = random_scores(1, 80, seed=16).repeat(4000, 1)
    targets = torch.full((4000,), 7)
    p = M.sampled_rank_distribution(scores[:1], targets[:1], n_negatives=10)[0]
    ranks = M.sampled_ranks(scores, targets, n_negatives=10, generator=torch.Generator().manual_seed(0))
    expected_hr5 = p[:5].sum().item()
    assert M.hr_at_k(ranks, 5).float().mean().item() == pytest.approx(expected_hr5, abs=4 * math.sqrt(
        expected_hr5 * (1 - expected_hr5) / 4000) + 1e-9)


def test_with_more_negatives_than_candidates_the_sampled_rank_is_the_full_rank():
    scores = t([[0.0, 0.3, 0.9, 0.1, 0.8, -math.inf]])     # item 5 scores -inf: it never beats the target
    p = M.sampled_rank_distribution(scores, t([1]), n_negatives=50)
    assert p.shape == (1, 51)
    assert p[0, 2].item() == pytest.approx(1.0)            # items 2 and 4 beat item 1: rank 3, surely
    assert M.target_ranks(scores, t([1])).item() == 3


def test_the_sampled_rank_distribution_refuses_a_bad_count():
    with pytest.raises(ValueError, match="n_negatives"):
        M.sampled_rank_distribution(random_scores(2, 10, seed=0), t([1, 2]), n_negatives=0)


# --- devices ------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metrics_run_on_the_input_device():
    scores = random_scores(8, 50, seed=10)
    targets = torch.randint(1, 51, (8,), generator=torch.Generator().manual_seed(11))
    history = torch.randint(0, 51, (8, 5), generator=torch.Generator().manual_seed(12))
    ranks = M.target_ranks(scores.cuda(), targets.cuda(), history.cuda())
    assert ranks.device.type == "cuda"
    assert torch.equal(ranks.cpu(), M.target_ranks(scores, targets, history))
    sampled = M.sampled_ranks(scores.cuda(), targets.cuda(), history.cuda(), n_negatives=10,
                              generator=torch.Generator().manual_seed(0))
    assert sampled.device.type == "cuda"
    relevance = torch.rand(8, 51)
    assert torch.allclose(M.graded_ndcg_at_k(scores.cuda(), relevance.cuda(), 10).cpu(),
                          M.graded_ndcg_at_k(scores, relevance, 10))


# --- bad inputs: each error says what was wrong and how to fix it -------------------------

def test_k_below_1_is_rejected():
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        M.hr_at_k(t([1, 2]), 0)


def test_k_larger_than_the_catalogue_is_rejected():
    with pytest.raises(ValueError, match="larger than the number of items I=3"):
        M.topk_items(torch.rand(2, 4), 4)


def test_1d_scores_are_rejected():
    with pytest.raises(ValueError, match=r"scores must be 2-D \(B, I \+ 1\)"):
        M.target_ranks(torch.rand(5), t([1]))


def test_integer_scores_are_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        M.target_ranks(torch.ones(2, 5, dtype=torch.long), t([1, 2]))


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="scores contain NaN: check the model's output"):
        M.target_ranks(t([[0.0, math.nan, 1.0]]), t([1]))


def test_padding_target_is_rejected():
    with pytest.raises(ValueError, match=r"targets must be item ids in \[1, I\] = \[1, 20\]"):
        M.target_ranks(torch.rand(2, 21), t([0, 3]))


def test_target_beyond_the_catalogue_is_rejected():
    with pytest.raises(ValueError, match="0 is padding"):
        M.evaluate(torch.rand(2, 21), t([21, 3]))


def test_float_targets_are_rejected():
    with pytest.raises(TypeError, match="targets must be an integer tensor"):
        M.target_ranks(torch.rand(2, 5), t([1.0, 2.0]))


def test_targets_with_the_wrong_number_of_rows_are_rejected():
    with pytest.raises(ValueError, match="targets has 3 rows but scores has 4"):
        M.target_ranks(torch.rand(4, 6), t([1, 2, 3]))


def test_history_with_the_wrong_number_of_rows_is_rejected():
    with pytest.raises(ValueError, match="history has 3 rows but there are 4"):
        M.mask_history(torch.rand(4, 6), torch.ones(3, 2, dtype=torch.long))


def test_history_ids_beyond_the_catalogue_are_rejected():
    with pytest.raises(ValueError, match="history must hold item ids"):
        M.target_ranks(torch.rand(1, 6), t([1]), history=t([[7]]))


def test_ranks_below_1_are_rejected():
    with pytest.raises(ValueError, match="ranks must be 1-based"):
        M.ndcg_at_k(t([0, 2]), 10)


def test_too_few_items_to_sample_from_is_an_error():
    scores = torch.rand(3, 21)
    history = torch.zeros(3, 9, dtype=torch.long)
    history[2] = torch.arange(2, 11)        # user 2 has 20 - 1 - 9 = 10 items left
    with pytest.raises(ValueError, match="n_negatives=50 but user 2 has only 10 items left"):
        M.sampled_ranks(scores, t([1, 1, 1]), history, n_negatives=50)


def test_relevance_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="relevance must have the shape of scores"):
        M.recall_at_k(torch.rand(2, 6), torch.ones(2, 5), 3)


def test_negative_relevance_is_rejected():
    with pytest.raises(ValueError, match="relevance must be >= 0"):
        M.graded_ndcg_at_k(torch.rand(1, 4), t([[0.0, 1.0, -1.0, 0.0]]), 2)


def test_recall_for_a_user_without_relevant_items_is_an_error():
    with pytest.raises(ValueError, match="no relevant item"):
        M.recall_at_k(torch.rand(2, 5), t([[0.0, 1, 0, 0, 0], [1.0, 0, 0, 0, 0]]), 2)


def test_graded_ndcg_with_zero_idcg_is_an_error():
    with pytest.raises(ValueError, match="no positive gain"):
        M.graded_ndcg_at_k(torch.rand(1, 4), torch.zeros(1, 4), 2)


def test_topk_with_padding_ids_is_rejected():
    with pytest.raises(ValueError, match="0 is padding and is never recommended"):
        M.coverage(t([[0, 1]]), n_items=5)


def test_codes_outside_the_codebook_are_rejected():
    with pytest.raises(ValueError, match=r"codes must be indices below the codebook size 8"):
        M.perplexity(t([0, 3, 8]), 8)


@pytest.mark.parametrize("call, error, phrase", [
    (lambda: M.check_codes(t([0.0, 1.0])), TypeError, "integer tensor"),
    (lambda: M.check_codes(t([0, -1])), ValueError, ">= 0, got -1"),
    (lambda: M.check_codes(t([1, 2]), levels=True), ValueError, "2-D \\(items, levels\\)"),
    (lambda: M.check_codes(t([[0, 4]]), [5, 4], levels=True), ValueError, "below the codebook"),
    (lambda: M.check_codes(t([[0, 1]]), [5, 4, 3], levels=True), ValueError, "one codebook size"),
    (lambda: M.check_codes(torch.zeros(0, dtype=torch.long)), ValueError, "empty"),
])
def test_the_one_codes_validator_names_what_is_wrong(call, error, phrase):
    with pytest.raises(error, match=phrase):
        call()


def test_codes_validator_accepts_removed_tokens_only_when_asked_and_checks_each_level():
    codes = t([[0, -1], [4, 3]])
    assert torch.equal(M.check_codes(codes, [5, 4], levels=True, allow_missing=True), codes)
    with pytest.raises(ValueError, match="variable-length"):
        M.check_codes(codes, [5, 4], levels=True)


def test_all_zero_counts_have_no_gini():
    with pytest.raises(ValueError, match="counts are all zero"):
        M.gini(torch.zeros(4))


def test_one_dimensional_semantic_ids_are_rejected():
    with pytest.raises(ValueError, match=r"ids must be 2-D \(N, L\)"):
        M.collision_rate(t([1, 2, 3]))


def test_entropy_base_1_is_rejected():
    with pytest.raises(ValueError, match="base must be a number > 0 and != 1"):
        M.entropy_at_k(t([[1, 2]]), t([0, 0, 1]), base=1)


def test_non_tensor_scores_are_rejected():
    with pytest.raises(TypeError, match="scores must be a torch.Tensor"):
        M.target_ranks([[0.0, 1.0]], t([1]))


# --- the evaluation contract: ranked lists and the one summary -----------------------------

@st.composite
def ranked_lists(draw):
    """(topk (B, K) distinct item ids with some empty 0 slots at the end, targets (B,),
    history (B, T), n_items)."""
    n_items = draw(st.integers(3, 12))
    n_users = draw(st.integers(1, 4))
    k = draw(st.integers(1, n_items))
    rows, targets, histories = [], [], []
    for _ in range(n_users):
        items = draw(st.permutations(list(range(1, n_items + 1))))
        filled = draw(st.integers(0, k))
        rows.append(list(items[:filled]) + [0] * (k - filled))
        targets.append(draw(st.integers(1, n_items)))
        histories.append(draw(st.lists(st.integers(0, n_items), min_size=2, max_size=2)))
    return t(rows), t(targets), t(histories), n_items


@PROPERTY
@given(ranked_lists())
def test_ranks_from_a_list_equal_ranks_of_the_score_matrix_the_list_stands_for(case):
    # An independent route: write the list as scores (K, K - 1, ..., 1 for the listed items,
    # 0 for every other item) and rank the targets with target_ranks.
    topk, targets, history, n_items = case
    scores = torch.zeros(len(topk), n_items + 1)
    for row, items in enumerate(topk.tolist()):
        for position, item in enumerate(items):
            if item:
                scores[row, item] = len(items) - position
    # mask_history masks history items, but a listed history item is still listed: keep the
    # comparison to lists without history items, as a recommender removes them.
    listed_seen = [set(r) & set(h) - {0} for r, h in zip(topk.tolist(), history.tolist())]
    keep = t([not s for s in listed_seen])
    expected = M.target_ranks(scores, targets, history)[keep]
    assert torch.equal(M.ranks_from_topk(topk, targets, n_items, history)[keep], expected)
    assert torch.equal(M.ranks_from_topk(topk, targets, n_items), M.target_ranks(scores, targets))


def test_a_target_outside_the_list_ranks_last_among_the_unmasked_items():
    topk = t([[4, 5, 0]])
    assert M.ranks_from_topk(topk, t([2]), n_items=6).item() == 6
    # history 4 and 6 are masked: 2 ranks last of the 4 candidates 1, 2, 3, 5
    assert M.ranks_from_topk(topk, t([2]), 6, history=t([[0, 4, 6]])).item() == 4
    # a target that was seen is masked with the history: rank I + 1, even if listed
    assert M.ranks_from_topk(t([[2, 5, 0]]), t([2]), 6, history=t([[0, 4, 6, 2]])).item() == 7
    assert M.ranks_from_topk(topk, t([5]), 6).item() == 2


def test_ranks_from_topk_rejects_bad_lists():
    with pytest.raises(ValueError, match="item ids in \\[1, 5\\]"):
        M.ranks_from_topk(t([[6, 1]]), t([1]), 5)
    with pytest.raises(ValueError, match="only 2 items"):
        M.ranks_from_topk(t([[1, 2, 0]]), t([1]), 2)
    with pytest.raises(ValueError, match="one per row of topk"):
        M.ranks_from_topk(t([[1, 2]]), t([1, 2]), 5)
    with pytest.raises(TypeError, match="integer tensor"):
        M.ranks_from_topk(t([[1.0, 2.0]]), t([1]), 5)


def test_summarise_reports_hr_ndcg_and_mrr_from_ranks_by_hand():
    out = M.summarise(t([1, 3, 20]), ks=(1, 10))
    assert out["HR@1"] == pytest.approx(1 / 3)
    assert out["HR@10"] == pytest.approx(2 / 3)
    assert out["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert out["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 20) / 3)
    assert list(out) == ["HR@1", "NDCG@1", "HR@10", "NDCG@10", "MRR"]


def test_summarise_rejects_empty_inputs():
    with pytest.raises(ValueError, match="ks is empty"):
        M.summarise(t([1]), ks=())
    with pytest.raises(ValueError, match="no user"):
        M.summarise(torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="1-based"):
        M.summarise(t([0, 1]))


# --- graded relevance from events -----------------------------------------------------------

GAINS = {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": 5.0}


def test_graded_relevance_keeps_the_largest_gain_per_user_and_item():
    rel = M.graded_relevance(t([0, 0, 0, 1, 1]), t([3, 3, 2, 3, 1]),
                             ["click", "conversion", "exposure", "like", "exposure"],
                             n_rows=2, n_items=4, gains=GAINS)
    assert rel.dtype == torch.float64 and rel.shape == (2, 5)
    assert rel.tolist() == [[0, 0, 0, 5, 0], [0, 0, 0, 1, 0]]


def test_graded_relevance_names_the_action_without_a_gain():
    with pytest.raises(ValueError, match="no gain for actions \\['share'\\]"):
        M.graded_relevance(t([0]), t([1]), ["share"], 1, 2, GAINS)
    with pytest.raises(ValueError, match="one length"):
        M.graded_relevance(t([0, 0]), t([1]), ["click"], 1, 2, GAINS)
    with pytest.raises(ValueError, match="0 is padding"):
        M.graded_relevance(t([0]), t([0]), ["click"], 1, 2, GAINS)


def test_count_entropy_refuses_an_all_zero_row_instead_of_returning_nan():
    with pytest.raises(ValueError, match="sums to 0"):
        M.count_entropy(t([[1.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=">= 0"):
        M.count_entropy(t([1.0, -1.0]))
    assert M.count_entropy(t([1.0, 1.0])).item() == pytest.approx(1.0)


def test_mask_history_without_a_history_masks_the_padding_column_only():
    scores = t([[5.0, 1.0, 2.0], [5.0, 3.0, 4.0]])
    assert M.mask_history(scores, None).tolist() == [[-math.inf, 1.0, 2.0], [-math.inf, 3.0, 4.0]]
