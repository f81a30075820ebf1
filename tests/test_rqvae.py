"""TIGER's RQ-VAE: shapes, the loss, gradients through the quantizer, training with `fit`,
and clear errors on bad input."""
import pytest
import torch

from course_lib.models.rqvae import RQVAE, RQVAEConfig
from course_lib.train import fit


def small_config(**changes):
    settings = dict(input_dim=12, hidden=(24,), latent_dim=6, n_levels=3, codebook_size=8)
    settings.update(changes)
    return RQVAEConfig(**settings)


def data(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(8, 12, generator=gen)
    return centres[torch.arange(n) % 8] + 0.2 * torch.randn(n, 12, generator=gen)


def test_defaults_are_tigers():
    cfg = RQVAEConfig()
    assert (cfg.input_dim, cfg.hidden, cfg.latent_dim) == (768, (512, 256, 128), 32)
    assert (cfg.n_levels, cfg.codebook_size, cfg.beta, cfg.kmeans_init) == (3, 256, 0.25, True)


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


def test_semantic_codes_equal_the_forward_codes_in_eval():
    torch.manual_seed(0)
    model = RQVAE(small_config())
    model(data())
    model.eval()
    x = data(seed=1)
    assert torch.equal(model.semantic_codes(x), model(x).codes)


def test_training_with_fit_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    x = data()
    model = RQVAE(small_config())
    model(x)                                                # k-means init
    before = torch.nn.functional.mse_loss(model.reconstruct(x), x).item()

    def batches(epoch):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        return [{"x": x[order[i:i + 64]]} for i in range(0, len(x), 64)]

    fit(model, batches, lambda m: -torch.nn.functional.mse_loss(m.reconstruct(x), x).item(),
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
