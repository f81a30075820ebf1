"""One entry point to the course's data: `load_dataset` gives a dataset as a leave-one-out
split, with the item table and the items' content vectors.

    data = load_dataset()                 # the profile's dataset: the world (quick) or MovieLens
    data = load_dataset("amazon-beauty")  # a paper's dataset (downloaded once, when online)
    data = load_dataset("my_log.csv")     # your own file
    data.split.train, data.split.evaluation("test"), data.content, data.items["label"]

The names (`DATASETS`):

    world           the generated toy world (its size from the profile)
    movielens       MovieLens ml-latest-small, the lessons' real data
    ml-1m, ml-20m   MovieLens 1M and 20M (SASRec's and HSTU's benchmarks)
    amazon-beauty, amazon-sports, amazon-toys
                    Amazon 2014 5-core Beauty, Sports_and_Outdoors, Toys_and_Games (TIGER's):
                    the official review and metadata files in amazon-2014/ (titles, brands,
                    categories and prices as content), or else the S3Rec sequence files in
                    amazon-s3rec/ (`s3rec_files`: item attributes as content, no titles, no
                    timestamps: positions order the events)

and any other name is the path of your own data (`interactions`): an interactions table
(.csv, .tsv, .parquet: user, item, timestamp[, action][, rating]) or a sequence file (any
other suffix, e.g. .txt: `user item item ...` per line), with `attributes=` an optional
JSON {item: [attribute ids]} as the items' content. Without attributes, your items' content
is their co-occurrence in the training sequences (behaviour, not content: say so when you
use it for semantic IDs). Events at the same timestamp are ordered by a shuffle seeded
with `seed` (`interactions.chronological`), never by the file's order.

Every split names how it is evaluated (`Split.seen`, `metrics.SEEN`): the world "allow"s
repeats (its users come back to items by design: a third of its test targets repeat a history
item), MovieLens, Amazon and your own data "exclude" seen items (nobody rates a film or
reviews a product twice there, so no test target repeats its history; as SASRec's own
evaluation, which draws its negatives outside the history). RecBole masks nothing for its
sequential models; whichever rule, the mask never depends on the target.

Every dataset is turned into sequences the same way: each user's consumed items in time
order (for the world, its clicks, likes and conversions, `world.CONSUMED`; for your table
with actions, the `positive_actions`; otherwise every event), with the actions and
timestamps of those events kept beside them (`Split`). `event_stream` gives HSTU and PinRec
every event instead, with actions they can read.
`standardise` is the one way lessons scale content vectors before a quantizer sees them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from course_lib.data.amazon import CATEGORIES, amazon_content, category_name, load_amazon
from course_lib.data.amazon import FOLDER as AMAZON_FOLDER
from course_lib.data.amazon import file_names as amazon_file_names
from course_lib.data.content import lsa_content
from course_lib.data.download import default_data_dir
from course_lib.data.interactions import (TABLE_SUFFIXES, attribute_documents,
                                          read_interactions, read_sequences)
from course_lib.data.movielens import ML_1M, ML_20M, load_movielens, movie_content
from course_lib.data.sequences import Split, leave_one_out, user_events, user_sequences
from course_lib.data.world import ACTIONS, CONSUMED, make_world
from course_lib.device import Profile, get_profile

AMAZON = {f"amazon-{short}": category for short, category in CATEGORIES.items()}
S3REC_FOLDER = "amazon-s3rec"
DATASETS = ("world", "movielens", ML_1M, ML_20M, *AMAZON)


@dataclass
class Dataset:
    """A dataset ready for the lessons. Item ids are 1..I everywhere; row 0 of `content` is
    padding (zeros)."""

    name: str                    # a name of DATASETS, or your file's name
    interactions: pd.DataFrame   # user, item, timestamp (+ action in the world, rating in MovieLens)
    items: pd.DataFrame          # one row per item, with a short `label` for plots and tables
    content: np.ndarray          # (I + 1, X) float32 content vectors
    split: Split
    has_timestamps: bool = True  # False for a sequence file: timestamps are positions
    positive_actions: tuple[str, ...] | None = None   # your data's consumed actions (None: all)

    @property
    def n_items(self) -> int:
        return self.split.n_items


def load_dataset(name: str | Path | None = None, profile: Profile | None = None, *,
                 attributes: str | Path | None = None,
                 positive_actions: tuple[str, ...] | None = None,
                 data_dir: str | Path | None = None, seed: int = 0) -> Dataset:
    """The dataset `name` (one of DATASETS, default: the profile's) or your own file at the
    path `name` (see the module docstring), sized by the profile (the world).

    attributes: your items' attribute JSON (own data only). positive_actions: the actions of
    your interactions table that count as consumed, e.g. ("buy",) (None: every action).
    data_dir: where the built-in datasets are (default: $COURSE_DATA_DIR or data/).
    seed: the shuffle that orders same-timestamp events (every dataset but the world).

    When "movielens" is asked for but cannot be read (offline, no local copy), the reason is
    printed and the world is used instead, so a lesson still runs; the other datasets raise,
    saying which files to put where."""
    profile = profile or get_profile()
    name = name or profile.dataset
    if (attributes is not None or positive_actions is not None) and name in DATASETS:
        raise ValueError(f"attributes= and positive_actions= are for your own files; {name!r} "
                         "brings its own content and actions")
    if name == "movielens":
        try:
            return _movielens("ml-latest-small", "movielens", data_dir, tie_seed=seed)
        except (FileNotFoundError, RuntimeError) as err:
            print("MovieLens not available, continuing with the world:\n", err)
        return _world(profile)
    if name == "world":
        return _world(profile)
    if name in (ML_1M, ML_20M):
        return _movielens(name, name, data_dir, tie_seed=seed)
    if name in AMAZON:
        return _amazon(name, data_dir, seed)
    if Path(name).is_file():
        return _own(Path(name), attributes, positive_actions, seed)
    raise ValueError(f"unknown dataset {str(name)!r}: choose one of {DATASETS}, or give the path "
                     "of your own interactions table (.csv, .tsv, .parquet) or sequence file "
                     "(no file is at that path)")


def _world(profile: Profile) -> Dataset:
    world = make_world(profile.world)
    frame = world.interactions
    split = leave_one_out(user_sequences(frame, CONSUMED), world.n_items,
                          actions=user_events(frame, "action", CONSUMED),
                          timestamps=user_events(frame, "timestamp", CONSUMED), seen="allow")
    items = world.items.assign(label=[f"{a}/{b}/{c}" for a, b, c in
                                      zip(world.items.cat1, world.items.cat2, world.items.cat3)])
    return Dataset("world", frame, items, world.content, split)


def _movielens(release: str, name: str, data_dir, tie_seed: int | None) -> Dataset:
    ml = load_movielens(release, data_dir=data_dir, tie_seed=tie_seed)
    frame = ml.interactions
    split = leave_one_out(user_sequences(frame), ml.n_items,
                          timestamps=user_events(frame, "timestamp"))
    items = ml.items.assign(label=ml.items["title"].str.slice(0, 28))
    return Dataset(name, frame, items, movie_content(ml.items), split)


def _amazon(name: str, data_dir, seed: int) -> Dataset:
    """The official review files in amazon-2014/ when they are there, else the S3Rec sequence
    files in amazon-s3rec/, else a download of the official files; offline, an error that
    names both layouts."""
    category = AMAZON[name]
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    official = [root / AMAZON_FOLDER / f for f in amazon_file_names(category)]
    sequences, attributes = s3rec_files(category, root)
    if not all(f.is_file() for f in official) and sequences.is_file():
        own = _own(sequences, attributes if attributes.is_file() else None, None, seed)
        return dataclasses.replace(own, name=name)
    try:
        amazon = load_amazon(category, data_dir=root, seed=seed)
    except (FileNotFoundError, RuntimeError) as error:
        raise FileNotFoundError(
            f"{name}: neither layout of Amazon 2014 {category} is in {root}. Either\n"
            f"  (a) the official 5-core files, still gzipped: {official[0]} and {official[1]}, "
            "or\n"
            f"  (b) the S3Rec preprocessing (RUCAIBox/CIKM2020-S3Rec, folder data/): "
            f"{sequences} and {attributes}.\n"
            "Put one of them there, or set COURSE_DATA_DIR to the folder that holds "
            f"{AMAZON_FOLDER}/ or {S3REC_FOLDER}/. What the download said:\n{error}") from error
    frame = amazon.interactions
    split = leave_one_out(user_sequences(frame), amazon.n_items,
                          timestamps=user_events(frame, "timestamp"))
    items = amazon.items.assign(label=amazon.items["title"].str.slice(0, 28))
    return Dataset(name, frame, items, amazon_content(amazon.items, dim=None), split)


def s3rec_files(category: str, data_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(sequence file, attributes file) of an Amazon category in the S3Rec layout:
    `data_dir/amazon-s3rec/<Category>.txt` (one line per user, `user item item ...`, in time
    order; same-day reviews keep the file's order, as S3Rec wrote them) and
    `<Category>_item2attributes.json` (item -> attribute ids: categories and brand)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    name = category_name(category)
    return (root / S3REC_FOLDER / f"{name}.txt",
            root / S3REC_FOLDER / f"{name}_item2attributes.json")


def _own(path: Path, attributes, positive_actions, seed: int) -> Dataset:
    """Your interactions table or sequence file, split like the built-in datasets."""
    own = (read_interactions(path, seed) if path.suffix.lower() in TABLE_SUFFIXES
           else read_sequences(path))
    frame = own.interactions
    consumed = None
    if positive_actions is not None:
        if "action" not in frame.columns:
            raise ValueError(f"positive_actions= was given but {path.name} has no action column")
        unknown = set(positive_actions) - set(frame["action"].cat.categories)
        if unknown:
            raise ValueError(f"positive_actions {sorted(unknown)} do not occur in {path.name}; "
                             f"its actions are {list(frame['action'].cat.categories)}")
        consumed = tuple(positive_actions)
    split = leave_one_out(user_sequences(frame, consumed), own.n_items,
                          timestamps=(user_events(frame, "timestamp", consumed)
                                      if own.has_timestamps else None))
    items = own.items.assign(label=own.items["item_id"].astype(str).str.slice(0, 28))
    if attributes is not None:
        documents = attribute_documents(attributes, items)
        items = items.assign(attributes=[" ".join(token.split(":", 1)[1] for token in document)
                                         for document in documents])       # e.g. "12 345"
        content = lsa_content(documents, items["item"], dim=None, seed=seed)
    else:
        content = cooccurrence_content(split.train, own.n_items, seed)
    return Dataset(path.name, frame, items, content, split, own.has_timestamps, consumed)


def cooccurrence_content(train: dict[int, np.ndarray], n_items: int, seed: int = 0
                         ) -> np.ndarray:
    """Stand-in content (I + 1, D) when items have no attributes: latent semantic analysis of
    the item-user matrix of the TRAINING sequences only (never the validation or test items),
    each item a document of the users who consumed it. Items two users share end up close:
    behaviour, not content. Items no training sequence holds keep a zero row."""
    users_of = [[] for _ in range(n_items)]
    for user, items in train.items():
        for item in np.unique(items):
            users_of[item - 1].append(f"user:{user}")
    return lsa_content(users_of, np.arange(1, n_items + 1), dim=None, seed=seed)


@dataclass
class EventStream:
    """Every event of every user, for models that read actions (HSTU, PinRec): the split over
    the whole stream, the number of action ids (1..n_actions, 0 is padding) and the ids that
    count as positive (a position followed by another action gets no label)."""

    split: Split
    n_actions: int
    positive_actions: tuple[int, ...]


def event_stream(data: Dataset) -> EventStream:
    """The whole event stream of `data` as a leave-one-out split with actions and timestamps.

    World: every event, exposures included; actions 1..4 = exposure, click, like,
    conversion, positive: click, like, conversion. An exposure is logged one second before
    the item it was shown beside, so a user's last event, the test target, is always a
    consumed item: the same target as in `data.split`.
    Your table with an action column: every event; action ids 1..A in the sorted order of the
    action names, positive: `data.positive_actions` (all when None). Unless your positive
    events come last, the test target can differ from `data.split`'s.
    MovieLens and Amazon: every rating, as in `data.split`; the action is the rating rounded
    up to whole stars (1..5), positive: 4 and 5 stars.
    """
    frame = data.interactions
    if data.name == "world":
        actions, n_actions = user_events(frame, "action"), len(ACTIONS)
        positive = tuple(range(2, len(ACTIONS) + 1))
    elif "action" in frame.columns:
        names = list(frame["action"].cat.categories)
        actions, n_actions = user_events(frame, "action"), len(names)
        positive = tuple(names.index(a) + 1 for a in (data.positive_actions or names))
    elif "rating" in frame.columns:
        stars = frame.assign(action=np.ceil(frame["rating"]).clip(1, 5).astype(np.int64))
        actions, n_actions, positive = user_events(stars, "action"), 5, (4, 5)
    else:
        raise ValueError(f"{data.name!r} has neither actions nor ratings to turn into "
                         "actions; use data.split (items and timestamps only)")
    split = leave_one_out(user_sequences(frame), data.n_items, actions=actions,
                          timestamps=user_events(frame, "timestamp"), seen=data.split.seen)
    return EventStream(split, n_actions, positive)


def standardise(content, per_feature: bool = True) -> torch.Tensor:
    """Content vectors (N, X) scaled for a quantizer or an MLP, float32.

    per_feature=True: every feature to mean 0 and standard deviation 1 (a z-score), so no
    feature dominates the distances just by its units. per_feature=False: one common factor,
    x / std(x), which keeps the origin and the relative geometry of the items, what residual
    quantisation (lesson 05) measures its residuals against.
    """
    x = torch.as_tensor(content, dtype=torch.float32)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"content must be (N, X) with N >= 2 items, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("content contains NaN or inf: fill or drop those items first")
    if not per_feature:
        return x / x.std()
    std = x.std(dim=0)
    if (std == 0).any():
        constant = torch.nonzero(std == 0).flatten().tolist()
        raise ValueError(f"features {constant[:5]} are constant, so a z-score divides by 0; "
                         "drop them, or use per_feature=False")
    return (x - x.mean(dim=0)) / std


def item_lookup(items: pd.DataFrame, column: str) -> torch.Tensor:
    """One value per item id as a long tensor (I + 1,), entry 0 (padding) = 0: e.g.
    item_lookup(world.items, "cat1")[topk] gives the top category of every recommended item
    (what `metrics.entropy_at_k` takes)."""
    if "item" not in items.columns or column not in items.columns:
        raise ValueError(f"items need an 'item' column and a {column!r} column; it has "
                         f"{list(items.columns)}")
    ids = items["item"].to_numpy(np.int64, copy=True)     # pandas' own arrays are read-only
    if len(ids) == 0 or ids.min() < 1:
        raise ValueError("item ids must be >= 1 (0 is padding)")
    out = torch.zeros(int(ids.max()) + 1, dtype=torch.long)
    out[torch.from_numpy(ids)] = torch.from_numpy(items[column].to_numpy(np.int64, copy=True))
    return out
