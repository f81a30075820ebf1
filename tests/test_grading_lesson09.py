"""Exercise 09's checks (graded relevance, weighted NDCG@K, reciprocal rank, Entropy@K, BPR):
answers written by hand from the definitions pass, so the checks' expected values agree with
the definitions and not only with `course_lib.metrics`; at least two plausible mistakes per
check fail; a stub is reported as unfinished."""
import math
from collections import Counter

import pytest
import torch

from course_lib import losses, metrics
from course_lib.grading import lesson09 as checks
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
    assert check(BY_HAND[check])


def test_the_library_references_pass(capsys):
    assert checks.check_relevance_from_events(checks.relevance_from_events)
    assert checks.check_weighted_ndcg_at_k(metrics.graded_ndcg_at_k)
    assert checks.check_reciprocal_rank(lambda s, t: metrics.mrr(metrics.target_ranks(s, t)))
    assert checks.check_entropy_at_k(metrics.entropy_at_k)
    assert checks.check_bpr_loss(losses.bpr_loss)
    assert capsys.readouterr().out.count("\u2705") == 6          # bpr: cases + the error


def test_the_reference_relevance_is_one_row_of_the_library_graded_relevance():
    items, actions = [4, 2, 4], ["click", "like", "conversion"]
    expected = metrics.graded_relevance(torch.zeros(3, dtype=torch.long), torch.tensor(items),
                                        actions, 1, 5, checks.action_gains(3.0))
    assert torch.equal(checks.relevance_from_events(items, actions, 5, 3.0), expected[0])
    assert checks.relevance_from_events(items, actions, 5, 3.0).tolist() == [0, 0, 1, 0, 3, 0]


def test_the_reference_relevance_names_an_unknown_action():
    with pytest.raises(ValueError, match="share"):
        checks.relevance_from_events([1], ["share"], 3, 2.0)


# --- plausible mistakes -------------------------------------------------------------------------

def relevance_last_event_wins(items, actions, n_items, alpha):
    gain = {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": alpha}
    w = torch.zeros(n_items + 1, dtype=torch.float64)
    for item, action in zip(items, actions):
        w[item] = gain[action]
    return w


def relevance_summed_over_events(items, actions, n_items, alpha):
    gain = {"exposure": 0.0, "click": 1.0, "like": 1.0, "conversion": alpha}
    w = torch.zeros(n_items + 1, dtype=torch.float64)
    for item, action in zip(items, actions):
        w[item] += gain[action]
    return w


def relevance_without_likes(items, actions, n_items, alpha):
    return relevance_by_hand(items, ["exposure" if a == "like" else a for a in actions],
                             n_items, alpha)


def ndcg_with_exponential_gains(scores, relevance, k):
    return weighted_ndcg_by_hand(scores, 2 ** relevance - 1, k)       # Burges' 2^w - 1, not w


def ndcg_ideal_over_every_item(scores, relevance, k):
    return weighted_ndcg_by_hand(scores, relevance, k, ideal_cut=False)


def ndcg_with_binary_gains(scores, relevance, k):
    return weighted_ndcg_by_hand(scores, (relevance > 0).float(), k)


def rr_optimistic_ties(scores, targets):
    rows = torch.arange(len(targets))
    return 1 / (1 + (scores[:, 1:] > scores[rows, targets][:, None]).sum(1)).double()


def rr_counting_the_padding_column(scores, targets):
    rows = torch.arange(len(targets))
    return 1 / (scores >= scores[rows, targets][:, None]).sum(1).double()


def entropy_of_the_distinct_categories(topk, item_category):
    return torch.tensor([math.log2(len(set(item_category[row].tolist()))) for row in topk])


def entropy_over_the_whole_catalogue(topk, item_category):
    return entropy_by_counting(torch.arange(1, len(item_category))[None].expand(len(topk), -1),
                               item_category)


def bpr_with_a_naive_log_sigmoid(pos_scores, neg_scores):
    return -torch.log(torch.sigmoid(pos_scores[:, None] - neg_scores)).mean()


def bpr_with_the_margin_reversed(pos_scores, neg_scores):
    return torch.nn.functional.softplus(pos_scores[:, None] - neg_scores).mean()   # s_neg - s_pos


def bpr_summed_over_pairs(pos_scores, neg_scores):
    return losses.bpr_loss(pos_scores, neg_scores) * neg_scores.numel()


@pytest.mark.parametrize("check, wrong, case", [
    (checks.check_relevance_from_events, relevance_last_event_wins,
     "conversion then click keeps the conversion"),
    (checks.check_relevance_from_events, relevance_summed_over_events,
     "click then conversion of the same item"),
    (checks.check_relevance_from_events, relevance_without_likes, "like counts as a click"),
    (checks.check_weighted_ndcg_at_k, ndcg_with_exponential_gains, "worked example of lesson 09"),
    (checks.check_weighted_ndcg_at_k, ndcg_ideal_over_every_item, "random 0"),
    (checks.check_weighted_ndcg_at_k, ndcg_with_binary_gains, "worked example of lesson 09"),
    (checks.check_reciprocal_rank, rr_optimistic_ties, "tied with two others"),
    (checks.check_reciprocal_rank, rr_counting_the_padding_column, "padding column ignored"),
    (checks.check_entropy_at_k, entropy_of_the_distinct_categories, "categories 3/1/1"),
    (checks.check_entropy_at_k, entropy_over_the_whole_catalogue, "random 0"),
    (checks.check_bpr_loss, bpr_with_a_naive_log_sigmoid, "a 100-point gap"),
    (checks.check_bpr_loss, bpr_with_the_margin_reversed, "one pair"),
    (checks.check_bpr_loss, bpr_summed_over_pairs, "equal scores give ln 2"),
], ids=lambda x: getattr(x, "__name__", None) or "")
def test_a_plausible_mistake_fails_on_a_named_case(check, wrong, case):
    with pytest.raises(CheckFailed, match=f"wrong answer on case '{case}"):
        check(wrong)


def test_entropy_in_nats_is_caught():
    with pytest.raises(CheckFailed, match="entropy_at_k: wrong answer"):
        checks.check_entropy_at_k(lambda topk, cat: metrics.entropy_at_k(topk, cat, base=math.e))


def test_bpr_that_accepts_negatives_without_their_axis_fails():
    def broadcasts(pos_scores, neg_scores):
        return -torch.nn.functional.logsigmoid(pos_scores[:, None] - neg_scores.reshape(
            len(pos_scores), -1)).mean()
    with pytest.raises(CheckFailed, match="expected ValueError"):
        checks.check_bpr_loss(broadcasts)


@pytest.mark.parametrize("check", BY_HAND, ids=lambda c: c.__name__)
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet):
        check(stub)
