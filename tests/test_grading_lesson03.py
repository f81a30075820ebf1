"""Lesson 03's checks accept answers written by another route than the library's (a loop,
a custom autograd function, F.mse_loss), so their expected values agree with the definitions;
they accept the library's functions, name the case a typical mistake fails, and report a stub
as not implemented."""
import pytest
import torch
import torch.nn.functional as F

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
    assert checks.check_nearest_codes(nearest_by_loop)
    assert checks.check_straight_through(CopyGradient.apply)
    assert checks.check_codebook_loss(lambda z_e, e: F.mse_loss(e, z_e.detach()))
    assert checks.check_commitment_loss(lambda z_e, e: F.mse_loss(z_e, e.detach()))
    assert capsys.readouterr().out.count("\u2705") == 4


def test_the_library_functions_pass_every_check(capsys):
    assert checks.check_nearest_codes(vq.nearest_codes)
    assert checks.check_straight_through(vq.straight_through)
    assert checks.check_codebook_loss(vq.codebook_loss)
    assert checks.check_commitment_loss(vq.commitment_loss)
    assert capsys.readouterr().out.count("\u2705") == 4


def test_largest_dot_product_instead_of_nearest_code_fails_on_the_named_case():
    with pytest.raises(CheckFailed, match="wrong answer on case 'one dimension'"):
        checks.check_nearest_codes(lambda x, codebook: (x @ codebook.T).argmax(1))


def test_straight_through_without_stop_gradient_fails():
    def no_detach(z_e, e):
        return z_e + (e - z_e)                    # value right, gradient goes to e, not z_e
    with pytest.raises(CheckFailed, match="wrong answer on case 'random 0"):
        checks.check_straight_through(no_detach)


def test_returning_the_codes_themselves_fails_the_gradient_check():
    with pytest.raises(CheckFailed, match="gradient at z_e"):
        checks.check_straight_through(lambda z_e, e: e)


def test_codebook_and_commitment_losses_swapped_fail():
    with pytest.raises(CheckFailed, match="codebook_loss: wrong answer"):
        checks.check_codebook_loss(vq.commitment_loss)
    with pytest.raises(CheckFailed, match="commitment_loss: wrong answer"):
        checks.check_commitment_loss(vq.codebook_loss)


def test_sum_instead_of_mean_fails():
    with pytest.raises(CheckFailed, match="commitment_loss"):
        checks.check_commitment_loss(lambda z_e, e: ((z_e - e.detach()) ** 2).sum())


@pytest.mark.parametrize("check", [checks.check_nearest_codes, checks.check_straight_through,
                                   checks.check_codebook_loss, checks.check_commitment_loss])
def test_a_stub_is_reported_as_not_implemented(check, stub):
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
        check(stub)


def test_a_crash_names_the_error():
    with pytest.raises(CheckFailed, match="raised RuntimeError"):
        checks.check_nearest_codes(lambda x, codebook: torch.cdist(x, codebook[:, :1]).argmin(1))
