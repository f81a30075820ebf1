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

Training goes through `course_lib.train.fit` (batch {"x": (B, D_in)}); a `TrainLog` passed as
its `on_step` records reconstruction, perplexity and utilisation during training.

Dimensions: B items in a batch, D_in content width, D_latent code width (`quantizer.dim`),
K codebook size.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import metrics
from course_lib.models.layers import check_content, mlp
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


@dataclass
class VQVAEOutput:
    """Named as in `RQVAEOutput` (lesson 05)."""

    x_hat: Tensor              # (B, D_in) the reconstruction
    codes: Tensor              # (B,)
    loss: Tensor               # scalar: reconstruction + quantization
    reconstruction: Tensor     # scalar: mean squared error ||x - x_hat||^2
    quantization: Tensor       # scalar: codebook + beta * commitment (the quantizer's loss)
    vq: VQResult               # the quantizer's result: both losses and usage statistics


class VQVAE(nn.Module):
    """Encoder -> `VectorQuantizer` -> decoder on vectors (B, D_in); `loss(batch)` for
    `course_lib.train.fit` with batch = {"x": (B, D_in)}; `codes(x)` gives the codes (B,)."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        latent = config.quantizer.dim
        self.encoder = mlp([config.input_dim, *config.hidden_dims, latent])
        self.quantizer = VectorQuantizer(config.quantizer)
        self.decoder = mlp([latent, *reversed(config.hidden_dims), config.input_dim])

    def forward(self, x: Tensor) -> VQVAEOutput:
        check_content(x, self.config.input_dim, "VQVAEConfig")
        z_e = self.encoder(x)                                               # (B, D_latent)
        vq = self.quantizer(z_e)
        x_hat = self.decoder(vq.quantized)                                  # (B, D_in)
        reconstruction = F.mse_loss(x_hat, x)
        return VQVAEOutput(x_hat=x_hat, codes=vq.codes, loss=reconstruction + vq.loss,
                           reconstruction=reconstruction, quantization=vq.loss, vq=vq)

    def loss(self, batch: dict) -> Tensor:
        """The training loss of a batch {"x": (B, D_in)} (for `course_lib.train.fit`)."""
        return self(batch["x"]).loss

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Each row's code (B,), without updating anything."""
        check_content(x, self.config.input_dim, "VQVAEConfig")
        return self.quantizer.quantize(self.encoder(x))


# --- the record a lesson plots, filled during training ---------------------------------------

@dataclass(eq=False)
class TrainLog:
    """Measured on the whole data set `x` every `every` optimizer steps, as the `on_step`
    callback of `course_lib.train.fit` (choose `steps` as a multiple of `every` to measure
    the final model too):

        log = TrainLog(x, every=30)
        fit(model, lambda epoch: shuffled_batches({"x": x}, 128, drop_last=True), steps=300,
            on_step=log)
        log.reconstruction[-1], log.perplexity[-1], log.utilisation[-1]
    """

    x: Tensor = field(repr=False)                              # (N, D_in)
    every: int = 10
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)            # training loss of the batch
    reconstruction: list[float] = field(default_factory=list)  # MSE on the whole data set
    perplexity: list[float] = field(default_factory=list)
    utilisation: list[float] = field(default_factory=list)

    def __post_init__(self):
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be an int >= 1 (steps between measures), got "
                             f"{self.every!r}")

    @torch.no_grad()
    def __call__(self, step: int, model: VQVAE, loss: float) -> None:
        if step % self.every:
            return
        model.eval()
        out = model(self.x.to(next(model.parameters()).device))
        k = model.config.quantizer.codebook_size
        self.step.append(step)
        self.loss.append(loss)
        self.reconstruction.append(out.reconstruction.item())
        self.perplexity.append(metrics.perplexity(out.codes, k))
        self.utilisation.append(metrics.utilisation(out.codes, k))
