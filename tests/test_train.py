"""The training loop (learning, early stopping, best-weights restore, a steps limit, clipping,
optimizers, schedules, the per-step callback, atomic checkpoints, exact resume), the one
minibatch sampler, and evaluation of score-models and recommend-models."""
import dataclasses
import time

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import metrics
from course_lib.data.sequences import leave_one_out, next_item_batches
from course_lib.train import (constant_then_inverse_sqrt, evaluate_model, fit, load_checkpoint,
                              save_checkpoint, shuffled_batches, warmup_inverse_sqrt)

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

    def scores(self, batch):
        return self.out(self.embed(batch["history"][:, -1]))             # (B, I + 1)


class TopKOf:
    """A recommend-model: the top-k unseen item ids of a score-model."""

    def __init__(self, model, n_items=N_ITEMS):
        self.model, self.n_items = model, n_items

    def recommend(self, batch, k, exclude_history=True):
        scores = self.model.scores(batch)
        if exclude_history:
            scores = metrics.mask_history(scores, batch["history"])
        scores[:, 0] = float("-inf")
        return scores.topk(k, dim=1).indices                              # (B, k)


@pytest.fixture
def split():
    rng = np.random.default_rng(0)
    seqs = {}
    for user in range(1, 61):                # item i is followed by i + 1 (mod I)
        start = rng.integers(1, N_ITEMS + 1)
        seqs[user] = (start - 1 + np.arange(rng.integers(6, 12))) % N_ITEMS + 1
    return leave_one_out(seqs, N_ITEMS)


def make_batches(split):                     # 60 users, batches of 16: 4 batches per epoch
    return lambda epoch: next_item_batches(split.train, N_ITEMS, max_len=10, batch_size=16, seed=epoch)


def validator(split):
    valid = split.evaluation("valid")
    return lambda model: evaluate_model(model, valid)["NDCG@10"]


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- learning and early stopping --------------------------------------------------------------

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


def test_without_validation_the_last_weights_stay(split):
    torch.manual_seed(0)
    model, last = LastItemModel(), {}
    result = fit(model, make_batches(split), epochs=3, lr=0.05, progress=False,
                 on_step=lambda step, m, loss: last.update(weights(m)))
    assert result.valid_metric == [] and not result.stopped_early and len(result.train_loss) == 3
    assert all(torch.equal(last[k], v) for k, v in model.state_dict().items())


# --- steps, clipping, optimizers, schedules, callbacks --------------------------------------

def test_steps_limit_stops_mid_epoch(split):
    calls = []
    result = fit(LastItemModel(), make_batches(split), steps=6, progress=False,
                 on_step=lambda step, m, loss: calls.append(step))
    assert calls == [1, 2, 3, 4, 5, 6] and result.steps == 6
    assert len(result.train_loss) == 2                 # 4 steps in epoch 0, 2 in epoch 1


def test_epochs_end_training_before_a_larger_steps_limit(split):
    result = fit(LastItemModel(), make_batches(split), epochs=2, steps=100, progress=False)
    assert result.steps == 8 and len(result.train_loss) == 2


def test_on_step_gets_float_losses_and_training_mode_comes_back(split):
    seen = []

    class Watched(LastItemModel):
        def loss(self, batch):
            seen.append(self.training)
            return super().loss(batch)

    losses = []

    def measure(step, model, loss):
        losses.append(loss)
        model.eval()                                     # a callback may measure in eval mode

    result = fit(Watched(), make_batches(split), epochs=2, progress=False, on_step=measure)
    assert seen == [True] * 8
    assert all(isinstance(x, float) for x in losses)
    assert result.train_loss[0] == pytest.approx(sum(losses[:4]) / 4)


def gradient_norm(model):
    return torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))


@pytest.mark.parametrize("clip", [None, 0.01])
def test_clip_grad_norm_bounds_the_gradient_of_every_step(split, clip):
    norms = []
    torch.manual_seed(0)
    fit(LastItemModel(), make_batches(split), epochs=1, clip_grad_norm=clip, progress=False,
        on_step=lambda step, m, loss: norms.append(gradient_norm(m).item()))
    if clip is None:
        assert min(norms) > 0.01                         # the bound below is not free
    else:
        assert max(norms) <= clip * (1 + 1e-4)


class Scalar(nn.Module):
    """One parameter and a loss whose gradient is 0: only weight decay moves it."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def loss(self, batch):
        return 0.0 * self.w.sum()


def one_batch(epoch):
    return [{"x": torch.zeros(1)}]


def test_adamw_decays_the_weights_apart_from_the_gradient():
    # AdamW (Loshchilov & Hutter 2019): w <- w (1 - lr wd) and a zero Adam step.
    adamw = Scalar()
    fit(adamw, one_batch, steps=1, lr=0.1, optimizer="adamw", weight_decay=0.5, progress=False)
    assert adamw.w.item() == pytest.approx(1 - 0.1 * 0.5)
    # Adam adds wd * w to the gradient, which its normalisation turns into a full lr step.
    adam = Scalar()
    fit(adam, one_batch, steps=1, lr=0.1, optimizer="adam", weight_decay=0.5, progress=False)
    assert adam.w.item() == pytest.approx(1 - 0.1, abs=1e-4)


def test_schedule_is_asked_for_every_step_and_scales_the_learning_rate(split):
    asked = []

    def frozen(step):
        asked.append(step)
        return 0.0                                       # learning rate 0: nothing moves

    torch.manual_seed(0)
    model = LastItemModel()
    before = weights(model)
    fit(model, make_batches(split), steps=5, lr=0.1, schedule=frozen, progress=False)
    assert asked == [0, 1, 2, 3, 4, 5]                   # at construction, then after each step
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_warmup_inverse_sqrt_rises_linearly_then_decays_as_one_over_sqrt():
    m = warmup_inverse_sqrt(4)
    assert [m(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert m(15) == pytest.approx(0.5) and m(63) == pytest.approx(0.25)
    values = [m(s) for s in range(200)]
    assert max(values) == 1.0 and all(b < a for a, b in zip(values[3:], values[4:]))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_warmup_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="warmup_steps must be an int >= 1"):
        warmup_inverse_sqrt(bad)


def test_tigers_schedule_holds_the_rate_constant_then_decays_as_one_over_sqrt():
    m = constant_then_inverse_sqrt(10)
    assert [m(s) for s in range(10)] == [1.0] * 10          # the full rate from step 0, no ramp
    assert m(10) == 1.0 and m(40) == pytest.approx(0.5) and m(1000) == pytest.approx(0.1)
    values = [m(s) for s in range(10, 300)]
    assert all(b < a for a, b in zip(values, values[1:]))   # strictly falling after C


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_constant_steps_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="constant_steps must be an int >= 1"):
        constant_then_inverse_sqrt(bad)


# --- checkpoints and resume -----------------------------------------------------------------

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


def test_resume_with_a_schedule_clipping_and_adamw_is_exact(split, tmp_path):
    settings = dict(lr=0.05, optimizer="adamw", weight_decay=0.01, clip_grad_norm=1.0,
                    schedule=warmup_inverse_sqrt(5), progress=False)
    torch.manual_seed(0)
    straight = LastItemModel()
    whole = fit(straight, make_batches(split), epochs=4, **settings)

    torch.manual_seed(0)
    fit(LastItemModel(), make_batches(split), epochs=2, checkpoint=tmp_path / "c.pt", **settings)
    torch.manual_seed(123)
    resumed = LastItemModel()
    rest = fit(resumed, make_batches(split), epochs=4, checkpoint=tmp_path / "c.pt",
               resume=True, **settings)
    assert rest.steps == whole.steps == 16 and rest.train_loss == whole.train_loss
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("change, said", [
    (dict(lr=0.5), "lr=0.05, but this call asks for lr=0.5"),
    (dict(optimizer="adamw"), "optimizer='adam', but this call asks for optimizer='adamw'"),
    (dict(weight_decay=0.3), "weight_decay=0.0, but this call asks for weight_decay=0.3"),
    (dict(betas=(0.8, 0.99)), r"betas=\[0.9, 0.999\], but this call asks for betas=\[0.8, 0.99\]"),
])
def test_resume_with_other_optimizer_settings_is_refused_naming_what_changed(split, tmp_path,
                                                                            change, said):
    fit(LastItemModel(), make_batches(split), epochs=1, lr=0.05, progress=False,
        checkpoint=tmp_path / "c.pt")
    settings = dict(lr=0.05) | change
    with pytest.raises(ValueError, match=f"c.pt was trained with {said}.*resume=False"):
        fit(LastItemModel(), make_batches(split), epochs=2, progress=False,
            checkpoint=tmp_path / "c.pt", resume=True, **settings)


def test_a_checkpoint_that_kept_one_random_state_still_resumes(split, tmp_path):
    fit(LastItemModel(), make_batches(split), epochs=1, lr=0.05, progress=False,
        checkpoint=tmp_path / "c.pt")
    old = load_checkpoint(tmp_path / "c.pt")
    old["rng"] = old["rng"][0][0]                      # the earlier layout: rank 0's CPU state
    del old["settings"]
    save_checkpoint(tmp_path / "c.pt", old)
    result = fit(LastItemModel(), make_batches(split), epochs=2, lr=0.05, progress=False,
                 checkpoint=tmp_path / "c.pt", resume=True)
    assert len(result.train_loss) == 2


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


# --- bad input to fit -----------------------------------------------------------------------

def test_model_without_loss_is_refused(split):
    with pytest.raises(TypeError, match="loss"):
        fit(nn.Linear(2, 2), make_batches(split), lambda m: 0.0, epochs=1)


def test_nan_loss_stops_with_advice(split):
    class Broken(LastItemModel):
        def loss(self, batch):
            return super().loss(batch) * float("nan")
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(Broken(), make_batches(split), lambda m: 0.0, epochs=1, progress=False)


def test_a_nan_validation_metric_stops_with_advice_instead_of_restoring_untrained_weights(split):
    with pytest.raises(FloatingPointError, match="validate.model. returned nan at epoch 0, "
                                                 "which cannot rank epochs"):
        fit(LastItemModel(), make_batches(split), lambda m: float("nan"), epochs=3,
            progress=False)


def test_a_model_without_parameters_is_refused_with_what_to_do(split):
    class NoWeights(nn.Module):
        def loss(self, batch):
            return torch.zeros(())
    with pytest.raises(ValueError, match="NoWeights has no trainable parameters.*nn.ModuleList"):
        fit(NoWeights(), make_batches(split), epochs=1, progress=False)


def test_resume_without_checkpoint_path_is_refused(split):
    with pytest.raises(ValueError, match="checkpoint="):
        fit(LastItemModel(), make_batches(split), lambda m: 0.0, epochs=1, resume=True)


def test_an_epoch_without_batches_is_an_error_not_a_zero_loss():
    with pytest.raises(ValueError, match="epoch 0 yielded no batch"):
        fit(LastItemModel(), lambda epoch: [], epochs=1, progress=False)


def test_a_spent_generator_leaves_the_second_epoch_empty(split):
    batches = next_item_batches(split.train, N_ITEMS, max_len=10, batch_size=16)
    with pytest.raises(ValueError, match="epoch 1 yielded no batch.*fresh iterable"):
        fit(LastItemModel(), lambda epoch: batches, epochs=2, progress=False)


@pytest.mark.parametrize("settings, match", [
    (dict(), "epochs=, steps="),
    (dict(epochs=0), "epochs must be an int >= 1"),
    (dict(steps=0), "steps must be an int >= 1"),
    (dict(epochs=1, optimizer="sgd"), "optimizer must be one of"),
    (dict(epochs=1, clip_grad_norm=0.0), "clip_grad_norm must be > 0"),
])
def test_bad_fit_settings_are_refused(split, settings, match):
    with pytest.raises(ValueError, match=match):
        fit(LastItemModel(), make_batches(split), **settings)


def test_non_dict_batches_are_refused():
    with pytest.raises(TypeError, match="dicts of tensors"):
        fit(LastItemModel(), lambda epoch: [torch.zeros(2, 3)], epochs=1, progress=False)


# --- shuffled_batches ------------------------------------------------------------------------

def test_shuffled_batches_cover_every_row_once_and_keep_rows_together():
    x = torch.arange(10)
    batches = list(shuffled_batches({"x": x, "twice": 2 * x}, 4, seed=0))
    assert [len(b["x"]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b["x"] for b in batches]).tolist()) == list(range(10))
    assert all(torch.equal(b["twice"], 2 * b["x"]) for b in batches)


def test_shuffled_batches_drop_last_keeps_full_batches_only():
    batches = list(shuffled_batches({"x": torch.arange(10)}, 4, seed=0, drop_last=True))
    assert [len(b["x"]) for b in batches] == [4, 4]


def test_shuffled_batches_repeat_with_a_seed_and_differ_between_seeds():
    order = lambda seed: torch.cat([b["x"] for b in shuffled_batches({"x": torch.arange(50)}, 8, seed=seed)])
    assert torch.equal(order(3), order(3)) and not torch.equal(order(3), order(4))


def test_shuffled_batches_without_seed_follow_the_global_generator():
    def order():
        return torch.cat([b["x"] for b in shuffled_batches({"x": torch.arange(50)}, 8)])
    torch.manual_seed(7)
    first, second = order(), order()
    torch.manual_seed(7)
    assert torch.equal(order(), first) and not torch.equal(first, second)


@pytest.mark.parametrize("tensors, settings, error, match", [
    ({"a": torch.zeros(3), "b": torch.zeros(4)}, {}, ValueError, "same number of rows"),
    ({"a": torch.zeros(0)}, {}, ValueError, "no rows"),
    ({"a": torch.zeros(3)}, {"drop_last": True}, ValueError, "leaves no batch"),
    ({}, {}, TypeError, "non-empty dict"),
    ({"a": [1, 2]}, {}, TypeError, r"tensors\['a'\] must be a tensor"),
])
def test_shuffled_batches_refuse_bad_input(tensors, settings, error, match):
    with pytest.raises(error, match=match):
        shuffled_batches(tensors, 4, **settings)


def test_shuffled_batches_refuse_a_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        shuffled_batches({"a": torch.zeros(3)}, 0)


# --- evaluate_model: scores or recommend ------------------------------------------------------

def test_a_recommend_model_gets_the_metrics_of_the_scores_it_ranks(split):
    torch.manual_seed(0)
    model, test = LastItemModel().eval(), split.evaluation("test")    # untrained: ranks spread
    from_scores = evaluate_model(model, test, ks=(1, 5, 10))
    from_lists = evaluate_model(TopKOf(model), test, ks=(1, 5, 10))
    for key in ("HR@1", "HR@5", "HR@10", "NDCG@1", "NDCG@5", "NDCG@10"):
        assert from_lists[key] == pytest.approx(from_scores[key]), key
    assert from_scores["HR@1"] < from_scores["HR@10"] < 1          # ranks spread past the list
    assert from_lists["MRR"] < from_scores["MRR"]                   # a target past it ranks last


def test_history_items_in_a_recommended_list_do_not_take_positions(split):
    test = split.evaluation("test")

    class Replays:                                        # recommends the history, then the target
        n_items = N_ITEMS

        def recommend(self, batch, k, exclude_history):
            history = batch["history"][:, -(k - 1):]                     # (B, k - 1)
            return torch.cat([history, test.targets[:, None]], dim=1)    # (B, k)

    result = evaluate_model(Replays(), test, ks=(1, 5))          # asks for k = 5
    assert result["HR@1"] == 1.0 and result["MRR"] == 1.0


def test_a_model_with_neither_method_names_both():
    with pytest.raises(TypeError, match=r"scores\(batch\).*recommend\(batch, k, exclude_history\)"):
        evaluate_model(nn.Linear(2, 2), None)


def test_k_larger_than_the_catalogue_is_refused(split):
    model, valid = LastItemModel(), split.evaluation("valid")
    for candidate in (model, TopKOf(model)):
        with pytest.raises(ValueError, match=f"larger than the catalogue of {N_ITEMS} items"):
            evaluate_model(candidate, valid, ks=(10, N_ITEMS + 1))


def test_a_recommend_model_without_catalogue_size_asks_for_n_items(split):
    model = TopKOf(LastItemModel())
    del model.n_items
    valid = dataclasses.replace(split.evaluation("valid"), n_items=None)
    with pytest.raises(ValueError, match="pass n_items="):
        evaluate_model(model, valid)
    assert "HR@10" in evaluate_model(model, valid, n_items=N_ITEMS)
    assert "HR@10" in evaluate_model(model, split.evaluation("valid"))   # the split's I


def test_a_recommend_model_must_return_k_items_per_user(split):
    class Short(TopKOf):
        def recommend(self, batch, k, exclude_history=True):
            return super().recommend(batch, k, exclude_history)[:, :-1]
    with pytest.raises(ValueError, match=r"recommend\(batch, 10\) must return"):
        evaluate_model(Short(LastItemModel()), split.evaluation("valid"))


# --- the protocol: seen items, the catalogue, what a model may read ---------------------------

class Replayer:
    """A rule that learns nothing: the user's history first (newest first), every other item
    tied behind it. Scores (B, I + 1)."""

    def scores(self, batch):
        history = batch["history"]
        out = torch.zeros(len(history), N_ITEMS + 1)
        position = torch.arange(history.shape[1], dtype=torch.float32).expand_as(history)
        return out.scatter(1, history, 1.0 + position)                    # (B, I + 1)


@pytest.fixture
def repeating():
    """Every user's test target repeats an item of the history, one in three of them."""
    rng = np.random.default_rng(1)
    seqs = {}
    for user in range(1, 31):
        seq = list(rng.permutation(N_ITEMS)[:8] + 1)
        if user % 3 == 0:
            seq.append(seq[2])                                          # a re-consumption
        seqs[user] = np.array(seq)
    return seqs


def test_under_exclude_seen_a_repeated_target_is_a_miss_and_a_replay_rule_gains_nothing(repeating):
    test = leave_one_out(repeating, N_ITEMS, seen="exclude").evaluation("test")
    result = evaluate_model(Replayer(), test, ks=(10,))
    assert result["HR@10"] == 0.0                # the rule's only hits are seen items: all masked


def test_under_allow_repeats_nothing_is_masked(repeating):
    test = leave_one_out(repeating, N_ITEMS, seen="allow").evaluation("test")
    result = evaluate_model(Replayer(), test, ks=(10,))
    assert result["HR@10"] == pytest.approx(1 / 3)   # the repeated targets, found in the history
    assert evaluate_model(Replayer(), test, ks=(10,), seen="exclude")["HR@10"] == 0.0


def test_the_protocol_line_names_the_convention_and_the_share_of_repeats(repeating):
    from course_lib.train import protocol
    test = leave_one_out(repeating, N_ITEMS, seen="exclude").evaluation("test")
    line = protocol(test)
    assert "seen items excluded" in line and "33.3% of the 30 targets" in line
    assert f"{N_ITEMS} items" in line
    assert "repeats allowed" in protocol(test, seen="allow")
    with pytest.raises(ValueError, match="seen must be one of"):
        protocol(test, seen="keep target")


def test_a_recommend_model_is_told_whether_to_leave_out_the_history(repeating):
    split = leave_one_out(repeating, N_ITEMS, seen="allow")
    asked = []

    class Lists:
        n_items = N_ITEMS

        def recommend(self, batch, k, exclude_history):         # the history, newest first
            asked.append(exclude_history)
            newest = batch["history"].flip(1)[:, :k]
            if exclude_history:
                newest = torch.zeros_like(newest)                   # nothing else to offer
            return torch.cat([newest, newest.new_zeros(len(newest), k - newest.shape[1])], 1)

    allowed = evaluate_model(Lists(), split.evaluation("test"), ks=(10,))
    excluded = evaluate_model(Lists(), split.evaluation("test"), ks=(10,), seen="exclude")
    assert asked == [False, True]
    assert allowed["HR@10"] == pytest.approx(1 / 3) and excluded["HR@10"] == 0.0


def test_scores_one_column_short_are_refused_not_ranked_off_by_one(split):
    class NoPaddingColumn:
        def scores(self, batch):
            return torch.randn(len(batch["history"]), N_ITEMS)          # (B, I): column 0 missing
    with pytest.raises(ValueError, match=f"needs I \\+ 1 = {N_ITEMS + 1}"):
        evaluate_model(NoPaddingColumn(), split.evaluation("test"))


def test_numpy_integer_cutoffs_are_accepted(split):
    result = evaluate_model(LastItemModel(), split.evaluation("test"), ks=(np.int64(3),))
    assert "HR@3" in result


def test_no_model_input_carries_the_target_or_its_action():
    rng = np.random.default_rng(2)
    seqs = {u: rng.permutation(N_ITEMS)[:7] + 1 for u in range(1, 21)}
    actions = {u: rng.integers(1, 4, len(s)) for u, s in seqs.items()}
    times = {u: np.arange(len(s)) * 10 for u, s in seqs.items()}
    test = leave_one_out(seqs, N_ITEMS, actions=actions, timestamps=times).evaluation("test")
    seen_inputs = []

    class Spy:
        def scores(self, batch):
            seen_inputs.append(batch)
            return torch.zeros(len(batch["history"]), N_ITEMS + 1)

    evaluate_model(Spy(), test)
    (batch,) = seen_inputs
    assert set(batch) == {"users", "history", "actions", "timestamps", "target_timestamps"}
    assert test.target_actions is not None                               # kept for the metrics
    assert not any(torch.equal(value, test.target_actions) for value in batch.values())
    assert not any(torch.equal(value, test.targets) for value in batch.values())


@pytest.mark.parametrize("ks", [(), (0,), (10, -1)])
def test_bad_cutoffs_are_refused(split, ks):
    with pytest.raises(ValueError, match="ks must be cut-offs >= 1"):
        evaluate_model(LastItemModel(), split.evaluation("valid"), ks=ks)


def test_a_time_budget_stops_training_and_every_epoch_records_its_time(split):
    model = LastItemModel()
    slow = lambda epoch: ({**b, "pause": time.sleep(0.05)} for b in make_batches(split)(epoch))  # noqa: E731
    result = fit(model, slow, epochs=100, time_budget=0.3, progress=False)
    assert 1 <= len(result.train_loss) < 100 and result.steps < 100 * 4
    assert len(result.seconds) == len(result.train_loss)
    assert all(a < b for a, b in zip(result.seconds, result.seconds[1:]))
    assert 0.3 <= result.seconds[-1] < 2.0
    with pytest.raises(ValueError, match="time_budget must be a number of seconds > 0"):
        fit(model, make_batches(split), epochs=1, time_budget=0, progress=False)


def test_the_progress_bar_is_one_bar_for_the_run_with_the_validation_metric(split, capsys):
    fit(LastItemModel(), make_batches(split), validate=lambda m: 0.5, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "LastItemModel" in err and "2/2" in err and "valid 0.5000" in err
