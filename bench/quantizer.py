"""Benchmark the vector quantizer: vectors per second through `VectorQuantizer`, forward only
(eval mode, no gradient: encoding items into codes) and a training step (train mode:
forward with the EMA update, then backward through the straight-through estimator), for a
few sizes (N vectors, D width, K codes); prints a Markdown table.

    python bench/quantizer.py                      # CPU, and CUDA when available
    python bench/quantizer.py --devices cpu --repeats 9

Beside it, when importable, lucidrains' `vector_quantize_pytorch.VectorQuantize` at equal
settings (EMA decay 0.99, eps 1e-5, commitment weight 0.25, plain straight-through: no
rotation trick, no k-means init, no dead-code reset, Euclidean distance), with the ratio
course / lucidrains (above 1: the course's quantizer is faster). It is not a dependency of
the course; to include it: `pip install vector-quantize-pytorch -c constraints.txt`.

Each cell is the median over `--repeats` timed runs of `--iters` calls each, after warm-up;
the two quantizers take turns run by run, so that load from other processes hits both alike.
On a shared CPU the numbers are still noisy: compare ratios within one run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from course_lib.quantize.vq import VectorQuantizer, VQConfig

SIZES = [(4096, 32, 256), (4096, 64, 1024), (16384, 32, 512)]      # (N, D, K)


def course_quantizer(d: int, k: int, device: str):
    q = VectorQuantizer(VQConfig(codebook_size=k, dim=d, ema=True)).to(device)

    def forward(x):
        return q(x).quantized

    def train_step(x):
        out = q(x)
        (out.quantized.sum() + out.loss).backward()
    return q, forward, train_step


def lucidrains_quantizer(d: int, k: int, device: str):
    from vector_quantize_pytorch import VectorQuantize
    q = VectorQuantize(dim=d, codebook_size=k, decay=0.99, eps=1e-5, commitment_weight=0.25,
                       kmeans_init=False, threshold_ema_dead_code=0,
                       rotation_trick=False).to(device)

    def forward(x):
        return q(x[None])[0]                                                # (1, N, D) in

    def train_step(x):
        quantized, _, loss = q(x[None])
        (quantized.sum() + loss.sum()).backward()
    return q, forward, train_step


def vectors_per_second(candidates, x, *, train: bool, iters: int,
                       repeats: int) -> list[float]:
    """Median vectors/s of each (module, forward, train_step) in `candidates`. The candidates
    take turns within every repeat, so load from other processes hits them alike."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)

    def run(module, forward, train_step):
        module.train(train)
        for _ in range(iters):
            if train:
                train_step(x.detach().requires_grad_())
            else:
                with torch.no_grad():
                    forward(x)
    times = [[] for _ in candidates]
    for candidate in candidates:
        run(*candidate)                                                     # warm-up
    for _ in range(repeats):
        for candidate, record in zip(candidates, times):
            sync()
            start = time.perf_counter()
            run(*candidate)
            sync()
            record.append(time.perf_counter() - start)
    return [len(x) * iters / statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+ cuda)")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    try:
        import vector_quantize_pytorch  # noqa: F401
        other = True
    except ImportError:
        other = False
        print("vector-quantize-pytorch is not installed: only the course's quantizer is timed. "
              "To compare: pip install vector-quantize-pytorch -c constraints.txt\n")

    header = "| device | N | D | K | mode | course (vectors/s) |"
    rule = "|---|---|---|---|---|---|"
    if other:
        header += " lucidrains (vectors/s) | ratio course/lucidrains |"
        rule += "---|---|"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, median of "
          f"{args.repeats} runs x {args.iters} calls\n")
    print(header)
    print(rule)
    for device in devices:
        for n, d, k in SIZES:
            torch.manual_seed(0)
            x = torch.randn(n, d, device=device)                            # (N, D)
            for train in (False, True):
                torch.manual_seed(0)
                candidates = [course_quantizer(d, k, device)]
                if other:
                    torch.manual_seed(0)
                    candidates.append(lucidrains_quantizer(d, k, device))
                row = vectors_per_second(candidates, x, train=train, iters=args.iters,
                                         repeats=args.repeats)
                cells = [f"{v:,.0f}" for v in row]
                if other:
                    cells.append(f"{row[0] / row[1]:.2f}")
                mode = "train step (fwd+bwd, EMA)" if train else "forward (eval)"
                print(f"| {device} | {n} | {d} | {k} | {mode} | " + " | ".join(cells) + " |",
                      flush=True)


if __name__ == "__main__":
    main()
