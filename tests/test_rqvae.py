"""TIGER's RQ-VAE: shapes, the loss, gradients through the quantizer, training with `fit`,
and clear errors on bad input."""
import pytest
import torch

from course_lib.models.rqvae import RQVAE, RQVAEConfig
from course_lib.quantize.residual import RQConfig
from course_lib.train import fit, shuffled_batches


def small_config(**quantizer):
    settings = dict(n_levels=3, codebook_size=8, dim=6)
    settings.update(quantizer)
    return RQVAEConfig(input_dim=12, hidden_dims=(24,), quantizer=RQConfig(**settings))


def data(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(8, 12, generator=gen)
    return centres[torch.arange(n) % 8] + 0.2 * torch.randn(n, 12, generator=gen)


def test_defaults_are_tigers():
    config = RQVAEConfig()
    assert (config.input_dim, config.hidden_dims, config.quantizer.dim) == (768, (512, 256, 128), 32)
    q = config.quantizer
    assert (q.n_levels, q.codebook_size, q.beta, q.kmeans_init) == (3, 256, 0.25, True)


def test_the_quantizer_gets_the_whole_rq_config():
    config = small_config(ema=True, decay=0.9, eps=1e-3, kmeans_iters=4, dead_code_threshold=0.3)
    model = RQVAE(config)
    assert model.quantizer.config is config.quantizer
    level = model.quantizer.levels[0].config
    assert (level.ema, level.decay, level.eps, level.kmeans_iters, level.dead_code_threshold) \
        == (True, 0.9, 1e-3, 4, 0.3)
    assert model.encoder[-1].out_features == 6 and model.decoder[0].in_features == 6


def test_output_shapes():
    torch.manual_seed(0)
    out = RQVAE(small_config())(data(n=32))
    assert out.x_hat.shape == (32, 12) and out.codes.shape == (32, 3)
    assert out.residual_norms.shape == (4,)


def test_loss_is_reconstruction_plus_quantization():
    torch.manual_seed(0)
    out = RQVAE(small_config())(data())
    assert out.loss.item() == pytest.approx(out.reconstruction.item() + out.quantization.item())


def test_reconstruction_gradient_reaches_the_encoder_through_the_codes():
    torch.manual_seed(0)
    model = RQVAE(small_config())
    model(data())                                           # k-means init
    model(data()).reconstruction.backward()
    first = model.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_codes_equal_the_forward_codes_in_eval():
    torch.manual_seed(0)
    model = RQVAE(small_config())
    model(data())
    model.eval()
    x = data(seed=1)
    assert torch.equal(model.codes(x), model(x).codes)


def test_training_with_fit_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    x = data()
    model = RQVAE(small_config())
    model(x)                                                # k-means init
    before = torch.nn.functional.mse_loss(model.reconstruct(x), x).item()

    fit(model, lambda epoch: shuffled_batches({"x": x}, 64, seed=epoch),
        lambda m: -torch.nn.functional.mse_loss(m.reconstruct(x), x).item(),
        epochs=40, lr=3e-3, patience=40, progress=False)
    after = torch.nn.functional.mse_loss(model.reconstruct(x), x).item()
    assert after < 0.5 * before, (before, after)


def test_bad_inputs_give_clear_errors():
    model = RQVAE(small_config())
    with pytest.raises(ValueError, match=r"\(B, 12\)"):
        model(torch.zeros(4, 5))
    x = data(n=4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(x)
    with pytest.raises(ValueError, match="n_levels must be >= 1"):
        small_config(n_levels=0)


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.bool])
def test_non_float_content_is_a_type_error_with_the_fix(dtype):
    with pytest.raises(TypeError, match=r"float tensor.*x\.float\(\)"):
        RQVAE(small_config())(torch.ones(4, 12, dtype=dtype))
    with pytest.raises(TypeError, match="float tensor"):
        RQVAE(small_config()).codes(torch.ones(4, 12, dtype=dtype))


def test_a_quantizer_config_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="quantizer must be an RQConfig"):
        RQVAEConfig(input_dim=12, quantizer=dict(n_levels=2))
