"""VQ-VAE: shapes, the loss is its three terms, training with `fit` lowers the reconstruction
error, the TrainLog record, determinism, and clear errors on bad input."""
import pytest
import torch

from course_lib import seed_everything
from course_lib.models.vqvae import VQVAE, TrainLog, VQVAEConfig
from course_lib.quantize.vq import VQConfig
from course_lib.train import fit, shuffled_batches


def model(k=8, **options) -> VQVAE:
    seed_everything(0)
    return VQVAE(VQVAEConfig(input_dim=6, quantizer=VQConfig(codebook_size=k, dim=3, **options),
                             hidden_dims=(16,)))


def train(m, x, steps, batch_size=50, every=10, **settings) -> TrainLog:
    log = TrainLog(x, every=every)
    fit(m, lambda epoch: shuffled_batches({"x": x}, batch_size, drop_last=True), steps=steps,
        on_step=log, progress=False, **settings)
    return log


def data(n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(8, 6, generator=gen)
    return centres.repeat(n // 8, 1) + 0.1 * torch.randn(n // 8 * 8, 6, generator=gen)


def test_reconstruction_and_codes_have_the_batch_shape():
    out = model()(data(40))
    assert out.x_hat.shape == (40, 6) and out.codes.shape == (40,)
    assert ((0 <= out.codes) & (out.codes < 8)).all()


def test_loss_is_reconstruction_plus_codebook_plus_beta_commitment():
    x = data(40)
    out = model().eval()(x)
    assert torch.allclose(out.reconstruction, ((out.x_hat - x) ** 2).mean())
    assert torch.allclose(out.quantization, out.vq.codebook_loss + 0.25 * out.vq.commitment_loss)
    assert torch.allclose(out.loss, out.reconstruction + out.quantization)


def test_loss_method_reads_the_batch_dict():
    m, x = model().eval(), data(40)
    assert torch.allclose(m.loss({"x": x}), m(x).loss)


@pytest.mark.parametrize("ema", [False, True])
def test_training_lowers_the_reconstruction_error(ema):
    m, x = model(ema=ema, kmeans_init=True), data()
    log = train(m, x, steps=150, every=50, lr=3e-3)
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
        log = train(m, data(), steps=30)
        runs.append((log.reconstruction, m.codes(data())))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_log_measures_the_whole_data_set_every_n_steps_in_eval_mode():
    m, x = model(ema=True), data()
    log = train(m, x, steps=25)
    assert log.step == [10, 20]                       # step 25 is not a multiple of 10
    m.eval()
    out = m(x)
    assert log.reconstruction[-1] != log.reconstruction[0]
    assert len(log.loss) == len(log.perplexity) == len(log.utilisation) == 2
    log(30, m, 0.0)                                   # measuring changes no codebook
    assert log.reconstruction[-1] == pytest.approx(out.reconstruction.item())
    assert torch.equal(m(x).codes, out.codes)


def test_wrong_content_width_says_what_to_set():
    with pytest.raises(ValueError, match="input_dim"):
        model()(torch.randn(5, 7))


def test_bad_log_interval_is_rejected():
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        TrainLog(data(), every=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_content_is_rejected_before_the_encoder(bad):
    x = torch.randn(5, 6)
    x[2, 3] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        model()(x)


def test_integer_content_is_rejected_with_the_fix():
    with pytest.raises(TypeError, match="x.float()"):
        model()(torch.ones(5, 6, dtype=torch.long))
