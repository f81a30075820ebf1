"""VQ-VAE on item content vectors: encoder -> vector quantizer -> decoder (van den Oord et al.,
NeurIPS 2017), the single-level version of TIGER's RQ-VAE.

    z_e = enc(x)                       (B, D_latent)   an MLP with ReLU
    z_q, c = VQ(z_e)                   (B, D_latent), (B,) nearest code, straight-through
    x_hat = dec(z_q)                   (B, D_in)
    loss = ||x - x_hat||^2 + ||sg(z_e) - e_c||^2 + beta ||z_e - sg(e_c)||^2      (eq. 3)

Every item gets one code c in 0..K-1: a one-token "semantic ID". With EMA (`VQConfig(ema=True)`)
the middle term goes and the codebook follows the encoder outputs by moving averages.

The prior over codes is uniform and fixed, so the KL term of the ELBO is the constant log K
and is dropped (section 3.2): a VQ-VAE has no KL to collapse (lesson 02).

Dimensions: B items in a batch, D_in content width, D_latent code width (`quantizer.dim`),
K codebook size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib import metrics
from course_lib.quantize.vq import VectorQuantizer, VQConfig, VQResult


@dataclass
class VQVAEConfig:
    """`input_dim` is the content width; `hidden_dims` the encoder's hidden widths (the decoder
    mirrors them); the quantizer's `dim` is the latent width. TIGER's RQ-VAE uses hidden
    widths (512, 256, 128) for 768-d inputs and a 32-d latent; the course's 32-d content uses
    a smaller default."""

    input_dim: int
    quantizer: VQConfig = field(default_factory=lambda: VQConfig(codebook_size=64, dim=16))
    hidden_dims: tuple[int, ...] = (128, 64)

    def __post_init__(self):
        if self.input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {self.input_dim}")
        if any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be positive widths, got {self.hidden_dims}")


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class VQVAEOutput:
    reconstruction: Tensor     # (B, D_in)
    codes: Tensor              # (B,)
    reconstruction_loss: Tensor
    vq: VQResult               # the quantizer's result: losses and usage statistics
    loss: Tensor               # reconstruction + codebook + beta * commitment


class VQVAE(nn.Module):
    """Encoder -> `VectorQuantizer` -> decoder on vectors (B, D_in)."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        latent = config.quantizer.dim
        self.encoder = mlp([config.input_dim, *config.hidden_dims, latent])
        self.quantizer = VectorQuantizer(config.quantizer)
        self.decoder = mlp([latent, *reversed(config.hidden_dims), config.input_dim])

    def forward(self, x: Tensor) -> VQVAEOutput:
        self._check_input(x)
        z_e = self.encoder(x)                                               # (B, D_latent)
        vq = self.quantizer(z_e)
        reconstruction = self.decoder(vq.quantized)                         # (B, D_in)
        recon = F.mse_loss(reconstruction, x)
        return VQVAEOutput(reconstruction, vq.codes, recon, vq, recon + vq.loss)

    def loss(self, batch: dict) -> Tensor:
        """The training loss of a batch {"x": (B, D_in)} (for `course_lib.train.fit`)."""
        return self(batch["x"]).loss

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Each row's code (B,), without updating anything."""
        self._check_input(x)
        return self.quantizer.quantize(self.encoder(x))

    def _check_input(self, x) -> None:
        d = self.config.input_dim
        if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] != d:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"expected a batch of content vectors (B, {d}), got {shape}; "
                             f"set VQVAEConfig(input_dim=...) to the content width")
        if not x.is_floating_point():
            raise TypeError(f"content vectors must be a float tensor, got {x.dtype}; "
                            f"convert with x.float()")
        if not torch.isfinite(x).all():
            raise ValueError("the content vectors contain NaN or inf: fill or drop those items "
                             "before training (standardising a constant feature divides by 0)")


@dataclass
class TrainLog:
    """Measured every `log_every` steps of `fit_vqvae`; usage is over the whole data set."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)            # training loss of the batch
    reconstruction: list[float] = field(default_factory=list)  # MSE on the whole data set
    perplexity: list[float] = field(default_factory=list)
    utilisation: list[float] = field(default_factory=list)


def fit_vqvae(model: VQVAE, x: Tensor, *, steps: int, batch_size: int = 128, lr: float = 1e-3,
              log_every: int = 10, callback: Callable[[int, VQVAE, TrainLog], None] | None = None,
              progress: bool = False) -> TrainLog:
    """Adam on random mini-batches of the rows of x for `steps` steps; returns the log.

    Seeded by torch's global generator (`seed_everything`). `callback(step, model, log)` runs
    after each logged step (e.g. to redraw a live code-usage histogram).
    """
    if steps < 1 or batch_size < 1 or log_every < 1:
        raise ValueError(f"steps, batch_size and log_every must be >= 1, got {steps}, "
                         f"{batch_size}, {log_every}")
    model._check_input(x)
    x = x.to(next(model.parameters()).device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    log = TrainLog()
    order = torch.randperm(len(x), device=x.device)
    start = 0
    for step in tqdm(range(1, steps + 1), disable=not progress, desc="VQ-VAE"):
        if start + batch_size > len(x):                                     # next epoch
            order, start = torch.randperm(len(x), device=x.device), 0
        batch = x[order[start:start + batch_size]]
        start += batch_size
        model.train()
        loss = model(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_every == 0 or step == steps:
            _log(model, x, step, loss.item(), log)
            if callback is not None:
                callback(step, model, log)
    return log


@torch.no_grad()
def _log(model: VQVAE, x: Tensor, step: int, loss: float, log: TrainLog) -> None:
    model.eval()
    out = model(x)
    k = model.config.quantizer.codebook_size
    log.step.append(step)
    log.loss.append(loss)
    log.reconstruction.append(out.reconstruction_loss.item())
    log.perplexity.append(metrics.perplexity(out.codes, k))
    log.utilisation.append(metrics.utilisation(out.codes, k))
