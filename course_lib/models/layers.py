"""Pieces shared by the autoencoders over item content (VQ-VAE, lesson 03; RQ-VAE, lesson 05):
the MLP their encoders and decoders are made of, and the check of a batch of content vectors.

Dimensions: B vectors in a batch, X content width.
"""
from __future__ import annotations

import torch
from torch import nn


def mlp(widths: list[int] | tuple[int, ...]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last): the
    encoder of TIGER's RQ-VAE is mlp([768, 512, 256, 128, 32]) (Rajput et al. 2023, appendix)."""
    widths = list(widths)
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ValueError(f"mlp needs at least an input and an output width, all >= 1; got {widths}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def check_content(x, input_dim: int, config: str) -> None:
    """Refuse anything but a finite float batch of content vectors (B, input_dim); `config` names
    the config class whose `input_dim` the learner should set."""
    if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] != input_dim:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"expected a batch of content vectors (B, {input_dim}), got {shape}; "
                         f"set {config}(input_dim=...) to the content width")
    if not x.is_floating_point():
        raise TypeError(f"content vectors must be a float tensor, got {x.dtype}; convert with "
                        "x.float()")
    if not torch.isfinite(x).all():
        raise ValueError("the content vectors contain NaN or inf: fill or drop those items "
                         "before training (standardising a constant feature divides by 0)")
