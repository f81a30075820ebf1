"""Finite scalar quantisation (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made
Simple", arXiv 2309.15505, ICLR 2024).

No codebook is learned. Each of the d latent dimensions is bounded to a small interval and
rounded to one of L_j integer levels (section 3 and the reference code of appendix A.1):

    half_j  = (L_j - 1)(1 + eps) / 2,  offset_j = 1/2 if L_j is even else 0
    f(z)_j  = tanh(z_j + atanh(offset_j / half_j)) * half_j - offset_j     bound: f(0) = 0
    z_hat   = round(f(z)) / (L_j // 2)                                       levels in [-1, 1]

with the straight-through estimator (`course_lib.quantize.vq.straight_through`) for the round,
so the encoder gets the gradient of f. The implicit codebook is the product grid of the
levels, of size K = prod_j L_j; a point of the grid is a code, numbered in mixed radix:

    c = sum_j i_j * prod_{j' < j} L_j'     i_j = z_hat_j * (L_j // 2) + L_j // 2 in 0..L_j-1

Every code is a fixed point of the grid, so there is nothing to collapse and no auxiliary
loss: no codebook loss, no commitment loss, no EMA, no reset. What it gives up are learned code
positions: the grid is the same whatever the data, and the encoder has to spread its outputs
over it. The paper's recommended levels (table 1) are, for K = 2^8, 2^10, 2^12, 2^14, 2^16:
[8, 6, 5], [8, 5, 5, 5], [7, 5, 5, 5, 5], [8, 8, 8, 6, 5], [8, 8, 8, 5, 5, 5].

`FSQ(levels)(z)` returns the same `VQResult` as the vector quantizer, so a model built around
`VectorQuantizer` can take it in its place (its losses are zero).

Dimensions: N vectors (any leading shape), d = len(levels) latent width, K = prod(levels) codes.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from course_lib.quantize.vq import VQResult, straight_through


class FSQ(nn.Module):
    """Finite scalar quantizer over `levels` (L_1, ..., L_d), each >= 2: `fsq(z) -> VQResult`
    for z (..., d); `fsq.quantize(z)` gives the codes only; `fsq.codebook` is the implicit
    (K, d) grid. `eps` = 1e-3 as in the paper's reference code (it lets odd levels reach
    the outer values)."""

    def __init__(self, levels: Sequence[int], eps: float = 1e-3):
        super().__init__()
        self.levels_list = _check_levels(levels)
        if not 0 <= eps < 0.1:
            raise ValueError(f"eps must be in [0, 0.1), got {eps}; the paper's code uses 1e-3")
        self.eps = eps
        self.dim = len(self.levels_list)
        self.codebook_size = math.prod(self.levels_list)
        levels_t = torch.tensor(self.levels_list, dtype=torch.long)
        basis = torch.cumprod(torch.tensor([1, *self.levels_list[:-1]]), dim=0)
        self.register_buffer("levels", levels_t, persistent=False)           # (d,)
        self.register_buffer("half_width", levels_t // 2, persistent=False)  # (d,)
        self.register_buffer("basis", basis, persistent=False)               # (d,) mixed radix

    def bound(self, z: Tensor) -> Tensor:
        """f(z): dimension j into (-L_j/2, L_j/2), so that rounding gives L_j integers."""
        levels = self.levels.to(z.dtype)
        half = (levels - 1) * (1 + self.eps) / 2
        offset = (levels % 2 == 0).to(z.dtype) / 2
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: Tensor) -> VQResult:
        self._check_input(z)
        bounded = self.bound(z)                                              # (..., d)
        rounded = straight_through(bounded, bounded.round())                 # (..., d)
        z_hat = rounded / self.half_width.to(z.dtype)                        # in [-1, 1]
        zero = torch.zeros((), device=z.device, dtype=z.dtype)
        return VQResult(quantized=z_hat, codes=self.vectors_to_codes(z_hat.detach()),
                        loss=zero, codebook_loss=zero, commitment_loss=zero,
                        codebook_size=self.codebook_size)

    @torch.no_grad()
    def quantize(self, z: Tensor) -> Tensor:
        """The codes of z (..., d) -> (...,) long, as `VectorQuantizer.quantize`."""
        self._check_input(z)
        bounded = self.bound(z)
        return self.vectors_to_codes(bounded.round() / self.half_width.to(z.dtype))

    def vectors_to_codes(self, z_hat: Tensor) -> Tensor:
        """Grid points (..., d) in [-1, 1] -> their codes (...,) long in 0..K-1."""
        if z_hat.shape[-1:] != (self.dim,):
            raise ValueError(f"expected grid points of width {self.dim} on the last axis, got "
                             f"shape {tuple(z_hat.shape)}")
        index = (z_hat * self.half_width + self.half_width).round().long()  # (..., d) 0..L_j-1
        return (index * self.basis).sum(dim=-1)

    def codes_to_vectors(self, codes: Tensor) -> Tensor:
        """Codes (...,) in 0..K-1 -> their grid points (..., d) in [-1, 1]."""
        if torch.is_floating_point(codes) or torch.is_complex(codes):
            raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must be in [0, {self.codebook_size - 1}] for levels "
                             f"{self.levels_list}, got values in [{int(codes.min())}, "
                             f"{int(codes.max())}]")
        index = (codes[..., None] // self.basis) % self.levels                # (..., d)
        return (index - self.half_width) / self.half_width

    @property
    def codebook(self) -> Tensor:
        """The implicit codebook: all K grid points, (K, d), row c is code c."""
        return self.codes_to_vectors(torch.arange(self.codebook_size, device=self.levels.device))

    def _check_input(self, z) -> None:
        if not torch.is_tensor(z) or not z.is_floating_point():
            raise TypeError(f"FSQ takes a float tensor (..., {self.dim}), got "
                            f"{type(z).__name__}{'' if not torch.is_tensor(z) else ' ' + str(z.dtype)}")
        if z.dim() == 0 or z.shape[-1] != self.dim or z.numel() == 0:
            raise ValueError(f"expected vectors of width {self.dim} = len(levels) on the last "
                             f"axis, got shape {tuple(z.shape)}; project the encoder's output "
                             f"to {self.dim} features (one per level)")
        if not torch.isfinite(z).all():
            raise ValueError("the input contains NaN or inf: check the encoder's output")

    def extra_repr(self) -> str:
        return f"levels={self.levels_list}, K={self.codebook_size}"


def _check_levels(levels) -> list[int]:
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
        raise ValueError(f"levels must be a non-empty sequence of ints, one per latent "
                         f"dimension (e.g. [8, 5, 5, 5] for K = 1000), got {levels!r}")
    bad = [lv for lv in levels
           if isinstance(lv, bool) or not isinstance(lv, numbers.Integral) or lv < 2]
    if bad:
        raise ValueError(f"every level must be an int >= 2 (a dimension with one level carries "
                         f"no information), got {list(levels)}; the paper uses levels of 5 to 8")
    return [int(lv) for lv in levels]
