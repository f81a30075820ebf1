"""The vector quantizer: nearest codes, the straight-through estimator, the losses and what
each one moves, EMA updates against a hand-computed case, k-means init, dead-code reset,
determinism and bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import metrics
from course_lib.quantize import vq
from course_lib.quantize.vq import VectorQuantizer, VQConfig

PROPERTY = settings(max_examples=40, deadline=None)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def quantizer(k=8, d=4, **options) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(VQConfig(codebook_size=k, dim=d, **options))


def blobs(n_per_blob=50, centres=((0.0, 0.0), (5.0, 5.0), (-5.0, 5.0), (5.0, -5.0)), seed=0):
    gen = torch.Generator().manual_seed(seed)
    c = torch.tensor(centres)
    return (c.repeat_interleave(n_per_blob, 0)
            + 0.1 * torch.randn(len(c) * n_per_blob, c.shape[1], generator=gen))


# --- nearest codes and the forward value ----------------------------------------------------

@PROPERTY
@given(n=st.integers(1, 30), k=st.integers(1, 12), d=st.integers(1, 6), seed=st.integers(0, 99))
def test_codes_are_the_nearest_codebook_entries(n, k, d, seed):
    gen = torch.Generator().manual_seed(seed)
    x, codebook = torch.randn(n, d, generator=gen), torch.randn(k, d, generator=gen)
    codes = vq.nearest_codes(x, codebook)
    distances = torch.cdist(x, codebook)                                    # (N, K)
    chosen = distances.gather(1, codes[:, None]).squeeze(1)
    assert ((0 <= codes) & (codes < k)).all()
    assert torch.all(chosen <= distances.min(1).values + 1e-5)


@PROPERTY
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=st.integers(0, 99))
def test_quantized_value_is_the_chosen_code_and_shapes_are_kept(shape, seed):
    q = quantizer(k=6, d=3).eval()
    x = torch.randn(*shape, 3, generator=torch.Generator().manual_seed(seed))
    out = q(x)
    assert out.quantized.shape == x.shape and out.codes.shape == tuple(shape)
    assert torch.allclose(out.quantized, q.codebook[out.codes], atol=1e-6)
    assert torch.equal(out.codes, q.quantize(x))


def test_usage_statistics_are_the_metrics_of_the_codes():
    q = quantizer(k=8, d=2)
    out = q(blobs())
    assert out.utilisation == metrics.utilisation(out.codes, 8)
    assert out.perplexity == pytest.approx(metrics.perplexity(out.codes, 8))


# --- the straight-through estimator and what each loss moves --------------------------------

def test_ste_passes_decoder_gradient_unchanged():
    q = quantizer(k=16, d=4)
    z_e = torch.randn(32, 4, requires_grad=True)
    z_q = q(z_e).quantized
    z_q.retain_grad()
    decoder = torch.nn.Linear(4, 3)
    decoder(z_q).pow(2).sum().backward()
    assert z_e.grad is not None and torch.equal(z_e.grad, z_q.grad)


def test_codebook_loss_moves_only_the_codes():
    q = quantizer()
    z_e = torch.randn(20, 4, requires_grad=True)
    q(z_e).codebook_loss.backward()
    assert z_e.grad is None or torch.count_nonzero(z_e.grad) == 0
    assert torch.count_nonzero(q.codebook.grad) > 0


def test_commitment_loss_moves_only_the_encoder_output():
    q = quantizer()
    z_e = torch.randn(20, 4, requires_grad=True)
    q(z_e).commitment_loss.backward()
    assert torch.count_nonzero(z_e.grad) > 0
    assert q.codebook.grad is None or torch.count_nonzero(q.codebook.grad) == 0


def test_reconstruction_gradient_does_not_reach_the_codebook():
    q = quantizer()
    q(torch.randn(20, 4, requires_grad=True)).quantized.sum().backward()
    assert q.codebook.grad is None or torch.count_nonzero(q.codebook.grad) == 0


def test_loss_is_codebook_plus_beta_times_commitment():
    q = quantizer(beta=0.4).eval()
    x = torch.randn(20, 4)
    out = q(x)
    e = q.codebook.detach()[out.codes]
    assert torch.allclose(out.commitment_loss, ((x - e) ** 2).mean())
    assert torch.allclose(out.codebook_loss, ((x - e) ** 2).mean())
    assert torch.allclose(out.loss, out.codebook_loss + 0.4 * out.commitment_loss)


# --- EMA ------------------------------------------------------------------------------------

def test_ema_update_matches_the_equations_on_a_hand_computed_case():
    # K = 2 codes at 0 and 2 (D = 1), counts 1, sums = codebook; decay 1/2, eps 1/10.
    # Batch 0.5 -> code 0; 3 and 5 -> code 1: n = (1, 2), sums of the batch = (0.5, 8).
    # N = (1, 1.5); m = (0.25, 5); n_total = 2.5; N~ = (N + .1) / 2.7 * 2.5 = (2.75, 4) / 2.7.
    q = VectorQuantizer(VQConfig(codebook_size=2, dim=1, ema=True, decay=0.5, eps=0.1))
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0], [2.0]]))
        q.sums.copy_(q.codebook)
    out = q.train()(torch.tensor([[0.5], [3.0], [5.0]]))
    assert out.codes.tolist() == [0, 1, 1]
    assert torch.allclose(q.counts, torch.tensor([1.0, 1.5]))
    assert torch.allclose(q.sums, torch.tensor([[0.25], [5.0]]))
    assert torch.allclose(q.codebook, torch.tensor([[0.25 * 2.7 / 2.75], [5 * 2.7 / 4]]))


def test_laplace_smoothing_keeps_the_total_and_removes_zero_counts():
    counts = torch.tensor([0.0, 3.0, 7.0])
    smoothed = vq.laplace_smoothing(counts, 1e-5)
    assert torch.isclose(smoothed.sum(), counts.sum())
    assert (smoothed > 0).all()


def test_ema_mode_trains_the_codebook_without_gradients_and_only_commits():
    q = quantizer(ema=True)
    z_e = torch.randn(20, 4, requires_grad=True)
    out = q(z_e)
    assert not q.codebook.requires_grad
    assert out.codebook_loss.item() == 0
    assert torch.allclose(out.loss, 0.25 * out.commitment_loss)


def test_ema_codebook_converges_to_the_cluster_means():
    x = blobs()
    q = quantizer(k=4, d=2, ema=True, decay=0.9, kmeans_init=True)
    for _ in range(100):
        q(x)
    means = torch.stack([x[i * 50:(i + 1) * 50].mean(0) for i in range(4)])
    assert torch.cdist(means, q.codebook).min(1).values.max() < 0.05


# --- initialisation, reset, modes ------------------------------------------------------------

def test_kmeans_init_puts_a_code_on_every_cluster():
    x = blobs()
    q = quantizer(k=4, d=2, kmeans_init=True)
    assert not bool(q.initialised)
    out = q(x)
    assert bool(q.initialised)
    assert out.utilisation == 1.0


def test_reset_revives_dead_codes():
    x = blobs()
    q = quantizer(k=16, d=2, dead_code_threshold=0.5, decay=0.5)
    with torch.no_grad():
        q.codebook[8:] = 100.0                                              # far from the data
    dead_before = (q.quantize(x).bincount(minlength=16) == 0).sum()
    for _ in range(5):
        q(x)
    assert dead_before >= 8
    assert torch.cdist(q.codebook[8:], x).min(1).values.max() < 1.0          # all re-seeded
    assert (q.counts[8:] > 0).all()


def test_reset_dead_codes_replaces_only_dead_codes_by_batch_rows():
    codebook = torch.arange(10.0).reshape(5, 2)
    counts = torch.tensor([2.0, 0.0, 3.0, 0.1, 1.0])
    x = torch.randn(7, 2)
    new, dead = vq.reset_dead_codes(codebook, counts, x, threshold=0.5)
    assert dead.tolist() == [False, True, False, True, False]
    assert torch.equal(new[~dead], codebook[~dead])
    assert all(any(torch.equal(row, r) for r in x) for row in new[dead])


def test_eval_mode_changes_nothing():
    q = quantizer(k=4, d=2, ema=True, kmeans_init=True, dead_code_threshold=1.0).eval()
    state = {k: v.clone() for k, v in q.state_dict().items()}
    q(blobs())
    assert all(torch.equal(state[k], v) for k, v in q.state_dict().items())


def test_same_seed_gives_the_same_codes_and_codebook():
    def run():
        q = quantizer(k=32, d=2, ema=True, kmeans_init=True, dead_code_threshold=0.5)
        codes = [q(blobs(seed=s)).codes for s in range(5)]
        return torch.stack(codes), q.codebook.detach().clone()
    (codes_a, book_a), (codes_b, book_b) = run(), run()
    assert torch.equal(codes_a, codes_b) and torch.equal(book_a, book_b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ema", [False, True])
def test_runs_on_the_device_of_its_input(device, ema):
    q = quantizer(ema=ema, kmeans_init=True, dead_code_threshold=0.1).to(device)
    out = q(torch.randn(10, 3, 4, device=device, requires_grad=True))
    assert out.quantized.device.type == device and out.codes.device.type == device
    out.loss.backward()


# --- bad input ------------------------------------------------------------------------------

def test_wrong_vector_dimension_says_which_dimension():
    with pytest.raises(ValueError, match="dimension 4"):
        quantizer(d=4)(torch.randn(10, 5))


@pytest.mark.parametrize("k", [0, -3])
def test_codebook_size_below_one_is_rejected(k):
    with pytest.raises(ValueError, match="codebook_size must be >= 1"):
        VQConfig(codebook_size=k, dim=4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_input_is_rejected(bad):
    x = torch.randn(10, 4)
    x[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        quantizer()(x)


def test_integer_input_is_rejected():
    with pytest.raises(TypeError, match="float tensor"):
        quantizer()(torch.ones(3, 4, dtype=torch.long))


@pytest.mark.parametrize("option, value, phrase", [
    ("beta", -1.0, "beta must be >= 0"), ("decay", 1.0, "decay must be in"),
    ("eps", 0.0, "eps must be > 0"), ("dead_code_threshold", -1.0, "dead_code_threshold")])
def test_bad_options_are_rejected_with_the_paper_value(option, value, phrase):
    with pytest.raises(ValueError, match=phrase):
        VQConfig(codebook_size=4, dim=2, **{option: value})


def test_nearest_codes_with_a_width_mismatch_says_what_to_change():
    with pytest.raises(ValueError, match=r"must share the width D, got shapes \(5, 3\) and \(4, 2\)"):
        vq.nearest_codes(torch.zeros(5, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="codebook is empty"):
        vq.nearest_codes(torch.zeros(5, 3), torch.zeros(0, 3))
