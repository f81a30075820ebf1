"""Autograded checks accept right answers and explain wrong ones without a traceback."""
import pytest
import torch

from course_lib import grading, metrics
from course_lib.data.sequences import split_sequence


def reference_rank(scores, target):
    return int(metrics.target_ranks(scores[None], torch.tensor([target]))[0])


def test_correct_answers_pass(capsys):
    assert grading.check_split_sequence(split_sequence)
    assert grading.check_target_rank(reference_rank)
    assert grading.check_hr_at_k(metrics.hr_at_k)
    assert grading.check_ndcg_at_k(metrics.ndcg_at_k)
    assert "\u2705" in capsys.readouterr().out


def test_optimistic_ties_fail_and_the_case_is_named():
    def optimistic(scores, target):
        return 1 + int((scores[1:] > scores[target]).sum())
    with pytest.raises(grading.CheckFailed, match="ties count against the target"):
        grading.check_target_rank(optimistic)


def test_ndcg_with_natural_log_fails_with_expected_and_got():
    def wrong(ranks, k):
        return (ranks <= k).float() / torch.log(ranks.float() + 1)
    with pytest.raises(grading.CheckFailed, match="expected") as info:
        grading.check_ndcg_at_k(wrong)
    assert "got" in str(info.value)


def test_a_stub_is_reported_as_not_implemented():
    def stub(ranks, k):
        raise NotImplementedError()
    with pytest.raises(grading.NotImplementedYet, match="not implemented yet"):
        grading.check_hr_at_k(stub)


def test_a_crash_in_the_learners_code_becomes_a_named_failure():
    with pytest.raises(grading.CheckFailed, match="raised ZeroDivisionError"):
        grading.check_hr_at_k(lambda ranks, k: 1 / 0)


def test_split_without_the_short_sequence_error_fails():
    def no_error(seq):
        return list(seq[:-2]), seq[-2], seq[-1]
    with pytest.raises(grading.CheckFailed, match="expected ValueError"):
        grading.check_split_sequence(no_error)


def test_failures_render_as_one_friendly_line_in_jupyter():
    rendered = grading.CheckFailed("hr_at_k: wrong")._render_traceback_()
    assert rendered == ["\u274c hr_at_k: wrong"]


# ---------------------------------------------------------------- lesson 09

def test_lesson09_checks_accept_the_library_references():
    from course_lib import losses
    from course_lib.grading import lesson09

    assert lesson09.check_relevance_from_events(lesson09.relevance_from_events)
    assert lesson09.check_weighted_ndcg_at_k(metrics.graded_ndcg_at_k)
    assert lesson09.check_reciprocal_rank(lambda s, t: metrics.mrr(metrics.target_ranks(s, t)))
    assert lesson09.check_entropy_at_k(metrics.entropy_at_k)
    assert lesson09.check_bpr_loss(losses.bpr_loss)


def test_lesson09_entropy_in_nats_is_caught():
    from course_lib.grading import lesson09
    with pytest.raises(grading.CheckFailed):
        lesson09.check_entropy_at_k(lambda topk, cat: metrics.entropy_at_k(topk, cat, base=torch.e))
