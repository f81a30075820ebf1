"""Lesson 03's checks accept answers written by another route than the library's (a loop,
a custom autograd function, F.mse_loss), so their expected values agree with the definitions;
they accept the library's functions; every plausible wrong answer fails, on the case named
after it, with the hint that names the mistake; a stub is reported as not implemented; and
the predict-measure-interpret task accepts the right measurement and rejects the wrong ones."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import checks as machinery
from course_lib.grading import lesson03 as checks
from course_lib.grading.checks import CheckFailed, NotImplementedYet
from course_lib.quantize import vq


def nearest_by_loop(x, codebook):
    return torch.tensor([min(range(len(codebook)),
                             key=lambda c: sum((a - b) ** 2 for a, b in zip(row, codebook[c].tolist())))
                         for row in x.tolist()])


class CopyGradient(torch.autograd.Function):
    """Forward: the code e. Backward: the gradient goes to z_e unchanged, none to e."""

    @staticmethod
    def forward(ctx, z_e, e):
        return e.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def test_answers_by_another_route_pass_every_check(capsys):
    checks.check_nearest_codes(nearest_by_loop)
    checks.check_straight_through(CopyGradient.apply)
    checks.check_codebook_loss(lambda z_e, e: F.mse_loss(e, z_e.detach()))
    checks.check_commitment_loss(lambda z_e, e: F.mse_loss(z_e, e.detach()))
    assert capsys.readouterr().out.count("\u2713") == 4


def test_the_library_functions_pass_every_check(capsys):
    checks.check_nearest_codes(vq.nearest_codes)
    checks.check_straight_through(vq.straight_through)
    checks.check_codebook_loss(vq.codebook_loss)
    checks.check_commitment_loss(vq.commitment_loss)
    assert capsys.readouterr().out.count("\u2713") == 4


# --- every named mistake fails with its hint ----------------------------------------------------

def squared_distances(x, codebook):
    return torch.cdist(x, codebook) ** 2


NEAREST_MISTAKES = [
    ("nearest, not largest dot product", "the largest dot product",
     lambda x, codebook: (x @ codebook.T).argmax(1)),
    ("nearest by distance, not by angle", "the most similar direction",
     lambda x, codebook: (F.normalize(x, dim=1) @ F.normalize(codebook, dim=1).T).argmax(1)),
    ("nearest by distance, not by angle", r"\+2 x.e instead of -2 x.e",
     lambda x, codebook: ((x ** 2).sum(1, keepdim=True) + 2 * x @ codebook.T
                          + (codebook ** 2).sum(1)).argmin(1)),
    ("nearest by distance, not by angle", "the farthest code",
     lambda x, codebook: squared_distances(x, codebook).argmax(1)),
    ("squared Euclidean, not Manhattan", "the Manhattan distance",
     lambda x, codebook: torch.cdist(x, codebook, p=1).argmin(1)),
    ("nearest by distance, not by angle", "code numbers counted from 1",
     lambda x, codebook: vq.nearest_codes(x, codebook) + 1),
    ("nearest by distance, not by angle", r"the codes' vectors codebook\[c\] instead of their",
     lambda x, codebook: codebook[vq.nearest_codes(x, codebook)]),
    ("nearest by distance, not by angle", "the right codes as floats",
     lambda x, codebook: vq.nearest_codes(x, codebook).double()),
    ("nearest by distance, not by angle", r"an answer of shape \(4,\) where x has 1 rows",
     lambda x, codebook: squared_distances(x, codebook).argmin(0)),
]


@pytest.mark.parametrize("case, hint, wrong", NEAREST_MISTAKES,
                         ids=[hint for _, hint, _ in NEAREST_MISTAKES])
def test_a_wrong_lookup_fails_and_is_named(case, hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)case '{case}'.*this looks like {hint}"):
        checks.check_nearest_codes(wrong)


STE_MISTAKES = [
    ("e itself, or z_e \+ \(e - z_e\) without the stop-gradient", lambda z_e, e: z_e + (e - z_e)),
    ("e itself, or z_e \+ \(e - z_e\) without the stop-gradient", lambda z_e, e: e),
    ("the stop-gradient on the wrong side", lambda z_e, e: e + (z_e - e).detach()),
    (r"sg\(z_e\) \+ \(e - z_e\)", lambda z_e, e: z_e.detach() + (e - z_e)),
    ("z_e itself", lambda z_e, e: z_e),
    (r"sg\(e\): no gradient reaches anything", lambda z_e, e: e.detach()),
    ("the right value, but a wrong gradient at z_e",
     lambda z_e, e: 1.5 * z_e + (e - 1.5 * z_e).detach()),
]


@pytest.mark.parametrize("hint, wrong", STE_MISTAKES,
                         ids=["no stop-gradient", "e itself", "wrong side", "sg(z_e)",
                              "z_e itself", "sg(e)", "gradient at z_e scaled"])
def test_a_wrong_straight_through_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed,
                       match=rf"(?s)straight_through: wrong answer.*looks like {hint}"):
        checks.check_straight_through(wrong)


def loss_mistakes(difference, swapped):
    return [
        ("the other loss: the stop-gradient on the wrong input", swapped),
        ("no stop-gradient", lambda z_e, e: F.mse_loss(z_e, e)),
        ("the sum instead of the mean", lambda z_e, e: (difference(z_e, e) ** 2).sum()),
        ("the mean over vectors", lambda z_e, e: (difference(z_e, e) ** 2).sum(1).mean()),
        ("the squared errors not averaged", lambda z_e, e: difference(z_e, e) ** 2),
        (r"the absolute error \|z_e - e\|", lambda z_e, e: difference(z_e, e).abs().mean()),
        ("the loss times beta = 0.25", lambda z_e, e: 0.25 * (difference(z_e, e) ** 2).mean()),
        ("a wrong forward value", lambda z_e, e: (difference(z_e, e) ** 2).mean() + 1),
    ]


CODEBOOK_MISTAKES = loss_mistakes(lambda z_e, e: z_e.detach() - e, vq.commitment_loss)
COMMITMENT_MISTAKES = loss_mistakes(lambda z_e, e: z_e - e.detach(), vq.codebook_loss)


@pytest.mark.parametrize("hint, wrong", CODEBOOK_MISTAKES,
                         ids=[hint for hint, _ in CODEBOOK_MISTAKES])
def test_a_wrong_codebook_loss_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)codebook_loss: wrong answer.*looks like {hint}"):
        checks.check_codebook_loss(wrong)


@pytest.mark.parametrize("hint, wrong", COMMITMENT_MISTAKES,
                         ids=[hint for hint, _ in COMMITMENT_MISTAKES])
def test_a_wrong_commitment_loss_fails_and_is_named(hint, wrong):
    with pytest.raises(CheckFailed, match=rf"(?s)commitment_loss: wrong answer.*looks like {hint}"):
        checks.check_commitment_loss(wrong)


def test_beta_says_where_it_belongs():
    with pytest.raises(CheckFailed, match="beta weights the commitment loss only"):
        checks.check_codebook_loss(lambda z_e, e: 0.25 * vq.codebook_loss(z_e, e))
    with pytest.raises(CheckFailed, match="multiplies it by beta outside"):
        checks.check_commitment_loss(lambda z_e, e: 0.25 * vq.commitment_loss(z_e, e))


# --- failures are reproducible ------------------------------------------------------------------

def test_a_failing_case_reruns_with_the_learners_function_name():
    def straight_through(z_e, e):
        return e

    with pytest.raises(CheckFailed, match=r"rerun it: .*straight_through\(\*last_failure.args\)"):
        checks.check_straight_through(straight_through)
    z_e, e = machinery.last_failure.args
    assert torch.equal(straight_through(z_e, e), e), "the kept arguments are (z_e, e)"


def test_the_kept_case_gives_the_same_wrong_answer_again():
    def farthest(x, codebook):
        return squared_distances(x, codebook).argmax(1)

    with pytest.raises(CheckFailed):
        checks.check_nearest_codes(farthest)
    failure = machinery.last_failure
    assert torch.equal(farthest(*failure.args), failure.got)


# --- unfinished and crashing answers ------------------------------------------------------------

@pytest.mark.parametrize("check", [checks.check_nearest_codes, checks.check_straight_through,
                                   checks.check_codebook_loss, checks.check_commitment_loss])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


def test_a_crash_names_the_error():
    with pytest.raises(CheckFailed, match="raised RuntimeError"):
        checks.check_nearest_codes(lambda x, codebook: torch.cdist(x, codebook[:, :1]).argmin(1))


# --- predict, measure, interpret: the gradient ratio --------------------------------------------

def measured_with(codebook_loss, commitment_loss):
    return lambda: checks.gradient_ratio(codebook_loss, commitment_loss,
                                         *checks.gradient_ratio_data())


def test_the_measured_ratio_of_the_right_losses_passes(capsys):
    checks.check_measured_gradient_ratio(measured_with(vq.codebook_loss,
                                                       vq.commitment_loss))
    assert "= 0.25" in capsys.readouterr().out


@pytest.mark.parametrize("codebook_loss, commitment_loss, value", [
    (lambda z_e, e: F.mse_loss(z_e, e), lambda z_e, e: F.mse_loss(z_e, e), "= 1 "),
    (lambda z_e, e: 0.25 * vq.codebook_loss(z_e, e), lambda z_e, e: 4 * vq.commitment_loss(z_e, e),
     "= 4 "),
], ids=["stop-gradients missing", "beta on the codebook term"])
def test_the_ratio_of_plausible_wrong_losses_fails_with_the_hint(codebook_loss, commitment_loss,
                                                                value):
    with pytest.raises(CheckFailed,
                       match=rf"(?s){value}is outside the range.*hint: .*a ratio of 1"):
        checks.check_measured_gradient_ratio(measured_with(codebook_loss, commitment_loss))


def test_the_ratio_is_beta_whatever_the_data():
    gen = torch.Generator().manual_seed(3)
    x, codebook = torch.randn(50, 4, generator=gen), torch.randn(7, 4, generator=gen)
    assert checks.gradient_ratio(vq.codebook_loss, vq.commitment_loss, x, codebook) == \
        pytest.approx(0.25, rel=1e-5)


def test_the_right_reason_passes(capsys):
    checks.check_why_gradient_ratio(lambda: "A")
    assert "Right." in capsys.readouterr().out


@pytest.mark.parametrize("letter", sorted(set(checks.WHY_GRADIENT_RATIO) - {"a"}))
def test_each_wrong_reason_fails_with_its_explanation(letter):
    reason = checks.WHY_GRADIENT_RATIO[letter]
    with pytest.raises(CheckFailed, match=rf"\({letter}\) does not explain") as failure:
        checks.check_why_gradient_ratio(lambda: letter)
    assert reason in str(failure.value) and reason.startswith("No:")


def test_an_answer_that_is_no_option_is_refused():
    with pytest.raises(CheckFailed, match="answer with one of"):
        checks.check_why_gradient_ratio(lambda: "e")


@pytest.mark.parametrize("check", [checks.check_measured_gradient_ratio,
                                   checks.check_why_gradient_ratio])
def test_an_unfinished_measurement_is_reported_as_not_done(check, stub):
    with pytest.raises(NotImplementedYet, match="not done yet"):
        check(stub)
