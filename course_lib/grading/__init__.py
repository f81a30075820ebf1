"""Autograded checks for the exercise notebooks.

The machinery (`run_check`, `expect_error`, `close`, `CheckFailed`, `NotImplementedYet`)
lives in `course_lib.grading.checks`; each lesson's `check_*` functions live in their own
module, `course_lib.grading.lesson00`, `lesson01`, ... and are imported from there:

    from course_lib.grading import lesson01 as checks
    checks.check_attention_mask(attention_mask)

Each `check_*` calls the learner's function on fixed cases and seeded random cases, compares
with the library's reference, and prints a short verdict. Lesson 00, the first notebook a
learner opens, calls its checks as `grading.check_split_sequence(...)`: they are re-exported
here, with the machinery.
"""
from course_lib.grading.checks import (CheckFailed, NotImplementedYet, close, expect_error,
                                       run_check)
from course_lib.grading.lesson00 import (check_hr_at_k, check_hr_change_from_excluding_seen,
                                         check_mask_history, check_ndcg_at_k,
                                         check_split_sequence, check_target_rank,
                                         check_why_hr_drops)

__all__ = ["CheckFailed", "NotImplementedYet", "close", "expect_error", "run_check",
           "check_split_sequence", "check_target_rank", "check_hr_at_k", "check_ndcg_at_k",
           "check_mask_history", "check_hr_change_from_excluding_seen", "check_why_hr_drops"]
