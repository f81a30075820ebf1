"""`train.fit` under torchrun: two CPU processes on the gloo backend train the same tiny model
as one process does, each on its shard of the batches, with one set of metrics, one
checkpoint writer and identical weights; and the sharding rule itself."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from course_lib import train
from course_lib.train import load_checkpoint, process_rank, shard_batches

# Trains a next-item model on a pattern (item i is followed by i + 1) and writes what each
# rank saw and measured to OUT/rank<r>.json. Ranks start from different weights on purpose:
# DistributedDataParallel must broadcast rank 0's.
WORKER = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import numpy as np, torch
    from torch import nn
    from course_lib import train
    from course_lib.data.sequences import leave_one_out, next_item_batches
    from course_lib.train import evaluate_model, fit

    out, mode = Path(sys.argv[1]), sys.argv[2]
    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(1)
    torch.manual_seed(rank)
    N_ITEMS = 30

    class LastItem(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(N_ITEMS + 1, 16, padding_idx=0)
            self.out = nn.Linear(16, N_ITEMS + 1)
            self.unused = nn.Linear(2, 2)          # a switched-off head: DDP must allow it
            self.epoch, self.seen = 0, []

        def loss(self, batch):
            if self.epoch == 0:
                self.seen += batch["users"].tolist()
            logits = self.out(self.embed(batch["inputs"]))
            return nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(),
                                               ignore_index=0)

        def scores(self, batch):
            return self.out(self.embed(batch["history"][:, -1]))

    rng = np.random.default_rng(0)
    seqs = {}
    for user in range(1, 121):
        start = rng.integers(1, N_ITEMS + 1)
        seqs[user] = (start - 1 + np.arange(rng.integers(6, 12))) % N_ITEMS + 1
    split = leave_one_out(seqs, N_ITEMS)
    saves = []
    save = train.save_checkpoint
    train.save_checkpoint = lambda path, state: (saves.append(rank), save(path, state))
    model = LastItem()

    def batches(epoch):
        model.epoch = epoch
        seed = epoch if mode == "seeded" else 1000 * rank + epoch
        return next_item_batches(split.train, N_ITEMS, 10, 16, seed=seed)

    valid = split.evaluation("valid")
    result = fit(model, batches, lambda m: evaluate_model(m, valid)["NDCG@10"], epochs=12,
                 lr=0.05, checkpoint=out / "checkpoint.pt", progress=False)
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world": int(os.environ.get("WORLD_SIZE", "1")), "steps": result.steps,
        "valid": result.valid_metric, "train_loss": result.train_loss,
        "best_epoch": result.best_epoch, "saves": len(saves), "seen": model.seen,
        "test": evaluate_model(model, split.evaluation("test")),
        "weights": [float(p.double().sum()) for p in model.parameters()]}))
''')


def run_worker(tmp_path, processes: int, mode: str = "seeded") -> subprocess.CompletedProcess:
    out = tmp_path / f"{processes}-{mode}"
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
    done = subprocess.run(launcher + [str(script), str(out), mode], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    done.out = out
    return done


def results(done) -> list[dict]:
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(done.out.glob("rank*.json"))]


@pytest.fixture(scope="module")
def ddp_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def runs(ddp_dir):
    return {"one": results(run_worker(ddp_dir, 1)), "two": results(run_worker(ddp_dir, 2))}


def test_two_gloo_processes_reach_the_metrics_of_one_within_noise(runs):
    one, two = runs["one"][0], runs["two"][0]
    assert two["world"] == 2 and one["world"] == 1
    for split in ("valid", "test"):
        single = one["test"]["NDCG@10"] if split == "test" else max(one["valid"])
        double = two["test"]["NDCG@10"] if split == "test" else max(two["valid"])
        assert single > 0.8 and double > 0.8, (single, double)
        assert abs(single - double) < 0.1, (split, single, double)


def test_each_rank_trains_on_its_own_shard_of_every_batch(runs):
    rank0, rank1 = (set(r["seen"]) for r in runs["two"])
    assert rank0 and rank1 and not rank0 & rank1            # 120 users: 8 batches, 4 each
    assert rank0 | rank1 == set(runs["one"][0]["seen"]) == set(range(1, 121))
    per_epoch = {n: r[0]["steps"] / len(r[0]["train_loss"]) for n, r in runs.items()}
    assert per_epoch == {"one": 8, "two": 4}                 # each step takes 2 batches


def test_ranks_end_with_identical_weights_and_report_identical_metrics(runs):
    rank0, rank1 = runs["two"]
    assert rank0["weights"] == rank1["weights"]            # started apart: rank 0's broadcast
    for key in ("valid", "train_loss", "best_epoch", "test", "steps"):
        assert rank0[key] == rank1[key], key


def test_only_rank_0_writes_checkpoints(runs):
    rank0, rank1 = runs["two"]
    assert rank0["saves"] == len(rank0["valid"]) and rank1["saves"] == 0


def test_the_checkpoint_keeps_each_rank_s_own_random_state(runs, ddp_dir):
    states = load_checkpoint(ddp_dir / "2-seeded" / "checkpoint.pt")["rng"]  # seeds 0 and 1
    assert len(states) == 2 and not torch.equal(states[0][0], states[1][0])


def test_unseeded_batches_that_differ_between_ranks_are_refused(tmp_path):
    done = run_worker(tmp_path, 2, mode="unseeded")
    assert done.returncode != 0
    assert "gives different batches on different ranks" in done.stderr


# ---- the sharding rule, in one process ------------------------------------------------------

def test_a_full_round_gives_each_rank_one_batch_and_the_last_round_repeats():
    batches = [{"x": torch.tensor([i])} for i in range(5)]
    take = lambda rank: [int(b["x"]) for b in shard_batches(iter(batches), rank, 2)]
    assert take(0) == [0, 2, 4] and take(1) == [1, 3, 4]   # equal step counts on both


def test_the_check_sees_the_first_round_once():
    seen = []
    list(shard_batches(({"x": torch.tensor([i])} for i in range(6)), 1, 3, check=seen.append))
    assert [[int(b["x"]) for b in r] for r in seen] == [[0, 1, 2]]


def test_each_rank_resumes_from_its_own_random_state():
    states = [[torch.manual_seed(seed).get_state(), None] for seed in (10, 11)]
    for rank in (0, 1):
        train._restore_rng_state({"rng": states}, rank)
        assert torch.equal(torch.get_rng_state(), states[rank][0])


def test_a_single_process_has_rank_0_of_1(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert process_rank() == (0, 1)


def test_an_impossible_rank_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="0 <= RANK < WORLD_SIZE"):
        process_rank()
