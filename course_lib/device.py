"""Device, seeding and the course profile.

Every lesson starts with::

    device = get_device()        # cuda, then mps, then cpu; COURSE_DEVICE overrides
    profile = get_profile()      # COURSE_PROFILE=quick|full; default quick on CPU, full on GPU
    seed_everything(0)

The profile says how big things are (world size, epochs, model width); the code path is the
same in both profiles. `get_profile` also chooses torch's CPU threads for those sizes
(`cpu_threads`), so no lesson sets them by hand.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from course_lib.data.world import WorldConfig

PROFILES = ("quick", "full")


def get_device(prefer: str | None = None) -> torch.device:
    """The device to run on: `prefer`, else $COURSE_DEVICE, else cuda > mps > cpu."""
    name = prefer or os.environ.get("COURSE_DEVICE")
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was asked for but CUDA is not available; "
                               "use 'cpu' or unset COURSE_DEVICE")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device {name!r} was asked for but MPS is not available; "
                               "use 'cpu' or unset COURSE_DEVICE")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python's `random`, NumPy and torch (all devices) so a run repeats exactly."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Training:
    """How a sequence model trains on one dataset: Adam's learning rate and an epoch cap
    (early stopping may end sooner)."""

    lr: float
    epochs: int


class TrainingByDataset(dict):
    """dataset name -> Training. A dataset without its own entry (ml-1m, amazon-beauty, your
    own file) trains like the real data the profile knows, MovieLens: the papers' settings."""

    def __missing__(self, dataset: str) -> Training:
        if dataset == "world" or "movielens" not in self:
            raise KeyError(f"no training settings for {dataset!r}; known: {sorted(self)}")
        return self["movielens"]


@dataclass(frozen=True)
class Profile:
    """Sizes for one run of the course. Lessons read sizes from here, never branch on name."""

    name: str
    world: WorldConfig
    dataset: str              # the dataset lessons use by default: "world" or "movielens"
    epochs: int               # upper bound on training epochs (early stopping may end sooner)
    batch_size: int
    d_model: int              # default model width for the sequence models
    max_len: int              # longest history a sequence model sees
    # Per dataset. The world's short, strongly sequential histories train fast at 1e-2 and
    # stop improving within 10 epochs; MovieLens uses the SASRec paper's 1e-3.
    training: TrainingByDataset = field(default_factory=TrainingByDataset)
    # TIGER (lesson 06): keyword arguments of TIGERConfig ({} = the paper's sizes: 4 + 4
    # layers, 6 heads x 64, d_model 128, MLP 1024, dropout 0.1, 20 history items) and the
    # optimizer steps to train for (batch 256; the paper trains 200k steps).
    tiger: dict = field(default_factory=dict)
    tiger_steps: int = 20_000
    # PinRec (lesson 08): the size of the synthetic catalogue that an IVF index is measured on.
    ann_items: int = 1_000_000
    # torch's CPU threads for this profile's models; None = every core this process may use
    # that other processes leave idle. See `cpu_threads`.
    threads: int | None = None


def _quick() -> Profile:
    return Profile(name="quick", world=WorldConfig(n_users=1000, n_items=500),
                   dataset="world", epochs=20, batch_size=128, d_model=64, max_len=50,
                   training=TrainingByDataset(world=Training(lr=1e-2, epochs=10),
                                              movielens=Training(lr=1e-3, epochs=20)),
                   tiger=dict(encoder_layers=1, decoder_layers=2, n_heads=2, d_head=32,
                              d_model=64, d_mlp=128, dropout=0.0, max_items=2),
                   tiger_steps=200, ann_items=200_000, threads=1)


def _full() -> Profile:
    return Profile(name="full", world=WorldConfig(n_users=10_000, n_items=5_000),
                   dataset="movielens", epochs=200, batch_size=128, d_model=64, max_len=200,
                   training=TrainingByDataset(world=Training(lr=1e-2, epochs=10),
                                              movielens=Training(lr=1e-3, epochs=200)),
                   tiger={}, tiger_steps=20_000)


def get_profile(name: str | None = None) -> Profile:
    """The profile `name`, else $COURSE_PROFILE, else quick on CPU and full on a GPU.

    Also sets torch's CPU threads to `cpu_threads(profile)`."""
    name = name or os.environ.get("COURSE_PROFILE")
    if name is None:
        name = "full" if get_device().type == "cuda" else "quick"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; set COURSE_PROFILE to one of {PROFILES}")
    profile = _quick() if name == "quick" else _full()
    torch.set_num_threads(cpu_threads(profile))
    return profile


def cpu_threads(profile: Profile) -> int:
    """torch's CPU threads for `profile`: $COURSE_THREADS, else `profile.threads`, else the
    cores this process may use minus those other processes keep busy (at least one).

    The quick profile's models are tiny: each op takes microseconds, and a second thread only
    adds waiting, worst when another program is using the cores (lesson 05's RQ-VAE cell took
    211 s with torch's default threads on a busy 2-core machine and 4 s with one)."""
    asked = os.environ.get("COURSE_THREADS")
    if asked is not None:
        if not asked.isdigit() or int(asked) < 1:
            raise ValueError(f"COURSE_THREADS must be a positive integer, got {asked!r}; "
                             "unset it to let the profile choose")
        return int(asked)
    if profile.threads is not None:
        return profile.threads
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, (usable or 1) - busy)
