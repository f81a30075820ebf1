"""The grading machinery every lesson's checks share: run the learner's function on named
cases, compare with the expected answers, and report one short verdict.

`run_check` calls the function on each case (on copies of the inputs, so a function that
changes its arguments in place cannot change what the message shows) and raises on the first
wrong answer; `expect_error` passes when the function refuses an invalid input; `close`
compares numbers, lists and tensors to 1e-6. A wrong answer raises `CheckFailed` naming the
case, the input, what was expected and what came back, and keeps the whole case in
`last_failure`, so the learner can rerun it: `your_function(*last_failure.args)`.
`check_measured` and `check_choice` grade the predict-measure-interpret tasks: the learner's
function of no arguments returns a measured value, which must lie inside the range the
library's own run gives, or the letter of the explanation picked from a list. An
unfinished task raises `NotImplementedYet`. In
Jupyter both show as one friendly line, not a traceback (IPython's `_render_traceback_`
hook); to pytest and nbval they are ordinary errors, so a solution notebook fails its test
when a check fails. A passing check prints its verdict and returns None, so a check cell shows
the verdict line and nothing after it.

Verdicts start with PASSED, FAILED or UNFINISHED: text symbols from Unicode's Dingbats block
(DejaVu on Linux, Zapf Dingbats on macOS and Segoe UI Symbol on Windows draw them), not emoji,
which show as empty boxes where no emoji font is installed.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch

__all__ = ["CheckFailed", "NotImplementedYet", "Case", "Failure", "last_failure", "run_check",
           "run_naming_mistakes", "expect_error", "check_measured", "check_choice", "close", "same_values", "same_mask", "same_integers", "left_padded",
           "tensor_like", "read_mask"]


PASSED, FAILED, UNFINISHED = "\u2713", "\u2717", "\u270e"     # check mark, ballot x, pencil


class CheckFailed(AssertionError):
    """The learner's function gave a wrong answer (or crashed) on a named case."""

    def _render_traceback_(self):
        return [f"{FAILED} {self}"]


class NotImplementedYet(NotImplementedError):
    """The learner's function still raises NotImplementedError."""

    def _render_traceback_(self):
        return [f"{UNFINISHED} {self}"]


Case = tuple[str, tuple, Any]            # (name, arguments, expected answer)


@dataclass
class Failure:
    """The case a check failed on, whole (messages cut long values at 200 characters)."""

    task: str
    case: str
    args: tuple
    expected: Any
    got: Any


last_failure: Failure | None = None     # set by the last failing run_check


def run_check(task: str, fn: Callable, cases: Iterable[Case],
              same: Callable[[Any, Any], bool]) -> None:
    """Call `fn(*copies of arguments)` for every case; raise on the first wrong answer."""
    global last_failure
    cases = list(cases)
    for name, args, expected in cases:
        try:
            got = fn(*copy.deepcopy(args))
        except NotImplementedError:
            raise NotImplementedYet(f"{task}: not implemented yet. Replace the "
                                    "`raise NotImplementedError()` in your function.") from None
        except Exception as err:
            last_failure = Failure(task, name, args, expected, None)
            raise CheckFailed(f"{task}: on case '{name}' your function raised "
                              f"{type(err).__name__}: {err}\n   input: {_show(args)}"
                              f"{_reproduce(fn)}") from None
        if not same(got, expected):
            last_failure = Failure(task, name, args, expected, got)
            raise CheckFailed(f"{task}: wrong answer on case '{name}'\n   input:    "
                              f"{_show(args)}\n   expected: {_show(expected)}\n   got:      "
                              f"{_show(got)}{_reproduce(fn)}")
    print(f"{PASSED} {task}: all {len(cases)} cases pass")


def _reproduce(fn: Callable) -> str:
    name = getattr(fn, "__name__", "your_function")
    name = name if name.isidentifier() else "your_function"
    return ("\n   rerun it: from course_lib.grading.checks import last_failure; "
            f"{name}(*last_failure.args)")


def _answer(task: str, fn: Callable[[], Any]):
    """The learner's zero-argument function's answer, a stub reported as unfinished."""
    try:
        return fn()
    except NotImplementedError:
        raise NotImplementedYet(f"{task}: not done yet. Replace the "
                                "`raise NotImplementedError()` in your function.") from None
    except Exception as err:
        raise CheckFailed(f"{task}: your function raised {type(err).__name__}: {err}") from None


def check_measured(task: str, measure: Callable[[], float], low: float, high: float,
                   what: str, hint: str = "") -> None:
    """Pass if `measure()` (the learner's measurement, a number) lies in [low, high], the
    range the library's own run gives for `what`; else fail with the range and `hint`."""
    value = _answer(task, measure)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"{task}: {what} should be a number, got {_show(value)}") from None
    if not low <= number <= high:
        raise CheckFailed(f"{task}: {what} = {number:.4g} is outside the range "
                          f"[{low:.4g}, {high:.4g}] a correct measurement gives"
                          + (f"\n   hint: {hint}" if hint else ""))
    print(f"{PASSED} {task}: {what} = {number:.4g}, inside [{low:.4g}, {high:.4g}]")


def check_choice(task: str, choose: Callable[[], str], right: str,
                 reasons: dict[str, str]) -> None:
    """Pass if `choose()` returns `right` among the options (letters, the keys of `reasons`);
    `reasons[letter]` says why that option does or does not explain the measurement, and is
    shown for the learner's pick."""
    picked = str(_answer(task, choose)).strip().lower()
    if picked not in reasons:
        raise CheckFailed(f"{task}: answer with one of {sorted(reasons)}, got {picked!r}")
    if picked != right:
        raise CheckFailed(f"{task}: ({picked}) does not explain what you measured: "
                          f"{reasons[picked]}")
    print(f"{PASSED} {task}: ({picked}). {reasons[picked]}")


def _show(value) -> str:
    """A short repr for messages: tensors and arrays as lists, cut at 200 characters."""
    if torch.is_tensor(value):
        value = value.tolist()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    text = repr(value)
    return text if len(text) < 200 else text[:200] + " ..."


def close(got, expected) -> bool:
    """Same shape and equal to 1e-6 (absolute); False for anything not convertible to numbers."""
    try:
        got = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    expected = torch.as_tensor(expected, dtype=torch.float64)
    return got.shape == expected.shape and bool(torch.allclose(got, expected, atol=1e-6))


def expect_error(task, fn, args, error, what) -> None:
    """Pass if `fn(*args)` raises `error` (the input `what` is invalid)."""
    try:
        fn(*args)
    except error:
        print(f"{PASSED} {task}: raises {error.__name__} for {what}")
        return
    except NotImplementedError:
        raise NotImplementedYet(f"{task}: not implemented yet.") from None
    except Exception as err:
        raise CheckFailed(f"{task}: for {what} expected {error.__name__}, got "
                          f"{type(err).__name__}: {err}") from None
    raise CheckFailed(f"{task}: for {what} ({_show(args)}) expected {error.__name__}, "
                      "but your function returned normally")


class _Expected:
    """A case's right answer, the inputs it came from, and the answers of known mistakes as
    (what the mistake is, its answer). Shown in messages as the right answer alone."""

    def __init__(self, answer, args: tuple, mistakes: list[tuple[str, object]]):
        self.answer, self.args, self.mistakes = answer, args, mistakes

    def __repr__(self) -> str:
        return _show(self.answer)


def run_naming_mistakes(task: str, fn: Callable, cases, same: Callable,
                         looks_like: Callable | None = None,
                         explain: Callable | None = None) -> None:
    """`run_check` over cases (name, args, (answer, [(what, wrong answer), ...])), with
    `same(got, answer, args)` deciding. On a wrong answer the message ends with the first
    mistake whose answer the learner's matches (`looks_like(got, wrong, args)`, by default
    `same`), else with `explain(got, answer)` when that recognises something."""
    looks_like = looks_like or same
    diagnosis: list[str] = []

    def judged(got, expected: _Expected) -> bool:
        if same(got, expected.answer, expected.args):
            return True
        mistakes = [what for what, wrong in expected.mistakes
                    if looks_like(got, wrong, expected.args)]
        if not mistakes and explain is not None:
            mistakes = [explain(got, expected.answer)]
        diagnosis[:] = [what for what in mistakes[:1] if what]
        return False

    # A mistake whose answer would pass on a case says nothing there: drop it.
    cases = [(name, args, _Expected(answer, args, [(what, wrong) for what, wrong in mistakes
                                                   if not same(wrong, answer, args)]))
             for name, args, (answer, mistakes) in cases]
    try:
        run_check(task, fn, cases, judged)
    except CheckFailed as failure:
        if not diagnosis:
            raise
        raise CheckFailed(f"{failure}\n   this looks like {diagnosis[0]}") from None


# --- comparisons and inputs the lessons' checks share ------------------------------------------

def same_values(got, answer, args=None) -> bool:
    """`close`, in the (got, answer, args) form `run_naming_mistakes` calls."""
    return close(got, answer)


def same_mask(got, answer, args=None) -> bool:
    """A bool tensor equal to the answer (a 0/1 float mask is a mistake of its own)."""
    return isinstance(got, torch.Tensor) and got.dtype == torch.bool and close(got, answer)


def same_integers(got, answer, args=None) -> bool:
    """An integer tensor (not bool, not float) equal to the answer."""
    return (isinstance(got, torch.Tensor) and not got.dtype.is_floating_point
            and got.dtype != torch.bool and close(got, answer))


def left_padded(gen: torch.Generator, batch: int, length: int, min_length: int = 1) -> torch.Tensor:
    """(B, T) bool, True on each row's newest min_length..T positions (some rows full): the
    real events of a random left-padded batch."""
    lengths = torch.randint(min_length, length + 1, (batch,), generator=gen)
    return torch.arange(length) >= length - lengths[:, None]              # (B, T)


def tensor_like(got, answer: torch.Tensor, dtype=None) -> torch.Tensor | None:
    """The learner's answer as a tensor (of `dtype`) shaped like `answer`, else None: what an
    explainer reads before it guesses the mistake."""
    try:
        got = torch.as_tensor(got, dtype=dtype)
    except (TypeError, ValueError, RuntimeError):
        return None
    return got if got.shape == answer.shape else None


def read_mask(got, answer: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
    """A learner's mask as a bool tensor shaped like `answer` (None if it is not one), and a
    verdict when it is the right mask in another dtype."""
    values = tensor_like(got, answer)
    if values is None:
        return None, None
    mask = values.bool()
    if torch.equal(mask, answer):
        return mask, f"the right mask as {values.dtype} values: return a bool tensor (use .bool())"
    return mask, None
