"""A small training loop for every model in the course.

Any `torch.nn.Module` with a `loss(batch) -> scalar tensor` method trains with `fit`:

    result = fit(model, lambda epoch: next_item_batches(..., seed=epoch),
                 validate=lambda m: evaluate_model(m, split.evaluation("valid"))["NDCG@10"],
                 epochs=20, patience=3, checkpoint="checkpoints/sasrec.pt")

Each epoch: one pass over the batches (tqdm progress bar), then the validation metric
(higher is better). Training stops after `patience` epochs without improvement and the best
weights are restored. With `checkpoint`, the state after every epoch is written atomically
(a temporary file, then a rename, so a crash never leaves a half-written checkpoint), and
`resume=True` continues from it with results identical to an uninterrupted run: the batches
of epoch e come from `make_batches(e)`, and the checkpoint keeps the optimizer state and the
torch random state (dropout).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from course_lib import metrics


@dataclass
class FitResult:
    train_loss: list[float] = field(default_factory=list)     # mean loss per epoch
    valid_metric: list[float] = field(default_factory=list)   # validation metric per epoch
    best_epoch: int = -1
    best_metric: float = float("-inf")
    stopped_early: bool = False


def fit(model: torch.nn.Module, make_batches: Callable[[int], Iterable[dict]],
        validate: Callable[[torch.nn.Module], float], *, epochs: int, lr: float = 1e-3,
        weight_decay: float = 0.0, patience: int = 3, checkpoint: str | Path | None = None,
        resume: bool = False, device: torch.device | str | None = None,
        progress: bool = True) -> FitResult:
    """Train `model` with Adam; keep and restore the weights of the best validation epoch."""
    if not callable(getattr(model, "loss", None)):
        raise TypeError(f"{type(model).__name__} has no loss(batch) method; fit trains models "
                        "that return their training loss from model.loss(batch)")
    if epochs < 1 or patience < 1:
        raise ValueError(f"epochs and patience must be >= 1, got {epochs} and {patience}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint= the path written by an earlier run")
    device = torch.device(device) if device else next(model.parameters()).device
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    result, best_state, start = FitResult(), copy.deepcopy(model.state_dict()), 0
    if resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        best_state, start = state["best_model"], state["epoch"] + 1
        result = FitResult(**state["result"])
        torch.set_rng_state(state["rng"])

    for epoch in range(start, epochs):
        if result.stopped_early:
            break
        model.train()
        losses = []
        for batch in tqdm(make_batches(epoch), desc=f"epoch {epoch}", leave=False,
                          disable=not progress):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            loss = model.loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}: lower the "
                                         "learning rate or check the inputs for NaN")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            metric = float(validate(model))
        result.train_loss.append(sum(losses) / max(len(losses), 1))
        result.valid_metric.append(metric)
        if metric > result.best_metric:
            result.best_metric, result.best_epoch = metric, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - result.best_epoch >= patience:
            result.stopped_early = True
        if progress:
            tqdm.write(f"epoch {epoch}: loss {result.train_loss[-1]:.4f}  valid {metric:.4f}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "best_model": best_state, "epoch": epoch, "result": vars(result).copy(),
                "rng": torch.get_rng_state()})
    model.load_state_dict(best_state)
    return result


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


@torch.no_grad()
def evaluate_model(model, eval_set, ks=(10,), batch_size: int = 1024,
                   device: torch.device | str | None = None) -> dict[str, float]:
    """Full-ranking HR@K, NDCG@K and MRR of `model.scores(history)` on an `EvalSet`,
    history masked, in batches of users."""
    if hasattr(model, "eval"):
        model.eval()
    if device is None:
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        device = params[0].device if params else torch.device("cpu")
    ranks = []
    for start in range(0, len(eval_set.targets), batch_size):
        history = eval_set.history[start:start + batch_size].to(device)
        targets = eval_set.targets[start:start + batch_size].to(device)
        ranks.append(metrics.target_ranks(model.scores(history), targets, history).cpu())
    ranks = torch.cat(ranks)
    out = {}
    for k in ks:
        out[f"HR@{k}"] = metrics.hr_at_k(ranks, k).mean().item()
        out[f"NDCG@{k}"] = metrics.ndcg_at_k(ranks, k).mean().item()
    out["MRR"] = metrics.mrr(ranks).mean().item()
    return out
