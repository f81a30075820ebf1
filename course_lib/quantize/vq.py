"""Vector quantisation with the straight-through estimator (van den Oord et al., NeurIPS 2017).

A vector z_e (an encoder output) is replaced by its nearest codebook entry:

    c   = argmin_k ||z_e - e_k||^2                          nearest-code lookup (eq. 1)
    z_q = z_e + sg(e_c - z_e)                               straight-through estimator

Forward, z_q equals e_c; backward, sg (stop-gradient, `.detach()`) makes dz_q/dz_e the
identity, so the encoder receives exactly the decoder's gradient w.r.t. z_q. The argmin has
no gradient, so two extra losses train the codebook and keep the encoder close to it (eq. 3):

    codebook loss    ||sg(z_e) - e_c||^2      moves the codes towards the encoder outputs
    commitment loss  ||z_e - sg(e_c)||^2      moves the encoder towards its code, weight beta

Options, all off by default, each from the paper that introduced it:

* ``ema=True``: the codebook is not learned by gradient but as an exponential moving average
  of the vectors assigned to each code ("voting"; van den Oord et al. 2017, appendix A.1;
  Razavi et al. 2019). With N_i the running count and m_i the running sum of code i:

      N_i <- g N_i + (1 - g) n_i            n_i: vectors assigned to code i in this batch
      m_i <- g m_i + (1 - g) sum_{c(z)=i} z
      N~_i = (N_i + eps) / (n + K eps) * n  Laplace smoothing, n = sum_i N_i
      e_i  = m_i / N~_i

  Only the commitment term stays in the loss.
* ``kmeans_init=True``: the codebook starts as k-means centroids of the first training batch
  (as TIGER's RQ-VAE and lucidrains' vector-quantize-pytorch do), so no code starts far from
  the data (`course_lib.quantize.kmeans.kmeans`, from random rows, `kmeans_iters` steps).
* ``dead_code_threshold > 0``: a code whose running count N_i falls below the threshold is
  dead and is re-seeded with a random encoder output of the current batch (Dhariwal et al.
  2020, Jukebox; Zeghidour et al. 2021, SoundStream). The running counts are kept in every
  mode, so the reset works with or without EMA.

All updates (EMA, k-means init, reset) happen only in training mode (`model.train()`).

Dimensions: N vectors (any leading shape is flattened), D vector width, K codebook size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import metrics


@dataclass
class VQConfig:
    """Settings of one quantizer. `codebook_size` K and `dim` D have no default (the paper used
    K = 512; D is the encoder's output width); the rest default to the papers' values: beta =
    0.25 (van den Oord et al. 2017, section 3.2), decay 0.99 and eps 1e-5 for EMA (appendix
    A.1; Razavi et al. 2019), and every option that the original VQ-VAE did not have is off."""

    codebook_size: int
    dim: int
    beta: float = 0.25                   # commitment weight
    ema: bool = False                    # EMA codebook updates instead of the codebook loss
    decay: float = 0.99                  # EMA decay g; also the decay of the usage counts
    eps: float = 1e-5                    # Laplace smoothing of the EMA counts
    kmeans_init: bool = False            # k-means centroids of the first training batch
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0     # reset codes with running count below this; 0 = off

    def __post_init__(self):
        if self.codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {self.codebook_size}")
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}; the paper uses 0.25")
        if not 0 <= self.decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}; the paper uses 0.99")
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0, got {self.eps}; the paper uses 1e-5")
        if self.kmeans_iters < 1:
            raise ValueError(f"kmeans_iters must be >= 1, got {self.kmeans_iters}")
        if self.dead_code_threshold < 0:
            raise ValueError(f"dead_code_threshold must be >= 0 (0 turns the reset off), "
                             f"got {self.dead_code_threshold}")


# --- the pieces, as functions (the exercises rebuild these) ---------------------------------

def nearest_codes(x: Tensor, codebook: Tensor) -> Tensor:
    """argmin_k ||x_n - e_k||^2 for every row: (N, D), (K, D) -> (N,) long. Ties: lowest k.

    ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2, one matrix product for the whole batch.
    """
    if x.dim() != 2 or codebook.dim() != 2 or x.shape[1] != codebook.shape[1]:
        raise ValueError(f"x (N, D) and codebook (K, D) must share the width D, got shapes "
                         f"{tuple(x.shape)} and {tuple(codebook.shape)}; project x to "
                         f"{codebook.shape[-1]} features or build the codebook with "
                         f"dim={x.shape[-1]}")
    if len(codebook) == 0:
        raise ValueError("the codebook is empty: it needs at least one code")
    distances = (x.pow(2).sum(1, keepdim=True) - 2 * x @ codebook.T
                 + codebook.pow(2).sum(1))                                  # (N, K)
    return distances.argmin(dim=1)


def straight_through(z_e: Tensor, e: Tensor) -> Tensor:
    """z_q = z_e + sg(e - z_e): the value of e, the gradient of z_e (the identity)."""
    return z_e + (e - z_e).detach()


def codebook_loss(z_e: Tensor, e: Tensor) -> Tensor:
    """||sg(z_e) - e||^2, mean over elements: only the codes move."""
    return F.mse_loss(e, z_e.detach())


def commitment_loss(z_e: Tensor, e: Tensor) -> Tensor:
    """||z_e - sg(e)||^2, mean over elements: only the encoder moves (times beta in the loss)."""
    return F.mse_loss(z_e, e.detach())


def laplace_smoothing(counts: Tensor, eps: float) -> Tensor:
    """N~_i = (N_i + eps) / (n + K eps) * n with n = sum_i N_i: same total, no zero count."""
    n = counts.sum()
    return (counts + eps) / (n + counts.numel() * eps) * n


def ema_update(counts: Tensor, sums: Tensor, x: Tensor, codes: Tensor, decay: float,
               eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """One EMA step (van den Oord et al. 2017, appendix A.1): returns the new running counts
    N (K,), running sums m (K, D) and codebook e = m / N~ (K, D), N~ Laplace-smoothed.

    x (N, D) are the batch's vectors, codes (N,) their nearest codes. Pure: inputs untouched.
    """
    n_i = torch.bincount(codes, minlength=counts.numel()).to(counts.dtype)  # (K,)
    sum_i = torch.zeros_like(sums).index_add_(0, codes, x.to(sums.dtype))   # (K, D)
    counts = decay * counts + (1 - decay) * n_i
    sums = decay * sums + (1 - decay) * sum_i
    return counts, sums, sums / laplace_smoothing(counts, eps)[:, None]


def dead_codes(counts: Tensor, threshold: float) -> Tensor:
    """(K,) bool: codes whose running count is below `threshold`."""
    return counts < threshold


def reset_dead_codes(codebook: Tensor, counts: Tensor, x: Tensor, threshold: float,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Re-seed every dead code with a random row of x (Dhariwal et al. 2020).

    Returns (new codebook (K, D), dead mask (K,)); live codes are unchanged.
    """
    dead = dead_codes(counts, threshold)
    new = codebook.clone()
    n_dead = int(dead.sum())
    if n_dead:
        rows = torch.randint(len(x), (n_dead,), generator=generator, device=x.device)
        new[dead] = x[rows].to(new.dtype)
    return new, dead


# --- the module -----------------------------------------------------------------------------

@dataclass
class VQResult:
    """What one forward pass returns."""

    quantized: Tensor          # (..., D) z_q: the codes' values, the encoder's gradient
    codes: Tensor              # (...,) long, index of the nearest code
    loss: Tensor               # scalar: codebook + beta * commitment (beta * commitment with EMA)
    codebook_loss: Tensor      # scalar (0 with EMA)
    commitment_loss: Tensor    # scalar, before the beta weight
    codebook_size: int

    @property
    def utilisation(self) -> float:
        """Share of the K codes used in this batch."""
        return metrics.utilisation(self.codes, self.codebook_size)

    @property
    def perplexity(self) -> float:
        """exp(entropy) of this batch's code usage: the effective number of codes."""
        return metrics.perplexity(self.codes, self.codebook_size)


class VectorQuantizer(nn.Module):
    """Nearest-code quantizer with STE, codebook and commitment losses, and the options of
    `VQConfig` (EMA, k-means init, dead-code reset). `quantizer(x) -> VQResult` for x of
    shape (..., D); `quantizer.codebook` is the (K, D) codebook.

    The codebook starts uniform in [-1/K, 1/K] (as in widely used PyTorch VQ-VAE ports), so a
    large codebook starts as a small ball at the origin: the setting where codes die. The
    running counts start at 1 and the running sums at the initial codebook, as if each code
    had seen itself once, so e = m / N holds from the first step.
    """

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        k, d = config.codebook_size, config.dim
        self.codebook = nn.Parameter(torch.empty(k, d).uniform_(-1 / k, 1 / k),
                                     requires_grad=not config.ema)
        self.register_buffer("counts", torch.ones(k))                        # N_i
        self.register_buffer("sums", self.codebook.detach().clone())         # m_i
        self.register_buffer("initialised", torch.tensor(not config.kmeans_init))

    def forward(self, x: Tensor) -> VQResult:
        cfg = self.config
        self._check_input(x)
        flat = x.reshape(-1, cfg.dim)                                       # (N, D)
        if self.training and not bool(self.initialised):
            self._kmeans_init(flat.detach())
        with torch.no_grad():
            codes = nearest_codes(flat.detach().to(self.codebook.dtype), self.codebook)  # (N,)
        e = self.codebook[codes].to(flat.dtype)                             # (N, D)
        commit = commitment_loss(flat, e)
        book = torch.zeros((), device=x.device) if cfg.ema else codebook_loss(flat, e)
        quantized = straight_through(flat, e)                               # (N, D)
        if self.training:
            self._update(flat.detach(), codes)
        return VQResult(quantized=quantized.reshape(x.shape),
                        codes=codes.reshape(x.shape[:-1]),
                        loss=book + cfg.beta * commit, codebook_loss=book,
                        commitment_loss=commit, codebook_size=cfg.codebook_size)

    @torch.no_grad()
    def quantize(self, x: Tensor) -> Tensor:
        """The codes of x (..., D) -> (...,), without losses or updates."""
        self._check_input(x)
        flat = x.reshape(-1, self.config.dim).to(self.codebook.dtype)
        return nearest_codes(flat, self.codebook).reshape(x.shape[:-1])

    def _check_input(self, x) -> None:
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError(f"the quantizer takes a float tensor (..., {self.config.dim}), got "
                            f"{type(x).__name__}{'' if not torch.is_tensor(x) else ' ' + str(x.dtype)}")
        if x.dim() == 0 or x.shape[-1] != self.config.dim or x.numel() == 0:
            raise ValueError(f"expected vectors of dimension {self.config.dim} on the last axis, "
                             f"got shape {tuple(x.shape)}; make the encoder output "
                             f"{self.config.dim} features or set VQConfig(dim=...)")
        if not torch.isfinite(x).all():
            raise ValueError("the input contains NaN or inf: check the encoder's output (a "
                             "learning rate too high, or NaN in the data)")

    @torch.no_grad()
    def _kmeans_init(self, flat: Tensor) -> None:
        cfg = self.config
        # kmeans.py builds on this module's nearest_codes, hence the import here.
        from course_lib.quantize.kmeans import kmeans
        centroids, labels = kmeans(flat.to(self.codebook.dtype), cfg.codebook_size,
                                   iters=cfg.kmeans_iters, init="random", tol=0.0)
        sizes = torch.bincount(labels, minlength=cfg.codebook_size).to(self.counts.dtype)
        # Empty clusters count as seen once, so their codes are not pulled to the origin.
        sizes = sizes.clamp(min=1)
        self.codebook.data.copy_(centroids)
        self.counts.copy_(sizes)
        self.sums.copy_(centroids * sizes[:, None])
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> None:
        cfg = self.config
        flat = flat.to(self.codebook.dtype)
        if cfg.ema:
            counts, sums, codebook = ema_update(self.counts, self.sums, flat, codes,
                                                cfg.decay, cfg.eps)
            self.counts.copy_(counts)
            self.sums.copy_(sums)
            self.codebook.data.copy_(codebook)
        else:   # the running counts only, for the dead-code reset and for inspection
            n_i = torch.bincount(codes, minlength=cfg.codebook_size).to(self.counts.dtype)
            self.counts.mul_(cfg.decay).add_((1 - cfg.decay) * n_i)
        if cfg.dead_code_threshold > 0:
            new, dead = reset_dead_codes(self.codebook.data, self.counts, flat,
                                         cfg.dead_code_threshold)
            if dead.any():
                self.codebook.data.copy_(new)
                # A re-seeded code starts at the threshold: it must win vectors to survive.
                self.counts[dead] = cfg.dead_code_threshold
                self.sums[dead] = new[dead] * cfg.dead_code_threshold

    def extra_repr(self) -> str:
        c = self.config
        return (f"K={c.codebook_size}, D={c.dim}, beta={c.beta}, ema={c.ema}, "
                f"kmeans_init={c.kmeans_init}, dead_code_threshold={c.dead_code_threshold}")
