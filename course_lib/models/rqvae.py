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

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.models.layers import check_content, mlp
from course_lib.quantize.residual import RQConfig, ResidualQuantizer, residual_quantize


@dataclass
class RQVAEConfig:
    """The defaults are TIGER's: 768-d inputs, hidden widths (512, 256, 128), and the
    quantizer's defaults (3 levels x 256 codes of width 32, beta 0.25, k-means init; see
    `RQConfig`), whose `dim` is the latent width. A small world uses e.g. input_dim=32,
    hidden_dims=(64,), RQConfig(dim=16)."""

    input_dim: int = 768
    quantizer: RQConfig = field(default_factory=RQConfig)
    hidden_dims: tuple[int, ...] = (512, 256, 128)

    def __post_init__(self):
        if self.input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {self.input_dim}")
        if any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be positive widths, got {self.hidden_dims}")
        if not isinstance(self.quantizer, RQConfig):
            raise TypeError(f"quantizer must be an RQConfig, got {type(self.quantizer).__name__}")


@dataclass
class RQVAEOutput:
    """Named as in `VQVAEOutput` (lesson 03)."""

    x_hat: Tensor          # (B, X) the reconstruction
    codes: Tensor          # (B, L)
    loss: Tensor           # scalar: reconstruction + quantization
    reconstruction: Tensor # scalar: mean squared error ||x - x_hat||^2
    quantization: Tensor   # scalar: sum over levels of codebook + beta * commitment
    residual_norms: Tensor # (L + 1,)


class RQVAE(nn.Module):
    """Encoder MLP, residual quantizer, decoder MLP; `loss(batch)` for `course_lib.train.fit`
    with batch = {"x": (B, X)}; `codes(x)` gives the codes (B, L)."""

    def __init__(self, config: RQVAEConfig):
        super().__init__()
        self.config = config
        widths = [config.input_dim, *config.hidden_dims, config.quantizer.dim]
        self.encoder = mlp(widths)
        self.quantizer = ResidualQuantizer(config.quantizer)
        self.decoder = mlp(widths[::-1])

    def forward(self, x: Tensor) -> RQVAEOutput:
        check_content(x, self.config.input_dim, "RQVAEConfig")
        z = self.encoder(x)                                                # (B, D)
        rq = self.quantizer(z)
        x_hat = self.decoder(rq.quantized)                                 # (B, X)
        reconstruction = F.mse_loss(x_hat, x)
        return RQVAEOutput(x_hat=x_hat, codes=rq.codes, loss=reconstruction + rq.loss,
                           reconstruction=reconstruction, quantization=rq.loss,
                           residual_norms=rq.residual_norms)

    def loss(self, batch: dict) -> Tensor:
        """The training loss of a batch {"x": (B, X)} (for `course_lib.train.fit`)."""
        return self(batch["x"]).loss

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Codes (B, L) of the items x (B, X); no codebook updates."""
        check_content(x, self.config.input_dim, "RQVAEConfig")
        return self.quantizer.quantize(self.encoder(x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """x_hat (B, X) through the codes, with no codebook update in any mode."""
        check_content(x, self.config.input_dim, "RQVAEConfig")
        z = self.encoder(x)                                                # (B, D)
        return self.decoder(residual_quantize(z, self.quantizer.codebooks).quantized)
