"""Device choice, seeding and profiles."""
import random

import numpy as np
import pytest
import torch

from course_lib.device import cpu_threads, get_device, get_profile, seed_everything


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


def test_full_profile_is_larger_and_switches_to_movielens(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    full = get_profile()
    quick = get_profile("quick")
    assert full.name == "full" and quick.name == "quick"
    assert full.world.n_users > quick.world.n_users and full.world.n_items > quick.world.n_items
    assert full.epochs > quick.epochs and full.max_len > quick.max_len
    assert (quick.dataset, full.dataset) == ("world", "movielens")
    assert full.training["movielens"].epochs > quick.training["movielens"].epochs


def test_every_profile_says_how_to_train_on_every_dataset():
    for profile in (get_profile("quick"), get_profile("full")):
        assert set(profile.training) == {"world", "movielens"}
        assert all(0 < t.lr < 1 and t.epochs >= 1 for t in profile.training.values())


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


def test_tiger_sizes_are_the_papers_in_full_and_smaller_in_quick():
    from course_lib.models.tiger import TIGERConfig
    quick, full = TIGERConfig(**get_profile("quick").tiger), TIGERConfig(**get_profile("full").tiger)
    assert full == TIGERConfig()                       # {}: the paper's defaults
    assert quick.d_model < full.d_model and quick.encoder_layers < full.encoder_layers
    assert quick.max_items < full.max_items
    assert 1 <= get_profile("quick").tiger_steps < get_profile("full").tiger_steps


def test_quick_profile_runs_its_tiny_models_on_one_thread(monkeypatch):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    get_profile("quick")
    assert torch.get_num_threads() == 1


def test_full_profile_uses_the_idle_cores(monkeypatch):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr("os.getloadavg", lambda: (3.4, 3.0, 3.0))
    assert cpu_threads(get_profile("full")) == 5      # 8 usable cores, 3 kept busy by others
    monkeypatch.setattr("os.getloadavg", lambda: (12.0, 12.0, 12.0))
    assert cpu_threads(get_profile("full")) == 1      # never fewer than one


def test_course_threads_overrides_the_profile(monkeypatch):
    monkeypatch.setenv("COURSE_THREADS", "2")
    get_profile("quick")
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("COURSE_THREADS", "two")
    with pytest.raises(ValueError, match="COURSE_THREADS must be a positive integer"):
        get_profile("quick")
    monkeypatch.setenv("COURSE_THREADS", "1")
    get_profile("quick")


def test_other_real_datasets_train_like_movielens():
    for profile in (get_profile("quick"), get_profile("full")):
        assert profile.training["ml-1m"] == profile.training["movielens"]
        assert profile.training["amazon-beauty"] == profile.training["movielens"]
