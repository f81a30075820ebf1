"""What does lesson 05's hourglass depend on? A sweep of the level-2 waist of residual codes.

Kuai et al. (2024, "Breaking the Hourglass Phenomenon of Residual Quantization") report that
the middle level of 3-level residual semantic IDs concentrates: lower entropy and higher Gini
than the levels around it. Lesson 05 shows it on a long-tailed catalogue built from the toy
world (item i listed 1 + floor(3 I p_i) times, p_i its Zipf popularity, each listing the
item's content plus noise of `spread` x the world's item noise) and asserts it at spread 0.6.
This script measures that waist over the knobs it could depend on: catalogue size (the
world's n_items), codebook size K, the listings' spread, the popularity skew (the world's
Zipf exponent), the number of categories (the world's tree), the quantizer (RQ-KMeans,
TIGER's RQ-VAE), and real item vectors (MovieLens ml-latest-small: movie content by LSA,
and collaborative vectors by SVD of the ratings).

The waist of one run (positive = an hourglass at level 2), as lesson 05 defines it:

    entropy waist = min(H_1, H_3) - H_2     (bits; H_l the entropy of level l's tokens)
    Gini waist    = G_2 - max(G_1, G_3)

and, less strict, against the mean of the two neighbours: (H_1 + H_3) / 2 - H_2 and
G_2 - (G_1 + G_3) / 2 (positive also when the entropy just falls level by level, more
from level 1 to 2 than from 2 to 3: a funnel, not an hourglass). Every setting runs under
several seeds (listing noise and k-means seed; the world stays at seed 0 as in the lesson,
except in block D) and the table gives min / median / max over seeds.
Statistics come from `course_lib.quantize.stats`; codes from the library's `rq_kmeans` and
`RQVAE`.

What the full sweep measured (3 seeds, RQ-KMeans): the waist needs crowds of
near-duplicates tighter than the items' own scatter (spread 0.6; never with the items
once, never at spread 1.0) AND a first level with fewer codes than the catalogue has fine
categories (leaves / K about 1.4 to 10). When K reaches the number of leaves, level 1 is
the concentrated level and the entropy rises level by level. Catalogue size itself is not
the cause: the lesson's K (about sqrt(2 I)) grows from 32 to 128 with the catalogue while
the world's tree stays at 45 leaves; a tree grown with the catalogue (one top category
per 100 items) gives the full world the quick world's waist. MovieLens shows no
hourglass: its concentration grows level by level.

    COURSE_DATA_DIR=/work/shared/datasets nice -n 10 python bench/hourglass.py --quick
    python bench/hourglass.py --full --json hourglass.json

Names: N vectors (listings or items), D width, L = 3 levels, K codes per level, I items.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from course_lib.data.datasets import standardise
from course_lib.data.world import WorldConfig, make_world
from course_lib.quantize import stats
from course_lib.quantize.kmeans import rq_kmeans
from course_lib.models.rqvae import RQVAE, RQVAEConfig
from course_lib.quantize.residual import RQConfig
from course_lib.train import fit, shuffled_batches

N_LEVELS = 3
COPIES_PER_ITEM = 3          # lesson 05: item i gets 1 + floor(3 I p_i) listings
QUANTIZERS = ("rq-kmeans", "rq-vae")


# ---- the measurement ------------------------------------------------------------------------

def waist_of_codes(codes: Tensor, codebook_size: int) -> dict[str, float]:
    """The level-2 waist of 3-level codes (N, 3): entropy and Gini waists as lesson 05
    defines them (against the better neighbour) and against the neighbours' mean, plus each
    level's entropy (bits), Gini and utilisation. Positive waists mean an hourglass."""
    if codes.dim() != 2 or codes.shape[1] != N_LEVELS:
        raise ValueError(f"the waist is defined for {N_LEVELS}-level codes (N, 3), got shape "
                         f"{tuple(codes.shape)}")
    table = stats.level_stats(codes, codebook_size)
    h, g, u = table["entropy_bits"], table["gini"], table["utilisation"]
    return {"entropy_waist": min(h[1], h[3]) - h[2],
            "entropy_waist_mean": (h[1] + h[3]) / 2 - h[2],
            "gini_waist": g[2] - max(g[1], g[3]),
            "gini_waist_mean": g[2] - (g[1] + g[3]) / 2,
            **{f"H{l}": h[l] for l in table.index}, **{f"G{l}": g[l] for l in table.index},
            **{f"U{l}": u[l] for l in table.index}}


def quantize(vectors: Tensor, codebook_size: int, quantizer: str = "rq-kmeans",
             seed: int = 0, rqvae_steps: int = 800) -> Tensor:
    """Codes (N, 3) of `vectors` (N, D). rq-kmeans: the library's `rq_kmeans` with one
    k-means++ start per level, as lesson 05's sweep. rq-vae: TIGER's RQ-VAE at lesson 05's
    small sizes (hidden 64, latent 8, dead codes re-seeded below 0.1), `rqvae_steps` Adam
    steps of batch 256 at lr 1e-3 on the vectors scaled by one common factor."""
    if quantizer == "rq-kmeans":
        return rq_kmeans(vectors, n_levels=N_LEVELS, codebook_size=codebook_size, seed=seed,
                         n_init=1).codes
    if quantizer == "rq-vae":
        return _rqvae_codes(vectors, codebook_size, seed, rqvae_steps)
    raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {quantizer!r}")


def _rqvae_codes(vectors: Tensor, codebook_size: int, seed: int, steps: int) -> Tensor:
    torch.manual_seed(seed)
    x = standardise(vectors, per_feature=False)
    model = RQVAE(RQVAEConfig(input_dim=x.shape[1], hidden_dims=(64,),
                              quantizer=RQConfig(n_levels=N_LEVELS, codebook_size=codebook_size,
                                                 dim=8, dead_code_threshold=0.1)))
    fit(model, lambda epoch: shuffled_batches({"x": x}, 256, seed=seed * 1000 + epoch),
        steps=steps, lr=1e-3, progress=False)
    model.eval()
    return model.codes(x)


def measure_waist(vectors: Tensor, codebook_size: int, quantizer: str = "rq-kmeans",
                  seed: int = 0, rqvae_steps: int = 800) -> dict[str, float]:
    """Quantize `vectors` (N, D) into 3 levels of `codebook_size` codes and measure the
    waist (`waist_of_codes`)."""
    codes = quantize(vectors, codebook_size, quantizer, seed, rqvae_steps)
    return waist_of_codes(codes, codebook_size)


# ---- the data: listings of the world's items, MovieLens items --------------------------------

def listings(content: Tensor, popularity: np.ndarray, spread: float | None,
             noise_scale: float, seed: int = 0) -> Tensor:
    """Lesson 05's long-tailed catalogue: item i (row i of content (I, D)) listed
    1 + floor(3 I p_i) times, p_i = popularity / its sum, each listing the item's vector plus
    Gaussian noise of `spread` x `noise_scale` per coordinate. spread None: the items
    themselves, once each."""
    if spread is None:
        return content
    p = np.asarray(popularity, dtype=float)
    p = p / p.sum()
    copies = 1 + np.floor(p * COPIES_PER_ITEM * len(content)).astype(int)
    owner = np.repeat(np.arange(len(content)), copies)                     # listing -> item
    noise = np.random.default_rng(seed).normal(size=(len(owner), content.shape[1]))
    return content[owner] + torch.tensor(noise * spread * noise_scale, dtype=torch.float32)


@dataclass(frozen=True)
class Source:
    """Item vectors with a popularity and a per-coordinate noise scale for listings."""

    name: str
    content: Tensor           # (I, D)
    popularity: np.ndarray    # (I,)
    noise_scale: float        # per coordinate; the world's item noise


_SOURCES: dict = {}


def world_source(n_items: int, tree: tuple[int, int, int] = WorldConfig.tree,
                 zipf_exponent: float = 1.0, seed: int = 0) -> Source:
    """The world as lesson 05's profiles build it, 2 users per item (quick: 1,000 users and
    500 items; full: 10,000 and 5,000: the users change which id an item gets, hence which
    noise a listing draws), with the given category tree, Zipf exponent and world seed."""
    key = ("world", n_items, tree, zipf_exponent, seed)
    if key not in _SOURCES:
        world = make_world(WorldConfig(n_users=2 * n_items, n_items=n_items, tree=tree,
                                       zipf_exponent=zipf_exponent, seed=seed))
        _SOURCES[key] = Source(f"world {n_items}", torch.tensor(world.content[1:]),
                               world.items["popularity"].to_numpy(),
                               world.config.content_noise / np.sqrt(world.config.content_dim))
    return _SOURCES[key]


def movielens_source(kind: str, dim: int = 32) -> Source:
    """ml-latest-small movies (from $COURSE_DATA_DIR, never downloaded here). kind "content":
    title words, genres and decade by LSA (`movie_content`); "ratings": a truncated SVD of who
    rated what (`svd_item_vectors`); both unit length. Popularity: the number of ratings, + 1
    so unrated movies keep one listing. Noise scale: the median distance from a movie to its
    nearest neighbour over sqrt(2 D), the per-coordinate noise that puts two copies of one
    movie that far apart (on the world it is 0.8 x the world's item noise)."""
    if ("movielens", kind) not in _SOURCES:
        from course_lib.data.movielens import load_movielens, movie_content
        from course_lib.models.mf import svd_item_vectors
        try:
            ml = load_movielens(download=False)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}\nOr run this benchmark with --no-movielens.") \
                from error
        ratings = np.bincount(ml.interactions["item"], minlength=ml.n_items + 1)[1:]
        vectors = {"content": lambda: torch.tensor(movie_content(ml.items, dim=dim)[1:]),
                   "ratings": lambda: svd_item_vectors(ml.interactions, ml.n_items, dim=dim)}
        if kind not in vectors:
            raise ValueError(f"MovieLens kind must be one of {sorted(vectors)}, got {kind!r}")
        x = vectors[kind]()
        _SOURCES["movielens", kind] = Source(f"MovieLens {kind} {ml.n_items}", x,
                                             ratings + 1.0, _nearest_neighbour_scale(x))
    return _SOURCES["movielens", kind]


def _nearest_neighbour_scale(x: Tensor, block: int = 1024) -> float:
    nearest = []
    for start in range(0, len(x), block):
        d = torch.cdist(x[start:start + block], x)                         # (block, I)
        d[torch.arange(len(d)), torch.arange(start, start + len(d))] = float("inf")
        nearest.append(d.min(dim=1).values)
    return float(torch.cat(nearest).median()) / np.sqrt(2 * x.shape[1])


# ---- the sweep ----------------------------------------------------------------------------

RQVAE_EPOCHS = 120           # lesson 05 quick: 800 steps x 256 over 1,735 listings


@dataclass(frozen=True)
class Setting:
    block: str                           # the table this row belongs to
    source: str = "world"                # "world", "movielens content", "movielens ratings"
    n_items: int = 500                   # the world's knobs (ignored for MovieLens) ...
    tree: tuple[int, int, int] = (5, 3, 3)
    zipf: float = 1.0
    world_seed: int = 0
    spread: float | None = 0.6           # None: the items themselves, no listings
    codebook_size: int = 32
    quantizer: str = "rq-kmeans"

    @property
    def leaves(self) -> int | None:
        return int(np.prod(self.tree)) if self.source == "world" else None


def lesson_k(n_items: int) -> int:
    """Lesson 05's codebook size: about sqrt(2 I) codes per level, a power of two."""
    return 2 ** round(np.log2(n_items) / 2 + 0.5)


def source_of(setting: Setting) -> Source:
    if setting.source == "world":
        return world_source(setting.n_items, setting.tree, setting.zipf, setting.world_seed)
    return movielens_source(setting.source.removeprefix("movielens "))


def run_setting(setting: Setting, seeds) -> dict:
    """One row: the waist of `setting` under every seed (listing noise and quantizer seed)."""
    source = source_of(setting)
    runs, started = [], time.perf_counter()
    for seed in seeds:
        x = listings(source.content, source.popularity, setting.spread, source.noise_scale,
                     seed)
        steps = -(-RQVAE_EPOCHS * len(x) // 256)
        runs.append(measure_waist(x, setting.codebook_size, setting.quantizer, seed, steps))
    return {**asdict(setting), "name": source.name, "leaves": setting.leaves,
            "vectors": len(x), "seeds": list(seeds),
            "runs": {key: [float(r[key]) for r in runs] for key in runs[0]},
            "seconds": time.perf_counter() - started}


LESSON_SIZES = (500, 5000)   # the quick and the full profile's worlds
SIZES = (500, 2000, 5000)


def grown_tree(n_items: int) -> tuple[int, int, int]:
    """The lesson's tree with one top category per 100 items (5 x 3 x 3 at 500 items), so
    that every leaf keeps about 11 items whatever the catalogue size."""
    return (n_items // 100, 3, 3)


def quick_settings() -> list[Setting]:
    """The lesson's two worlds at the lesson's K (spread 0.6 and 1.0), the full world with a
    tree grown with it, MovieLens content."""
    out = []
    for n in LESSON_SIZES:
        for tree in sorted({(5, 3, 3), grown_tree(n)}):
            for spread in (0.6, 1.0):
                out.append(Setting("quick", n_items=n, tree=tree, spread=spread,
                                   codebook_size=lesson_k(n)))
    out += [Setting("quick", "movielens content", spread=None, codebook_size=k)
            for k in (32, 128)]
    return out


def full_settings() -> list[Setting]:
    out = []
    block = "A. the lesson's world (tree 5x3x3 = 45 leaves), spread 0.6: size x K"
    out += [Setting(block, n_items=n, codebook_size=k) for n in SIZES
            for k in (16, 32, 64, 128, 256)]
    block = "B. the lesson's world at the lesson's K: spread, popularity skew, items once"
    for n in SIZES:
        k = lesson_k(n)
        out += [Setting(block, n_items=n, spread=s, codebook_size=k) for s in (0.2, 1.0, None)]
        out += [Setting(block, n_items=n, zipf=z, codebook_size=k) for z in (0.6, 1.4)]
    block = "C. more categories: leaves x K, spread 0.6"
    trees = {500: [(2, 3, 3), (15, 3, 3), (25, 3, 3)], 2000: [(20, 3, 3), (60, 3, 3)],
             5000: [(15, 3, 3), (50, 3, 3), (150, 3, 3), (5, 3, 30), (5, 9, 10)]}
    ks = {500: (16, 32, 64), 2000: (32, 64, 128), 5000: (32, 128, 256)}
    for n in SIZES:
        for tree in trees[n]:
            grown = tree[1:] == (3, 3)
            out += [Setting(block, n_items=n, tree=tree, codebook_size=k)
                    for k in (ks[n] if grown else (128,))]
    block = "D. a tree grown with the catalogue (about 11 items per leaf), the lesson's K"
    for n in SIZES:
        for world_seed in (0, 1, 2):
            for spread in (0.2, 0.6, 1.0):
                if world_seed == 0 and spread == 0.6 and n != 500:
                    continue                                               # in block C
                if n == 500 and world_seed == 0:
                    continue                                               # blocks A, B
                out.append(Setting(block, n_items=n, tree=grown_tree(n), world_seed=world_seed,
                                   spread=spread, codebook_size=lesson_k(n)))
    block = f"E. TIGER's RQ-VAE ({RQVAE_EPOCHS} epochs), spread 0.6, the lesson's K"
    out += [Setting(block, n_items=n, tree=tree, codebook_size=lesson_k(n), quantizer="rq-vae")
            for n in LESSON_SIZES for tree in sorted({(5, 3, 3), grown_tree(n)})]
    block = "F. MovieLens ml-latest-small: the movies once each, and listings at spread 0.6"
    for kind in ("movielens content", "movielens ratings"):
        out += [Setting(block, kind, spread=None, codebook_size=k) for k in (16, 32, 64, 128, 256)]
        out += [Setting(block, kind, spread=0.6, codebook_size=k) for k in (32, 128)]
    return out


# ---- the report ---------------------------------------------------------------------------

LESSON_THRESHOLDS = (0.1, 0.03)   # lesson 05 asserts entropy waist > 0.1, Gini waist > 0.03


def _span(values, digits=2) -> str:
    return (f"{min(values):+.{digits}f} / {statistics.median(values):+.{digits}f} / "
            f"{max(values):+.{digits}f}")


def markdown_table(rows: list[dict]) -> str:
    """One line per setting; waists as min / median / max over seeds."""
    header = ("| data | tree (leaves) | zipf | quantizer | spread | N | K | leaves / K | N / K^2 "
              "| entropy waist, bits | vs mean | Gini waist | vs mean | H1 / H2 / H3 | "
              "G1 / G2 / G3 | min util. | hourglass | lesson's thresholds |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        r = row["runs"]
        med = {key: statistics.median(v) for key, v in r.items()}
        world = row["source"] == "world"
        pairs = list(zip(r["entropy_waist"], r["gini_waist"]))
        hourglass = sum(h > 0 and g > 0 for h, g in pairs)
        lesson = sum(h > LESSON_THRESHOLDS[0] and g > LESSON_THRESHOLDS[1] for h, g in pairs)
        data = f"{row['name']}" + (f", world seed {row['world_seed']}" if world else "")
        tree = "x".join(map(str, row["tree"])) + f" ({row['leaves']})" if world else "-"
        per_code = f"{row['leaves'] / row['codebook_size']:.2f}" if world else "-"
        lines.append(
            f"| {data} | {tree} | {row['zipf'] if world else '-'} | {row['quantizer']} | "
            f"{'items' if row['spread'] is None else row['spread']} | {row['vectors']} | "
            f"{row['codebook_size']} | "
            f"{per_code} | "
            f"{row['vectors'] / row['codebook_size'] ** 2:.2f} | "
            f"{_span(r['entropy_waist'])} | {med['entropy_waist_mean']:+.2f} | "
            f"{_span(r['gini_waist'], 3)} | {med['gini_waist_mean']:+.3f} | "
            f"{med['H1']:.2f} / {med['H2']:.2f} / {med['H3']:.2f} | "
            f"{med['G1']:.2f} / {med['G2']:.2f} / {med['G3']:.2f} | "
            f"{min(min(r['U1']), min(r['U2']), min(r['U3'])):.2f} | "
            f"{hourglass}/{len(pairs)} | {lesson}/{len(pairs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small sweep (a few minutes)")
    size.add_argument("--full", action="store_true", help="the whole sweep (default)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="write every row, all seeds, as JSON")
    parser.add_argument("--no-movielens", action="store_true",
                        help="skip MovieLens (when ml-latest-small is not in $COURSE_DATA_DIR)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    torch.set_num_threads(args.threads)
    settings = quick_settings() if args.quick else full_settings()
    if args.no_movielens:
        settings = [s for s in settings if s.source == "world"]
    seeds = range(args.seeds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), seeds "
          f"{list(seeds)}. Waists: level 2 below (entropy) / above (Gini) its neighbours, "
          "min / median / max over seeds; > 0 is an hourglass.\n", flush=True)
    rows, started = [], time.perf_counter()
    for setting in settings:
        rows.append(run_setting(setting, seeds))
        print(markdown_table(rows[-1:]).splitlines()[-1], f"{rows[-1]['seconds']:.0f} s",
              flush=True)
    for block in dict.fromkeys(row["block"] for row in rows):
        print(f"\n### {block}\n\n" + markdown_table([r for r in rows if r["block"] == block]))
    print(f"\n{len(rows)} settings x {len(seeds)} seeds in {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
