"""Residual quantization: the recursion r_{l+1} = r_l - e_{c_l} with fixed codebooks, and the
ResidualQuantizer module built from VectorQuantizers (STE, per-level losses, options)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dataclasses import fields

from course_lib.quantize.residual import (RQConfig, ResidualQuantizer, residual_decode,
                                         residual_quantize)
from course_lib.quantize.vq import VQConfig

PROPERTY = settings(max_examples=30, deadline=None)
t = torch.tensor


def blobs(n=256, d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(8, d, generator=gen)
    return centres[torch.arange(n) % 8] + 0.5 * torch.randn(n, d, generator=gen)


# --- residual_quantize with fixed codebooks ------------------------------------------------

def test_hand_example_of_two_levels():
    codebooks = [t([[0.0], [4.0], [8.0]]), t([[-1.0], [0.0], [1.0]])]
    out = residual_quantize(t([[5.3]]), codebooks)
    assert out.codes.tolist() == [[1, 2]]
    assert out.quantized.item() == pytest.approx(5.0)
    assert out.residuals[:, 0, 0].tolist() == pytest.approx([5.3, 1.3, 0.3])


@st.composite
def vectors_and_codebooks_with_zero(draw):
    """Random vectors and codebooks that each contain the zero vector."""
    seed = draw(st.integers(0, 10_000))
    levels, k, d = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    gen = torch.Generator().manual_seed(seed)
    codebooks = torch.randn(levels, k, d, generator=gen)
    codebooks[:, 0] = 0.0
    return torch.randn(draw(st.integers(1, 20)), d, generator=gen), codebooks


@PROPERTY
@given(vectors_and_codebooks_with_zero())
def test_every_items_residual_norm_is_non_increasing_when_zero_is_a_code(case):
    z, codebooks = case
    norms = residual_quantize(z, codebooks).residuals.norm(dim=2)          # (L + 1, N)
    assert torch.all(norms[1:] <= norms[:-1] + 1e-5)


@PROPERTY
@given(vectors_and_codebooks_with_zero())
def test_residuals_telescope_to_the_reconstruction(case):
    z, codebooks = case
    out = residual_quantize(z, codebooks)
    assert torch.equal(out.residuals[0], z)
    assert torch.allclose(z - out.quantized, out.residuals[-1], atol=1e-5)
    picked = codebooks[torch.arange(len(codebooks))[None, :], out.codes].sum(1)
    assert torch.allclose(picked, out.quantized, atol=1e-5)


# --- the module ----------------------------------------------------------------------------

def trained_quantizer(z, **options):
    torch.manual_seed(0)
    rq = ResidualQuantizer(RQConfig(n_levels=3, codebook_size=8, dim=z.shape[1], **options))
    rq.train()
    out = rq(z)                                              # k-means init on this batch
    return rq, out


def test_module_codes_equal_the_function_on_its_codebooks():
    z = blobs()
    rq, _ = trained_quantizer(z)
    rq.eval()
    out = rq(z)
    assert torch.equal(out.codes, residual_quantize(z, rq.codebooks).codes)
    assert torch.equal(rq.quantize(z), out.codes)


def test_mean_residual_norm_falls_level_by_level():
    rq, out = trained_quantizer(blobs())
    norms = out.residual_norms
    assert torch.all(norms[1:] <= norms[:-1]), norms


def test_straight_through_passes_the_gradient_to_the_input_unchanged():
    z = blobs().requires_grad_(True)
    rq, _ = trained_quantizer(z.detach())
    out = rq(z)
    upstream = torch.randn_like(z)
    (out.quantized * upstream).sum().backward()
    assert torch.allclose(z.grad, upstream)


def test_quantized_value_is_the_sum_of_the_picked_codewords():
    z = blobs()
    rq, _ = trained_quantizer(z)
    rq.eval()
    out = rq(z)
    picked = rq.codebooks[torch.arange(3)[None, :], out.codes].sum(1)
    assert torch.allclose(out.quantized, picked, atol=1e-5)


def test_loss_is_the_sum_of_the_level_losses_and_trains_every_codebook():
    z = blobs()
    rq, out = trained_quantizer(z)
    assert out.loss.item() == pytest.approx(sum(l.item() for l in out.level_losses))
    out = rq(z)
    out.loss.backward()
    assert all(level.codebook.grad is not None and level.codebook.grad.abs().sum() > 0
               for level in rq.levels)


def test_ema_option_reaches_every_level():
    z = blobs()
    rq, _ = trained_quantizer(z, ema=True)
    before = rq.codebooks.clone()
    rq(z + 0.3)
    assert all(not level.codebook.requires_grad for level in rq.levels)
    assert not torch.allclose(before, rq.codebooks)


def test_kmeans_init_uses_every_code_of_the_first_level_on_clustered_data():
    rq, out = trained_quantizer(blobs())
    assert out.utilisation()[0] == 1.0


def test_every_vq_option_reaches_every_level():
    config = RQConfig(n_levels=2, codebook_size=5, dim=3, beta=0.5, ema=True, decay=0.9, eps=1e-3,
                      kmeans_init=True, kmeans_iters=3, dead_code_threshold=0.2)
    defaults = VQConfig(codebook_size=5, dim=3)
    for f in fields(VQConfig):    # each differs from VQConfig's default: a dropped one would show
        if f.name not in ("codebook_size", "dim"):
            assert getattr(config, f.name) != getattr(defaults, f.name), f.name
    for level in ResidualQuantizer(config).levels:
        assert all(getattr(level.config, f.name) == getattr(config, f.name)
                   for f in fields(VQConfig))


def test_defaults_are_tigers():
    config = RQConfig()
    assert (config.n_levels, config.codebook_size, config.dim) == (3, 256, 32)
    assert (config.beta, config.kmeans_init, config.ema) == (0.25, True, False)


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("option, match", [
    (dict(decay=1.5), r"decay must be in \[0, 1\)"),
    (dict(eps=0.0), "eps must be > 0"),
    (dict(kmeans_iters=0), "kmeans_iters must be >= 1"),
    (dict(codebook_size=0), "codebook_size must be >= 1"),
])
def test_per_level_options_are_checked_when_the_config_is_made(option, match):
    with pytest.raises(ValueError, match=match):
        RQConfig(**option)


def test_levels_below_one_are_rejected():
    with pytest.raises(ValueError, match="n_levels must be >= 1"):
        RQConfig(n_levels=0)
    with pytest.raises(ValueError, match="at least one codebook"):
        residual_quantize(blobs(), [])


def test_nan_inputs_are_rejected():
    z = blobs()
    z[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        residual_quantize(z, torch.zeros(1, 2, 4))
    rq = ResidualQuantizer(RQConfig(n_levels=2, codebook_size=4, dim=4))
    with pytest.raises(ValueError, match="NaN"):
        rq(z)


def test_codebook_of_the_wrong_width_is_rejected():
    with pytest.raises(ValueError, match=r"must be \(K, 4\)"):
        residual_quantize(blobs(), [torch.zeros(3, 5)])


def test_residual_decode_sums_the_picked_codewords_level_by_level():
    codebooks = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                              [[0.5, 0.5], [-0.5, 0.0]],
                              [[0.1, 0.0], [0.0, 0.1]]])                 # (L=3, K=2, D=2)
    codes = torch.tensor([[0, 1, 1], [1, 0, 0]])
    assert torch.allclose(residual_decode(codes, codebooks),
                          torch.tensor([[0.5, 0.1], [0.6, 1.5]]))
    # the first level only: the coarse reconstruction
    assert torch.allclose(residual_decode(codes[:, :1], codebooks),
                          torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_residual_decode_inverts_residual_quantize():
    gen = torch.Generator().manual_seed(0)
    z, codebooks = torch.randn(50, 4, generator=gen), torch.randn(3, 8, 4, generator=gen)
    out = residual_quantize(z, codebooks)
    assert torch.allclose(residual_decode(out.codes, codebooks), out.quantized, atol=1e-6)
    with pytest.raises(ValueError, match="only 3 codebooks"):
        residual_decode(torch.zeros(2, 4, dtype=torch.long), codebooks)
    with pytest.raises(ValueError, match="below the codebook size"):
        residual_decode(torch.full((2, 3), 8), codebooks)
