"""Reproduce the papers' tables: popularity, SASRec (BCE and softmax), HSTU, TIGER and PinRec on
a real dataset under one protocol, printed beside the published numbers.

    python bench/reproduce.py --dataset amazon-toys --json toys.json  # every model, laptop recipe
    python bench/reproduce.py --dataset ml-1m --device cuda           # every model, paper sizes
    python bench/reproduce.py --dataset amazon-beauty --models sasrec-bce,tiger --budget 20
    python bench/reproduce.py --sequences Toys_and_Games.txt --attributes Toys_and_Games_item2attributes.json
    python bench/reproduce.py --dataset movielens --epochs 2 --json results.json   # a CPU smoke run

Recipes (`course_lib.recipes`). On a CPU the default is the laptop recipe: each model trains
for at most an hour (`--budget` minutes), validation included, with TIGER at a laptop size; on
a GPU the paper recipe: the papers' sizes and no time limit (`--recipe` picks either). The table prints the best validation NDCG@10 each model
had reached after 10, 20, 40 and 60 minutes, so the cost of quality is visible, and the test
metrics of the epoch of best validation NDCG@10. A sequence file named like an Amazon category
of the S3Rec preprocessing (Toys_and_Games.txt, ...) is compared with that category's numbers.

Datasets: the names of `course_lib.data.datasets.load_dataset` (movielens = ml-latest-small,
ml-1m, ml-20m, amazon-beauty, amazon-sports, amazon-toys), or your own sequence file (one
line per user, `user item item ...`, the S3Rec/RecBole layout) or interactions table, with
an optional item-attributes JSON as TIGER's content.

Protocol, the same for every model: leave-one-out (each user's last item is the test target,
the one before it the validation target), full ranking over the whole catalogue under the
split's rule for seen items (excluded on MovieLens and Amazon, where no test target repeats
its history; `train.protocol` prints it), HR@K (= Recall@K with one target; hits are items,
never a partial match of TIGER's ID) and NDCG@K on the TEST targets,
with the weights of the epoch of best validation NDCG@10 (early stopping after --patience
epochs without gain; --epochs caps the run, e.g. for a CPU). One training loop
(`train.fit`), one evaluation (`train.evaluate_model`); the models are built as lessons 01,
06, 07 and 08 build them.

Where the published numbers come from, and what differs (read a gap with these in mind):
* ML-1M and ML-20M, SASRec and HSTU: the README of the HSTU reference code
  (facebookresearch/generative-recommenders), full ranking. That SASRec was trained with
  sampled softmax, so it is printed beside our full-softmax "sasrec-softmax". The README
  does not say which epoch its numbers come from; asked why last-epoch numbers came out
  lower (the repository's issue #61), the maintainer answered to stop early on a validation
  set. The reference code trains on each sequence minus its last item, so the second to
  last, our validation target, is a training target there; we never train on it (targets
  are all but the last two items; it is read as input for the test) and choose the epoch of
  best validation NDCG@10 on it, so our models learn from one target fewer per user.
* Amazon Beauty, Sports, Toys: the TIGER paper (Rajput et al. 2023, NeurIPS), its table of
  Recall@5/10 and NDCG@5/10; its SASRec rows are copied from earlier papers and used BCE, so
  they sit beside "sasrec-bce". TIGER there encodes item text with Sentence-T5 and an RQ-VAE
  (3 levels x 256 codes) and trains 200k steps; here the content is TF-IDF + SVD of the same
  fields and the IDs are RQ-KMeans (lesson 06's choice), trained for --epochs.
* MovieLens movies that nobody rated stay in the catalogue as cold items (the loader keeps
  every movie of movies.dat), so they are ranked too. ml-1m's and ml-20m's same-second
  ratings and Amazon's same-day reviews are ordered by a seeded shuffle, never by the files'
  order, and so are ml-latest-small's (`movielens`).
* PinRec publishes only Pinterest's own data, so its row has no published value. These
  datasets have no outcomes to condition on, so it runs with lesson 08's unconditioned head
  at window 1 (next-item retrieval), every event read as the one action "engaged".
* The SASRec paper's own ML-1M numbers (HR@10 .8245, NDCG@10 .5905) rank the target among
  100 sampled negatives, not the full catalogue: a different protocol, not comparable here.
* The S3Rec files keep same-day reviews in the order S3Rec wrote them (they carry no
  timestamps to shuffle ties by); the official files are shuffled within a day.
The sizes of SASRec, HSTU and PinRec follow each source's setting (SETTINGS); TIGER's follow
the recipe.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run as `python bench/reproduce.py` from anywhere
    sys.path.insert(0, str(ROOT))

from course_lib import get_device, get_profile, seed_everything  # noqa: E402
from course_lib.data.datasets import AMAZON, Dataset, load_dataset  # noqa: E402
from course_lib.recipes import MODELS, PUBLISHED, SOURCES, Run, recipe_for, train  # noqa: E402
from course_lib.train import evaluate_model, protocol  # noqa: E402

CUTOFFS = (5, 10, 50, 200)             # TIGER, which ranks by beam search, reports 5 and 10



CURVE_MINUTES = (10, 20, 40, 60)       # validation NDCG@10 (best so far) at these minutes


# --- the run ---------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a load_dataset name, e.g. ml-1m or amazon-beauty")
    source.add_argument("--sequences", help="your file: `user item item ...` per line, or an "
                                            "interactions table (.csv, .parquet)")
    parser.add_argument("--attributes", help="item attributes JSON {item: [ids]} (with "
                                             "--sequences): TIGER's content")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {','.join(MODELS)}")
    parser.add_argument("--recipe", choices=("laptop", "paper"),
                        help="laptop: an hour per model, TIGER at a laptop size; paper: "
                             "the papers' sizes, no time limit (default: laptop on a CPU, "
                             "paper on a GPU)")
    parser.add_argument("--budget", type=float, help="minutes of training per model (default: "
                                                     "60 with the laptop recipe)")
    parser.add_argument("--epochs", type=int, help="cap on epochs per model (default: 1000 "
                                                   "with the laptop recipe, else the profile's)")
    parser.add_argument("--patience", type=int, default=10,
                        help="epochs without validation gain before stopping (default 10)")
    parser.add_argument("--max-len", type=int, help="override the dataset's max_len")
    parser.add_argument("--d-model", type=int, help="override the dataset's width")
    parser.add_argument("--profile", help="quick or full (default: COURSE_PROFILE, else full "
                                          "on a GPU and quick on a CPU)")
    parser.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the rows to this file as JSON")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown or not models:
        parser.error(f"unknown models {unknown}; choose from {','.join(MODELS)}")
    if args.attributes and not args.sequences:
        parser.error("--attributes goes with --sequences (built-in datasets bring content)")
    for name in ("epochs", "patience", "max_len", "d_model"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be > 0 minutes, got {args.budget}")
    args.models = models
    return args


def load(args, profile) -> tuple[Dataset, str]:
    if args.sequences:
        data = load_dataset(args.sequences, profile, attributes=args.attributes,
                            seed=args.seed)
        s3rec = {category: name for name, category in AMAZON.items()}   # Toys_and_Games.txt
        return data, s3rec.get(Path(args.sequences).stem, data.name)
    data = load_dataset(args.dataset, profile, seed=args.seed)
    if data.name != args.dataset:          # "movielens" falls back to the world when absent
        raise SystemExit(f"{args.dataset} could not be read (see above); reproduce.py runs on "
                         "real data only: set COURSE_DATA_DIR to the folder that holds it")
    return data, data.name


def run_model(name, data, dataset, run: Run) -> dict:
    seed_everything(run.seed)
    start = time.perf_counter()
    model, result = train(name, data, run)
    seconds = time.perf_counter() - start
    cutoffs = (5, 10) if name == "tiger" else CUTOFFS
    ks = tuple(k for k in cutoffs if k <= data.n_items)
    metrics = evaluate_model(model, data.split.evaluation("test"), ks=ks, device=run.device)
    published = PUBLISHED.get((dataset, name), {})
    return {"model": name, "dataset": dataset, "split": "test", **metrics,
            "best_epoch": None if result is None else result.best_epoch,
            "epochs_run": None if result is None else len(result.train_loss),
            "train_seconds": round(seconds, 1), "valid_curve": curve(result),
            "published": published, "source": SOURCES.get(dataset) if published else None}


def curve(result) -> dict[str, float] | None:
    """The best validation NDCG@10 reached within each of CURVE_MINUTES ({"10": ..., ...}),
    from the time fit recorded at the end of every epoch; None without training."""
    if result is None or not result.valid_metric:
        return None
    reached = {}
    for minutes in CURVE_MINUTES:
        within = [m for m, s in zip(result.valid_metric, result.seconds) if s <= 60 * minutes]
        if within:
            reached[str(minutes)] = max(within)
    return reached


def table(rows: list[dict]) -> str:
    """A Markdown table: ours beside the published value of each metric the source gives, the
    validation curve against minutes, and the minutes trained."""
    marks = " | ".join(f"valid N@10 @{m} min" for m in CURVE_MINUTES)
    lines = [f"| model | R@5 | R@10 | N@5 | N@10 | published R@10 | published N@10 | {marks} "
             "| best epoch / run | minutes |", "|---|" + "---:|" * (8 + len(CURVE_MINUTES))]
    show = lambda v: "" if v is None else f"{v:.4f}"                        # noqa: E731
    for r in rows:
        p, points = r["published"], r.get("valid_curve") or {}
        epochs = "" if r["best_epoch"] is None else f"{r['best_epoch']} / {r['epochs_run']}"
        reached = " | ".join(show(points.get(str(m))) for m in CURVE_MINUTES)
        lines.append(f"| {r['model']} | {show(r.get('HR@5'))} | {show(r.get('HR@10'))} | "
                     f"{show(r.get('NDCG@5'))} | {show(r.get('NDCG@10'))} | "
                     f"{show(p.get('HR@10'))} | {show(p.get('NDCG@10'))} | {reached} | "
                     f"{epochs} | {r['train_seconds'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    profile = get_profile(args.profile)
    device = get_device(args.device)
    data, dataset = load(args, profile)
    recipe = recipe_for(dataset, device, args.recipe)
    settings = replace(recipe.sequence, max_len=args.max_len or recipe.sequence.max_len,
                       d_model=args.d_model or recipe.sequence.d_model)
    recipe = replace(recipe, sequence=settings)
    minutes = args.budget or recipe.minutes
    run = Run(recipe, epochs=args.epochs or (1000 if recipe.kind == "laptop" else profile.epochs),
              patience=args.patience, budget=None if minutes is None else 60 * minutes,
              device=device, seed=args.seed, progress=True)
    lengths = np.array([len(s) + 2 for s in data.split.train.values()])
    print(f"{dataset}: {len(lengths):,} users, {data.n_items:,} items, {lengths.sum():,} "
          f"interactions (mean {lengths.mean():.1f} per user, {data.split.n_dropped} users "
          f"with < 3 dropped); device {device}, {recipe.kind} recipe, at most {run.epochs} epochs"
          + (f" and {minutes:g} minutes" if minutes else "") + f" per model, patience "
          f"{run.patience}")
    print(f"sequence models: {settings}\nTIGER: {recipe.tiger}\nPinRec: lr {recipe.pinrec_lr}")
    rows = []
    for name in args.models:
        rows.append(run_model(name, data, dataset, run))
        print(f"  {name}: HR@10 {rows[-1].get('HR@10', float('nan')):.4f}, NDCG@10 "
              f"{rows[-1].get('NDCG@10', float('nan')):.4f} ({rows[-1]['train_seconds']:.0f} s)",
              flush=True)
        if args.json:                          # after every model: an hour's run is never lost
            write_json(Path(args.json), rows)
    print(f"\ntest split; {protocol(data.split.evaluation('test'))}; best epoch on validation "
          "NDCG@10; R@K = HR@K with one target per user\n")
    print(table(rows))
    sources = sorted({r["source"] for r in rows if r["source"]})
    for source in sources:
        print(f"\npublished: {source}")
    if not sources:
        print(f"\nno published numbers for {dataset}")
    return rows


def write_json(path: Path, rows: list[dict]) -> None:
    """The rows as JSON, atomically: a temporary file beside `path`, then a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows, indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
