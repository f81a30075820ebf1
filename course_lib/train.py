"""The one training loop of the course, and the one evaluation entry.

Training. Any `torch.nn.Module` with a `loss(batch) -> scalar tensor` method trains with `fit`,
SASRec as well as the VAE, the VQ-VAE, the RQ-VAE and matrix factorisation:

    result = fit(model, lambda epoch: next_item_batches(..., seed=epoch),
                 validate=lambda m: evaluate_model(m, split.evaluation("valid"))["NDCG@10"],
                 epochs=20, patience=3, checkpoint="checkpoints/sasrec.pt")
    fit(vqvae, lambda epoch: shuffled_batches({"x": x}, 128, drop_last=True), steps=300,
        on_step=log)                              # no validation: keep the last weights

Each epoch is one pass over `make_batches(epoch)` (one progress bar for the whole run, its note
the latest loss and, with validation, the metric and the best so far). Per batch: the loss,
its gradient, gradient clipping (`clip_grad_norm`), one optimizer step (Adam or AdamW), one
step of the learning-rate `schedule`, then `on_step(step, model, loss)` for curves that need
more than the epoch's mean loss (the KL trace of lesson 02, code usage in lessons 03-04).
`steps` stops after that many optimizer steps, mid-epoch if needed; `epochs` after that
many epochs; whichever comes first. With `validate` (higher is better), the metric is
measured after every epoch, training stops after `patience` epochs without improvement, and
the best weights are restored; without it nothing is measured and the last weights stay.

With `checkpoint`, the state after every epoch is written atomically (a temporary file, then
a rename, so a crash never leaves a half-written checkpoint), and `resume=True` continues
from it with results identical to an uninterrupted run: the batches of epoch e come from
`make_batches(e)`, and the checkpoint keeps the optimizer and schedule state and the torch
random state of every process (dropout, sampled negatives, `shuffled_batches` without a
seed). A run that `steps` ended mid-epoch counts as finished. The optimizer state carries
its settings, so resuming with another optimizer, lr, betas or weight_decay is refused
rather than silently trained with the checkpoint's; change them in a fresh run.

More than one process. Under `torchrun --nproc_per_node N` (which sets WORLD_SIZE > 1, RANK,
LOCAL_RANK and the rendezvous address), `fit` joins the process group (gloo on the CPU, NCCL
on CUDA, each rank on GPU LOCAL_RANK) and trains through PyTorch's DistributedDataParallel
(Li et al. 2020, "PyTorch Distributed", VLDB): every rank builds the same batches from
`make_batches(epoch)` (so seed them with the epoch, as every lesson does; `fit` checks the
first batches agree) and trains on its shard, batches r, r + N, r + 2N, ... (the last,
incomplete round repeats batches, as `DistributedSampler` pads, so every rank takes the same
number of steps); DDP averages the gradients, so each optimizer step sees N batches. Rank 0
alone validates (the metric is broadcast, so every rank stops at the same epoch), writes the
checkpoints and prints; the mean training loss is over every rank's batches. With one
process nothing of this happens.

Evaluation. A model exposes one of

    scores(batch) -> (B, I + 1)     a score for every item, column 0 (padding) never ranked
    recommend(batch, k, exclude_history) -> (B, k)
                                    ranked item ids, best first (e.g. TIGER's beam search),
                                    the history's items left out when exclude_history is True

and `evaluate_model` reports full-ranking HR@K, NDCG@K and MRR for either, under the split's
convention for seen items (`metrics.SEEN`: "exclude" masks every history item, "allow"
nothing; `protocol` says which in words). The batch is a dict of the `EvalSet`'s per-user
tensors for B users (`EvalSet.batch`): "users" (B,), "history" (B, T) and, when the set
carries them, the aligned "actions" and "timestamps" and the request time
"target_timestamps" (B,); never the target or its action. A model reads what it needs
(matrix factorisation the users, SASRec the history).

Dimensions: B users (or rows) in a batch, T history length, I items, K list length.
"""
from __future__ import annotations

import copy
import math
import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from course_lib import metrics
from course_lib.retrieval import in_rows

OPTIMIZERS = ("adam", "adamw")


# --- batches ---------------------------------------------------------------------------------

BUCKET_BATCHES = 50      # rows sorted by length within windows of this many batches


def shuffled_batches(tensors: dict[str, Tensor], batch_size: int, *, seed: int | None = None,
                     drop_last: bool = False, lengths: Tensor | None = None
                     ) -> Iterator[dict[str, Tensor]]:
    """One epoch of minibatches of the rows of `tensors`, in a random order.

    lengths (N,): each row's length (e.g. its number of history items). With it, rows of
    similar length share a batch: the shuffled rows are sorted by length within windows of
    BUCKET_BATCHES batches, cut into batches, and the batches are shuffled, so a model that
    trims padding (TIGER's encoder) computes over far fewer padded positions; the rows are
    still a permutation, every row once an epoch.

    Every tensor in `tensors` has the same first dimension N (rows: items, sequences,
    (user, item) pairs); a batch is the dict with the same keys and `batch_size` rows of each
    (the last batch smaller, or dropped with `drop_last`). The order is a permutation of the
    N rows, drawn from torch's global generator when `seed` is None (seeded by
    `seed_everything`, saved in `fit`'s checkpoints), else from a generator seeded with
    `seed` (pass the epoch: `lambda epoch: shuffled_batches(..., seed=epoch)`). The
    permutation is drawn when the first batch is asked for.
    """
    if not isinstance(tensors, dict) or not tensors:
        raise TypeError("tensors must be a non-empty dict of name -> tensor, e.g. {'x': x}")
    for name, value in tensors.items():
        if not torch.is_tensor(value) or value.dim() < 1:
            raise TypeError(f"tensors[{name!r}] must be a tensor with a row dimension, got "
                            f"{type(value).__name__}")
    sizes = {name: len(value) for name, value in tensors.items()}
    n_rows = next(iter(sizes.values()))
    if len(set(sizes.values())) > 1:
        raise ValueError(f"every tensor needs the same number of rows, got {sizes}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if n_rows == 0:
        raise ValueError("the tensors have no rows: there is nothing to train on")
    if drop_last and n_rows < batch_size:
        raise ValueError(f"drop_last=True with batch_size {batch_size} > {n_rows} rows leaves no "
                         "batch; lower batch_size or pass drop_last=False")
    if lengths is not None and (not torch.is_tensor(lengths) or lengths.shape != (n_rows,)):
        raise ValueError(f"lengths must be a tensor (N,) = ({n_rows},), one length per row, got "
                         f"{getattr(lengths, 'shape', type(lengths).__name__)}")
    return _shuffled_batches(tensors, n_rows, batch_size, seed, drop_last, lengths)


def _shuffled_batches(tensors, n_rows, batch_size, seed, drop_last, lengths):
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    order = torch.randperm(n_rows, generator=generator)                    # (N,) on the CPU
    stop = n_rows - n_rows % batch_size if drop_last else n_rows
    starts = torch.arange(0, stop, batch_size)
    if lengths is not None:
        window = batch_size * BUCKET_BATCHES
        order = torch.cat([chunk[torch.sort(lengths.cpu()[chunk], stable=True).indices]
                           for chunk in order.split(window)])              # similar lengths
        starts = starts[torch.randperm(len(starts), generator=generator)]  # batches shuffled
    for start in starts.tolist():
        rows = order[start:start + batch_size]                              # (B,)
        yield {name: value[rows.to(value.device)] for name, value in tensors.items()}


# --- schedules -------------------------------------------------------------------------------

def warmup_inverse_sqrt(warmup_steps: int) -> Callable[[int], float]:
    """The Transformer's learning-rate schedule as a multiplier of the base rate (Vaswani et al.
    2017, eq. 3, with d_model^-0.5 folded into the base rate): after s optimizer steps,

        m(s) = min((s + 1) / W, sqrt(W / (s + 1)))

    rises linearly to 1 over the first W = `warmup_steps` steps, then decays as 1 / sqrt(step).
    TIGER's schedule is not this one: it holds the rate constant first, with no ramp
    (`constant_then_inverse_sqrt`). Pass it as `fit(..., schedule=warmup_inverse_sqrt(W))`."""
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
        raise ValueError(f"warmup_steps must be an int >= 1, got {warmup_steps!r}")

    def multiplier(step: int) -> float:
        return min((step + 1) / warmup_steps, math.sqrt(warmup_steps / (step + 1)))
    return multiplier


def constant_then_inverse_sqrt(constant_steps: int) -> Callable[[int], float]:
    """TIGER's learning-rate schedule as a multiplier of the base rate (Rajput et al. 2023,
    section 4: "a learning rate of 0.01 for the first 10k steps and then ... an inverse square
    root decay"): after s optimizer steps,

        m(s) = 1                  for s < C
        m(s) = sqrt(C / s)        for s >= C,          C = `constant_steps`

    the full rate from the first step (no ramp, unlike `warmup_inverse_sqrt`), then
    1 / sqrt(step) decay, continuous at s = C. The paper: base rate 0.01, C = 10k of 200k steps
    (100k on Toys), batch 256; it names no optimizer. Pass it as
    `fit(..., schedule=constant_then_inverse_sqrt(C))`."""
    if (isinstance(constant_steps, bool) or not isinstance(constant_steps, int)
            or constant_steps < 1):
        raise ValueError(f"constant_steps must be an int >= 1, got {constant_steps!r}")

    def multiplier(step: int) -> float:
        return 1.0 if step < constant_steps else math.sqrt(constant_steps / step)
    return multiplier


# --- training --------------------------------------------------------------------------------

@dataclass
class FitResult:
    train_loss: list[float] = field(default_factory=list)     # mean loss per epoch
    valid_metric: list[float] = field(default_factory=list)   # validation metric per epoch
    best_epoch: int = -1
    best_metric: float = float("-inf")
    stopped_early: bool = False
    steps: int = 0                                            # optimizer steps taken
    seconds: list[float] = field(default_factory=list)        # time since the start, per epoch


def fit(model: torch.nn.Module, make_batches: Callable[[int], Iterable[dict]],
        validate: Callable[[torch.nn.Module], float] | None = None, *,
        epochs: int | None = None, steps: int | None = None, lr: float = 1e-3,
        optimizer: str = "adam", betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0, clip_grad_norm: float | None = None,
        schedule: Callable[[int], float] | None = None,
        on_step: Callable[[int, torch.nn.Module, float], None] | None = None,
        patience: int = 3, checkpoint: str | Path | None = None, resume: bool = False,
        device: torch.device | str | None = None, progress: bool = True,
        time_budget: float | None = None) -> FitResult:
    """Train `model` on the dict batches of `make_batches(epoch)` by `model.loss(batch)`.

    epochs / steps: stop after this many epochs / optimizer steps (at least one of the two).
    time_budget: also stop once this many seconds of training have passed (mid-epoch; that
      epoch is still validated), e.g. a laptop recipe's minutes; `result.seconds` has the time
      at the end of every epoch, for curves of quality against minutes.
    progress: one bar for the whole run (steps, or epochs), its note the epoch, the loss and
      the validation metric; a widget in a notebook (the HTML book shows its last line).
    optimizer: "adam" (Kingma & Ba 2015) or "adamw" (decoupled weight decay, Loshchilov &
      Hutter 2019), with `betas` and `weight_decay` (an L2 term for Adam).
    clip_grad_norm: rescale the gradient to at most this global L2 norm before each step.
    schedule: learning rate = lr * schedule(s) after s steps (`torch.optim.lr_scheduler.LambdaLR`),
      e.g. `warmup_inverse_sqrt(4000)` or TIGER's `constant_then_inverse_sqrt(10_000)`.
    on_step(step, model, loss): after each optimizer step, step counted from 1, loss a float;
      it may switch the model to eval mode to measure, fit puts it back in training mode.
    validate(model) -> float, higher is better: early stopping with `patience` and the best
      weights restored; None: no validation, the last weights stay. A NaN (or infinite)
      metric is an error: it cannot rank epochs.
    checkpoint / resume: see the module docstring; resume=True refuses a checkpoint written
      with other optimizer settings (optimizer, lr, betas, weight_decay).
    Under torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel (module docstring);
    a checkpoint holds every rank's random state, and each rank resumes from its own.
    """
    _check_fit_arguments(model, epochs, steps, optimizer, clip_grad_norm, patience, checkpoint,
                         resume)
    if time_budget is not None and not (isinstance(time_budget, (int, float))
                                        and not isinstance(time_budget, bool) and time_budget > 0):
        raise ValueError(f"time_budget must be a number of seconds > 0 (None: no limit), got "
                         f"{time_budget!r}")
    settings = {"optimizer": optimizer, "lr": float(lr), "betas": [float(b) for b in betas],
                "weight_decay": float(weight_decay)}
    device = torch.device(device) if device else next(model.parameters()).device
    rank, world = process_rank()
    if world > 1:
        device = _join_process_group(device)
        progress = progress and rank == 0
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim_class = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    optim = optim_class(trainable, lr=lr, betas=betas, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optim, schedule) if schedule else None
    result, start = FitResult(), 0
    best_state = copy.deepcopy(model.state_dict()) if validate else None
    if resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        _check_same_settings(state.get("settings"), settings, checkpoint)
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        best_state, start = state["best_model"], state["epoch"] + 1
        result = FitResult(**state["result"])
        _restore_rng_state(state, rank)
    train_step = model.loss
    if world > 1:                                # unused parameters (e.g. a switched-off head)
        train_step = DistributedDataParallel(    # are allowed, hence find_unused_parameters
            _LossOf(model), device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)

    epoch, started = start, time.perf_counter()
    shown = started
    bar = tqdm(total=steps if steps is not None else epochs, initial=result.steps if steps
               is not None else start, unit="step" if steps is not None else "epoch",
               desc=type(model).__name__, disable=not progress, dynamic_ncols=True)
    while not _finished(result, epoch, epochs, steps, time_budget, started):
        model.train()
        losses = []
        batches = make_batches(epoch)
        if world > 1:
            batches = shard_batches(batches, rank, world,
                                    check=lambda group: _check_same_batches(group, device))
        for batch in batches:
            loss = train_step(_to_device(batch, device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}: lower the "
                                         "learning rate or check the inputs for NaN")
            optim.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, clip_grad_norm)
            optim.step()
            if scheduler is not None:
                scheduler.step()
            result.steps += 1
            losses.append(loss.item())
            if steps is not None:
                bar.update()
            if time.perf_counter() - shown > 1.0:                        # redraw once a second
                bar.set_postfix_str(_progress_note(epoch, losses[-1], result))
                shown = time.perf_counter()
            if on_step is not None:
                on_step(result.steps, model, losses[-1])
                model.train()
            if steps is not None and result.steps >= steps:
                break
            if time_budget is not None and time.perf_counter() - started >= time_budget:
                break
        if not losses:
            raise ValueError(f"epoch {epoch} yielded no batch: make_batches({epoch}) returned "
                             "nothing; check that the training data is not empty and that "
                             "make_batches returns a fresh iterable for every epoch")
        result.train_loss.append(_mean_over_ranks(losses, device, world))
        if validate is not None:
            model.eval()
            with torch.no_grad():
                metric = float(validate(model)) if rank == 0 else 0.0
            if world > 1:
                metric = _from_rank_0(metric, device)
            _check_metric(metric, epoch)
            result.valid_metric.append(metric)
            if metric > result.best_metric:
                result.best_metric, result.best_epoch = metric, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif epoch - result.best_epoch >= patience:
                result.stopped_early = True
        result.seconds.append(time.perf_counter() - started)
        if steps is None:
            bar.update()
        bar.set_postfix_str(_progress_note(epoch, result.train_loss[-1], result))
        rng = _rng_states(world) if checkpoint is not None else None   # every rank takes part
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": optim.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "best_model": best_state, "epoch": epoch, "result": vars(result).copy(),
                "settings": settings, "rng": rng})
        epoch += 1
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


def _progress_note(epoch: int, loss: float, result: FitResult) -> str:
    """The progress bar's note: the epoch, the latest loss and, with validation, the last
    metric and the best one so far."""
    note = f"epoch {epoch}, loss {loss:.4f}"
    if result.valid_metric:
        note += (f", valid {result.valid_metric[-1]:.4f} (best {result.best_metric:.4f} at "
                 f"epoch {result.best_epoch})")
    return note


def _check_metric(metric: float, epoch: int) -> None:
    if not math.isfinite(metric):
        raise FloatingPointError(
            f"validate(model) returned {metric} at epoch {epoch}, which cannot rank epochs: NaN "
            "never counts as an improvement, so fit would end by restoring earlier (even "
            "untrained) weights without a word. Make validate return a finite number: check "
            "the model's scores for NaN and that the validation set is not empty")


def _check_same_settings(saved: dict | None, asked: dict, checkpoint) -> None:
    """Refuse to resume with other optimizer settings: loading the optimizer state would bring
    back the checkpoint's lr, betas and weight decay without a word."""
    if saved is None:                       # a checkpoint written before settings were kept
        return
    changed = [name for name in asked if saved.get(name) != asked[name]]
    if changed:
        was = ", ".join(f"{name}={saved.get(name)!r}" for name in changed)
        now = ", ".join(f"{name}={asked[name]!r}" for name in changed)
        raise ValueError(f"checkpoint {checkpoint} was trained with {was}, but this call asks "
                         f"for {now}; resuming would go on with the checkpoint's settings (the "
                         "optimizer state carries them). Resume with the checkpoint's settings, "
                         "or start afresh with resume=False or another checkpoint path")


def _rng_states(world: int) -> list[list]:
    """[CPU state, CUDA states or None] of every rank, gathered on every rank: dropout and
    sampled negatives differ between ranks, so an exact resume needs each rank's own."""
    own = [torch.get_rng_state(),
           torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None]
    if world == 1:
        return [own]
    states = [None] * world
    dist.all_gather_object(states, own)
    return states


def _restore_rng_state(state: dict, rank: int) -> None:
    states = state["rng"]
    if torch.is_tensor(states):             # a checkpoint that kept rank 0's state only
        states = [[states, state.get("cuda_rng")]]
    cpu, cuda = states[rank % len(states)]  # another number of processes: not identical
    torch.set_rng_state(cpu)
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


class _LossOf(nn.Module):
    """forward(batch) = model.loss(batch): DistributedDataParallel synchronises gradients of
    what runs through its forward, and the course's models train through `loss`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> Tensor:
        return self.model.loss(batch)


# --- more than one process (torchrun) --------------------------------------------------------

def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process: from RANK and WORLD_SIZE, which torchrun sets;
    (0, 1) for a plain single process."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as error:
        raise ValueError(f"RANK and WORLD_SIZE must be integers (torchrun sets them), got "
                         f"{os.environ.get('RANK')!r} and {os.environ.get('WORLD_SIZE')!r}"
                         ) from error
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def _join_process_group(device: torch.device) -> torch.device:
    """Join torchrun's process group if this process has not yet (NCCL for CUDA, gloo for the
    CPU) and return the device of this rank: GPU LOCAL_RANK on CUDA."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shard_batches(batches: Iterable[dict], rank: int, world: int,
                  check: Callable[[list[dict]], None] | None = None) -> Iterator[dict]:
    """This rank's share of an epoch: batch rank of every round of `world` batches. A last,
    incomplete round of m batches gives rank r its batch r mod m, so every rank takes the same
    number of steps (DDP needs that). check(round) sees the first round, on every rank."""
    round_, checked = [], check is None
    for batch in batches:
        round_.append(batch)
        if len(round_) == world:
            if not checked:
                check(round_)
                checked = True
            yield round_[rank]
            round_ = []
    if round_:
        if not checked:
            check(round_)
        yield round_[rank % len(round_)]


def _check_same_batches(round_: list[dict], device: torch.device) -> None:
    """Raise on every rank if the ranks' first batches differ (an unseeded make_batches)."""
    fingerprint = torch.tensor([float(sum(v.double().sum() for v in b.values()
                                          if torch.is_tensor(v))) for b in round_],
                               dtype=torch.float64, device=device)
    low, high = fingerprint.clone(), fingerprint.clone()
    dist.all_reduce(low, dist.ReduceOp.MIN)
    dist.all_reduce(high, dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError("make_batches(epoch) gives different batches on different ranks, so "
                           "the shards would overlap and miss data: seed the batches with the "
                           "epoch, e.g. lambda epoch: shuffled_batches(..., seed=epoch)")


def _mean_over_ranks(losses: list[float], device: torch.device, world: int) -> float:
    if world == 1:
        return sum(losses) / len(losses)
    total = torch.tensor([sum(losses), len(losses)], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total[0] / total[1])


def _from_rank_0(value: float, device: torch.device) -> float:
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor)


def _finished(result: FitResult, epoch: int, epochs: int | None, steps: int | None,
              time_budget: float | None, started: float) -> bool:
    return (result.stopped_early or (epochs is not None and epoch >= epochs)
            or (steps is not None and result.steps >= steps)
            or (time_budget is not None and time.perf_counter() - started >= time_budget))


def _to_device(batch, device: torch.device) -> dict:
    if not isinstance(batch, dict):
        raise TypeError(f"make_batches must yield dicts of tensors (e.g. from shuffled_batches), "
                        f"got {type(batch).__name__}")
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _check_fit_arguments(model, epochs, steps, optimizer, clip_grad_norm, patience, checkpoint,
                         resume) -> None:
    if not callable(getattr(model, "loss", None)):
        raise TypeError(f"{type(model).__name__} has no loss(batch) method; fit trains models "
                        "that return their training loss from model.loss(batch)")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{type(model).__name__} has no trainable parameters (model.parameters() "
                         "is empty or all frozen), so fit has nothing to train: register "
                         "layers or nn.Parameter as attributes of the model (a plain list hides "
                         "them; use nn.ModuleList), set requires_grad=True, or use the model "
                         "without fit")
    if epochs is None and steps is None:
        raise ValueError("give epochs=, steps= or both: fit needs to know when to stop")
    for name, value in (("epochs", epochs), ("steps", steps), ("patience", patience)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 (None turns clipping off), got "
                         f"{clip_grad_norm!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint= the path written by an earlier run")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` to `path` atomically: a temporary file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by `save_checkpoint`, with a clear error if it is broken."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt file
        raise RuntimeError(f"could not read checkpoint {path}: {err}. Delete it to start "
                           "afresh, or pass resume=False") from err


# --- evaluation ------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_model(model, eval_set, ks=(10,), batch_size: int = 1024,
                   device: torch.device | str | None = None,
                   n_items: int | None = None, seen: str | None = None) -> dict[str, float]:
    """Full-ranking HR@K and NDCG@K for each K in `ks`, and MRR, on an `EvalSet`, in batches
    of users, through `metrics.summarise`.

    seen: the convention (`metrics.SEEN`), by default the set's own (`eval_set.seen`, chosen
    per dataset; `protocol(eval_set)` says it in words). "exclude": every history item is
    masked, and a target that repeats one counts as a miss; "allow": nothing is masked. The
    mask never depends on the target.

    A model with `scores(batch)` (B, I + 1) is ranked on its scores (`metrics.target_ranks`;
    used when a model has both methods, as it is exact). A model with only
    `recommend(batch, k, exclude_history)` (B, k) is asked for k = max(ks) items, leaving
    out the history's items under "exclude" (any it still names lose their slot); a target
    outside the list ranks last (`metrics.ranks_from_topk`), so HR@K and NDCG@K are exact
    and MRR is a lower bound. The catalogue size I comes from `n_items`, the set's
    `n_items` or the model's; score matrices are checked against it.
    """
    has_scores = callable(getattr(model, "scores", None))
    if not has_scores and not callable(getattr(model, "recommend", None)):
        raise TypeError(f"{type(model).__name__} has neither scores(batch) -> (B, I + 1) nor "
                        "recommend(batch, k, exclude_history) -> (B, k); evaluate_model ranks "
                        "with one of them")
    ks = (ks,) if isinstance(ks, numbers.Integral) and not isinstance(ks, bool) else tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1
                     for k in ks):
        raise ValueError(f"ks must be cut-offs >= 1 such as (10,), got {ks!r}")
    ks = tuple(int(k) for k in ks)
    if len(eval_set.targets) == 0:
        raise ValueError("eval_set has no users to evaluate")
    seen = metrics.check_seen(seen if seen is not None else getattr(eval_set, "seen", "exclude"))
    for n in (n_items, getattr(eval_set, "n_items", None), getattr(model, "n_items", None)):
        if n is not None:
            n_items = int(n)
            break
    if not has_scores and n_items is None:
        raise ValueError(f"{type(model).__name__} ranks with recommend(batch, k), which says "
                         "nothing about the catalogue size: pass n_items=I")
    if hasattr(model, "eval"):
        model.eval()
    if device is None:
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        device = params[0].device if params else torch.device("cpu")
    ranks = []
    for start in range(0, len(eval_set.targets), batch_size):
        rows = slice(start, start + batch_size)
        targets = eval_set.targets[rows].to(device)                        # (B,)
        history = eval_set.history[rows].to(device) if seen == "exclude" else None  # (B, T)
        if has_scores:
            scores = model.scores(_model_input(eval_set, rows, device))
            _check_score_width(scores, len(targets), n_items, type(model).__name__)
            _check_k_within(ks, scores.shape[-1] - 1)
            ranks.append(metrics.target_ranks(scores, targets, history).cpu())
        else:
            _check_k_within(ks, n_items)
            k = max(ks)
            topk = model.recommend(_model_input(eval_set, rows, device), k,
                                   exclude_history=seen == "exclude")
            if tuple(topk.shape) != (len(targets), k):
                raise ValueError(f"recommend(batch, {k}) must return ({len(targets)}, {k}) item "
                                 f"ids, got shape {tuple(topk.shape)}")
            if history is not None:
                topk = _drop_history(topk.long(), history)
            ranks.append(metrics.ranks_from_topk(topk.long(), targets, n_items, history).cpu())
    return metrics.summarise(torch.cat(ranks), ks)


def protocol(eval_set, seen: str | None = None) -> str:
    """The evaluation's protocol in one line, to print with every result table: full ranking,
    the convention for seen items and how many targets repeat one, pessimistic ties."""
    seen = metrics.check_seen(seen if seen is not None else getattr(eval_set, "seen", "exclude"))
    repeats = metrics.repeated_targets(eval_set.history, eval_set.targets).double().mean().item()
    catalogue = f"{eval_set.n_items:,} items" if getattr(eval_set, "n_items", None) else "every item"
    if seen == "exclude":
        rule = (f"seen items excluded ({repeats:.1%} of the {len(eval_set.targets):,} targets "
                "repeat one: counted as misses)")
    else:
        rule = (f"repeats allowed, nothing masked ({repeats:.1%} of the "
                f"{len(eval_set.targets):,} targets repeat a seen item)")
    return f"full ranking over {catalogue}; {rule}; ties count against the target"


def _model_input(eval_set, rows: slice, device: torch.device) -> dict[str, Tensor]:
    """The batch handed to scores/recommend: `EvalSet.batch(rows)` (users, history, and the
    history's actions and timestamps and the request time when the set has them; never the
    target nor its action) on `device`."""
    return {name: value.to(device) for name, value in eval_set.batch(rows).items()}


def _check_score_width(scores, n_rows: int, n_items: int | None, model: str) -> None:
    if not torch.is_tensor(scores) or scores.dim() != 2 or scores.shape[0] != n_rows:
        raise ValueError(f"{model}.scores(batch) must return (B, I + 1) = ({n_rows}, I + 1) "
                         f"scores, got {tuple(getattr(scores, 'shape', ()))}")
    if n_items is not None and scores.shape[1] != n_items + 1:
        raise ValueError(f"{model}.scores(batch) returned {scores.shape[1]} columns but the "
                         f"catalogue has I = {n_items} items, so it needs I + 1 = {n_items + 1} "
                         "(column 0 is padding, column i is item i); an (B, I) matrix would be "
                         "ranked off by one")


def _check_k_within(ks: tuple[int, ...], n_items: int) -> None:
    if max(ks) > n_items:
        raise ValueError(f"k={max(ks)} is larger than the catalogue of {n_items} items; use "
                         f"cut-offs k <= {n_items}")


def _drop_history(topk: Tensor, history: Tensor) -> Tensor:
    """topk (B, K) with the history items removed and the rest moved left, in order; freed
    slots at the end hold 0 (an empty slot for ranks_from_topk)."""
    seen = in_rows(topk, history)                                          # (B, K)
    keep = (topk > 0) & ~seen
    order = (~keep).to(torch.uint8).argsort(dim=1, stable=True)             # kept first
    return torch.where(keep, topk, torch.zeros_like(topk)).gather(1, order)
