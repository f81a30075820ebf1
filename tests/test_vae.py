"""The sequence VAE: the ELBO's pieces match their definitions, remedies do what they say,
and bad input fails with a clear message."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.models.vae import (SequenceVAE, VAEConfig, VAEHistory, active_units,
                                   code_mutual_information, free_bits_kl, gaussian_kl, kl_weight,
                                   measure, mutual_information, reparameterize)
from course_lib.train import fit, load_checkpoint, shuffled_batches

N_ITEMS = 30


def train(model, items, steps, batch_size, every, **settings) -> VAEHistory:
    history = VAEHistory(items, every=every)
    fit(model, lambda epoch: shuffled_batches({"items": items}, batch_size, drop_last=True),
        steps=steps, lr=3e-3, clip_grad_norm=5.0, on_step=history, progress=False, **settings)
    return history


def sequences(batch=8, length=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    items = torch.randint(1, N_ITEMS + 1, (batch, length), generator=gen)
    items[0, :2] = 0                                  # left padding on one row
    return items


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_gaussian_kl_matches_torch_distributions(seed):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(5, 4, generator=gen, dtype=torch.float64) * 2
    logvar = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p))


def test_gaussian_kl_is_zero_at_the_prior():
    assert torch.equal(gaussian_kl(torch.zeros(3, 2), torch.zeros(3, 2)), torch.zeros(3, 2))


def test_reparameterisation_passes_gradients_to_mu_and_logvar():
    mu = torch.randn(4, 3, requires_grad=True)
    logvar = torch.randn(4, 3, requires_grad=True)
    reparameterize(mu, logvar).sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))
    assert logvar.grad.abs().sum() > 0


def test_reparameterised_samples_have_the_posterior_moments():
    mu, logvar = torch.full((20_000, 1), 1.5), torch.full((20_000, 1), math.log(0.25))
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 1.5) < 0.02 and abs(z.std().item() - 0.5) < 0.02


def test_free_bits_floor_each_dimension_at_lambda():
    kl = torch.tensor([[0.1, 2.0, 0.0], [0.3, 1.0, 0.0]])        # batch means 0.2, 1.5, 0
    assert free_bits_kl(kl, 0.5).item() == pytest.approx(0.5 + 1.5 + 0.5)
    assert free_bits_kl(kl, 0.0).item() == pytest.approx(kl.mean(0).sum().item())


def test_free_bits_give_no_gradient_below_the_floor():
    kl = torch.tensor([0.1, 2.0], requires_grad=True)
    free_bits_kl(kl, 0.5).backward()
    assert kl.grad.tolist() == [0.0, 1.0]


def test_annealing_schedule_rises_linearly_to_one():
    assert [kl_weight(s, 4) for s in (0, 1, 2, 4, 10)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_weight(0, 0) == 1.0


def test_loss_uses_the_annealing_weight_of_its_step():
    torch.manual_seed(0)
    model = SequenceVAE(VAEConfig(n_items=N_ITEMS, anneal_steps=10)).eval()
    items = sequences()
    out = model(items)
    assert torch.allclose(model.loss(items), out.recon)        # step 0: weight 0, eval: no step
    model.step.fill_(5)
    assert torch.allclose(model.loss(items), out.recon + 0.5 * out.kl)


def test_each_training_step_advances_the_annealing_and_checkpoints_keep_it(tmp_path):
    torch.manual_seed(0)
    model = SequenceVAE(VAEConfig(n_items=N_ITEMS, anneal_steps=10, d_hidden=16))
    train(model, sequences(batch=32), steps=6, batch_size=8, every=3,
          checkpoint=tmp_path / "vae.pt")
    assert int(model.step) == 6
    assert int(load_checkpoint(tmp_path / "vae.pt")["model"]["step"]) == 6


@pytest.mark.parametrize("decoder", ["gru", "bag"])
def test_elbo_parts_have_the_documented_shapes(decoder):
    model = SequenceVAE(VAEConfig(n_items=N_ITEMS, decoder=decoder, d_latent=5))
    out = model(sequences())
    assert out.recon.dim() == 0 and out.kl.dim() == 0 and out.kl_per_dim.shape == (5,)
    assert out.mu.shape == out.logvar.shape == (8, 5)
    assert torch.allclose(out.kl, out.kl_per_dim.sum())
    assert out.recon > 0 and out.elbo < 0


def test_padding_does_not_count_in_the_reconstruction():
    torch.manual_seed(0)
    model = SequenceVAE(VAEConfig(n_items=N_ITEMS, decoder="bag")).eval()
    items = sequences(batch=1, length=4)
    z = model.encode(items)[0]
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), items], dim=1)
    assert torch.allclose(model.log_likelihood(items, z), model.log_likelihood(padded, z))


def test_strong_decoder_is_autoregressive_and_weak_decoder_ignores_order():
    torch.manual_seed(0)
    items = torch.tensor([[1, 2, 3, 4]])
    for decoder, order_matters in (("gru", True), ("bag", False)):
        model = SequenceVAE(VAEConfig(n_items=N_ITEMS, decoder=decoder)).eval()
        z = torch.zeros(1, model.config.d_latent)
        a = model.log_likelihood(items, z)
        b = model.log_likelihood(items.flip(1), z)
        assert bool(not torch.allclose(a, b)) == order_matters


def test_active_units_count_dimensions_whose_mean_varies_across_inputs():
    mu = torch.zeros(100, 3)
    mu[:, 1] = torch.linspace(-1, 1, 100)
    assert active_units(mu) == 1


def test_mutual_information_is_near_zero_when_posteriors_equal_the_prior():
    gen = torch.Generator().manual_seed(0)
    assert mutual_information(torch.zeros(256, 4), torch.zeros(256, 4), gen) == pytest.approx(0, abs=1e-5)


def test_mutual_information_approaches_log_batch_for_separated_posteriors():
    mu = torch.arange(64.0)[:, None] * 10
    mi = mutual_information(mu, torch.full((64, 1), -4.0), torch.Generator().manual_seed(0))
    assert mi == pytest.approx(math.log(64), abs=0.05)


def test_training_is_deterministic_with_a_seed():
    items = sequences(batch=32)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SequenceVAE(VAEConfig(n_items=N_ITEMS, word_dropout=0.3, d_hidden=16))
        runs.append(train(model, items, steps=4, batch_size=8, every=2))
    assert runs[0].kl == runs[1].kl and runs[0].recon == runs[1].recon


def test_free_bits_keep_kl_above_zero_while_plain_training_shrinks_it():
    items = sequences(batch=64, length=8)
    kl = {}
    for free_bits in (0.0, 0.5):
        torch.manual_seed(0)
        model = SequenceVAE(VAEConfig(n_items=N_ITEMS, free_bits=free_bits, d_hidden=16,
                                      d_latent=4))
        kl[free_bits] = train(model, items, steps=60, batch_size=32, every=60).kl[-1]
    assert kl[0.5] > kl[0.0]


def test_history_records_every_n_steps():
    torch.manual_seed(0)
    model = SequenceVAE(VAEConfig(n_items=N_ITEMS, d_hidden=16, d_latent=3))
    history = train(model, sequences(batch=32), steps=7, batch_size=8, every=3)
    assert history.step == [3, 6]
    assert len(history.kl_per_dim) == 2 and len(history.kl_per_dim[0]) == 3
    assert history.last()["kl"] == history.kl[-1]


def test_an_empty_history_says_why():
    with pytest.raises(ValueError, match="nothing measured yet"):
        VAEHistory(sequences(), every=5).last()
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        VAEHistory(sequences(), every=0)


def test_measure_reports_every_quantity():
    model = SequenceVAE(VAEConfig(n_items=N_ITEMS))
    assert set(measure(model, sequences())) == {"recon", "kl", "kl_per_dim", "active_units",
                                                 "mutual_information", "shuffle_gap"}


def test_shuffle_gap_is_zero_when_every_window_is_the_same():
    torch.manual_seed(0)
    items = sequences(batch=1).expand(16, -1).clone()
    items[:, :2] = 0
    for bottleneck in ("gaussian", "vq"):
        model = SequenceVAE(VAEConfig(n_items=N_ITEMS, bottleneck=bottleneck))
        assert measure(model, items)["shuffle_gap"] == pytest.approx(0, abs=1e-5)


# --- the VQ bottleneck ----------------------------------------------------------------------

def vq_model(**kwargs) -> SequenceVAE:
    torch.manual_seed(0)
    return SequenceVAE(VAEConfig(n_items=N_ITEMS, bottleneck="vq", codebook_size=8, d_latent=5,
                                 **kwargs))


@pytest.mark.parametrize("decoder", ["gru", "bag"])
def test_vq_bottleneck_has_the_documented_shapes(decoder):
    out = vq_model(decoder=decoder)(sequences())
    assert out.mu.shape == (8, 5) and out.codes.shape == (8,) and out.codes.dtype == torch.long
    assert out.logvar is None and out.kl_per_dim is None
    assert out.kl.item() == pytest.approx(math.log(8))              # constant: log K
    assert out.recon.dim() == 0 and out.quantization.dim() == 0 and out.recon > 0


def test_vq_decoder_gets_the_code_value_and_the_encoder_its_gradient_unchanged():
    model = vq_model().eval()
    items = sequences()
    z_e = model.encode(items)[0]
    z_e.retain_grad()
    vq = model.quantizer(z_e)
    z_q = vq.quantized
    z_q.retain_grad()
    assert torch.allclose(z_q, model.quantizer.codebook[vq.codes])  # forward: the code's value
    (-model.log_likelihood(items, z_q).mean()).backward()
    assert z_q.grad.abs().sum() > 0
    assert torch.equal(z_e.grad, z_q.grad)                          # backward: the identity


def test_vq_reconstruction_trains_the_encoder_but_not_the_codebook():
    model = vq_model()
    model(sequences()).recon.backward()
    assert model.to_latent.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.quantizer.codebook.grad is None or not model.quantizer.codebook.grad.any()


def test_vq_loss_is_reconstruction_plus_quantization_and_finite():
    model = vq_model().eval()
    items = sequences()
    out = model(items)
    loss = model.loss(items)
    assert torch.isfinite(loss) and torch.allclose(loss, out.recon + out.quantization)
    loss.backward()
    assert model.quantizer.codebook.grad.abs().sum() > 0             # the codebook loss moves it


def test_code_mutual_information_is_the_entropy_of_the_code_marginal():
    assert code_mutual_information(torch.zeros(10, dtype=torch.long), 4) == 0.0
    assert code_mutual_information(torch.tensor([0, 1, 0, 1]), 4) == pytest.approx(math.log(2))
    assert code_mutual_information(torch.arange(4), 4) == pytest.approx(math.log(4))


def test_vq_history_records_code_usage_and_information():
    model = vq_model(d_hidden=16)
    history = train(model, sequences(batch=32), steps=6, batch_size=8, every=3)
    last = history.last()
    assert {"code_usage", "perplexity", "shuffle_gap"} <= set(last)
    assert history.kl_per_dim == [[], []] and last["kl"] == pytest.approx(math.log(8))
    assert 0 < last["code_usage"] <= 1
    assert last["mutual_information"] == pytest.approx(math.log(last["perplexity"]))
    assert int(model.step) == 6


@pytest.mark.parametrize("items, match", [
    (torch.tensor([[1, 2, N_ITEMS + 1]]), r"item ids must be in \[1, 30\]"),
    (torch.tensor([[1, -1, 2]]), "item ids must be in"),
    (torch.tensor([1, 2, 3]), r"\(B, T\) long tensor"),
    (torch.tensor([[1.0, 2.0]]), r"\(B, T\) long tensor"),
    (torch.tensor([[0, 0], [1, 2]]), "at least one item"),
])
def test_bad_sequences_raise_clear_errors(items, match):
    with pytest.raises(ValueError, match=match):
        SequenceVAE(VAEConfig(n_items=N_ITEMS))(items)


def test_nan_posterior_parameters_raise():
    with pytest.raises(ValueError, match="NaN"):
        gaussian_kl(torch.tensor([float("nan")]), torch.zeros(1))
    with pytest.raises(ValueError, match="NaN"):
        reparameterize(torch.zeros(1), torch.tensor([float("nan")]))


def test_mismatched_mu_and_logvar_raise():
    with pytest.raises(ValueError, match="same shape"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("kwargs, match", [
    (dict(decoder="lstm"), "decoder must be one of"),
    (dict(free_bits=-0.1), "free_bits must be >= 0"),
    (dict(anneal_steps=-1), "anneal_steps must be >= 0"),
    (dict(word_dropout=1.0), r"word_dropout must be in \[0, 1\)"),
    (dict(d_latent=0), "must be >= 1"),
    (dict(bottleneck="discrete"), "bottleneck must be one of"),
    (dict(bottleneck="vq", codebook_size=0), "codebook_size must be >= 1"),
    (dict(bottleneck="vq", free_bits=0.5), "a VQ bottleneck has none"),
    (dict(bottleneck="vq", anneal_steps=10), "a VQ bottleneck has none"),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAEConfig(n_items=N_ITEMS, **kwargs)


def test_bad_schedule_arguments_raise():
    with pytest.raises(ValueError, match=">= 0"):
        kl_weight(-1, 10)
    with pytest.raises(ValueError, match="free_bits must be >= 0"):
        free_bits_kl(torch.zeros(3), -1.0)
