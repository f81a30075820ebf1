"""A VAE over item sequences, built to show posterior collapse and its remedies.

The model (Bowman et al., "Generating Sentences from a Continuous Space", CoNLL 2016, with
item ids in place of words):

    mu, logvar = enc(x)                      (B, J)   a GRU reads the sequence
    z = mu + exp(logvar / 2) * eps           (B, J)   reparameterisation (Kingma & Welling 2014)
    log p(x | z) = sum_t log p(x_t | ...)            decoder, one of two:
        "gru": strong, teacher-forced autoregressive GRU, p(x_t | x_<t, z); z sets h_0
               and is fed at every step (as in He et al. 2019)
        "bag": weak, an MLP from z to one softmax over items, p(x_t | z), order ignored
    ELBO = E_q[log p(x | z)] - KL(q(z | x) || N(0, I))

The ELBO parts come back separately (`VAEOutput`), the KL per latent dimension too, so a
lesson can watch each dimension die. Remedies are options of `VAEConfig`: KL annealing
(weight 0 -> 1, Bowman et al. 2016), word dropout (same paper) and free bits
sum_j max(lambda, KL_j) (Kingma et al., "Improved Variational Inference with Inverse
Autoregressive Flow", NeurIPS 2016). Measures: active units (Burda et al. 2016: a unit is
active when Cov_x(E_q[z_u]) > 0.01) and the mutual information I_q(x; z) estimated on a
batch (Hoffman & Johnson 2016; the estimator of He et al., ICLR 2019).

The bottleneck is an option too. `bottleneck="vq"` replaces the Gaussian by the nearest of K
codes (van den Oord et al., NeurIPS 2017), with the library's one quantizer
(`course_lib.quantize.vq.VectorQuantizer`: straight-through estimator, codebook and
commitment losses):

    z_e = enc(x)                             (B, J)   the encoder output
    z_q, c = VQ(z_e)                         (B, J), (B,)   z_q = z_e + sg(e_c - z_e)
    loss = -log p(x | z_q) + ||sg(z_e) - e_c||^2 + beta ||z_e - sg(e_c)||^2

The posterior is one-hot on c and the prior uniform, so the KL is the constant log K (section
3.2 of the paper): no KL term to anneal or floor, and nothing in the loss that pays the encoder
to say less. Its measures: code usage and perplexity, and I(x; c) = H(c) - H(c | x) = H(c),
since the encoder is deterministic (H(c | x) = 0), estimated by the entropy of the codes'
empirical distribution on the probe windows (at most log K).

For both bottlenecks `measure` also reports the shuffle gap: the reconstruction loss when every
window is decoded from another window's latent, minus the loss with its own. It is ~0 when the
decoder ignores the latent and positive when the latent carries what the decoder needs.

Training goes through `course_lib.train.fit` (batch {"items": (B, T)}); a `VAEHistory` passed
as its `on_step` records the measures during training.

Dimensions: B sequences in a batch, T positions, J latent dimensions, I items (ids 1..I,
0 is padding; sequences are left-padded as everywhere in the course), K codes (VQ).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import metrics
from course_lib.quantize.vq import VectorQuantizer, VQConfig

DECODERS = ("gru", "bag")
BOTTLENECKS = ("gaussian", "vq")


@dataclass
class VAEConfig:
    """Sizes, bottleneck and remedies. Defaults are the plain VAE (Gaussian bottleneck, no
    remedy: `anneal_steps=0` means KL weight 1 from the first step, `free_bits=0` and
    `word_dropout=0` are off), which is the setting that collapses with the strong decoder.
    `bottleneck="vq"` quantizes the J-dim encoder output to the nearest of `codebook_size` codes
    with the quantizer's paper defaults (`VQConfig`: beta 0.25, codebook learned by its loss)."""

    n_items: int
    decoder: str = "gru"          # "gru" (strong, autoregressive) or "bag" (weak, MLP)
    d_embed: int = 32
    d_hidden: int = 64
    d_latent: int = 16
    anneal_steps: int = 0         # KL weight rises linearly 0 -> 1 over this many steps
    free_bits: float = 0.0        # lambda, nats per latent dimension (Kingma et al. 2016)
    word_dropout: float = 0.0     # fraction of decoder inputs replaced by the start token 0
    bottleneck: str = "gaussian"  # "gaussian" (a VAE) or "vq" (nearest of K codes, a VQ-VAE)
    codebook_size: int = 64       # K, with bottleneck="vq"

    def __post_init__(self):
        if self.n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {self.n_items}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if min(self.d_embed, self.d_hidden, self.d_latent) < 1:
            raise ValueError("d_embed, d_hidden and d_latent must be >= 1, got "
                             f"{self.d_embed}, {self.d_hidden}, {self.d_latent}")
        if self.anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0 (0 = no annealing), got "
                             f"{self.anneal_steps}")
        if self.free_bits < 0:
            raise ValueError(f"free_bits must be >= 0 nats (0 = off), got {self.free_bits}")
        if not 0 <= self.word_dropout < 1:
            raise ValueError(f"word_dropout must be in [0, 1), got {self.word_dropout}")
        if self.bottleneck not in BOTTLENECKS:
            raise ValueError(f"bottleneck must be one of {BOTTLENECKS}, got {self.bottleneck!r}")
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1 (K codes), got {self.codebook_size}")
        if self.bottleneck == "vq" and (self.anneal_steps or self.free_bits):
            raise ValueError("anneal_steps and free_bits act on the Gaussian KL term; a VQ "
                             "bottleneck has none (its KL is the constant log K): set both to 0, "
                             f"got anneal_steps={self.anneal_steps}, free_bits={self.free_bits}")


# --- the pieces of the ELBO ---------------------------------------------------------------

def _check_gaussian(mu: Tensor, logvar: Tensor) -> None:
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} "
                         f"and {tuple(logvar.shape)}")
    if not (torch.isfinite(mu).all() and torch.isfinite(logvar).all()):
        raise ValueError("mu or logvar holds NaN or inf; lower the learning rate or clip "
                         "logvar before calling")


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I), sigma = exp(logvar / 2) (Kingma & Welling
    2014, eq. 10): the sample is a differentiable function of mu and logvar."""
    _check_gaussian(mu, logvar)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per dimension, same shape as mu:
    KL_j = (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2) / 2 (Kingma & Welling 2014, appendix B).
    Sum over the last axis for the KL of the whole latent."""
    _check_gaussian(mu, logvar)
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def free_bits_kl(kl_per_dim: Tensor, free_bits: float) -> Tensor:
    """sum_j max(lambda, KL_j), KL_j averaged over the batch (Kingma et al. 2016, eq. 13 with
    one group per dimension). Below lambda a dimension's KL costs a constant, so its gradient
    is zero and the encoder may use those nats for free. kl_per_dim (B, J) or (J,)."""
    if free_bits < 0:
        raise ValueError(f"free_bits must be >= 0 nats, got {free_bits}")
    kl_dim = kl_per_dim.mean(dim=0) if kl_per_dim.dim() == 2 else kl_per_dim   # (J,)
    return torch.clamp(kl_dim, min=free_bits).sum()


def kl_weight(step: int, anneal_steps: int) -> float:
    """Linear KL annealing (Bowman et al. 2016): weight step / anneal_steps, capped at 1;
    anneal_steps = 0 means no annealing (weight 1 from step 0)."""
    if step < 0 or anneal_steps < 0:
        raise ValueError(f"step and anneal_steps must be >= 0, got {step} and {anneal_steps}")
    if anneal_steps == 0:
        return 1.0
    return min(1.0, step / anneal_steps)


# --- the measures -------------------------------------------------------------------------

def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions u with Cov_x(E_q[z_u | x]) > threshold (Burda et al.
    2016). mu (B, J) are the posterior means of B inputs."""
    if mu.dim() != 2 or mu.shape[0] < 2:
        raise ValueError(f"mu must be (B, J) with B >= 2 inputs, got {tuple(mu.shape)}")
    return int((mu.var(dim=0) > threshold).sum())


def code_mutual_information(codes: Tensor, codebook_size: int) -> float:
    """I(x; c) = H(c) - H(c | x) for a deterministic encoder, where H(c | x) = 0: the entropy
    of the codes' empirical distribution over the inputs, in nats (the plug-in estimate, at
    most log min(K, B)). codes (B,) in 0..K-1."""
    return float(metrics.count_entropy(metrics.code_counts(codes, codebook_size), base=math.e))


def mutual_information(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> float:
    """I_q(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)], with the aggregate posterior q(z)
    approximated by the mixture of the batch's posteriors (the estimator of He et al. 2019,
    one sample z_a per input). Both terms use the same samples, so the estimate is exactly 0
    when every posterior is the same, and at most log B. In nats."""
    _check_gaussian(mu, logvar)
    if mu.dim() != 2 or mu.shape[0] < 2:
        raise ValueError(f"mu must be (B, J) with B >= 2 inputs, got {tuple(mu.shape)}")
    batch, dim = mu.shape
    z = reparameterize(mu, logvar, generator)                       # (B, J)
    dev = z[:, None, :] - mu[None, :, :]                           # (B, B, J)
    log_density = (-0.5 * (dev.pow(2) / logvar.exp()[None]).sum(-1)
                   - 0.5 * (dim * math.log(2 * math.pi) + logvar.sum(-1))[None])  # log q(z_a | x_b)
    log_q_z_given_x = log_density.diagonal()                        # (B,)
    log_q_z = torch.logsumexp(log_density, dim=1) - math.log(batch)  # (B,)
    return float((log_q_z_given_x - log_q_z).mean())


# --- the model ----------------------------------------------------------------------------

@dataclass
class VAEOutput:
    """The ELBO's parts for one batch. `recon` and `kl` are per sequence, batch-averaged
    (nats); `kl_per_dim` is (J,), batch-averaged; ELBO = -(recon + kl). With the VQ bottleneck
    `mu` is the encoder output z_e, `kl` the constant log K, `kl_per_dim` and `logvar` None,
    and `codes` and `quantization` (codebook + beta * commitment loss) are set."""

    recon: Tensor                      # scalar: E_q[-log p(x | z)]
    kl: Tensor                         # scalar: KL(q(z | x) || p(z)) summed over dimensions
    kl_per_dim: Tensor | None          # (J,)
    mu: Tensor                         # (B, J)
    logvar: Tensor | None              # (B, J)
    codes: Tensor | None = None        # (B,) VQ only: each window's code
    quantization: Tensor | None = None  # scalar, VQ only

    @property
    def elbo(self) -> Tensor:
        return -(self.recon + self.kl)


class SequenceVAE(nn.Module):
    """Encoder GRU -> Gaussian posterior or VQ code -> weak ("bag") or strong ("gru") decoder."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = c = config
        # id 0 is padding for the encoder and the start token for the decoder
        self.embedding = nn.Embedding(c.n_items + 1, c.d_embed)
        self.encoder = nn.GRU(c.d_embed, c.d_hidden, batch_first=True)
        if c.bottleneck == "gaussian":
            self.to_posterior = nn.Linear(c.d_hidden, 2 * c.d_latent)
        else:
            self.to_latent = nn.Linear(c.d_hidden, c.d_latent)
            self.quantizer = VectorQuantizer(VQConfig(codebook_size=c.codebook_size, dim=c.d_latent))
        if c.decoder == "gru":
            self.z_to_hidden = nn.Linear(c.d_latent, c.d_hidden)
            self.decoder = nn.GRU(c.d_embed + c.d_latent, c.d_hidden, batch_first=True)
            self.output = nn.Linear(c.d_hidden, c.n_items + 1)
        else:
            self.decoder = nn.Sequential(nn.Linear(c.d_latent, c.d_hidden), nn.Tanh(),
                                         nn.Linear(c.d_hidden, c.n_items + 1))
        # training steps taken, for KL annealing; a buffer, so checkpoints keep it
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def check_items(self, items: Tensor) -> None:
        if items.dim() != 2 or items.dtype != torch.long:
            raise ValueError(f"items must be a (B, T) long tensor of item ids, got "
                             f"{tuple(items.shape)} {items.dtype}")
        if items.numel() and (items.min() < 0 or items.max() > self.config.n_items):
            raise ValueError(f"item ids must be in [1, {self.config.n_items}] (0 is padding), "
                             f"found {int(items.min())}..{int(items.max())}")
        if not bool((items > 0).any(dim=1).all()):
            raise ValueError("every sequence needs at least one item; drop all-padding rows")

    def encode(self, items: Tensor) -> tuple[Tensor, Tensor | None]:
        """q(z | x) from the encoder GRU's last state (left padding puts the newest item last):
        (mu, logvar), or (z_e, None) with the VQ bottleneck, whose posterior is one-hot on the
        code nearest to z_e."""
        self.check_items(items)
        _, h = self.encoder(self.embedding(items))                 # (1, B, H)
        if self.config.bottleneck == "vq":
            return self.to_latent(h[0]), None                      # (B, J)
        mu, logvar = self.to_posterior(h[0]).chunk(2, dim=-1)      # (B, J) each
        return mu, logvar

    def log_likelihood(self, items: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) per sequence (B,), summed over the non-padding positions."""
        mask = items > 0                                           # (B, T)
        if self.config.decoder == "bag":
            logp = F.log_softmax(self.decoder(z), dim=-1)          # (B, I + 1)
            token_logp = logp.gather(1, items)                     # (B, T)
        else:
            inputs = F.pad(items[:, :-1], (1, 0))                  # (B, T): shift right, 0 = start
            if self.training and self.config.word_dropout > 0:
                drop = torch.rand(inputs.shape, device=inputs.device) < self.config.word_dropout
                inputs = inputs.masked_fill(drop, 0)
            h0 = torch.tanh(self.z_to_hidden(z))[None]             # (1, B, H)
            z_t = z[:, None, :].expand(-1, items.shape[1], -1)     # (B, T, J)
            out, _ = self.decoder(torch.cat([self.embedding(inputs), z_t], -1), h0)  # (B, T, H)
            logp = F.log_softmax(self.output(out), dim=-1)         # (B, T, I + 1)
            token_logp = logp.gather(2, items[..., None])[..., 0]  # (B, T)
        return (token_logp * mask).sum(dim=1)

    def forward(self, items: Tensor) -> VAEOutput:
        mu, logvar = self.encode(items)
        if self.config.bottleneck == "vq":
            vq = self.quantizer(mu)                                # z_q (B, J), codes (B,)
            recon = -self.log_likelihood(items, vq.quantized).mean()
            log_k = torch.tensor(math.log(self.config.codebook_size), device=mu.device)
            return VAEOutput(recon, log_k, None, mu, None, codes=vq.codes, quantization=vq.loss)
        z = reparameterize(mu, logvar) if self.training else mu
        recon = -self.log_likelihood(items, z).mean()
        kl_per_dim = gaussian_kl(mu, logvar).mean(dim=0)           # (J,)
        return VAEOutput(recon, kl_per_dim.sum(), kl_per_dim, mu, logvar)

    def loss(self, batch: dict | Tensor) -> Tensor:
        """recon + w(step) * KL, with KL replaced by sum_j max(lambda, KL_j) under free bits;
        with the VQ bottleneck recon + codebook + beta * commitment (the constant KL dropped).
        Each call in training mode counts one step of the annealing schedule."""
        items = batch["items"] if isinstance(batch, dict) else batch
        out = self(items)
        if self.config.bottleneck == "vq":
            if self.training:
                self.step += 1
            return out.recon + out.quantization
        kl = free_bits_kl(out.kl_per_dim, self.config.free_bits) if self.config.free_bits else out.kl
        weight = kl_weight(int(self.step), self.config.anneal_steps)
        if self.training:
            self.step += 1
        return out.recon + weight * kl


# --- the record a lesson plots, filled during training --------------------------------------

@torch.no_grad()
def measure(model: SequenceVAE, items: Tensor, seed: int = 0) -> dict:
    """ELBO parts (posterior mean, or the code, used as z), active units, mutual information
    and the shuffle gap on `items` (B, T); with the VQ bottleneck also code usage (codes used
    / K) and perplexity, and I(x; c) = H(c) in place of the Gaussian estimator. kl_per_dim is
    [] for VQ (its KL does not split by dimension)."""
    was_training = model.training
    model.eval()
    out = model(items)
    gen = torch.Generator(device=items.device).manual_seed(seed)
    result = {"recon": float(out.recon), "kl": float(out.kl), "active_units": active_units(out.mu)}
    if model.config.bottleneck == "vq":
        k = model.config.codebook_size
        z = model.quantizer.codebook[out.codes]                          # (B, J) the codes' values
        result |= {"kl_per_dim": [], "mutual_information": code_mutual_information(out.codes, k),
                   "code_usage": metrics.utilisation(out.codes, k),
                   "perplexity": metrics.perplexity(out.codes, k)}
    else:
        z = out.mu                                                       # (B, J)
        result |= {"kl_per_dim": out.kl_per_dim.tolist(),
                   "mutual_information": mutual_information(out.mu, out.logvar, gen)}
    shuffled = torch.randperm(len(items), generator=gen, device=items.device)
    result["shuffle_gap"] = float(-model.log_likelihood(items, z[shuffled]).mean() - out.recon)
    model.train(was_training)
    return result


@dataclass(eq=False)
class VAEHistory:
    """`measure` on the sequences `items` every `every` optimizer steps, as the `on_step`
    callback of `course_lib.train.fit` (choose `steps` as a multiple of `every` to measure
    the final model too):

        history = VAEHistory(items[:512], every=25)
        fit(model, lambda epoch: shuffled_batches({"items": items}, 64, drop_last=True),
            steps=200, clip_grad_norm=5.0, on_step=history)
        history.kl, history.active_units, history.last()
    """

    items: Tensor = field(repr=False)                               # (N, T)
    every: int = 20
    step: list[int] = field(default_factory=list)
    recon: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    kl_per_dim: list[list[float]] = field(default_factory=list)    # (records, J)
    active_units: list[int] = field(default_factory=list)
    mutual_information: list[float] = field(default_factory=list)
    shuffle_gap: list[float] = field(default_factory=list)         # nats per window
    code_usage: list[float] = field(default_factory=list)          # VQ only: codes used / K
    perplexity: list[float] = field(default_factory=list)          # VQ only

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be an int >= 1 (steps between measures), got "
                             f"{self.every!r}")

    def __call__(self, step: int, model: SequenceVAE, loss: float) -> None:
        if step % self.every:
            return
        device = next(model.parameters()).device
        m = measure(model, self.items.to(device), seed=step)
        self.step.append(step)
        for key in ("recon", "kl", "kl_per_dim", "active_units", "mutual_information",
                    "shuffle_gap", "code_usage", "perplexity"):
            if key in m:
                getattr(self, key).append(m[key])

    def last(self) -> dict:
        if not self.step:
            raise ValueError(f"nothing measured yet: the history records every {self.every} "
                             "steps; train for at least that many")
        last = {"recon": self.recon[-1], "kl": self.kl[-1], "active_units": self.active_units[-1],
                "mutual_information": self.mutual_information[-1],
                "shuffle_gap": self.shuffle_gap[-1]}
        if self.code_usage:
            last |= {"code_usage": self.code_usage[-1], "perplexity": self.perplexity[-1]}
        return last
