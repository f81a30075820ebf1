"""Exercise 00's checks (split, target rank, HR@K, NDCG@K, the history mask, and the
predict-measure-interpret task on item-kNN without the mask): answers written by hand from the
definitions pass, so the checks' expected values agree with the definitions and not only with
the library; every check rejects plausible mistakes, names the failing case and says which
mistake it looks like; a stub is reported as unfinished."""
import math

import pytest
import torch

from course_lib import grading, metrics
from course_lib.grading import lesson00 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet

NEG_INF = float("-inf")


# --- the definitions, written by hand ---------------------------------------------------------

def split_by_hand(sequence):
    if len(sequence) < 3:
        raise ValueError(f"need at least 3 items, got {len(sequence)}")
    return list(sequence[:-2]), sequence[-2], sequence[-1]


def rank_by_counting(scores, target):
    s = scores.tolist()
    return 1 + sum(1 for j in range(1, len(s)) if j != target and s[j] >= s[target])


def hr_by_hand(ranks, k):
    return torch.tensor([1.0 if r <= k else 0.0 for r in ranks.tolist()])


def ndcg_by_hand(ranks, k):
    return torch.tensor([1 / math.log2(r + 1) if r <= k else 0.0 for r in ranks.tolist()])


def mask_by_hand(scores, history):
    """Row by row: column 0 and every non-padding history item to -inf."""
    out = scores.clone()
    for b, row in enumerate(history.tolist()):
        out[b, 0] = NEG_INF
        for item in row:
            if item > 0:
                out[b, item] = NEG_INF
    return out


def mask_with_padding_as_an_item(scores, history):
    """Scatter the whole history, its 0s included: they land on column 0, which is masked
    anyway. As right as filtering them out."""
    out = scores.scatter(1, history, NEG_INF)
    out[:, 0] = NEG_INF
    return out


def test_answers_written_from_the_definitions_pass_every_check(capsys):
    checks.check_split_sequence(split_by_hand)
    checks.check_target_rank(rank_by_counting)
    checks.check_hr_at_k(hr_by_hand)
    checks.check_ndcg_at_k(ndcg_by_hand)
    checks.check_mask_history(mask_by_hand)
    assert capsys.readouterr().out.count("\u2713") == 6       # split: cases + the error


def test_masking_the_historys_padding_as_an_item_is_fine():
    checks.check_mask_history(mask_with_padding_as_an_item)


def test_the_library_passes_the_history_mask_check():
    checks.check_mask_history(metrics.mask_history)


def test_the_notebook_calls_the_checks_through_the_package():
    for name in checks.__all__:
        assert getattr(grading, name) is getattr(checks, name), name
        assert name in grading.__all__, name


# --- plausible mistakes, each failing on a named case with its hint ----------------------------

def split_swapped(sequence):
    return list(sequence[:-2]), sequence[-1], sequence[-2]


def split_keeping_valid_in_train(sequence):
    return list(sequence[:-1]), sequence[-2], sequence[-1]


def split_from_the_front(sequence):
    if len(sequence) < 3:
        raise ValueError("too short")
    return list(sequence[2:]), sequence[0], sequence[1]


def rank_with_optimistic_ties(scores, target):
    return 1 + int((scores[1:] > scores[target]).sum())


def rank_from_a_stable_sort(scores, target):
    order = torch.argsort(scores[1:], descending=True, stable=True) + 1
    return int((order == target).nonzero()[0, 0]) + 1


def rank_with_the_padding_column(scores, target):
    return int((scores >= scores[target]).sum())      # column 0 and the target itself


def rank_from_zero(scores, target):
    return rank_by_counting(scores, target) - 1


def rank_counting_the_target(scores, target):
    return 1 + int((scores[1:] >= scores[target]).sum())


def rank_reversed(scores, target):
    others = torch.cat([scores[1:target], scores[target + 1:]])
    return 1 + int((others <= scores[target]).sum())


def ndcg_natural_log(ranks, k):
    return (ranks <= k).float() / torch.log(ranks.float() + 1)


def ndcg_log10_and_strict_cutoff(ranks, k):
    return (ranks < k).float() / torch.log10(ranks.float() + 1)


def mask_without_column_zero(scores, history):
    return scores.scatter(1, history, NEG_INF)         # column 0 only where a row is padded


def mask_real_items_only(scores, history):
    out = mask_by_hand(scores, history)
    out[:, 0] = scores[:, 0]                          # padding filtered out, column 0 forgotten
    return out


def mask_with_zero(scores, history):
    return scores.masked_fill(torch.isinf(mask_by_hand(scores, history)), 0.0)


def mask_with_a_large_negative(scores, history):
    return scores.masked_fill(torch.isinf(mask_by_hand(scores, history)), -1e9)


def mask_pooled_over_the_batch(scores, history):
    out = scores.clone()
    out[:, history.flatten()] = NEG_INF
    out[:, 0] = NEG_INF
    return out


def mask_newest_only(scores, history):
    return mask_by_hand(scores, history[:, -1:])


def mask_shifted_by_one(scores, history):
    rows = torch.arange(len(history))
    out = scores.clone()
    out[rows[:, None], history - 1] = NEG_INF        # item i at column i - 1 (0 -> -1: last)
    out[:, 0] = NEG_INF
    return out


def mask_in_place_without_return(scores, history):
    scores.copy_(mask_by_hand(scores, history))


def mask_other_scores_changed(scores, history):
    return mask_by_hand(scores, history) * 2


MISTAKES = [
    (checks.check_split_sequence, split_swapped, "three items", "valid and test swapped"),
    (checks.check_split_sequence, split_keeping_valid_in_train, "three items",
     "the valid item left in train"),
    (checks.check_split_sequence, lambda s: (list(s[:-3]), s[-2], s[-1]), "three items",
     "one item too few in train"),
    (checks.check_split_sequence, split_from_the_front, "three items",
     "the split taken from the front"),
    (checks.check_split_sequence, lambda s: (list(s), s[-2], s[-1]), "three items",
     "the whole sequence as train"),
    (checks.check_target_rank, rank_with_optimistic_ties, "ties count against the target",
     "ties counted for the target"),
    (checks.check_target_rank, rank_from_a_stable_sort, "ties count against the target",
     "ties broken by item id"),
    (checks.check_target_rank, rank_with_the_padding_column, "padding column ignored",
     "the padding column counted"),
    (checks.check_target_rank, rank_from_zero, "best item: rank 1", "a rank from 0"),
    (checks.check_target_rank, rank_counting_the_target, "best item",
     "the target counted against itself"),
    (checks.check_target_rank, rank_reversed, "best item: rank 1", "the order reversed"),
    (checks.check_hr_at_k, lambda ranks, k: (ranks < k).float(), "a hit at rank exactly K",
     "r < K"),
    (checks.check_hr_at_k, lambda ranks, k: (ranks <= k).float().mean(),
     "a hit at rank exactly K", "one number for all users"),
    (checks.check_hr_at_k, lambda ranks, k: (ranks >= k).float(), "a hit at rank exactly K",
     r"1\[r >= K\]"),
    (checks.check_hr_at_k, lambda ranks, k: (ranks <= k + 1).float(),
     "a hit at rank exactly K", r"1\[r <= K \+ 1\]"),
    (checks.check_ndcg_at_k, ndcg_natural_log, "a hit at rank exactly K", "the natural log"),
    (checks.check_ndcg_at_k, lambda r, k: (r <= k) / torch.log2(r.float()),
     "a hit at rank exactly K", r"log2\(r\) instead of log2\(r \+ 1\)"),
    (checks.check_ndcg_at_k, lambda r, k: (r <= k) / torch.log2(r.float() + 2),
     "a hit at rank exactly K", r"log2\(r \+ 2\)"),
    (checks.check_ndcg_at_k, lambda r, k: 1 / torch.log2(r.float() + 1),
     "a hit at rank exactly K", "no cut-off at K"),
    (checks.check_ndcg_at_k, lambda r, k: (r < k) / torch.log2(r.float() + 1),
     "a hit at rank exactly K", "r < K for a hit"),
    (checks.check_ndcg_at_k, lambda r, k: (r <= k) / r.float(), "a hit at rank exactly K",
     "the reciprocal rank"),
    (checks.check_ndcg_at_k, lambda r, k: ((r <= k) / torch.log2(r.float() + 1)).mean(),
     "a hit at rank exactly K", "one number for all users"),
    (checks.check_ndcg_at_k, ndcg_log10_and_strict_cutoff, "a hit at rank exactly K",
     r"log10: your gains are 3.3219 = 1 / log10 2"),
    (checks.check_mask_history, mask_without_column_zero, "a full history",
     "the padding column left unmasked on a row with no padding"),
    (checks.check_mask_history, mask_real_items_only, "scores below zero",
     "the padding column never masked"),
    (checks.check_mask_history, mask_with_zero, "scores below zero",
     "0 at the masked entries instead of -inf"),
    (checks.check_mask_history, mask_with_a_large_negative, "scores below zero",
     r"a large finite number \(-1e\+09\) instead of -inf"),
    (checks.check_mask_history, mask_pooled_over_the_batch, "each row masks its own history",
     "every user's history masked for everyone"),
    (checks.check_mask_history, mask_newest_only, "a full history",
     "only the newest history item masked"),
    (checks.check_mask_history, mask_shifted_by_one, "scores below zero",
     "item i masked at column i - 1"),
    (checks.check_mask_history, mask_in_place_without_return, "scores below zero",
     "a function that returns nothing"),
    (checks.check_mask_history, mask_other_scores_changed, "scores below zero",
     "scores changed outside the mask"),
]


@pytest.mark.parametrize("check, wrong, case, hint", MISTAKES,
                         ids=[f"{c.__name__}-{h[:30]}" for c, _, _, h in MISTAKES])
def test_a_plausible_mistake_fails_on_a_named_case_and_is_recognised(check, wrong, case, hint):
    with pytest.raises(CheckFailed, match=f"(?s)wrong answer on case '{case}.*looks like "
                                          f"{hint}"):
        check(wrong)


@pytest.mark.parametrize("check", [checks.check_split_sequence, checks.check_target_rank,
                                   checks.check_hr_at_k, checks.check_ndcg_at_k,
                                   checks.check_mask_history])
def test_every_check_names_at_least_two_mistakes(check):
    assert sum(1 for c, *_ in MISTAKES if c is check) >= 2


def test_split_without_the_short_sequence_error_fails():
    def no_error(sequence):
        return list(sequence[:-2]), sequence[-2], sequence[-1]
    with pytest.raises(CheckFailed, match="expected ValueError"):
        checks.check_split_sequence(no_error)


def test_a_failure_shows_expected_and_got_and_how_to_rerun_it():
    with pytest.raises(CheckFailed) as info:
        checks.check_ndcg_at_k(ndcg_natural_log)
    assert "expected" in str(info.value) and "got" in str(info.value)
    assert "rerun it" in str(info.value)


# --- predict, measure, interpret: excluding seen items on a world that re-consumes -------------

def knn_test_hit_rate(mask):
    """Item-kNN's test HR@10 on the exercise's world, the scores passed through `mask(scores,
    history, targets)` and ranked by counting, as the exercise's learner does."""
    from course_lib.data.sequences import leave_one_out, user_sequences
    from course_lib.data.world import CONSUMED, WorldConfig, make_world
    from course_lib.models.baselines import ItemKNN

    world = make_world(WorldConfig(**checks.WORLD))
    split = leave_one_out(user_sequences(world.interactions, actions=CONSUMED), world.n_items)
    test = split.evaluation("test")
    scores = mask(ItemKNN(split.train, world.n_items).scores(test.history), test.history,
                  test.targets)
    ranks = torch.tensor([rank_by_counting(s, int(t)) for s, t in zip(scores, test.targets)])
    return float(hr_by_hand(ranks, 10).mean())


def keep_the_target(scores, history, targets):
    """The leak: the history masked, then the target given its score back."""
    rows = torch.arange(len(targets))
    out = mask_by_hand(scores, history)
    out[rows, targets] = scores[rows, targets]
    return out


@pytest.fixture(scope="module")
def hit_rates():
    return {"excluded": knn_test_hit_rate(lambda s, h, t: mask_by_hand(s, h)),
            "allowed": knn_test_hit_rate(lambda s, h, t: s),
            "leaky": knn_test_hit_rate(keep_the_target)}


def test_the_measurement_done_by_hand_passes(hit_rates):
    checks.check_hr_change_from_excluding_seen(
        lambda: hit_rates["excluded"] - hit_rates["allowed"])


def test_excluding_seen_items_costs_item_knn_on_a_world_that_re_consumes(hit_rates):
    """The claim the task makes the learner measure: on this world (half the test targets
    repeat a history item) excluding seen items lowers item-kNN's HR@10 clearly, and the leak
    would have raised it above both."""
    assert hit_rates["excluded"] < hit_rates["allowed"] - 0.1 < hit_rates["leaky"] - 0.2, hit_rates


@pytest.mark.parametrize("measured, why", [
    (lambda r: r["excluded"] - r["excluded"], "About 0 means both runs were masked alike"),
    (lambda r: r["allowed"] - r["excluded"], "a positive value"),
    (lambda r: r["leaky"] - r["allowed"], "giving the target its score back"),
    (lambda r: r["excluded"], "excluded minus allowed"),
])
def test_a_measurement_of_the_wrong_thing_fails_with_the_hint(hit_rates, measured, why):
    with pytest.raises(CheckFailed, match=f"(?s)outside the range.*{why}"):
        checks.check_hr_change_from_excluding_seen(lambda: measured(hit_rates))


def test_the_right_explanation_passes():
    checks.check_why_hr_drops(lambda: "a")


@pytest.mark.parametrize("letter", sorted(set(checks.WHY_HR_DROPS) - {"a"}))
def test_a_wrong_explanation_fails_with_its_reason(letter):
    reason = checks.WHY_HR_DROPS[letter]
    with pytest.raises(CheckFailed) as info:
        checks.check_why_hr_drops(lambda: letter)
    assert reason in str(info.value)


# --- unfinished and crashing answers ----------------------------------------------------------

@pytest.mark.parametrize("check", [checks.check_split_sequence, checks.check_target_rank,
                                   checks.check_hr_at_k, checks.check_ndcg_at_k,
                                   checks.check_mask_history])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


@pytest.mark.parametrize("check", [checks.check_hr_change_from_excluding_seen,
                                   checks.check_why_hr_drops])
def test_an_unfinished_measurement_is_reported_as_not_done(check, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        check(stub)


def test_a_crash_in_the_learners_code_becomes_a_named_failure():
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        checks.check_hr_at_k(lambda ranks, k: 1 / 0)
