"""Finite scalar quantisation (Mentzer et al. 2023): the grid's size and values, codes to grid
points and back, the straight-through gradient through the rounding, the VQResult it shares
with the vector quantizer, and bad input."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.models.vqvae import VQVAE, VQVAEConfig
from course_lib.quantize.fsq import FSQ
from course_lib.quantize.vq import VQConfig

PROPERTY = settings(max_examples=40, deadline=None)
LEVELS = st.lists(st.integers(2, 9), min_size=1, max_size=4)


def grid_values(level: int) -> torch.Tensor:
    """The L normalised values of one dimension: i / (L // 2) for i in -L//2 .. L - 1 - L//2."""
    half = level // 2
    return torch.arange(-half, level - half, dtype=torch.float32) / half


# --- the grid -------------------------------------------------------------------------------

@pytest.mark.parametrize("levels, size", [([8, 6, 5], 240), ([8, 5, 5, 5], 1000),
                                          ([4, 4, 4], 64), ([2], 2)])
def test_grid_size_is_the_product_of_the_levels(levels, size):
    fsq = FSQ(levels)
    assert fsq.codebook_size == size
    assert fsq.codebook.shape == (size, len(levels))
    assert len(torch.unique(fsq.codebook, dim=0)) == size, "every code is a distinct point"


def test_grid_is_the_product_of_each_dimensions_values():
    levels = [3, 4, 2]
    expected = {tuple(p) for p in itertools.product(*(grid_values(lv).tolist() for lv in levels))}
    assert {tuple(row) for row in FSQ(levels).codebook.tolist()} == expected


def test_odd_levels_are_symmetric_and_even_levels_have_one_more_negative_value():
    assert torch.equal(FSQ([5]).codebook.flatten().sort().values,
                       torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert torch.equal(FSQ([4]).codebook.flatten().sort().values,
                       torch.tensor([-1.0, -0.5, 0.0, 0.5]))


@PROPERTY
@given(levels=LEVELS, n=st.integers(1, 20), scale=st.floats(0.1, 100.0), seed=st.integers(0, 99))
def test_quantized_values_land_on_the_grid_and_match_their_codes(levels, n, scale, seed):
    fsq = FSQ(levels)
    z = scale * torch.randn(n, len(levels), generator=torch.Generator().manual_seed(seed))
    out = fsq(z)
    for j, level in enumerate(levels):
        assert torch.isin(out.quantized[:, j], grid_values(level)).all()
    assert ((0 <= out.codes) & (out.codes < fsq.codebook_size)).all()
    assert torch.equal(fsq.codebook[out.codes], out.quantized)
    assert torch.equal(fsq.quantize(z), out.codes)


def test_every_level_is_reached_by_large_inputs():
    fsq = FSQ([5, 4])
    z = torch.linspace(-10, 10, 2001)[:, None].expand(-1, 2)
    out = fsq(z)
    assert len(torch.unique(out.quantized[:, 0])) == 5 and len(torch.unique(out.quantized[:, 1])) == 4


def test_zero_is_a_grid_point_and_maps_to_itself():
    for levels in ([5, 3], [4, 6], [2, 7]):
        assert torch.equal(FSQ(levels)(torch.zeros(1, 2)).quantized, torch.zeros(1, 2))


# --- codes and back -------------------------------------------------------------------------

@PROPERTY
@given(levels=LEVELS, seed=st.integers(0, 99))
def test_code_to_vector_to_code_is_the_identity(levels, seed):
    fsq = FSQ(levels)
    codes = torch.randint(fsq.codebook_size, (30,), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(fsq.vectors_to_codes(fsq.codes_to_vectors(codes)), codes)


def test_codes_count_in_mixed_radix_first_dimension_fastest():
    fsq = FSQ([3, 2])
    # code c = i_1 + 3 i_2, with i_j the index of the value in its dimension (0 = lowest)
    assert fsq.codes_to_vectors(torch.tensor([0, 1, 2, 3])).tolist() == [
        [-1.0, -1.0], [0.0, -1.0], [1.0, -1.0], [-1.0, 0.0]]


# --- the straight-through gradient ----------------------------------------------------------

def test_ste_gradient_is_the_gradient_of_the_bound_unchanged_by_rounding():
    fsq = FSQ([5, 4, 8])
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weight = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    (fsq(z).quantized * weight).sum().backward()
    through_rounding = z.grad.clone()
    z.grad = None
    (fsq.bound(z) / fsq.half_width * weight).sum().backward()     # the same path, no rounding
    assert torch.allclose(through_rounding, z.grad)
    assert (through_rounding != 0).all(), "every input gets a gradient"


def test_losses_are_zero_and_result_is_a_vq_result():
    out = FSQ([4, 4])(torch.randn(10, 2))
    assert out.loss.item() == out.codebook_loss.item() == out.commitment_loss.item() == 0.0
    assert out.codebook_size == 16 and 0 < out.utilisation <= 1 and out.perplexity >= 1


def test_fsq_takes_the_vector_quantizers_place_in_the_vqvae():
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(input_dim=6, quantizer=VQConfig(codebook_size=64, dim=3)))
    model.quantizer = FSQ([4, 4, 4])
    x = torch.randn(20, 6)
    out = model(x)
    out.loss.backward()
    assert out.x_hat.shape == x.shape and out.codes.shape == (20,)
    assert model.encoder[0].weight.grad.abs().sum() > 0, "the encoder learns through the STE"
    assert torch.equal(model.codes(x), out.codes)


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", [[], [1, 5], [5, 0], [4.0, 5], "45", 8, [True, 5]])
def test_bad_levels_raise_with_the_rule(levels):
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels)


def test_bad_input_raises_with_the_fix():
    fsq = FSQ([4, 4, 4])
    with pytest.raises(ValueError, match="width 3"):
        fsq(torch.randn(5, 2))
    with pytest.raises(TypeError, match="float"):
        fsq(torch.ones(5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        fsq(torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match=r"\[0, 63\]"):
        fsq.codes_to_vectors(torch.tensor([64]))
    with pytest.raises(TypeError, match="integer"):
        fsq.codes_to_vectors(torch.tensor([1.0]))
