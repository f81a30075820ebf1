"""Checks for exercise 03 (VQ-VAE): the nearest-code lookup, the straight-through estimator
(STE), and the codebook and commitment losses, each compared with `course_lib.quantize.vq`
(van den Oord et al. 2017, eq. 1 and 3); then a predict-measure-interpret task on the
gradients the two losses send.

The gradient checks run the learner's function on copies of (z_e, e) that require grad,
backpropagate a fixed upstream gradient (seeded by the shape, so a failing case reruns as
`straight_through(*last_failure.args)`), and compare the value and where the gradient
arrives: (value, gradient at z_e, gradient at e).

A wrong answer names the case and, where it equals the answer of a known mistake (the
largest dot product or the farthest code instead of the nearest, the stop-gradient missing
or on the wrong side, the two losses swapped, the sum instead of the mean, beta in the wrong
loss, ...), says which mistake it looks like; otherwise it says which part is wrong.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib import get_profile
from course_lib.data.datasets import standardise
from course_lib.data.world import make_world
from course_lib.grading.checks import (check_choice, check_measured, close, run_naming_mistakes,
                                       same_integers)
from course_lib.quantize import vq

__all__ = ["check_nearest_codes", "check_straight_through", "check_codebook_loss",
           "check_commitment_loss", "gradient_ratio_data", "check_measured_gradient_ratio",
           "check_why_gradient_ratio"]

BETA = 0.25                      # the commitment weight of the paper (section 3.2)


def t(values) -> Tensor:
    """A hand case's vectors, in float64 so messages show them as written."""
    return torch.tensor(values, dtype=torch.float64)


def _vectors(gen, n, k, d):
    return (torch.randn(n, d, generator=gen, dtype=torch.float64),
            torch.randn(k, d, generator=gen, dtype=torch.float64))


# --- task 1: the nearest-code lookup --------------------------------------------------------

def _nearest_mistakes(x: Tensor, codebook: Tensor) -> list[tuple[str, object]]:
    """(what, wrong codes) of the plausible wrong lookups; a callable spots an answer by shape."""
    squared = torch.cdist(x, codebook) ** 2                                  # (N, K)
    dot = x @ codebook.T                                                     # (N, K)
    cosine = F.normalize(x, dim=1) @ F.normalize(codebook, dim=1).T
    plus = (x ** 2).sum(1, keepdim=True) + 2 * dot + (codebook ** 2).sum(1)
    right = squared.argmin(1)

    def the_vectors(got, args):
        return torch.is_tensor(got) and got.shape == x.shape and close(got, codebook[right])

    return [("the largest dot product x . e_k: that is the nearest code only when every code "
             "has the same norm; argmin of ||x||^2 - 2 x.e + ||e||^2 keeps the ||e||^2 term",
             dot.argmax(1)),
            ("the most similar direction (cosine): the nearest code is by distance, not angle",
             cosine.argmax(1)),
            ("+2 x.e instead of -2 x.e in the expanded distance: that finds the code nearest "
             "to -x", plus.argmin(1)),
            ("the farthest code: take the argmin of the distances, not the argmax",
             squared.argmax(1)),
            ("the Manhattan distance sum |x - e|: the task's distance is squared Euclidean",
             torch.cdist(x, codebook, p=1).argmin(1)),
            ("code numbers counted from 1: code k is row k of the codebook, from 0", right + 1),
            ("the codes' vectors codebook[c] instead of their indices c: return the index "
             "(N,) (the decoder looks the vectors up later)", the_vectors)]


def _looks_like(got, wrong, args) -> bool:
    """A wrong answer is a value to compare, or a test of the learner's answer."""
    return wrong(got, args) if callable(wrong) else close(got, wrong)


def _explain_codes(got, answer) -> str | None:
    if torch.is_tensor(got) and got.is_floating_point() and close(got, answer):
        return "the right codes as floats: return the long tensor argmin gives"
    if torch.is_tensor(got) and got.dim() == 1 and got.shape != answer.shape:
        return (f"an answer of shape {tuple(got.shape)} where x has {len(answer)} rows: take "
                "the argmin over the codes (dim=1), one code per row of x")
    return None


def check_nearest_codes(fn) -> None:
    """fn(x (N, D), codebook (K, D)) -> (N,) long, the index of the nearest code (squared
    Euclidean distance; ties go to the lowest index, as argmin gives)."""
    # Each hand case tells one mistake from the others (so the hint names the right one).
    cases = [("nearest by distance, not by angle",
              (t([[1.0, 0.0]]), t([[0.5, 0.0], [-1.0, 0.0], [0.0, 6.0], [1.1, 0.3]]))),
             ("nearest, not largest dot product", (t([[1.0, 0.0]]), t([[3.0, 0.0], [0.9, 0.1]]))),
             ("nearest to x, not to -x",
              (t([[1.0, 1.0]]), t([[1.0, 1.0], [-1.0, -1.0], [-5.0, -5.0]]))),
             ("squared Euclidean, not Manhattan",
              (t([[0.0, 0.0]]), t([[3.0, 3.0], [1.5, 0.0], [1.0, 1.0]]))),
             ("one dimension", (t([[0.1], [1.9], [5.0]]), t([[0.0], [2.0], [4.0]]))),
             ("a single code", (t([[1.0, 2.0], [-3.0, 0.5]]), t([[0.0, 0.0]])))]
    gen = torch.Generator().manual_seed(0)
    for i, (n, k, d) in enumerate([(5, 3, 2), (20, 8, 4), (64, 32, 16), (1, 5, 3)]):
        cases.append((f"random {i}", _vectors(gen, n, k, d)))
    cases = [(name, args, (vq.nearest_codes(*args), _nearest_mistakes(*args)))
             for name, args in cases]
    return run_naming_mistakes("nearest_codes", fn, cases, same_integers, _looks_like,
                               _explain_codes)


# --- tasks 2-4: where the gradient goes -----------------------------------------------------

def _upstream(z_e: Tensor, scalar: bool) -> Tensor:
    """The gradient that arrives from above: 1.7 for a loss, else fixed by the shape."""
    if scalar:
        return torch.tensor(1.7, dtype=z_e.dtype)
    gen = torch.Generator().manual_seed(z_e.numel())
    return torch.randn(z_e.shape, generator=gen, dtype=z_e.dtype)


def _probe(fn, scalar: bool):
    """fn as a function of (z_e, e) that returns (value, gradient at z_e, gradient at e) for
    the upstream gradient; it keeps fn's name, so a rerun line names the learner's function."""
    def probe(z_e, e):
        z_e, e = z_e.clone().requires_grad_(), e.clone().requires_grad_()
        out = fn(z_e, e)
        if not torch.is_tensor(out):
            raise TypeError(f"expected a tensor, got {type(out).__name__}")
        if out.requires_grad:
            (out * _upstream(z_e, scalar)).sum().backward()
        zero = torch.zeros_like
        return (out.detach(), zero(z_e) if z_e.grad is None else z_e.grad,
                zero(e) if e.grad is None else e.grad)
    probe.__name__ = getattr(fn, "__name__", "your_function")
    return probe


def _gradient_cases(reference, mistakes: list[tuple[str, object]], scalar: bool):
    """Hand and random cases (z_e, e) with the answers (value, grad z_e, grad e) of the
    reference and of every mistake."""
    cases = [("2 vectors x 3 features: 6 elements",
              (t([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]), t([[1.0, 1.0, 1.0], [0.0, 2.0, -1.0]]))),
             ("one vector of 2 features", (t([[0.5, -1.0]]), t([[1.0, 0.0]])))]
    gen = torch.Generator().manual_seed(1)
    for i, (n, d) in enumerate([(1, 1), (4, 2), (16, 8), (32, 3)]):
        cases.append((f"random {i}", _vectors(gen, n, n, d)))
    return [(f"{name}; answers are (value, gradient at z_e, gradient at e)", args,
             (_probe(reference, scalar)(*args),
              [(what, _probe(wrong, scalar)(*args)) for what, wrong in mistakes]))
            for name, args in cases]


def _same_value_and_gradients(got, answer, args=None) -> bool:
    return isinstance(got, tuple) and len(got) == 3 and all(
        close(g, a) for g, a in zip(got, answer))


def _explain_parts(got, answer) -> str | None:
    """Which of (value, gradient at z_e, gradient at e) is wrong, when no mistake matched."""
    if not (isinstance(got, tuple) and len(got) == 3):
        return None
    value, at_z, at_e = (close(g, a) for g, a in zip(got, answer))
    if not value:
        return "a wrong forward value (the gradients aside): compare it with the formula"
    if not at_z and not at_e:
        return "the right value with the gradient in the wrong place: check the .detach()"
    if not at_z:
        return "the right value, but a wrong gradient at z_e"
    return "the right value, but a wrong gradient at e"


def check_straight_through(fn) -> None:
    """fn(z_e, e) -> z_q with the value of e and the gradient of z_e: dz_q/dz_e = I, no
    gradient to e."""
    mistakes = [("e itself, or z_e + (e - z_e) without the stop-gradient (the same thing): "
                 "the value is right, but the encoder gets no gradient and the codes get all "
                 "of it; detach the difference, z_e + (e - z_e).detach()", lambda z_e, e: e),
                ("the stop-gradient on the wrong side: e + sg(z_e - e) sends the gradient to "
                 "the codes, not to the encoder", lambda z_e, e: e + (z_e - e).detach()),
                ("sg(z_e) + (e - z_e): the encoder's gradient with a minus sign, and e gets "
                 "one too", lambda z_e, e: z_e.detach() + (e - z_e)),
                ("z_e itself: the gradient is right, but forward the decoder must see the "
                 "code e", lambda z_e, e: z_e),
                ("sg(e): no gradient reaches anything", lambda z_e, e: e.detach())]
    return run_naming_mistakes("straight_through", _probe(fn, False),
                               _gradient_cases(vq.straight_through, mistakes, False),
                               _same_value_and_gradients, explain=_explain_parts)


def _loss_mistakes(difference, swapped, moves: str, beta_why: str):
    """The plausible wrong versions of a loss of `difference(z_e, e)` (with its stop-gradient)
    that should move `moves` only; `swapped` is the other loss."""
    other = "e (the codes)" if moves == "z_e" else "z_e (the encoder)"
    return [(f"the other loss: the stop-gradient on the wrong input, so the gradient moves "
             f"{other} instead of {moves}", swapped),
            ("no stop-gradient: without .detach() the loss moves both z_e and e",
             lambda z_e, e: ((z_e - e) ** 2).mean()),
            ("the sum instead of the mean: average over all N x D elements, like F.mse_loss",
             lambda z_e, e: (difference(z_e, e) ** 2).sum()),
            ("the mean over vectors of ||z_e - e||^2 (summed over D): average over all N x D "
             "elements, like F.mse_loss", lambda z_e, e: (difference(z_e, e) ** 2).sum(1).mean()),
            ("the squared errors not averaged: return one number, their mean",
             lambda z_e, e: difference(z_e, e) ** 2),
            ("the absolute error |z_e - e|: the loss squares it",
             lambda z_e, e: difference(z_e, e).abs().mean()),
            (f"the loss times beta = {BETA}: {beta_why}",
             lambda z_e, e: BETA * (difference(z_e, e) ** 2).mean())]


def check_codebook_loss(fn) -> None:
    """fn(z_e, e) -> mean of (sg(z_e) - e)^2: the gradient reaches e only."""
    mistakes = _loss_mistakes(lambda z_e, e: z_e.detach() - e, vq.commitment_loss, "e",
                              "beta weights the commitment loss only")
    return run_naming_mistakes("codebook_loss", _probe(fn, True),
                               _gradient_cases(vq.codebook_loss, mistakes, True),
                               _same_value_and_gradients, explain=_explain_parts)


def check_commitment_loss(fn) -> None:
    """fn(z_e, e) -> mean of (z_e - sg(e))^2: the gradient reaches z_e only (the VQ-VAE
    multiplies it by beta = 0.25 outside)."""
    mistakes = _loss_mistakes(lambda z_e, e: z_e - e.detach(), vq.codebook_loss, "z_e",
                              "return the plain loss; the VQ-VAE multiplies it by beta outside")
    return run_naming_mistakes("commitment_loss", _probe(fn, True),
                               _gradient_cases(vq.commitment_loss, mistakes, True),
                               _same_value_and_gradients, explain=_explain_parts)


# --- task 5: predict, measure, interpret ------------------------------------------------------

def gradient_ratio_data() -> tuple[Tensor, Tensor]:
    """The measurement's data: the world's items, standardised, as encoder outputs x (I, 32),
    and 16 codes on random items (seed 0), as the exercise builds them."""
    x = standardise(torch.tensor(make_world(get_profile().world).content[1:]))     # (I, 32)
    gen = torch.Generator().manual_seed(0)
    return x, x[torch.randperm(len(x), generator=gen)[:16]]                         # (16, 32)


def gradient_ratio(codebook_loss, commitment_loss, x: Tensor, codebook: Tensor) -> float:
    """||grad at z_e|| / ||grad at e|| of codebook_loss + beta * commitment_loss, with z_e = x
    and e = the nearest codes (one row per vector, a leaf of its own)."""
    z_e = x.clone().requires_grad_()
    e = codebook[vq.nearest_codes(x, codebook)].clone().requires_grad_()          # (I, 32)
    (codebook_loss(z_e, e) + BETA * commitment_loss(z_e, e)).backward()
    return (z_e.grad.norm() / e.grad.norm()).item()


def check_measured_gradient_ratio(measure) -> None:
    """measure() -> ||grad z_e|| / ||grad e|| of codebook + 0.25 commitment on the exercise's
    data; right within 1% of the library's value (an identity: it is beta, up to rounding).
    A missing stop-gradient gives 1; beta on the wrong loss gives 4."""
    reference = gradient_ratio(vq.codebook_loss, vq.commitment_loss, *gradient_ratio_data())
    return check_measured(
        "measured_gradient_ratio", measure, 0.99 * reference, 1.01 * reference,
        "||gradient at z_e|| / ||gradient at e||",
        hint="backpropagate codebook_loss(z_e, e) + 0.25 * commitment_loss(z_e, e) once and "
             "divide z_e.grad.norm() by e.grad.norm(); a ratio of 1 means each loss reaches "
             "both sides (a .detach() missing), 4 means beta on the codebook term")


WHY_GRADIENT_RATIO = {
    "a": "Right. The stop-gradients split the loss: the codebook term sends e the pull "
         "2 (e - z_e) / (N D) and nothing to z_e; the commitment term sends z_e the same pull "
         "the other way, 2 (z_e - e) / (N D), and nothing to e, and only it is weighted by "
         "beta. So per vector the encoder gets beta times the codes' pull: 0.25.",
    "b": "No: the straight-through estimator is not in this loss at all (it routes the "
         "decoder's gradient), and where it is used it passes the gradient unchanged, the "
         "identity, not scaled by beta.",
    "c": "No: e here holds one code row per vector (N, D), as many rows as z_e, and the ratio "
         "is the same for every single vector; the codebook's size K plays no part.",
    "d": "No: the two terms are the same number, ||z_e - e||^2 = ||e - z_e||^2; the distance "
         "is symmetric. What differs is which side each term may move, and the weight beta.",
}


def check_why_gradient_ratio(choose) -> None:
    """choose() -> the letter of the explanation of the measured ratio (see WHY_GRADIENT_RATIO)."""
    return check_choice("why_gradient_ratio", choose, "a", WHY_GRADIENT_RATIO)
