"""Exercise 00's checks (split, target rank, HR@K, NDCG@K): answers written by hand from the
definitions pass, so the checks' expected values agree with the definitions and not only with
the library; plausible mistakes fail with the case named; a stub is reported as unfinished."""
import math

import pytest
import torch

from course_lib import grading
from course_lib.grading import lesson00 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet


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


def test_answers_written_from_the_definitions_pass_every_check(capsys):
    assert checks.check_split_sequence(split_by_hand)
    assert checks.check_target_rank(rank_by_counting)
    assert checks.check_hr_at_k(hr_by_hand)
    assert checks.check_ndcg_at_k(ndcg_by_hand)
    assert capsys.readouterr().out.count("\u2705") == 5       # split: cases + the error


def test_the_notebook_calls_the_checks_through_the_package():
    assert grading.check_split_sequence is checks.check_split_sequence
    assert grading.check_ndcg_at_k is checks.check_ndcg_at_k


# --- split_sequence -------------------------------------------------------------------------

def test_split_with_valid_and_test_swapped_fails():
    def swapped(sequence):
        return list(sequence[:-2]), sequence[-1], sequence[-2]
    with pytest.raises(CheckFailed, match="split_sequence: wrong answer on case 'three items'"):
        checks.check_split_sequence(swapped)


def test_split_that_keeps_the_valid_item_in_train_fails():
    def off_by_one(sequence):
        return list(sequence[:-1]), sequence[-2], sequence[-1]
    with pytest.raises(CheckFailed, match="wrong answer on case 'three items'"):
        checks.check_split_sequence(off_by_one)


def test_split_without_the_short_sequence_error_fails():
    def no_error(sequence):
        return list(sequence[:-2]), sequence[-2], sequence[-1]
    with pytest.raises(CheckFailed, match="expected ValueError"):
        checks.check_split_sequence(no_error)


# --- target_rank ----------------------------------------------------------------------------

def test_optimistic_ties_fail_and_the_case_is_named():
    def optimistic(scores, target):
        return 1 + int((scores[1:] > scores[target]).sum())
    with pytest.raises(CheckFailed, match="ties count against the target"):
        checks.check_target_rank(optimistic)


def test_a_rank_that_counts_the_padding_column_fails():
    def with_padding(scores, target):
        return int((scores >= scores[target]).sum())          # column 0 and the target itself
    with pytest.raises(CheckFailed, match="case 'best item'"):    # padding scores 9 there
        checks.check_target_rank(with_padding)


def test_a_zero_based_rank_fails():
    with pytest.raises(CheckFailed, match="case 'best item'"):
        checks.check_target_rank(lambda scores, target: rank_by_counting(scores, target) - 1)


# --- HR@K and NDCG@K ----------------------------------------------------------------------------

def test_hr_with_rank_below_k_instead_of_at_most_k_fails():
    with pytest.raises(CheckFailed, match="hr_at_k: wrong answer on case 'hand'"):
        checks.check_hr_at_k(lambda ranks, k: (ranks < k).float())


def test_hr_averaged_over_users_instead_of_per_user_fails():
    with pytest.raises(CheckFailed, match="hr_at_k: wrong answer on case 'hand'"):
        checks.check_hr_at_k(lambda ranks, k: (ranks <= k).float().mean())


def test_ndcg_with_natural_log_fails_with_expected_and_got():
    def natural_log(ranks, k):
        return (ranks <= k).float() / torch.log(ranks.float() + 1)
    with pytest.raises(CheckFailed, match="expected") as info:
        checks.check_ndcg_at_k(natural_log)
    assert "got" in str(info.value)


def test_ndcg_discounted_by_log2_of_the_rank_not_rank_plus_one_fails():
    with pytest.raises(CheckFailed, match="ndcg_at_k: wrong answer on case 'hand'"):
        checks.check_ndcg_at_k(lambda ranks, k: (ranks <= k).float() / torch.log2(ranks.float()))


def test_ndcg_without_the_cutoff_at_k_fails():
    with pytest.raises(CheckFailed, match="ndcg_at_k: wrong answer on case 'hand'"):
        checks.check_ndcg_at_k(lambda ranks, k: 1 / torch.log2(ranks.float() + 1))


# --- unfinished and crashing answers ----------------------------------------------------------

@pytest.mark.parametrize("check", [checks.check_split_sequence, checks.check_target_rank,
                                   checks.check_hr_at_k, checks.check_ndcg_at_k])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


def test_a_crash_in_the_learners_code_becomes_a_named_failure():
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        checks.check_hr_at_k(lambda ranks, k: 1 / 0)
