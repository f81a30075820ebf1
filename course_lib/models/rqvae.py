"""TIGER's RQ-VAE: item content vector -> a few discrete codes -> back (Rajput et al. 2023,
section 3.1 and appendix).

    x (B, X) --encoder MLP--> z (B, D) --residual quantizer--> z_hat (B, D), codes (B, L)
    z_hat --decoder MLP--> x_hat (B, X)

    loss = ||x - x_hat||^2 + sum_l ||sg[r_l] - e_{c_l}||^2 + beta ||r_l - sg[e_{c_l}]||^2

The paper's setting: X = 768 (sentence-T5 embeddings), encoder 768 -> 512 -> 256 -> 128 ->
32 with ReLU, 3 levels x 256 codes of dimension 32, beta 0.25, k-means init of the
codebooks on the first batch; the decoder mirrors the encoder. Squared errors here are
means over elements (the paper sums them), which only rescales the learning rate.

The codes of every item, plus a collision token (`course_lib.quantize.semantic_ids`), are
the semantic IDs that TIGER (lesson 06) generates.

Names: B batch, X input width, D latent width, L levels, K codes per level.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.models.vqvae import mlp
from course_lib.quantize.residual import RQConfig, ResidualQuantizer, residual_quantize


@dataclass
class RQVAEConfig:
    """Defaults are TIGER's; a small world uses e.g. input_dim=32, hidden=(64,), latent 16."""

    input_dim: int = 768
    hidden: tuple[int, ...] = (512, 256, 128)
    latent_dim: int = 32
    n_levels: int = 3
    codebook_size: int = 256
    beta: float = 0.25
    kmeans_init: bool = True
    ema: bool = False
    dead_code_threshold: float = 0.0

    def __post_init__(self):
        if self.input_dim < 1 or self.latent_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError("input_dim, latent_dim and every hidden width must be >= 1")
        RQConfig(self.n_levels)                          # validates n_levels

    def rq_config(self) -> RQConfig:
        return RQConfig(n_levels=self.n_levels, codebook_size=self.codebook_size,
                        dim=self.latent_dim, beta=self.beta, kmeans_init=self.kmeans_init,
                        ema=self.ema, dead_code_threshold=self.dead_code_threshold)


@dataclass
class RQVAEOutput:
    x_hat: Tensor          # (B, X)
    codes: Tensor          # (B, L)
    loss: Tensor           # scalar: reconstruction + quantization
    reconstruction: Tensor # scalar, mean squared error
    quantization: Tensor   # scalar, sum over levels of codebook + beta * commitment
    residual_norms: Tensor # (L + 1,)


class RQVAE(nn.Module):
    """Encoder MLP, residual quantizer, decoder MLP; `loss(batch)` for `course_lib.train.fit`
    with batch = {"x": (B, X)}; `semantic_codes(x)` gives the codes (B, L)."""

    def __init__(self, config: RQVAEConfig):
        super().__init__()
        self.config = config
        widths = [config.input_dim, *config.hidden, config.latent_dim]
        self.encoder = mlp(widths)
        self.quantizer = ResidualQuantizer(config.rq_config())
        self.decoder = mlp(widths[::-1])

    def _check(self, x: Tensor) -> None:
        if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] != self.config.input_dim:
            raise ValueError(f"x must be a (B, {self.config.input_dim}) tensor, got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf; fix those item vectors first")

    def forward(self, x: Tensor) -> RQVAEOutput:
        self._check(x)
        z = self.encoder(x)                                                # (B, D)
        rq = self.quantizer(z)
        x_hat = self.decoder(rq.quantized)                                 # (B, X)
        reconstruction = F.mse_loss(x_hat, x)
        return RQVAEOutput(x_hat=x_hat, codes=rq.codes, loss=reconstruction + rq.loss,
                           reconstruction=reconstruction, quantization=rq.loss,
                           residual_norms=rq.residual_norms)

    def loss(self, batch: dict) -> Tensor:
        return self(batch["x"]).loss

    @torch.no_grad()
    def semantic_codes(self, x: Tensor) -> Tensor:
        """Codes (B, L) of the items x (B, X); no codebook updates."""
        self._check(x)
        return self.quantizer.quantize(self.encoder(x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """x_hat (B, X) through the codes, with no codebook update in any mode."""
        self._check(x)
        z = self.encoder(x)
        return self.decoder(residual_quantize(z, self.quantizer.codebooks).quantized)
