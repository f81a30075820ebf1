"""The training loop: learning, early stopping, best-weights restore, atomic checkpoints,
exact resume."""
import numpy as np
import pytest
import torch
from torch import nn

from course_lib.data.sequences import leave_one_out, next_item_batches
from course_lib.train import evaluate_model, fit, load_checkpoint, save_checkpoint

N_ITEMS = 30


class LastItemModel(nn.Module):
    """Predicts the next item from the current one: an embedding and a dropout, enough to
    exercise the loop (dropout makes the random state matter for resume)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(N_ITEMS + 1, 16, padding_idx=0)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(16, N_ITEMS + 1)

    def loss(self, batch):
        logits = self.out(self.drop(self.embed(batch["inputs"])))        # (B, T, I + 1)
        return nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(),
                                           ignore_index=0)

    def scores(self, history):
        return self.out(self.embed(history[:, -1]))                       # (B, I + 1)


@pytest.fixture
def split():
    rng = np.random.default_rng(0)
    seqs = {}
    for user in range(1, 61):                # item i is followed by i + 1 (mod I)
        start = rng.integers(1, N_ITEMS + 1)
        seqs[user] = (start - 1 + np.arange(rng.integers(6, 12))) % N_ITEMS + 1
    return leave_one_out(seqs, N_ITEMS)


def make_batches(split):
    return lambda epoch: next_item_batches(split.train, N_ITEMS, max_len=10, batch_size=16, seed=epoch)


def validator(split):
    valid = split.evaluation("valid")
    return lambda model: evaluate_model(model, valid)["NDCG@10"]


def test_fit_learns_a_simple_pattern(split):
    torch.manual_seed(0)
    model = LastItemModel()
    result = fit(model, make_batches(split), validator(split), epochs=15, lr=0.05, progress=False)
    assert result.best_metric > 0.8
    assert result.train_loss[-1] < result.train_loss[0]


def test_best_weights_are_restored(split):
    torch.manual_seed(0)
    model = LastItemModel()
    result = fit(model, make_batches(split), validator(split), epochs=6, lr=0.05, progress=False)
    assert validator(split)(model) == pytest.approx(result.best_metric)


def test_early_stopping_stops_after_patience_epochs_without_gain(split):
    torch.manual_seed(0)
    result = fit(LastItemModel(), make_batches(split), lambda m: 0.5, epochs=20, patience=2,
                 progress=False)
    assert result.stopped_early and len(result.valid_metric) == 3 and result.best_epoch == 0


def test_resume_gives_identical_weights(split, tmp_path):
    torch.manual_seed(0)
    straight = LastItemModel()
    fit(straight, make_batches(split), validator(split), epochs=4, lr=0.05, progress=False)

    torch.manual_seed(0)
    first = LastItemModel()
    fit(first, make_batches(split), validator(split), epochs=2, lr=0.05, progress=False,
        checkpoint=tmp_path / "ckpt.pt")
    torch.manual_seed(123)                   # a different state: resume must restore it
    resumed = LastItemModel()
    fit(resumed, make_batches(split), validator(split), epochs=4, lr=0.05, progress=False,
        checkpoint=tmp_path / "ckpt.pt", resume=True)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_write_leaves_no_temporary_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"x": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_failed_checkpoint_write_keeps_the_old_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"x": torch.ones(2)})
    with pytest.raises(Exception):
        save_checkpoint(tmp_path / "c.pt", {"x": lambda: None})   # cannot be pickled
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="Delete it"):
        load_checkpoint(tmp_path / "c.pt")


def test_model_without_loss_is_refused(split):
    with pytest.raises(TypeError, match="loss"):
        fit(nn.Linear(2, 2), make_batches(split), lambda m: 0.0, epochs=1)


def test_nan_loss_stops_with_advice(split):
    class Broken(LastItemModel):
        def loss(self, batch):
            return super().loss(batch) * float("nan")
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(Broken(), make_batches(split), lambda m: 0.0, epochs=1, progress=False)


def test_resume_without_checkpoint_path_is_refused(split):
    with pytest.raises(ValueError, match="checkpoint="):
        fit(LastItemModel(), make_batches(split), lambda m: 0.0, epochs=1, resume=True)
