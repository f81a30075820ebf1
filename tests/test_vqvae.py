"""VQ-VAE: shapes, the loss is its three terms, training lowers the reconstruction error,
determinism, and clear errors on bad input."""
import pytest
import torch

from course_lib import seed_everything
from course_lib.models.vqvae import VQVAE, VQVAEConfig, fit_vqvae
from course_lib.quantize.vq import VQConfig


def model(k=8, **options) -> VQVAE:
    seed_everything(0)
    return VQVAE(VQVAEConfig(input_dim=6, quantizer=VQConfig(codebook_size=k, dim=3, **options),
                             hidden_dims=(16,)))


def data(n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(8, 6, generator=gen)
    return centres.repeat(n // 8, 1) + 0.1 * torch.randn(n // 8 * 8, 6, generator=gen)


def test_reconstruction_and_codes_have_the_batch_shape():
    out = model()(data(40))
    assert out.reconstruction.shape == (40, 6) and out.codes.shape == (40,)
    assert ((0 <= out.codes) & (out.codes < 8)).all()


def test_loss_is_reconstruction_plus_codebook_plus_beta_commitment():
    x = data(40)
    out = model().eval()(x)
    assert torch.allclose(out.reconstruction_loss, ((out.reconstruction - x) ** 2).mean())
    assert torch.allclose(out.loss, out.reconstruction_loss + out.vq.codebook_loss
                          + 0.25 * out.vq.commitment_loss)


def test_loss_method_reads_the_batch_dict():
    m, x = model().eval(), data(40)
    assert torch.allclose(m.loss({"x": x}), m(x).loss)


@pytest.mark.parametrize("ema", [False, True])
def test_training_lowers_the_reconstruction_error(ema):
    m, x = model(ema=ema, kmeans_init=True), data()
    log = fit_vqvae(m, x, steps=150, batch_size=50, lr=3e-3, log_every=50)
    assert log.step == [50, 100, 150]
    assert log.reconstruction[-1] < 0.5 * (x - x.mean(0)).pow(2).mean().item()


def test_codes_change_nothing():
    m, x = model(ema=True, kmeans_init=True, dead_code_threshold=1.0), data()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    m.codes(x)
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())


def test_same_seed_same_training():
    runs = []
    for _ in range(2):
        m = model(ema=True, kmeans_init=True, dead_code_threshold=0.5)
        seed_everything(1)
        log = fit_vqvae(m, data(), steps=30, batch_size=50, log_every=10)
        runs.append((log.reconstruction, m.codes(data())))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_callback_runs_at_every_logged_step():
    seen = []
    fit_vqvae(model(), data(), steps=25, batch_size=50, log_every=10,
              callback=lambda step, m, log: seen.append(step))
    assert seen == [10, 20, 25]


def test_wrong_content_width_says_what_to_set():
    with pytest.raises(ValueError, match="input_dim"):
        model()(torch.randn(5, 7))


def test_bad_training_settings_are_rejected():
    with pytest.raises(ValueError, match="steps"):
        fit_vqvae(model(), data(), steps=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_content_is_rejected_before_the_encoder(bad):
    x = torch.randn(5, 6)
    x[2, 3] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        model()(x)


def test_integer_content_is_rejected_with_the_fix():
    with pytest.raises(TypeError, match="x.float()"):
        model()(torch.ones(5, 6, dtype=torch.long))
