"""Benchmark PinRec's serving queries: one backbone pass per outcome against one pass for all
of them; prints a Markdown table of medians and ratios.

    python bench/pinrec.py                                  # CPU, 256 users
    python bench/pinrec.py --lengths 50,200 --outcomes 1,3,8 --repeats 20 --threads 1
    python bench/pinrec.py --device cuda --users 8192

The outcome enters PinRec's head only (Badrinath et al. 2025, arXiv 2504.10507): the backbone
never sees it, so one pass over a user's history gives the hidden state h from which every
outcome's query q(c) = normalise(h + MLP([h ; E_c])) is made. `PinRec.outcome_queries` runs
the backbone once and the head once per outcome; the per-outcome column runs the whole model
once per outcome (backbone + head), as `query_vectors` called once per outcome does. Both give
the same queries (the script checks it, to 1e-5).

An untrained PinRec (eval mode, the lesson's width d = 64, 2 blocks, 1 head) over a catalogue
of 500 items (the quick world's; the backbone's cost does not depend on it), random full
histories of length T with the world's actions (click 2, like 3, conversion 4); Q outcomes
asked for (up to 3: the world's click, like, conversion; more: a model with Q outcomes, as a
surface with Q budgets would have). "recommend" is the whole budgeted retrieval of 10 items
per outcome from an exact index with near-duplicate merging, the same two ways: what the
saving is worth end to end, where the Python merge over users also costs. Each time is the median
of `--repeats` runs (recommend: half as many) after one warm-up run, the two ways timed in turns
so that a shared CPU's changing load falls on both; Q = 1 is the same computation both ways, so
its ratio shows the noise. On a shared CPU compare ratios within one run.

Measured on the course's 2-core CPU while other jobs kept it busy (`--threads 1`, 256 users):
one pass made the queries 3.1 to 3.2 times cheaper at Q = 3 and 7.8 to 8.0 times at Q = 8
(T = 50 and 200), the whole `recommend` 2.2 to 3.0 and 3.0 to 5.6 times; Q = 1 came out at 0.96
to 1.13, the machine's noise.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run as `python bench/pinrec.py` from anywhere
    sys.path.insert(0, str(ROOT))

from course_lib import get_device  # noqa: E402
from course_lib.models.pinrec import PinRec, PinRecConfig  # noqa: E402

N_ITEMS, BUDGET = 500, 10


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def paired_medians(run_a, run_b, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median wall times of run_a() and run_b(), timed in turns (a, b, a, b, ...) so that a
    shared CPU's changing load falls on both alike; one warm-up run of each first."""
    run_a(), run_b()                                         # warm-up (allocations, kernels)
    times = ([], [])
    for _ in range(repeats):
        for run, out in zip((run_a, run_b), times):
            sync(device)
            start = time.perf_counter()
            run()
            sync(device)
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


class PerOutcomePinRec(PinRec):
    """PinRec whose queries cost one backbone pass per outcome: the model run once per
    outcome asked for, as serving would if the backbone saw the outcome."""

    @torch.no_grad()
    def outcome_queries(self, batch, outcomes):
        return torch.stack([super(PerOutcomePinRec, self).outcome_queries(batch, [o])[:, 0]
                            for o in outcomes], 1)                          # (B, Q, D)


def user_batch(users: int, length: int, device: torch.device, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"history": torch.randint(1, N_ITEMS + 1, (users, length), generator=gen).to(device),
            "actions": torch.randint(2, 5, (users, length), generator=gen).to(device)}


def measure(users: int, length: int, n_outcomes: int, width: int, repeats: int,
            device: torch.device, with_recommend: bool) -> dict:
    if n_outcomes <= 3:                                 # the world's click, like, conversion
        config = PinRecConfig(N_ITEMS, max_len=length, d_model=width)
    else:                                               # as many outcomes as asked for
        config = PinRecConfig(N_ITEMS, outcomes=tuple(f"outcome {q}" for q in range(n_outcomes)),
                              outcome_actions=tuple(range(1, n_outcomes + 1)),
                              n_actions=n_outcomes, max_len=length, d_model=width)
    torch.manual_seed(0)
    one_pass = PinRec(config).to(device).eval()
    per_outcome = PerOutcomePinRec(config).to(device).eval()
    per_outcome.load_state_dict(one_pass.state_dict())
    batch = user_batch(users, length, device)
    names = list(config.outcomes[:n_outcomes])
    gap = (one_pass.outcome_queries(batch, names)
           - per_outcome.outcome_queries(batch, names)).abs().max().item()
    if gap > 1e-5:
        raise AssertionError(f"one pass and per-outcome passes differ by {gap:.2e}")
    row = {"T": length, "Q": n_outcomes}
    row["per"], row["one"] = paired_medians(lambda: per_outcome.outcome_queries(batch, names),
                                            lambda: one_pass.outcome_queries(batch, names),
                                            repeats, device)
    if with_recommend:
        budgets = {name: BUDGET for name in names}
        row["rec_per"], row["rec_one"] = paired_medians(
            lambda: per_outcome.recommend(batch, budgets, exclude_history=False),
            lambda: one_pass.recommend(batch, budgets, exclude_history=False),
            max(1, repeats // 2), device)
    return row


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--users", type=int, default=256, help="users per batch (default 256)")
    parser.add_argument("--lengths", default="50,200", help="history lengths T (default 50,200)")
    parser.add_argument("--outcomes", default="1,3,8",
                        help="outcomes asked for, Q (default 1,3,8)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-recommend", action="store_true",
                        help="time the queries only, not the whole budgeted retrieval")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu, {torch.get_num_threads()} threads"
    print(f"\nPinRec queries for {args.users:,} users, d {args.width}, 2 blocks, median of "
          f"{args.repeats} (recommend: of {max(1, args.repeats // 2)}), timed in turns; "
          f"device {name}, torch {torch.__version__}\n")
    header = "| T | Q | per-outcome passes (ms) | one pass (ms) | saving |"
    rule = "|---:|---:|---:|---:|---:|"
    if not args.no_recommend:
        header += " recommend, per-outcome (ms) | recommend, one pass (ms) | saving |"
        rule += "---:|---:|---:|"
    print(header + "\n" + rule, flush=True)
    rows = []
    for length in (int(t) for t in args.lengths.split(",")):
        for n_outcomes in (int(q) for q in args.outcomes.split(",")):
            r = measure(args.users, length, n_outcomes, args.width, args.repeats, device,
                        not args.no_recommend)
            line = (f"| {r['T']} | {r['Q']} | {1e3 * r['per']:.1f} | {1e3 * r['one']:.1f} | "
                    f"{r['per'] / r['one']:.2f}x |")
            if "rec_one" in r:
                line += (f" {1e3 * r['rec_per']:.0f} | {1e3 * r['rec_one']:.0f} | "
                         f"{r['rec_per'] / r['rec_one']:.2f}x |")
            print(line, flush=True)                     # row by row: a long run shows progress
            rows.append(r)
    return rows


if __name__ == "__main__":
    main()
