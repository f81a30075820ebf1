"""Benchmark SASRec: epoch time and validation NDCG@10, the course's model against a
straightforward implementation at equal settings; prints Markdown tables.

    python bench/sasrec.py                          # CPU, the world and ml-latest-small
    python bench/sasrec.py --device cuda --profile full
    python bench/sasrec.py --datasets world --epochs 5

The straightforward implementation lives in this file: `nn.MultiheadAttention` with a causal
mask (returning its attention weights, as by default), and negatives drawn per user and per
position in a Python loop, as the original SASRec sampler does. Both models have the same
width, blocks, heads, dropout, max_len, batch size, optimiser and learning rate and train
with the paper's BCE loss (one negative per position); an epoch is one pass over every
user's training sequence, batch making included. Full-ranking NDCG@10 on the validation
items after the last epoch shows that both learn alike, so the time ratio compares like with
like. On a shared CPU timings are noisy: the table shows the median epoch.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_lib import get_device, get_profile, seed_everything
from course_lib.data.datasets import load_dataset
from course_lib.data.sequences import next_item_batches
from course_lib.models.sasrec import SASRec, SASRecConfig
from course_lib.train import evaluate_model

ROOT = Path(__file__).resolve().parents[1]


class StraightforwardSASRec(nn.Module):
    """SASRec as a first PyTorch port writes it: nn.MultiheadAttention with a causal mask
    (no key-padding mask: with left padding it would leave padding queries with no key, and
    NaN), pre-LN blocks, BCE with one negative, shared item embedding as output layer."""

    def __init__(self, n_items, max_len, d_model, n_blocks, n_heads, dropout):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.item_embedding = nn.Embedding(n_items + 1, d_model, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.attn_norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_blocks))
        self.attns = nn.ModuleList(nn.MultiheadAttention(d_model, n_heads, dropout=dropout,
                                                         batch_first=True)
                                   for _ in range(n_blocks))
        self.ffn_norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_blocks))
        self.ffns = nn.ModuleList(nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(),
                                                nn.Dropout(dropout),
                                                nn.Linear(d_model, d_model), nn.Dropout(dropout))
                                  for _ in range(n_blocks))
        self.last_norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.item_embedding.weight, std=d_model ** -0.5)   # as course_lib's
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, seqs):
        length = seqs.shape[1]
        positions = torch.arange(self.max_len - length, self.max_len, device=seqs.device)
        x = self.item_embedding(seqs) * math.sqrt(self.d_model) + self.position_embedding(positions)
        keep = (seqs > 0).unsqueeze(-1)
        x = self.drop(x) * keep
        causal = ~torch.tril(torch.ones(length, length, dtype=torch.bool, device=seqs.device))
        for norm, attn, ffn_norm, ffn in zip(self.attn_norms, self.attns, self.ffn_norms,
                                            self.ffns):
            q = norm(x)
            out, _ = attn(q, q, q, attn_mask=causal)
            x = x + self.drop(out)
            x = (x + ffn(ffn_norm(x))) * keep
        return self.last_norm(x)

    def loss(self, batch):
        hidden = self(batch["inputs"])
        pos = (hidden * self.item_embedding(batch["targets"])).sum(-1)
        neg = (hidden * self.item_embedding(batch["negatives"])).sum(-1)
        valid = batch["targets"] > 0
        loss = nn.functional.binary_cross_entropy_with_logits
        return (loss(pos[valid], torch.ones_like(pos[valid]))
                + loss(neg[valid], torch.zeros_like(neg[valid])))

    @torch.no_grad()
    def scores(self, batch):
        hidden = self(batch["history"][:, -self.max_len:])[:, -1]
        scores = hidden @ self.item_embedding.weight.T
        scores[:, 0] = float("-inf")
        return scores


def straightforward_batches(train, n_items, max_len, batch_size, seed):
    """The original sampler's way: per user, per position, redraw until unseen (Python)."""
    rng = random.Random(seed)
    users = list(train)
    rng.shuffle(users)
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        inputs = np.zeros((len(chunk), max_len), dtype=np.int64)
        targets, negatives = np.zeros_like(inputs), np.zeros_like(inputs)
        for row, user in enumerate(chunk):
            seq = train[user]
            seen = set(seq.tolist())
            idx = max_len - 1
            for item, nxt in zip(seq[-max_len - 1:-1][::-1], seq[-max_len:][::-1]):
                inputs[row, idx], targets[row, idx] = item, nxt
                neg = rng.randint(1, n_items)
                while neg in seen:
                    neg = rng.randint(1, n_items)
                negatives[row, idx] = neg
                idx -= 1
        yield {"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(targets),
               "negatives": torch.from_numpy(negatives)}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_and_time(model, make_batches, valid, epochs, lr, device):
    """Median seconds per epoch (batch making included) and valid NDCG@10 at the end."""
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    times = []
    for epoch in range(epochs):
        model.train()
        sync(device)
        start = time.perf_counter()
        for batch in make_batches(epoch):
            batch = {k: v.to(device) for k, v in batch.items() if k != "users"}
            loss = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        times.append(time.perf_counter() - start)
    ndcg = evaluate_model(model, valid, device=device)["NDCG@10"]
    return statistics.median(times), ndcg


def bench(name, profile, device, epochs, seed=0):
    data = load_dataset(name, profile)
    if data.name != name:
        raise FileNotFoundError(f"{name} could not be read")
    split = data.split
    n_items, valid = split.n_items, split.evaluation("valid")
    cfg = SASRecConfig(n_items, max_len=profile.max_len, d_model=profile.d_model,
                       loss_type="bce")
    size = (cfg.max_len, cfg.d_model, cfg.n_blocks, cfg.n_heads, cfg.dropout)
    batch_size, lr = profile.batch_size, profile.training[name].lr  # the lesson's

    seed_everything(seed)
    ours = train_and_time(
        SASRec(cfg),
        lambda e: next_item_batches(split.train, n_items, cfg.max_len, batch_size, 1, seed=e),
        valid, epochs, lr, device)
    seed_everything(seed)
    baseline = train_and_time(
        StraightforwardSASRec(n_items, *size),
        lambda e: straightforward_batches(split.train, n_items, cfg.max_len, batch_size, e),
        valid, epochs, lr, device)
    return {"dataset": name, "users": len(split.train), "items": n_items, "ours": ours,
            "baseline": baseline, "settings": f"d={cfg.d_model}, {cfg.n_blocks} blocks, "
            f"{cfg.n_heads} head, dropout {cfg.dropout}, max_len {cfg.max_len}, batch "
            f"{batch_size}, lr {lr:g}, {epochs} epochs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--profile", default="quick", help="quick or full (sizes)")
    parser.add_argument("--datasets", default="world,movielens")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (default: torch's choice); on a shared "
                             "machine 1 avoids oversubscription")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shared = ROOT.parent / "shared" / "datasets"
    if "COURSE_DATA_DIR" not in os.environ and (shared / "ml-latest-small").is_dir():
        os.environ["COURSE_DATA_DIR"] = str(shared)
    device, profile = get_device(args.device), get_profile(args.profile)
    rows = []
    for name in args.datasets.split(","):
        try:
            rows.append(bench(name, profile, device, args.epochs))
        except (FileNotFoundError, RuntimeError) as err:
            print(f"skipping {name}: {err}")
    threads = torch.get_num_threads()
    print(f"\ndevice {device} ({threads} CPU threads), profile {profile.name}, torch "
          f"{torch.__version__}\n")
    print("| dataset | users | items | settings |\n|---|---:|---:|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['users']} | {r['items']} | {r['settings']} |")
    print("\n| dataset | implementation | epoch time (s, median) | valid NDCG@10 |"
          "\n|---|---|---:|---:|")
    for r in rows:
        for label, key in [("course_lib SASRec (SDPA, batched negatives)", "ours"),
                           ("straightforward (nn.MultiheadAttention, Python sampler)",
                            "baseline")]:
            seconds, ndcg = r[key]
            print(f"| {r['dataset']} | {label} | {seconds:.3f} | {ndcg:.4f} |")
    print("\n| dataset | epoch-time ratio straightforward / course_lib |\n|---|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['baseline'][0] / r['ours'][0]:.2f}x |")


if __name__ == "__main__":
    main()
