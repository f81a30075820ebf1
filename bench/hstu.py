"""Benchmark one HSTU layer against one SASRec block: forward + backward time at sequence
lengths T = 50, 200, 1000; prints a Markdown table of medians and ratios.

    python bench/hstu.py                                  # CPU, batch 16
    python bench/hstu.py --device cuda --batch 128        # a GPU, the paper's batch
    python bench/hstu.py --lengths 50,200 --repeats 20 --threads 1

Both at the ML-1M width (d = 50, 1 head, dropout 0.2, training mode), on full rows (no
padding) of random inputs; the loss is the output's sum. The SASRec block
(`course_lib.models.sasrec.Block`) is softmax attention through
`F.scaled_dot_product_attention` plus its feed-forward network; the HSTU layer
(`course_lib.models.hstu.HSTULayer`) is eqs. 1-3 written with plain matmuls, so it builds its
(B, T, T) attention matrix, and computes its relative attention bias (positions and time
buckets) inside, as the reference code does per layer. A third column drops the time bias,
to show what the bucketing costs (the model buckets once per pass; each layer looks up its
own scalars). Each time is the median of `--repeats` runs after one
warm-up run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from course_lib import get_device
from course_lib.models import hstu, sasrec


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(step, repeats: int, device: torch.device) -> float:
    step()                                                   # warm-up (allocations, kernels)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sasrec_step(batch: int, length: int, width: int, device: torch.device):
    block = sasrec.Block(sasrec.SASRecConfig(n_items=2, max_len=length, d_model=width)).to(device)
    x = torch.randn(batch, length, width, device=device, requires_grad=True)
    mask = sasrec.attention_mask(torch.ones(batch, length, dtype=torch.long, device=device))

    def step():
        block(x, mask).sum().backward()
    return step


def hstu_step(batch: int, length: int, width: int, device: torch.device, time_bias: bool):
    config = hstu.HSTUConfig(n_items=2, max_len=length, d_model=width, use_time_bias=time_bias)
    layer = hstu.HSTULayer(config).to(device)
    x = torch.randn(batch, length, width, device=device, requires_grad=True)
    real = torch.ones(batch, length, dtype=torch.bool, device=device)
    mask = hstu.attention_mask(real)
    divisor = hstu.attention_divisor(mask, config)
    slots = torch.arange(length, device=device)
    gaps = torch.randint(1, 100_000, (batch, length + 1), device=device)
    stamps = 1_700_000_000 + gaps.cumsum(1)
    key_times, query_times = stamps[:, :-1], stamps[:, 1:]

    def step():
        pairs = hstu.relative_pairs(slots, slots, query_times if time_bias else None, key_times)
        y, _ = layer(x, pairs, mask, divisor)
        y.sum().backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--lengths", default="50,200,1000")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    torch.manual_seed(0)
    rows = []
    for length in (int(t) for t in args.lengths.split(",")):
        sas = median_seconds(sasrec_step(args.batch, length, args.width, device),
                             args.repeats, device)
        full = median_seconds(hstu_step(args.batch, length, args.width, device, True),
                              args.repeats, device)
        no_time = median_seconds(hstu_step(args.batch, length, args.width, device, False),
                                 args.repeats, device)
        rows.append((length, sas, full, no_time))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu, {torch.get_num_threads()} threads"
    print(f"\nforward + backward, one layer, batch {args.batch}, d {args.width}, 1 head, "
          f"median of {args.repeats}; device {name}, torch {torch.__version__}\n")
    print("| T | SASRec block (ms) | HSTU layer (ms) | HSTU / SASRec | "
          "HSTU, no time bias (ms) | no time bias / SASRec |\n|---:|---:|---:|---:|---:|---:|")
    for length, sas, full, no_time in rows:
        print(f"| {length} | {1e3 * sas:.2f} | {1e3 * full:.2f} | {full / sas:.2f}x | "
              f"{1e3 * no_time:.2f} | {no_time / sas:.2f}x |")


if __name__ == "__main__":
    main()
