"""The grading machinery (course_lib.grading.checks): run_check's verdicts, expect_error,
the comparison `close`, and the one-line rendering in Jupyter. Each lesson's checks are tested
in tests/test_grading_lessonNN.py."""
import importlib

import pytest
import torch

from course_lib import grading
from course_lib.grading import checks
from course_lib.grading.checks import (CheckFailed, NotImplementedYet, check_choice,
                                       check_measured, close, expect_error, run_check,
                                       run_naming_mistakes)

SQUARES = [("zero", (0,), 0), ("two", (2,), 4), ("minus three", (-3,), 9)]
LESSONS = ["lesson00", "lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06",
           "lesson07", "lesson08", "lesson09"]


def equal(got, expected):
    return got == expected


# --- run_check ----------------------------------------------------------------------------

def test_run_check_passes_when_every_case_is_right_and_says_how_many(capsys):
    assert run_check("square", lambda x: x * x, SQUARES, equal) is None   # no `True` echoed
    assert capsys.readouterr().out == "\u2713 square: all 3 cases pass\n"


def test_a_wrong_answer_names_the_case_its_input_the_expected_and_the_got():
    with pytest.raises(CheckFailed) as info:
        run_check("square", lambda x: 2 * x, SQUARES, equal)
    message = str(info.value)
    assert message.startswith("square: wrong answer on case 'minus three'")
    assert "input:    (-3)" in message
    assert "expected: 9" in message and "got:      -6" in message


def test_run_check_stops_at_the_first_wrong_case():
    calls = []

    def wrong_from_two(x):
        calls.append(x)
        return 0 if x == 2 else x * x
    with pytest.raises(CheckFailed, match="case 'two'"):
        run_check("square", wrong_from_two, SQUARES, equal)
    assert calls == [0, 2]


def test_a_crash_becomes_a_failure_naming_the_error_and_the_input():
    with pytest.raises(CheckFailed, match=r"on case 'zero' your function raised "
                                          r"ZeroDivisionError: .*\n   input: \(0\)"):
        run_check("inverse", lambda x: 1 / x, SQUARES, equal)


def test_a_stub_is_reported_as_not_implemented_not_as_a_wrong_answer(stub):
    with pytest.raises(NotImplementedYet, match="square: not implemented yet"):
        run_check("square", stub, SQUARES, equal)


def test_long_inputs_are_cut_in_the_message():
    case = [("long", (torch.arange(500),), 0)]
    with pytest.raises(CheckFailed) as info:
        run_check("total", lambda x: 1, case, equal)
    line = [ln for ln in str(info.value).splitlines() if "input" in ln][0]
    assert line.endswith(" ...)") and len(line) < 230


# --- expect_error -------------------------------------------------------------------------

def refuses_negatives(x):
    if x < 0:
        raise ValueError(f"x must be >= 0, got {x}")
    return x


def test_expect_error_passes_when_the_function_raises_that_error(capsys):
    assert expect_error("sqrt", refuses_negatives, (-1,), ValueError, "a negative x") is None
    assert "raises ValueError for a negative x" in capsys.readouterr().out


def test_expect_error_fails_when_the_function_returns_normally():
    with pytest.raises(CheckFailed, match="expected ValueError, but your function returned"):
        expect_error("sqrt", lambda x: x, (-1,), ValueError, "a negative x")


def test_expect_error_fails_on_another_error_and_names_it():
    with pytest.raises(CheckFailed, match="expected ValueError, got KeyError"):
        expect_error("sqrt", lambda x: {}[x], (-1,), ValueError, "a negative x")


def test_expect_error_reports_a_stub_as_not_implemented(stub):
    with pytest.raises(NotImplementedYet):
        expect_error("sqrt", stub, (-1,), ValueError, "a negative x")


# --- close --------------------------------------------------------------------------------

@pytest.mark.parametrize("got, expected, verdict", [
    (torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-7], True),
    (torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-4], False),
    (torch.tensor([[1.0, 2.0]]), [1.0, 2.0], False),             # same values, wrong shape
    (3, torch.tensor(3.0), True),
    ("three", 3.0, False),                                      # not a number at all
    (None, 0.0, False),
])
def test_close_wants_the_same_shape_and_values_to_1e_6(got, expected, verdict):
    assert close(got, expected) is verdict


# --- in Jupyter, and the package's names ----------------------------------------------------

def test_failures_render_as_one_friendly_line_in_jupyter():
    assert CheckFailed("hr_at_k: wrong")._render_traceback_() == ["\u2717 hr_at_k: wrong"]
    assert NotImplementedYet("hr_at_k: todo")._render_traceback_() == ["\u270e hr_at_k: todo"]


# The Dingbats block's emoji (Unicode emoji-data.txt, Emoji=Yes): empty boxes without an emoji font.
DINGBAT_EMOJI = {0x2702, 0x2705, *range(0x2708, 0x270E), 0x270F, 0x2712, 0x2714, 0x2716, 0x271D,
                 0x2721, 0x2728, 0x2733, 0x2734, 0x2744, 0x2747, 0x274C, 0x274E,
                 *range(0x2753, 0x2756), 0x2757, 0x2763, 0x2764, *range(0x2795, 0x2798), 0x27A1,
                 0x27B0, 0x27BF}


def test_verdicts_start_with_text_symbols_that_need_no_emoji_font():
    for symbol in (checks.PASSED, checks.FAILED, checks.UNFINISHED):
        assert len(symbol) == 1 and ord(symbol) not in DINGBAT_EMOJI, hex(ord(symbol))


def test_a_check_failure_is_an_assertion_error_so_nbval_fails_the_solution():
    assert issubclass(CheckFailed, AssertionError)
    assert issubclass(NotImplementedYet, NotImplementedError)


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_uses_the_one_machinery(lesson):
    module = importlib.import_module(f"course_lib.grading.{lesson}")
    assert getattr(module, "run_check", None) is run_check or \
        getattr(module, "run_naming_mistakes", None) is run_naming_mistakes
    assert [n for n in module.__all__ if not hasattr(module, n)] == []
    assert any(n.startswith("check_") for n in module.__all__)


def test_the_package_re_exports_the_machinery_and_lesson_00s_checks():
    from course_lib.grading import lesson00
    assert grading.CheckFailed is CheckFailed and grading.run_check is run_check
    for name in lesson00.__all__:
        assert getattr(grading, name) is getattr(lesson00, name)
    assert sorted(grading.__all__) == sorted(
        ["CheckFailed", "NotImplementedYet", "close", "expect_error", "run_check"]
        + lesson00.__all__)


# --- what a failing learner gets to work with ----------------------------------------------

def test_the_learners_function_gets_copies_so_the_message_shows_the_input_as_given():
    def doubles_in_place(values):
        values *= 2                                    # mutates its argument, then is wrong
        return values
    cases = [("one row", (torch.tensor([1.0, 2.0]),), torch.tensor([1.0, 2.0]))]
    with pytest.raises(CheckFailed) as info:
        run_check("identity", doubles_in_place, cases, close)
    assert "input:    ([1.0, 2.0])" in str(info.value)
    assert cases[0][1][0].tolist() == [1.0, 2.0]


def test_a_failure_is_kept_whole_and_the_message_says_how_to_rerun_it():
    long_input = list(range(500))                      # cut in the message, whole in last_failure

    def head(values):
        return values[1]
    with pytest.raises(CheckFailed) as info:
        run_check("head", head, [("long", (long_input,), 0)], equal)
    failure = checks.last_failure
    assert (failure.task, failure.case, failure.args, failure.expected, failure.got) == (
        "head", "long", (long_input,), 0, 1)
    assert "rerun it: from course_lib.grading.checks import last_failure; head(*last_failure.args)" \
        in str(info.value)
    assert head(*checks.last_failure.args) == 1


def test_a_measurement_passes_inside_the_range_and_fails_outside_with_the_hint(capsys, stub):
    assert check_measured("random HR", lambda: 0.021, 0.015, 0.03, "HR@10") is None
    assert "HR@10 = 0.021, inside [0.015, 0.03]" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match=r"HR@10 = 0.05 is outside .*\n   hint: unmasked"):
        check_measured("random HR", lambda: 0.05, 0.015, 0.03, "HR@10", hint="unmasked history?")
    with pytest.raises(CheckFailed, match="should be a number"):
        check_measured("random HR", lambda: "high", 0.015, 0.03, "HR@10")
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        check_measured("random HR", lambda: 1 / 0, 0.015, 0.03, "HR@10")
    with pytest.raises(NotImplementedYet, match="not done yet"):
        check_measured("random HR", stub, 0.015, 0.03, "HR@10")


def test_a_choice_passes_only_for_the_right_letter_and_says_why_a_wrong_one_fails(capsys, stub):
    reasons = {"a": "ties are counted against the target", "b": "it is the log base"}
    assert check_choice("why", lambda: "A ", "a", reasons) is None
    assert "(a). ties are counted" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match=r"\(b\) does not explain .*: it is the log base"):
        check_choice("why", lambda: "b", "a", reasons)
    with pytest.raises(CheckFailed, match=r"one of \['a', 'b'\]"):
        check_choice("why", lambda: "c", "a", reasons)
    with pytest.raises(NotImplementedYet):
        check_choice("why", stub, "a", reasons)
