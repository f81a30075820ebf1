"""Checks for exercise 04 (EMA codebooks): Laplace smoothing, one EMA step, the dead-code reset
and the codebook perplexity, each compared with `course_lib.quantize.vq` and
`course_lib.metrics` (van den Oord et al. 2017, appendix A.1; Dhariwal et al. 2020); then a
predict-measure-interpret task on how many codes an EMA codebook keeps alive.

The task's contract says: return new tensors, never change the inputs. The learner's
function gets copies of the inputs (so a message always shows the inputs as they were, even
after an in-place update), and each check compares those copies before and after the call:
a function that changed one fails with that reason, naming the input.

A wrong answer names the case and, where it equals the answer of a known mistake (the decay
on the wrong side, no Laplace smoothing, the entropy or the number of used codes instead of
the perplexity, a log base other than e, `<=` instead of `<`, ...), says which mistake it
looks like. The reset draws random rows, so its check tests what must hold for any draw
(dead codes replaced by rows of the batch, live codes untouched) instead of exact values.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from course_lib import get_profile, metrics
from course_lib.data.datasets import standardise
from course_lib.data.world import WorldConfig, make_world
from course_lib.grading.checks import (check_choice, check_measured, close,
                                       run_naming_mistakes, same_values)
from course_lib.quantize import vq

__all__ = ["check_laplace_smoothing", "check_ema_update", "check_reset_dead_codes",
           "check_perplexity", "utilisation_after_ema", "check_measured_utilisation",
           "check_why_codes_die"]


def t(values) -> Tensor:
    """A hand case's numbers, in float64 so messages show them as written."""
    return torch.tensor(values, dtype=torch.float64)


# --- the contract: new tensors, inputs untouched ---------------------------------------------

class ChangedInPlace:
    """What a call returns, for the checks, when the learner's function changed its inputs."""

    def __init__(self, names: list[str]):
        self.names = names

    def __repr__(self) -> str:
        return f"<{', '.join(self.names)} changed in place>"


def _untouched(fn, names: list[str]):
    """fn, returning `ChangedInPlace` when it changed any of its tensor inputs (named `names`);
    it keeps fn's name, so a rerun line names the learner's function."""
    def call(*args):
        before = [a.clone() if torch.is_tensor(a) else None for a in args]
        got = fn(*args)
        changed = [name for name, a, b in zip(names, args, before)
                   if b is not None and not torch.equal(a, b)]
        return ChangedInPlace(changed) if changed else got
    call.__name__ = getattr(fn, "__name__", "your_function")
    return call


def _in_place_verdict(got) -> str | None:
    if isinstance(got, ChangedInPlace):
        return (f"an update in place: your function changed {' and '.join(got.names)}; "
                "return new tensors (counts = decay * counts + ..., not counts.mul_(...) or "
                "counts *= ...), so the caller's tensors stay as they were")
    return None


# --- task 1: Laplace smoothing ---------------------------------------------------------------

def _smoothing_mistakes(counts: Tensor, eps: float) -> list[tuple[str, Tensor]]:
    n, k = counts.sum(), len(counts)
    return [("probabilities (N_i + eps) / (n + K eps) without the factor n: multiply by "
             "n = sum N_i, so the smoothed counts keep the total n",
             (counts + eps) / (n + k * eps)),
            ("eps added to the counts only (N_i + eps): the total grows by K eps; divide by "
             "n + K eps and multiply by n", counts + eps),
            ("n + eps in the denominator: every one of the K codes gets eps, so n + K eps",
             (counts + eps) / (n + eps) * n),
            ("rescaled by K instead of n: the smoothed counts must sum to n = sum N_i",
             (counts + eps) / (n + k * eps) * k),
            ("the counts unchanged: a code with count 0 must get a small positive count", counts)]


def check_laplace_smoothing(fn) -> None:
    """fn(counts (K,), eps) -> (N_i + eps) / (n + K eps) * n with n = sum_i N_i, counts
    untouched."""
    cases = [("a zero count gets eps", (t([0.0, 4.0]), 0.5)),
             ("no zero counts: the total stays n", (t([1.0, 2.0, 3.0]), 0.1)),
             ("the paper's eps", (t([0.0, 0.0, 10.0, 5.0]), 1e-5))]
    gen = torch.Generator().manual_seed(0)
    for i, k in enumerate([1, 7, 64]):
        counts = torch.rand(k, generator=gen, dtype=torch.float64) * 5
        counts[counts < 1] = 0                                    # some dead codes
        cases.append((f"random {i}", (counts, 1e-3)))
    cases = [(name, args, (vq.laplace_smoothing(*args), _smoothing_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("laplace_smoothing", _untouched(fn, ["counts"]), cases,
                               same_values, explain=lambda got, answer: _in_place_verdict(got))


# --- task 2: one EMA step --------------------------------------------------------------------

def _ema_case(gen, n, k, d):
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)              # (N, D)
    counts = torch.rand(k, generator=gen, dtype=torch.float64) * 3         # (K,)
    sums = torch.randn(k, d, generator=gen, dtype=torch.float64)           # (K, D)
    codes = torch.randint(k, (n,), generator=gen)                          # (N,)
    return counts, sums, x, codes


def _ema_mistakes(counts, sums, x, codes, decay, eps) -> list[tuple[str, tuple]]:
    n_i = torch.bincount(codes, minlength=len(counts)).to(counts.dtype)    # (K,)
    sum_i = torch.zeros_like(sums).index_add_(0, codes, x)                 # (K, D)
    mean_i = sum_i / n_i.clamp(min=1)[:, None]
    new_counts, new_sums, _ = vq.ema_update(counts, sums, x, codes, decay, eps)
    smoothed = vq.laplace_smoothing(new_counts, eps)[:, None]
    mean_sums = decay * sums + (1 - decay) * mean_i
    return [("the decay on the wrong side: N_i <- gamma N_i + (1 - gamma) n_i keeps the share "
             "gamma of the old value (gamma = 0.99 keeps 99%)",
             vq.ema_update(counts, sums, x, codes, 1 - decay, eps)),
            ("no Laplace smoothing: e_i = m_i / N~_i with N~ your laplace_smoothing(counts, eps)",
             (new_counts, new_sums, new_sums / new_counts[:, None])),
            ("the codebook from the old counts: divide the new sums by the new (smoothed) counts",
             (new_counts, new_sums, new_sums / vq.laplace_smoothing(counts, eps)[:, None])),
            ("the counts not updated: N_i <- gamma N_i + (1 - gamma) n_i, with n_i the vectors "
             "that chose code i", (counts, new_sums,
                                   new_sums / vq.laplace_smoothing(counts, eps)[:, None])),
            ("the batch's mean per code in m_i instead of its sum: m_i <- gamma m_i + "
             "(1 - gamma) sum_{c(z)=i} z", (new_counts, mean_sums, mean_sums / smoothed)),
            ("the sums not updated: m_i <- gamma m_i + (1 - gamma) sum_{c(z)=i} z",
             (new_counts, sums, sums / smoothed))]


def _same_triple(got, answer, args=None) -> bool:
    return (isinstance(got, tuple) and len(got) == 3
            and all(close(g, a) for g, a in zip(got, answer)))


def _explain_ema(got, answer) -> str | None:
    verdict = _in_place_verdict(got)
    if verdict or not (isinstance(got, tuple) and len(got) == 3):
        return verdict or "an answer that is not the tuple (counts, sums, codebook)"
    wrong = [name for name, g, a in zip(("counts", "sums", "codebook"), got, answer)
             if not close(g, a)]
    if wrong == ["codebook"]:
        return ("right counts and sums, a wrong codebook: e_i = m_i / N~_i, the new sums over "
                "the Laplace-smoothed new counts")
    return f"wrong {' and '.join(wrong)}: compare them with the three update equations"


def check_ema_update(fn) -> None:
    """fn(counts (K,), sums (K, D), x (N, D), codes (N,), decay, eps) -> (new counts, new sums,
    codebook = sums / Laplace-smoothed counts), inputs left untouched."""
    hand = (t([1.0, 1.0]), t([[0.0], [2.0]]), t([[0.5], [3.0], [5.0]]), torch.tensor([0, 1, 1]))
    cases = [("hand-computed (the lesson's example)", (*hand, 0.5, 0.1)),
             ("decay 0.9 keeps 90% of the old counts and sums",
              (t([2.0, 1.0, 0.5]), t([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
               t([[1.0, 1.0], [3.0, -1.0], [2.0, 2.0]]), torch.tensor([0, 0, 1]), 0.9, 1e-5)),
             ("a code no vector picks",
              (t([2.0, 1.0, 0.5]), t([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
               t([[1.0, 1.0], [3.0, -1.0]]), torch.tensor([0, 0]), 0.9, 1e-5))]
    gen = torch.Generator().manual_seed(1)
    for i, (n, k, d) in enumerate([(10, 4, 2), (64, 16, 8), (5, 32, 3)]):
        cases.append((f"random {i}", (*_ema_case(gen, n, k, d), 0.99, 1e-5)))
    cases = [(name, args, (vq.ema_update(*args), _ema_mistakes(*args))) for name, args in cases]
    learner = _untouched(fn, ["counts", "sums", "x", "codes"])
    return run_naming_mistakes("ema_update", learner, cases, _same_triple, explain=_explain_ema)


# --- task 3: the dead-code reset -------------------------------------------------------------

class ResetRule:
    """A reset case's expected answer: a rule, since the new rows are drawn at random."""

    def __init__(self, codebook: Tensor, counts: Tensor, x: Tensor, threshold: float):
        self.codebook, self.counts, self.x, self.threshold = codebook, counts, x, threshold
        self.dead = vq.dead_codes(counts, threshold)                       # (K,) bool

    def __repr__(self) -> str:
        return (f"dead = count < threshold = {self.dead.tolist()}; each dead code replaced by "
                "a row of x, the live codes unchanged")


def _read_reset(got):
    """(new codebook, dead mask) as tensors, or None if got is not a pair of tensors."""
    if not (isinstance(got, tuple) and len(got) == 2):
        return None
    try:
        return tuple(torch.as_tensor(g) for g in got)
    except (TypeError, ValueError, RuntimeError):
        return None


def _rows_of(rows: Tensor, table: Tensor) -> bool:
    """Every row of `rows` is a row of `table`."""
    if len(rows) == 0:
        return True
    if len(table) == 0 or rows.shape[1:] != table.shape[1:]:
        return False
    return bool((rows[:, None, :] == table[None]).all(-1).any(-1).all())


def _reset_problem(got, rule: ResetRule) -> str | None:
    """What is wrong with the learner's (new codebook, dead mask), None if nothing."""
    verdict = _in_place_verdict(got)
    if verdict:
        return verdict
    pair = _read_reset(got)
    if pair is None:
        return "an answer that is not the pair (new codebook, dead mask)"
    new, dead = pair
    if new.dtype == torch.bool and dead.shape == rule.codebook.shape:
        return "(dead, new codebook) in the wrong order: return (new_codebook, dead)"
    if dead.shape != rule.dead.shape or not torch.equal(dead.bool(), rule.dead):
        return f"dead mask {dead.tolist()}: dead means count < threshold"
    if dead.dtype != torch.bool:
        return (f"the right mask as {dead.dtype} values: return a bool tensor (count < "
                "threshold is one)")
    if new.shape != rule.codebook.shape:
        return f"a new codebook of shape {tuple(new.shape)}, expected {tuple(rule.codebook.shape)}"
    if not torch.equal(new[~rule.dead], rule.codebook[~rule.dead]):
        return "a live code was changed: only the dead codes are replaced"
    if not _rows_of(new[rule.dead], rule.x):
        return "a dead code not replaced by a row of x (the current batch)"
    return None


def _reset_mistakes(rule: ResetRule) -> list[tuple[str, object]]:
    """(what, test of the learner's answer) for the known mistakes of the reset."""
    def mask_is(wrong: Tensor):
        def test(got, args):
            pair = _read_reset(got)
            return (pair is not None and pair[1].shape == wrong.shape
                    and torch.equal(pair[1].bool(), wrong) and not torch.equal(wrong, rule.dead))
        return test

    def new_codes(got) -> Tensor | None:
        pair = _read_reset(got)
        return None if pair is None or pair[0].shape != rule.codebook.shape else pair[0]

    def kept_dead(got, args):
        new = new_codes(got)
        return new is not None and bool(rule.dead.any()) and torch.equal(new, rule.codebook)

    def from_live_codes(got, args):
        new = new_codes(got)
        return (new is not None and bool(rule.dead.any()) and bool((~rule.dead).any())
                and _rows_of(new[rule.dead], rule.codebook[~rule.dead])
                and not _rows_of(new[rule.dead], rule.x))

    def all_replaced(got, args):
        new = new_codes(got)
        return (new is not None and bool((~rule.dead).any())
                and not torch.equal(new[~rule.dead], rule.codebook[~rule.dead])
                and _rows_of(new, rule.x))

    return [("count <= threshold: a code whose count equals the threshold is alive; dead "
             "means count < threshold", mask_is(rule.counts <= rule.threshold)),
            ("the mask inverted: the dead codes are those with count < threshold",
             mask_is(rule.counts >= rule.threshold)),
            ("the dead codes left as they were: replace each by a random row of x",
             kept_dead),
            ("dead codes copied from live codes: re-seed them with rows of the batch x, where "
             "the data are now", from_live_codes),
            ("every code replaced by a row of x: the live codes must stay as they are",
             all_replaced)]


def check_reset_dead_codes(fn) -> None:
    """fn(codebook (K, D), counts (K,), x (N, D), threshold) -> (new codebook, dead mask):
    codes with count < threshold get a row of x, the others stay as they were; codebook
    untouched."""
    cases = [("one dead code", (t([[0.0, 0.0], [1.0, 1.0]]), t([0.1, 3.0]),
                                t([[5.0, 5.0], [6.0, 6.0]]), 0.5)),
             ("none dead", (t([[0.0], [1.0]]), t([1.0, 2.0]), t([[9.0]]), 0.5)),
             ("all dead", (t([[0.0], [1.0], [2.0]]), t([0.0, 0.2, 0.4]), t([[7.0], [8.0]]), 0.5)),
             ("count equal to the threshold is alive", (t([[0.0], [1.0]]), t([0.5, 0.49]),
                                                        t([[4.0]]), 0.5))]
    gen = torch.Generator().manual_seed(2)
    for i, (k, d, n) in enumerate([(8, 2, 20), (64, 4, 5), (16, 3, 100)]):
        codebook = torch.randn(k, d, generator=gen, dtype=torch.float64)
        counts = torch.rand(k, generator=gen, dtype=torch.float64) * 2
        x = 10 + torch.randn(n, d, generator=gen, dtype=torch.float64)
        cases.append((f"random {i}", (codebook, counts, x, 1.0)))
    cases = [(name, args, (ResetRule(*args), _reset_mistakes(ResetRule(*args))))
             for name, args in cases]
    learner = _untouched(fn, ["codebook", "counts", "x"])
    return run_naming_mistakes("reset_dead_codes", learner, cases,
                               lambda got, rule, args: _reset_problem(got, rule) is None,
                               lambda got, wrong, args: wrong(got, args), _reset_problem)


# --- task 4: the perplexity ------------------------------------------------------------------

def _perplexity_mistakes(codes: Tensor, n_codes: int) -> list[tuple[str, float]]:
    counts = torch.bincount(codes, minlength=n_codes).double()
    p = counts[counts > 0] / len(codes)
    entropy = float(-(p * p.log()).sum())                                  # nats
    used = int((counts > 0).sum())
    q = counts[counts > 0] / n_codes
    return [("the entropy -sum p log p, not its exponential: the perplexity is exp(entropy)",
             entropy),
            ("exp of the entropy in bits, exp(-sum p log2 p) = perplexity^(1/ln 2): with log2 "
             "take 2 ** H, or use the natural log throughout", math.exp(entropy / math.log(2))),
            ("exp of the entropy in log10: use the natural log (or 10 ** H)",
             math.exp(entropy / math.log(10))),
            ("the entropy in bits, not its exponential", entropy / math.log(2)),
            ("the number of codes used: the perplexity weighs the codes by how much they are "
             "used, so uneven use counts for less", used),
            ("the utilisation (codes used / K): the perplexity is an effective number of codes, "
             "not a share", used / n_codes),
            ("p_k = count / K: p_k is the share of the rows, count / N",
             math.exp(float(-(q * q.log()).sum()))),
            ("the perplexity divided by K: return the effective number of codes itself",
             math.exp(entropy) / n_codes),
            ("exp(+sum p log p) = 1 / perplexity: the entropy has a minus sign",
             math.exp(-entropy))]


def _explain_perplexity(got, answer) -> str | None:
    if isinstance(got, ChangedInPlace):
        return _in_place_verdict(got)
    try:
        value = float(got)
    except (TypeError, ValueError, RuntimeError):
        return "an answer that is not one number: return a float (.item())"
    if math.isnan(value):
        return ("NaN: unused codes have p = 0 and 0 log 0 counts as 0; drop them (p[p > 0]) "
                "before the log")
    return None


def check_perplexity(fn) -> None:
    """fn(codes (N,), n_codes) -> exp(-sum_k p_k log p_k) of the code usage (natural log)."""
    cases = [("two codes used unevenly: fewer than 2 effective codes",
              (torch.tensor([0, 0, 0, 1]), 2)),
             ("one code used", (torch.tensor([3, 3, 3]), 5)),
             ("uniform over all codes", (torch.tensor([0, 1, 2, 3]), 4)),
             ("unused codes add nothing", (torch.tensor([0, 0, 1, 1]), 100))]
    gen = torch.Generator().manual_seed(3)
    for i, (n, k) in enumerate([(50, 8), (1000, 256), (7, 3)]):
        cases.append((f"random {i}", (torch.randint(k, (n,), generator=gen), k)))
    cases = [(name, args, (metrics.perplexity(*args), _perplexity_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("perplexity", _untouched(fn, ["codes"]), cases, same_values,
                               explain=_explain_perplexity)


# --- task 5: predict, measure, interpret -------------------------------------------------------

CODES, STEPS, DECAY, EPS = 64, 20, 0.99, 1e-5          # the measurement's setting
SEEDS = range(5)                                       # the check's range: five initial balls


def tiny_ball(seed: int) -> Tensor:
    """(64, 32) codes uniform in [-1/64, 1/64], the library's initial codebook, drawn with a
    seeded generator (the global random state is left alone)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.empty(CODES, 32).uniform_(-1 / CODES, 1 / CODES, generator=gen)


def world_items(world: WorldConfig | None = None) -> Tensor:
    """The item content of `world` (by default the profile's world), standardised: (I, 32)."""
    world = world or get_profile().world
    return standardise(torch.tensor(make_world(world).content[1:]))


def utilisation_after_ema(ema_update, x: Tensor, codebook: Tensor, steps: int = STEPS,
                          decay: float = DECAY) -> float:
    """Share of the codes that some row of x picks after `steps` EMA steps on all of x from
    `codebook` (counts start at 1 and sums at the codebook, as in the library)."""
    counts, sums = torch.ones(len(codebook)), codebook.clone()
    for _ in range(steps):
        counts, sums, codebook = ema_update(counts, sums, x, vq.nearest_codes(x, codebook),
                                            decay, EPS)
    return metrics.utilisation(vq.nearest_codes(x, codebook), len(codebook))


@functools.cache
def _shares_over_seeds(world: WorldConfig) -> tuple[float, ...]:
    x = world_items(world)
    return tuple(utilisation_after_ema(vq.ema_update, x, tiny_ball(seed)) for seed in SEEDS)


def check_measured_utilisation(measure) -> None:
    """measure() -> the share of the 64 codes in use after 20 EMA steps from the tiny ball (seed
    0) on the world's items. The range is what the library's own EMA gives from five initial
    balls (seeds 0-4), widened by one code either side."""
    shares = _shares_over_seeds(get_profile().world)
    return check_measured(
        "measured_utilisation", measure, min(shares) - 1 / CODES, max(shares) + 1 / CODES,
        "the share of the 64 codes in use after 20 EMA steps",
        hint="count the codes that at least one item picks with the codebook *after* the 20 "
             "steps (nearest codes of x for the updated codebook), divided by 64: a share, not "
             "a perplexity; before any step the share is far higher")


WHY_CODES_DIE = {
    "a": "Right. A code moves towards its voters by the share (1 - gamma) n_i / N_i of the way, "
         "and N_i starts at 1, so a code that won many items leaves the ball first and "
         "furthest. Sitting among the data, it becomes the nearest code of items whose codes "
         "are still at the origin; those codes then win nothing, get no votes and never move "
         "again: the rich get richer. (A faster decay evens out the first steps and keeps "
         "more codes alive; only a reset brings dead codes back.)",
    "b": "No: Laplace smoothing only makes every count positive, keeping the total n; it "
         "removes no code. A code that is never chosen is still there, at its old place.",
    "c": "No: an unchosen code's running sum m_i and count N_i both shrink by the factor gamma, "
         "so e_i = m_i / N~_i stays where it is; only the chosen codes move.",
    "d": "No: the codes in the ball are the farthest from the data, not the nearest: an item "
         "has norm about sqrt(32) ~ 5.7 and a code at the origin is about that far from it, "
         "while a code that moved towards the item's neighbours is closer.",
}


def check_why_codes_die(choose) -> None:
    """choose() -> the letter of the explanation of the measured share (see WHY_CODES_DIE)."""
    return check_choice("why_codes_die", choose, "a", WHY_CODES_DIE)
