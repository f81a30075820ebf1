"""Benchmark retrieval: batched trie-constrained beam search against a per-beam Python loop,
and faiss IVF against exact top-k inner product; prints Markdown tables.

    python bench/retrieval.py                         # CPU, both parts
    python bench/retrieval.py --device cuda           # beam search on the GPU
    python bench/retrieval.py --sizes 100000          # the index part at one size only
    python bench/retrieval.py --parts beam            # only the beam search
    python bench/retrieval.py --threads 1             # on a busy shared CPU

**Beam search.** A catalogue of random semantic IDs (3 levels x 256 codes, uniform, plus the
collision token), 256 users, beam 20, top-10 items. The "model" is a cheap fixed table:
the logit of token t at position d for user u after prefix p is user[d][u, t] +
transition[d][p[-1], t] (gathers and adds only), so the time measured is the search's. The
straightforward search is written here as a first port would: for each user, for each beam,
ask the trie for the valid next tokens of one prefix and the model for one row of logits,
extend, sort the candidates and keep the best W. It sums float32 log-probabilities like the
batched search and sorts stably (ties: earlier beam, then smaller token), so both must
return the same items with the same log-probabilities; the script asserts it.

**Item index.** Item vectors (I, 64) from a seeded Gaussian mixture (one centre per 1,000
items, centres and noise both standard normal), queries drawn from the same mixture. Top-10
by inner product: exact in torch (`ItemIndex`, "exact"), faiss IndexFlatIP, and faiss
IndexIVFFlat with nlist = round(sqrt(I)) at two nprobe settings, with IVF recall@10 against
exact (the share of exact's top-10 that IVF returns). Build time includes IVF training.

Timings are medians over `--repeats` runs; on a shared CPU compare ratios within one run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from course_lib.quantize.semantic_ids import SemanticIds
from course_lib.retrieval import ItemIndex, beam_items, beam_search


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, repeats: int, device: torch.device):
    """Median wall time of `fn()` over `repeats` runs, and the last result."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# --- beam search ---------------------------------------------------------------------------

def random_catalogue(n_items: int, levels: int, codes: int, seed: int) -> SemanticIds:
    gen = torch.Generator().manual_seed(seed)
    return SemanticIds.from_codes(torch.randint(0, codes, (n_items, levels), generator=gen),
                                  codebook_sizes=[codes] * levels)


def table_model(n_users: int, vocab_sizes, seed: int, device: torch.device):
    """next_token_logits(rows (N,), prefixes (N, d)) -> (N, V_d) from fixed random tables."""
    gen = torch.Generator().manual_seed(seed)
    user = [torch.randn(n_users, v, generator=gen).to(device) for v in vocab_sizes]
    transition = [None] + [torch.randn(vocab_sizes[d - 1], vocab_sizes[d], generator=gen)
                           .to(device) for d in range(1, len(vocab_sizes))]

    def next_token_logits(rows, prefixes):
        d = prefixes.shape[1]
        logits = user[d][rows]
        return logits if d == 0 else logits + transition[d][prefixes[:, -1]]
    return next_token_logits


def batched_top_k(model, ids: SemanticIds, n_users: int, beam: int, k: int):
    """The course's path: one batched constrained beam search, then beams to items."""
    return beam_items(beam_search(model, ids, n_users, beam), ids, k)


def per_beam_top_k(model, ids: SemanticIds, n_users: int, beam: int, k: int):
    """The straightforward path: Python loops over users, positions and beams."""
    device = ids.device
    item_of = {tuple(row): item + 1 for item, row in enumerate(ids.table.tolist())}
    all_items, all_log_probs = [], []
    for user in range(n_users):
        beams = [((), np.float32(0.0))]
        for d in range(ids.trie.depth):
            candidates = []
            for prefix, score in beams:
                tokens = ids.trie.valid_next_tokens(prefix)
                logits = model(torch.tensor([user], device=device),
                               torch.tensor([prefix], dtype=torch.long,
                                            device=device).reshape(1, d))
                log_probs = torch.log_softmax(logits[0], dim=-1).cpu().numpy()
                for token in tokens:
                    candidates.append((prefix + (token,), score + log_probs[token]))
            candidates.sort(key=lambda c: -c[1])                  # stable
            beams = candidates[:beam]
        all_items.append([item_of[prefix] for prefix, _ in beams[:k]])
        all_log_probs.append([float(score) for _, score in beams[:k]])
    return torch.tensor(all_items), torch.tensor(all_log_probs)


def bench_beam(args, device: torch.device) -> None:
    ids = random_catalogue(args.items, 3, 256, args.seed).to(device)
    model = table_model(args.users, ids.vocab_sizes, args.seed, device)
    fast_s, (fast_items, fast_lp) = median_seconds(
        lambda: batched_top_k(model, ids, args.users, args.beam, args.k), args.repeats, device)
    slow_s, (slow_items, slow_lp) = median_seconds(
        lambda: per_beam_top_k(model, ids, args.users, args.beam, args.k),
        max(1, args.repeats // 2), device)
    assert torch.equal(fast_items.cpu(), slow_items), "the two searches disagree on items"
    assert torch.allclose(fast_lp.cpu(), slow_lp, atol=1e-5), "log-probs disagree"
    assert (fast_items > 0).all()
    print(f"\n### Constrained beam search ({device}, {torch.get_num_threads()} CPU threads)\n")
    print(f"{ids.n_items} items, semantic IDs {' x '.join(map(str, ids.vocab_sizes))} "
          f"(3 levels x 256 codes + collision token), {args.users} users, beam {args.beam}, "
          f"top-{args.k}; same items and log-probabilities from both (asserted)\n")
    print("| search | time for all users (s, median) | users/s |\n|---|---:|---:|")
    for label, seconds in [("course_lib `beam_search` + `beam_items` (batched)", fast_s),
                           ("per-beam Python loop (trie and model one prefix at a time)",
                            slow_s)]:
        print(f"| {label} | {seconds:.4f} | {args.users / seconds:,.0f} |")
    print(f"\nspeed-up batched / per-beam loop: **{slow_s / fast_s:.0f}x**")


# --- item index ----------------------------------------------------------------------------

def gaussian_mixture(n: int, dim: int, n_centres: int, seed: int, centres=None):
    gen = torch.Generator().manual_seed(seed)
    if centres is None:
        centres = torch.randn(n_centres, dim, generator=gen)
    labels = torch.randint(0, len(centres), (n,), generator=gen)
    return centres[labels] + torch.randn(n, dim, generator=gen), centres


def recall_at_k(found: torch.Tensor, exact: torch.Tensor) -> float:
    hits = (found[:, :, None] == exact[:, None, :]).any(dim=2).sum()
    return float(hits) / exact.numel()


def bench_index(args) -> None:
    print(f"\n### Top-{args.k} inner product, exact vs faiss (CPU, "
          f"{torch.get_num_threads()} threads)\n")
    print(f"{args.queries} queries, {args.dim} dims, Gaussian mixture (one centre per 1,000 "
          f"items); build time includes IVF training; search: median of {args.repeats}\n")
    print("| items | index | nprobe | build (s) | queries/s | recall@10 vs exact |\n"
          "|---:|---|---:|---:|---:|---:|")
    for n_items in args.sizes:
        items, centres = gaussian_mixture(n_items, args.dim, max(1, n_items // 1000), args.seed)
        vectors = torch.cat([torch.zeros(1, args.dim), items])            # (I + 1, D)
        queries, _ = gaussian_mixture(args.queries, args.dim, 0, args.seed + 1, centres)
        exact_items = None
        setups = [("exact (torch)", "exact", [None]), ("faiss flat", "faiss-flat", [None]),
                  ("faiss IVF", "faiss-ivf", args.nprobe)]
        for label, backend, probes in setups:
            start = time.perf_counter()
            index = ItemIndex(vectors, backend)
            build = time.perf_counter() - start
            for nprobe in probes:
                if nprobe is not None:
                    index.nprobe = min(nprobe, index.nlist)
                seconds, (_, found) = median_seconds(lambda: index.search(queries, args.k),
                                                     args.repeats, torch.device("cpu"))
                if exact_items is None:
                    exact_items = found
                recall = recall_at_k(found, exact_items)
                shown = f"{index.nprobe} / {index.nlist}" if nprobe else "-"
                print(f"| {n_items:,} | {label} | {shown} | {build:.2f} | "
                      f"{args.queries / seconds:,.0f} | {recall:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["beam", "index"],
                        choices=["beam", "index"])
    parser.add_argument("--device", default="cpu", help="device of the beam search")
    parser.add_argument("--items", type=int, default=20_000, help="beam-search catalogue")
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--beam", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="catalogue sizes of the index part")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch and faiss (default: their choice); on a "
                             "shared machine 1 avoids oversubscription")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            import faiss
            faiss.omp_set_num_threads(args.threads)
        except ImportError:
            pass
    print(f"torch {torch.__version__}")
    if "beam" in args.parts:
        bench_beam(args, torch.device(args.device))
    if "index" in args.parts:
        bench_index(args)


if __name__ == "__main__":
    main()
