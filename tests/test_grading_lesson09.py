"""Exercise 09's checks (graded relevance, weighted NDCG@K, reciprocal rank, Entropy@K, BPR,
and the sampled-MRR measurement with its explanation): answers written by hand from the
definitions pass, so the checks' expected values agree with the definitions and not only with
`course_lib.metrics`; every named mistake fails on its case and is named by the hint line
(at least two per check); a right measurement passes whatever its random numbers and a
measurement of the wrong thing fails; each wrong explanation fails with its reason; a stub
is reported as unfinished."""
import math
from collections import Counter

import pytest
import torch

from course_lib import losses, metrics
from course_lib.grading import lesson09 as checks
from course_lib.grading import checks as grading_checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet


# --- the definitions, written by hand ---------------------------------------------------------

def relevance_by_hand(items, actions, n_items, alpha):
    gain = {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": alpha}
    w = [0.0] * (n_items + 1)
    for item, action in zip(items, actions):
        w[item] = max(w[item], gain[action])
    return torch.tensor(w)


def _dcg(gains):
    return sum(g / math.log2(position + 2) for position, g in enumerate(gains))


def weighted_ndcg_by_hand(scores, relevance, k, ideal_cut=True):
    out = []
    for s, w in zip(scores.tolist(), relevance.tolist()):
        ranked = sorted(range(1, len(s)), key=lambda i: -s[i])[:k]        # item ids, best first
        ideal = sorted(w[1:], reverse=True)[:k if ideal_cut else None]
        out.append(_dcg([w[i] for i in ranked]) / _dcg(ideal))
    return torch.tensor(out)


def reciprocal_rank_by_counting(scores, targets):
    out = []
    for s, target in zip(scores.tolist(), targets.tolist()):
        rank = 1 + sum(1 for j in range(1, len(s)) if j != target and s[j] >= s[target])
        out.append(1 / rank)
    return torch.tensor(out)


def entropy_by_counting(topk, item_category):
    out = []
    for row in topk.tolist():
        counts = Counter(int(item_category[i]) for i in row)
        out.append(-sum(c / len(row) * math.log2(c / len(row)) for c in counts.values()))
    return torch.tensor(out)


def bpr_by_hand(pos_scores, neg_scores):
    if neg_scores.dim() != 2:
        raise ValueError("neg_scores must be (B, N)")
    terms = [-_log_sigmoid(p - n) for p, row in zip(pos_scores.tolist(), neg_scores.tolist())
             for n in row]
    return torch.tensor(sum(terms) / len(terms))


def _log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


BY_HAND = {
    checks.check_relevance_from_events: relevance_by_hand,
    checks.check_weighted_ndcg_at_k: weighted_ndcg_by_hand,
    checks.check_reciprocal_rank: reciprocal_rank_by_counting,
    checks.check_entropy_at_k: entropy_by_counting,
    checks.check_bpr_loss: bpr_by_hand,
}


@pytest.mark.parametrize("check", BY_HAND, ids=lambda c: c.__name__)
def test_an_answer_written_from_the_definition_passes(check):
    check(BY_HAND[check])


def test_the_library_references_pass(capsys):
    checks.check_relevance_from_events(checks.relevance_from_events)
    checks.check_weighted_ndcg_at_k(metrics.graded_ndcg_at_k)
    checks.check_reciprocal_rank(lambda s, t: metrics.mrr(metrics.target_ranks(s, t)))
    checks.check_entropy_at_k(metrics.entropy_at_k)
    checks.check_bpr_loss(losses.bpr_loss)
    assert capsys.readouterr().out.count("\u2713") == 6          # bpr: cases + the error


def test_the_reference_relevance_is_one_row_of_the_library_graded_relevance():
    items, actions = [4, 2, 4], ["click", "like", "conversion"]
    expected = metrics.graded_relevance(torch.zeros(3, dtype=torch.long), torch.tensor(items),
                                        actions, 1, 5, checks.action_gains(3.0))
    assert torch.equal(checks.relevance_from_events(items, actions, 5, 3.0), expected[0])
    assert checks.relevance_from_events(items, actions, 5, 3.0).tolist() == [0, 0, 1, 0, 3, 0]


def test_the_reference_relevance_names_an_unknown_action():
    with pytest.raises(ValueError, match="share"):
        checks.relevance_from_events([1], ["share"], 3, 2.0)


# --- plausible mistakes: each fails on a named case, and the hint names it ----------------------

def relevance_last_event_wins(items, actions, n_items, alpha):
    gain = {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": alpha}
    w = torch.zeros(n_items + 1, dtype=torch.float64)
    for item, action in zip(items, actions):
        w[item] = gain[action]
    return w


def relevance_first_event_wins(items, actions, n_items, alpha):
    gain = {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": alpha}
    w = {}
    for item, action in zip(items, actions):
        w.setdefault(item, gain[action])
    return torch.tensor([w.get(i, 0.0) for i in range(n_items + 1)])


def relevance_summed_over_events(items, actions, n_items, alpha):
    gain = {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": alpha}
    w = torch.zeros(n_items + 1, dtype=torch.float64)
    for item, action in zip(items, actions):
        w[item] += gain[action]
    return w


def relevance_without_likes(items, actions, n_items, alpha):
    return relevance_by_hand(items, ["exposure" if a == "like" else a for a in actions],
                             n_items, alpha)


def relevance_ignoring_alpha(items, actions, n_items, alpha):
    return relevance_by_hand(items, actions, n_items, 1.0)


def relevance_counting_exposures(items, actions, n_items, alpha):
    return relevance_by_hand(items, ["click" if a == "exposure" else a for a in actions],
                             n_items, alpha)


def relevance_at_item_minus_one(items, actions, n_items, alpha):
    return torch.cat([relevance_by_hand(items, actions, n_items, alpha)[1:], torch.zeros(1)])


def relevance_without_padding_entry(items, actions, n_items, alpha):
    return relevance_by_hand(items, actions, n_items, alpha)[1:]


def ndcg_with_exponential_gains(scores, relevance, k):
    return weighted_ndcg_by_hand(scores, 2 ** relevance - 1, k)       # Burges' 2^w - 1, not w


def ndcg_ideal_over_every_item(scores, relevance, k):
    return weighted_ndcg_by_hand(scores, relevance, k, ideal_cut=False)


def ndcg_with_binary_gains(scores, relevance, k):
    return weighted_ndcg_by_hand(scores, (relevance > 0).float(), k)


def ndcg_ideal_of_the_retrieved_items(scores, relevance, k):
    out = []
    for s, w in zip(scores.tolist(), relevance.tolist()):
        ranked = sorted(range(1, len(s)), key=lambda i: -s[i])[:k]
        found = [w[i] for i in ranked]
        out.append(_dcg(found) / _dcg(sorted(found, reverse=True)))
    return torch.tensor(out)


def ndcg_ranking_the_padding_column(scores, relevance, k):
    pad = torch.zeros(len(scores), 1)
    return weighted_ndcg_by_hand(torch.cat([pad, scores], 1), torch.cat([pad, relevance], 1), k)


def ndcg_discount_one_rank_off(scores, relevance, k):
    def dcg(gains):
        return sum(g / math.log2(position + 3) for position, g in enumerate(gains))
    out = []
    for s, w in zip(scores.tolist(), relevance.tolist()):
        ranked = sorted(range(1, len(s)), key=lambda i: -s[i])[:k]
        out.append(dcg([w[i] for i in ranked]) / dcg(sorted(w[1:], reverse=True)[:k]))
    return torch.tensor(out)


def ndcg_lowest_scores_first(scores, relevance, k):
    return weighted_ndcg_by_hand(-scores, relevance, k)


def dcg_not_normalised(scores, relevance, k):
    out = []
    for s, w in zip(scores.tolist(), relevance.tolist()):
        ranked = sorted(range(1, len(s)), key=lambda i: -s[i])[:k]
        out.append(_dcg([w[i] for i in ranked]))
    return torch.tensor(out)


def ndcg_natural_log_in_the_dcg_only(scores, relevance, k, idcg_base=2.0):
    out = []
    for s, w in zip(scores.tolist(), relevance.tolist()):
        ranked = sorted(range(1, len(s)), key=lambda i: -s[i])[:k]
        dcg = sum(w[i] / math.log(position + 2) for position, i in enumerate(ranked))
        ideal = sorted(w[1:], reverse=True)[:k]
        idcg = sum(g / math.log(position + 2, idcg_base) for position, g in enumerate(ideal))
        out.append(dcg / idcg)
    return torch.tensor(out)


def ndcg_natural_log_in_both(scores, relevance, k):
    return ndcg_natural_log_in_the_dcg_only(scores, relevance, k, idcg_base=math.e)


def ndcg_mean_over_users(scores, relevance, k):
    return weighted_ndcg_by_hand(scores, relevance, k).mean()


def rr_optimistic_ties(scores, targets):
    rows = torch.arange(len(targets))
    return 1 / (1 + (scores[:, 1:] > scores[rows, targets][:, None]).sum(1)).double()


def rr_counting_the_padding_column(scores, targets):
    rows = torch.arange(len(targets))
    return 1 / (scores >= scores[rows, targets][:, None]).sum(1).double()


def rr_average_over_ties(scores, targets):
    rows = torch.arange(len(targets))
    target = scores[rows, targets][:, None]
    above = (scores[:, 1:] > target).sum(1)
    tied = (scores[:, 1:] == target).sum(1) - 1
    return 1 / (1 + above + tied / 2).double()


def rank_not_reciprocal(scores, targets):
    return 1 / reciprocal_rank_by_counting(scores, targets)


def rr_target_counted_against_itself(scores, targets):
    rows = torch.arange(len(targets))
    return 1 / (1 + (scores[:, 1:] >= scores[rows, targets][:, None]).sum(1)).double()


def rr_zero_based(scores, targets):
    return 1 / (1 / reciprocal_rank_by_counting(scores, targets) - 1)


def rr_lowest_scores_first(scores, targets):
    flipped = -scores
    flipped[:, 0] = scores[:, 0]
    return reciprocal_rank_by_counting(flipped, targets)


def rr_mean_over_users(scores, targets):
    return reciprocal_rank_by_counting(scores, targets).mean()


def entropy_of_the_distinct_categories(topk, item_category):
    return torch.tensor([math.log2(len(set(item_category[row].tolist()))) for row in topk])


def entropy_over_the_whole_catalogue(topk, item_category):
    return entropy_by_counting(torch.arange(1, len(item_category))[None].expand(len(topk), -1),
                               item_category)


def entropy_in_nats(topk, item_category):
    return entropy_by_counting(topk, item_category) * math.log(2)


def entropy_with_log10(topk, item_category):
    return entropy_by_counting(topk, item_category) * math.log10(2)


def entropy_normalised_by_log2_k(topk, item_category):
    return entropy_by_counting(topk, item_category) / math.log2(topk.shape[1])


def entropy_without_the_minus_sign(topk, item_category):
    return -entropy_by_counting(topk, item_category)


def bpr_with_a_naive_log_sigmoid(pos_scores, neg_scores):
    return -torch.log(torch.sigmoid(pos_scores[:, None] - neg_scores)).mean()


def bpr_with_the_margin_reversed(pos_scores, neg_scores):
    return torch.nn.functional.softplus(pos_scores[:, None] - neg_scores).mean()   # s_neg - s_pos


def bpr_summed_over_pairs(pos_scores, neg_scores):
    return losses.bpr_loss(pos_scores, neg_scores) * neg_scores.numel()


def bpr_summed_over_negatives(pos_scores, neg_scores):
    return -torch.nn.functional.logsigmoid(pos_scores[:, None] - neg_scores).sum(1).mean()


def bpr_without_the_minus_sign(pos_scores, neg_scores):
    return -losses.bpr_loss(pos_scores, neg_scores)


def bpr_in_base_2(pos_scores, neg_scores):
    return -torch.log2(torch.sigmoid(pos_scores[:, None] - neg_scores.double())).mean()


MISTAKES = [            # (check, a learner's wrong answer, the case it fails on, the hint)
    (checks.check_relevance_from_events, relevance_last_event_wins,
     "conversion then click keeps the conversion", "the last event's gain"),
    (checks.check_relevance_from_events, relevance_first_event_wins,
     "click then conversion of the same item", "the first event's gain"),
    (checks.check_relevance_from_events, relevance_summed_over_events,
     "click then conversion of the same item", "the gains summed"),
    (checks.check_relevance_from_events, relevance_without_likes, "like counts as a click",
     "a like worth 0"),
    (checks.check_relevance_from_events, relevance_ignoring_alpha,
     "a conversion is worth alpha", "a conversion worth 1"),
    (checks.check_relevance_from_events, relevance_counting_exposures,
     "click then conversion of the same item", "an exposure worth 1"),
    (checks.check_relevance_from_events, relevance_at_item_minus_one,
     "a conversion is worth alpha", "gains written at index item - 1"),
    (checks.check_relevance_from_events, relevance_without_padding_entry,
     "a conversion is worth alpha", "without the padding entry"),
    (checks.check_weighted_ndcg_at_k, ndcg_with_exponential_gains,
     "worked example of lesson 09", "exponential gains"),
    (checks.check_weighted_ndcg_at_k, ndcg_ideal_over_every_item, "random 0",
     "an IDCG over every relevant item"),
    (checks.check_weighted_ndcg_at_k, ndcg_with_binary_gains, "worked example of lesson 09",
     "binary gains"),
    (checks.check_weighted_ndcg_at_k, ndcg_ideal_of_the_retrieved_items,
     "worked example of lesson 09", "the K items you retrieved"),
    (checks.check_weighted_ndcg_at_k, ndcg_ranking_the_padding_column,
     "the padding column is never ranked", "the padding column 0 ranked"),
    (checks.check_weighted_ndcg_at_k, ndcg_discount_one_rank_off,
     "worked example of lesson 09", r"one rank off"),
    (checks.check_weighted_ndcg_at_k, ndcg_lowest_scores_first, "ideal order gives 1",
     "the lowest scores ranked first"),
    (checks.check_weighted_ndcg_at_k, dcg_not_normalised, "worked example of lesson 09",
     "not divided by IDCG"),
    (checks.check_weighted_ndcg_at_k, ndcg_natural_log_in_the_dcg_only,
     "worked example of lesson 09", r"different log bases.*ln 2 = 0.693"),
    (checks.check_weighted_ndcg_at_k, ndcg_mean_over_users, "worked example of lesson 09",
     r"the mean over users .*return one value per user"),
    (checks.check_reciprocal_rank, rr_optimistic_ties, "tied with two others",
     "optimistic ties"),
    (checks.check_reciprocal_rank, rr_counting_the_padding_column, "padding column ignored",
     "the padding column 0 ranked"),
    (checks.check_reciprocal_rank, rr_average_over_ties, "tied with two others",
     "sharing the rank"),
    (checks.check_reciprocal_rank, rank_not_reciprocal, "padding column ignored",
     r"the rank itself"),
    (checks.check_reciprocal_rank, rr_target_counted_against_itself, "best item",
     "a rank one too large"),
    (checks.check_reciprocal_rank, rr_zero_based, "best item", "a 0-based rank"),
    (checks.check_reciprocal_rank, rr_lowest_scores_first, "best item",
     "the lowest scores ranked first"),
    (checks.check_reciprocal_rank, rr_mean_over_users, "best item", "the mean over users"),
    (checks.check_entropy_at_k, entropy_of_the_distinct_categories, "categories 3/1/1",
     "the number of distinct categories"),
    (checks.check_entropy_at_k, entropy_over_the_whole_catalogue, "random 0",
     "the whole catalogue"),
    (checks.check_entropy_at_k, entropy_in_nats, "categories 3/1/1",
     r"nats .*a ratio of ln 2"),
    (checks.check_entropy_at_k, entropy_with_log10, "categories 3/1/1", "log10"),
    (checks.check_entropy_at_k, entropy_normalised_by_log2_k, "categories 3/1/1",
     "normalised entropy"),
    (checks.check_entropy_at_k, entropy_without_the_minus_sign, "categories 3/1/1",
     "without its minus sign"),
    (checks.check_bpr_loss, bpr_with_a_naive_log_sigmoid, "a 100-point gap",
     r"use F.logsigmoid"),
    (checks.check_bpr_loss, bpr_with_the_margin_reversed, "one pair", "the margin reversed"),
    (checks.check_bpr_loss, bpr_summed_over_pairs, "equal scores give ln 2",
     "the sum over the B \* N pairs"),
    (checks.check_bpr_loss, bpr_summed_over_negatives, "two positives, three negatives",
     "each positive's N terms summed"),
    (checks.check_bpr_loss, bpr_without_the_minus_sign, "one pair", "without its minus sign"),
    (checks.check_bpr_loss, bpr_in_base_2, "one pair", r"log base 2.*1 / ln 2"),
]


@pytest.mark.parametrize("check, wrong, case, hint", MISTAKES,
                         ids=lambda x: getattr(x, "__name__", None) or "")
def test_a_plausible_mistake_fails_on_a_named_case_and_is_named(check, wrong, case, hint):
    with pytest.raises(CheckFailed, match=f"(?s)wrong answer on case '{case}.*this looks like "
                                          f".*{hint}"):
        check(wrong)


def test_every_check_rejects_at_least_two_named_mistakes():
    named = Counter(check for check, *_ in MISTAKES)
    assert set(named) == set(BY_HAND) and min(named.values()) >= 2


def test_ndcg_with_the_natural_log_in_both_dcg_and_idcg_passes():
    """NDCG is a ratio of two sums with the same discounts: changing the log's base scales both
    by the same factor, so NDCG does not depend on it (only DCG does)."""
    checks.check_weighted_ndcg_at_k(ndcg_natural_log_in_both)


def test_bpr_that_accepts_negatives_without_their_axis_fails():
    def broadcasts(pos_scores, neg_scores):
        return -torch.nn.functional.logsigmoid(pos_scores[:, None] - neg_scores.reshape(
            len(pos_scores), -1)).mean()
    with pytest.raises(CheckFailed, match="expected ValueError"):
        checks.check_bpr_loss(broadcasts)


def test_the_failing_case_can_be_rerun():
    with pytest.raises(CheckFailed, match="rerun it"):
        checks.check_reciprocal_rank(rr_optimistic_ties)
    assert grading_checks.last_failure.case == "tied with two others"
    assert torch.equal(rr_optimistic_ties(*grading_checks.last_failure.args), torch.tensor([0.5]))


# --- predict, measure, interpret: sampled versus full ranking ----------------------------------

@pytest.fixture(scope="module")
def ranking():
    """Scores (B, I + 1) of 300 users over 250 items with a 20-item history each (-inf, as
    `metrics.mask_history` leaves them) and a target that is not in it."""
    gen = torch.Generator().manual_seed(0)
    n_users, n_items = 300, 250
    order = torch.rand(n_users, n_items, generator=gen).argsort(1) + 1           # (B, I)
    history, targets = order[:, :20], order[:, 20]
    quality = torch.rand(n_users, 1, generator=gen)                              # how good a model
    scores = torch.randn(n_users, n_items + 1, generator=gen)
    scores[torch.arange(n_users), targets] += 3 * quality[:, 0]
    return metrics.mask_history(scores, history), targets, history


def sampled_mrr(scores, targets, history, seed, n_negatives=100, exclude_target=True):
    """One draw of the sampled MRR written as a learner would: every item outside the target
    and its sampled negatives gets -inf, then the reciprocal rank of the target."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(len(targets))
    pool = torch.isfinite(scores)
    if exclude_target:
        pool[rows, targets] = False
    keys = torch.rand(scores.shape, generator=gen).masked_fill(~pool, -1.0)
    negatives = keys.topk(n_negatives, dim=1).indices                            # (B, n)
    kept = torch.full_like(scores, -math.inf)
    kept.scatter_(1, negatives, scores.gather(1, negatives))
    kept[rows, targets] = scores[rows, targets]
    if not exclude_target:                  # the target drawn as its own negative: a tie
        drawn_twice = (negatives == targets[:, None]).any(1)
        return (1 / (1 / reciprocal_rank_by_counting(kept, targets) + drawn_twice)).mean()
    return reciprocal_rank_by_counting(kept, targets).mean()


def test_the_expected_sampled_mrr_is_the_mean_of_many_draws(ranking):
    expected, spread = checks.expected_sampled_mrr(*ranking)
    n_draws = 100                                               # all draws in one batch
    scores, targets, history = (x.repeat(n_draws, *[1] * (x.dim() - 1)) for x in ranking)
    ranks = metrics.sampled_ranks(scores, targets, history, n_negatives=100,
                                  generator=torch.Generator().manual_seed(0))
    draws = metrics.mrr(ranks).double().view(n_draws, -1).mean(dim=1)   # one MRR per draw
    assert abs(float(draws.mean()) - expected) < 4 * spread / math.sqrt(len(draws))
    assert 0.7 < float(draws.std()) / spread < 1.3


@pytest.mark.parametrize("seed", range(5))
def test_a_right_sampled_measurement_passes_whatever_its_random_numbers(ranking, seed):
    checks.check_sampled_mrr(lambda: sampled_mrr(*ranking, seed), *ranking)


def test_the_library_sampled_ranks_pass(ranking):
    def library():
        ranks = metrics.sampled_ranks(*ranking, n_negatives=100,
                                      generator=torch.Generator().manual_seed(7))
        return metrics.mrr(ranks).mean()
    checks.check_sampled_mrr(library, *ranking)


@pytest.mark.parametrize("measure", [
    lambda scores, targets, history: reciprocal_rank_by_counting(scores, targets).mean(),
    lambda scores, targets, history: sampled_mrr(scores, targets, history, 0,
                                                 exclude_target=False),
    lambda scores, targets, history: sampled_mrr(scores, targets, history, 0, n_negatives=20),
], ids=["the full ranking", "the target among its own negatives", "20 negatives, not 100"])
def test_a_measurement_of_the_wrong_thing_fails(ranking, measure):
    with pytest.raises(CheckFailed, match="(?s)outside the range.*full-ranking MRR is"):
        checks.check_sampled_mrr(lambda: measure(*ranking), *ranking)


def test_a_measurement_that_is_not_a_number_fails(ranking):
    with pytest.raises(CheckFailed, match="should be a number"):
        checks.check_sampled_mrr(lambda: "higher", *ranking)


def test_the_right_explanation_passes():
    checks.check_why_sampled_mrr_is_higher(lambda: "b")


@pytest.mark.parametrize("letter, reason", [("a", "pessimistic rule"), ("c", "n / M"),
                                            ("d", "no cut-off")])
def test_each_wrong_explanation_fails_with_its_reason(letter, reason):
    with pytest.raises(CheckFailed, match=f"\\({letter}\\) does not explain.*{reason}"):
        checks.check_why_sampled_mrr_is_higher(lambda: letter)


@pytest.mark.parametrize("check", BY_HAND, ids=lambda c: c.__name__)
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet):
        check(stub)


def test_unfinished_predict_measure_interpret_tasks_are_reported(ranking, stub):
    with pytest.raises(NotImplementedYet):
        checks.check_sampled_mrr(stub, *ranking)
    with pytest.raises(NotImplementedYet):
        checks.check_why_sampled_mrr_is_higher(stub)
