"""Residual quantization: L vector quantizers, each coding what the previous ones missed.

TIGER's RQ-VAE (Rajput et al. 2023, section 3.1; Zeghidour et al. 2021 and Lee et al. 2022
before it) quantizes a vector z level by level:

    r_0 = z,   c_l = argmin_k ||r_l - e^l_k||,   r_{l+1} = r_l - e^l_{c_l},
    z_hat = sum_l e^l_{c_l}

so level 1 picks a coarse region and every later level refines the remaining error. The
codes (c_1, ..., c_L) are the item's semantic ID (before the collision token). Each level
is a `VectorQuantizer` (STE, codebook and commitment losses with beta 0.25, and its EMA,
k-means-init and dead-code options), so the training loss is

    sum_l ||sg[r_l] - e^l_{c_l}||^2 + beta ||r_l - sg[e^l_{c_l}]||^2.

The recursion is written once, `residual_levels`; `residual_quantize` runs it with fixed
codebooks (what RQ-KMeans produces, and what the exercise rebuilds), `ResidualQuantizer`
with learned ones, and `residual_decode` sums the picked codewords back into z_hat.

Names: N vectors, D width, L levels, K codes per level.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from course_lib import metrics
from course_lib.quantize.vq import VectorQuantizer, VQConfig, nearest_codes


class ResidualCodes(NamedTuple):
    codes: Tensor         # (N, L) the code picked at every level
    quantized: Tensor     # (N, D) z_hat, the sum of the picked codewords
    residuals: Tensor     # (L + 1, N, D) r_0 = z, ..., r_L = z - z_hat


def residual_levels(z: Tensor, n_levels: int,
                    level: Callable[[int, Tensor], tuple[Tensor, Tensor]]) -> ResidualCodes:
    """The residual recursion, written once for every residual quantizer of the course:

        r_0 = z;  (c_l, e_{c_l}) = level(l, r_l);  r_{l+1} = r_l - e_{c_l};  z_hat = z - r_L

    `level(l, r_l)` says how level l codes the residuals r_l (N, D): the codes c_l (N,) and
    the picked codewords (N, D). A fixed codebook takes the nearest code
    (`residual_quantize`), the RQ-VAE its level's `VectorQuantizer`, RQ-KMeans the centres
    of a k-means fit on r_l. z_hat = z - r_L is the sum of the picked codewords.
    """
    residual, codes, residuals = z, [], [z]
    for l in range(n_levels):
        c, picked = level(l, residual)
        residual = residual - picked                                       # r_{l+1}  (N, D)
        codes.append(c)
        residuals.append(residual)
    return ResidualCodes(torch.stack(codes, dim=1), z - residual, torch.stack(residuals))


def residual_decode(codes: Tensor, codebooks: Tensor) -> Tensor:
    """z_hat = sum_l e^l_{c_l}: codes (N, L') with codebooks (L, K, D), L' <= L, -> (N, D).
    With the first L' levels' codes only, the coarser reconstruction of those levels."""
    codebooks = torch.as_tensor(codebooks)
    if codebooks.dim() != 3:
        raise ValueError(f"codebooks must be (L, K, D), got shape {tuple(codebooks.shape)}")
    codes = metrics.check_codes(codes, [codebooks.shape[1]] * codes.shape[-1], levels=True)
    if codes.shape[1] > codebooks.shape[0]:
        raise ValueError(f"codes have {codes.shape[1]} levels but there are only "
                         f"{codebooks.shape[0]} codebooks")
    levels = torch.arange(codes.shape[1], device=codes.device)
    return codebooks[levels[None, :], codes.to(codebooks.device)].sum(dim=1)   # (N, D)


def residual_quantize(z: Tensor, codebooks: Tensor | Sequence[Tensor]) -> ResidualCodes:
    """Quantize z (N, D) with fixed codebooks (L, K, D) (or a list of (K_l, D)), level by level."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.dim() != 2:
        raise ValueError(f"z must be 2-D (N, D), got shape {tuple(z.shape)}")
    if torch.isnan(z).any():
        raise ValueError("z contains NaN; fix the inputs before quantizing")
    if len(codebooks) < 1:
        raise ValueError("need at least one codebook (levels >= 1)")
    books = []
    for l, codebook in enumerate(codebooks):
        codebook = torch.as_tensor(codebook, dtype=z.dtype, device=z.device)
        if codebook.dim() != 2 or codebook.shape[1] != z.shape[1]:
            raise ValueError(f"codebook {l} must be (K, {z.shape[1]}), got shape "
                             f"{tuple(codebook.shape)}")
        books.append(codebook)

    def nearest(l: int, residual: Tensor) -> tuple[Tensor, Tensor]:
        c = nearest_codes(residual, books[l])                              # (N,)
        return c, books[l][c]

    return residual_levels(z, len(books), nearest)


@dataclass
class RQConfig:
    """A residual quantizer: `n_levels` levels, each a `VectorQuantizer` with these settings.

    Every field after `n_levels` is the `VQConfig` field of the same name, applied to every
    level, with VQConfig's defaults except where TIGER differs: 256 codes of width 32 and
    k-means init of every codebook on the first batch (Rajput et al. 2023, section 3.1);
    beta 0.25; EMA (decay 0.99, eps 1e-5) and the dead-code reset are off.
    """

    n_levels: int = 3
    codebook_size: int = 256
    dim: int = 32
    beta: float = 0.25
    ema: bool = False
    decay: float = 0.99
    eps: float = 1e-5
    kmeans_init: bool = True
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0

    def __post_init__(self):
        if isinstance(self.n_levels, bool) or not isinstance(self.n_levels, int) \
                or self.n_levels < 1:
            raise ValueError(f"n_levels must be >= 1, got {self.n_levels!r}")
        self.level_config()                          # VQConfig checks the per-level values

    def level_config(self) -> VQConfig:
        """The `VQConfig` of every level: each of its fields read from this config, so no
        option can be dropped on the way (a VQConfig field missing here is an error)."""
        return VQConfig(**{f.name: getattr(self, f.name) for f in fields(VQConfig)})


@dataclass
class RQResult:
    quantized: Tensor          # (N, D) z_hat in value, the identity in gradient (STE)
    codes: Tensor              # (N, L)
    loss: Tensor               # scalar: the sum of every level's codebook + beta * commitment
    level_losses: list         # L scalars
    residual_norms: Tensor     # (L + 1,) mean ||r_l|| over the batch, l = 0..L
    codebook_size: int

    def utilisation(self) -> list[float]:
        """Share of each level's codebook used by this batch."""
        return [metrics.utilisation(self.codes[:, l], self.codebook_size)
                for l in range(self.codes.shape[1])]


class ResidualQuantizer(nn.Module):
    """L `VectorQuantizer`s applied to successive residuals (module docstring)."""

    def __init__(self, config: RQConfig):
        super().__init__()
        self.config = config
        level = config.level_config()
        self.levels = nn.ModuleList(VectorQuantizer(replace(level)) for _ in range(config.n_levels))

    @property
    def codebooks(self) -> Tensor:
        """(L, K, D), detached."""
        return torch.stack([q.codebook.detach() for q in self.levels])

    def forward(self, z: Tensor) -> RQResult:
        if z.dim() != 2:
            raise ValueError(f"z must be 2-D (N, D), got shape {tuple(z.shape)}")
        losses = []

        def quantize_level(l: int, residual: Tensor) -> tuple[Tensor, Tensor]:
            out = self.levels[l](residual)
            losses.append(out.loss)
            # The next level codes the error left by this codeword; its value is fixed
            # (detached) so that the gradient of r_{l+1} w.r.t. z stays the identity.
            return out.codes, out.quantized.detach()

        steps = residual_levels(z, len(self.levels), quantize_level)
        quantized = z + (steps.quantized - z).detach()                     # one STE for the sum
        return RQResult(quantized=quantized, codes=steps.codes,
                        loss=torch.stack(losses).sum(), level_losses=losses,
                        residual_norms=steps.residuals.norm(dim=2).mean(dim=1).detach(),
                        codebook_size=self.config.codebook_size)

    @torch.no_grad()
    def quantize(self, z: Tensor) -> Tensor:
        """Codes (N, L) of z (N, D), no losses and no codebook updates."""
        return residual_quantize(z, self.codebooks).codes
