"""Device choice, seeding and profiles."""
import random

import numpy as np
import pytest
import torch

from course_lib.device import get_device, get_profile, seed_everything


def test_cpu_can_always_be_chosen():
    assert get_device("cpu").type == "cpu"


def test_env_var_overrides_the_device(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device().type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        get_device("cuda")


def test_seed_everything_repeats_all_generators():
    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


def test_profiles_differ_in_size_only(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    full = get_profile()
    quick = get_profile("quick")
    assert full.world.n_users > quick.world.n_users and full.epochs > quick.epochs


def test_default_profile_is_quick_on_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_profile().name == "quick"


def test_unknown_profile_lists_the_choices():
    with pytest.raises(ValueError, match="quick"):
        get_profile("huge")


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        seed_everything(-1)
