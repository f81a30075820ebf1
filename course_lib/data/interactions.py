"""Interaction tables from any source: numbering, time order with fair ties, your own files.

The course's conventions (see `sequences`): users and items are numbered 1..U and 1..I
(0 is padding), and an interaction table has the columns user, item, timestamp (seconds),
plus optionally action, rating.

Ties. Many sources log time coarsely (Amazon reviews by the day, MovieLens by the second),
so a user often has several events at one timestamp, and the file's order decides which of
them becomes the validation or the test item. That order carries information it should not:
Amazon's review files are sorted by product id, so a model can learn that the smaller id
comes first (a public reproduction measured a cross-entropy SASRec's Recall@10 on Beauty at
.081 with the file's order and .071 with shuffled ties). `chronological` therefore breaks
ties by a seeded shuffle: every order of tied events is equally likely whatever the file's
order, and the same seed gives the same sequences.

Your own data comes in one of two layouts:

* an interactions table, CSV or Parquet, with columns user, item, timestamp and optionally
  action (e.g. view, cart, buy) and rating (`read_interactions`); timestamps may be numbers
  (seconds, fractions kept) or dates; a row repeating an earlier row's user, item,
  timestamp (and action) is the same event logged twice and is dropped, with a warning;
* a sequence file, one user per line, `user item item ...` in time order, the format of the
  preprocessed S3Rec and RecBole datasets (e.g. S3Rec's Beauty.txt) (`read_sequences`);

with optionally an item-attributes JSON, `{"item": [attribute ids], ...}` (S3Rec's
Beauty_item2attributes.json), as the items' content (`attribute_documents`).
Raw ids can be any strings or numbers; they are renumbered 1..N in sorted order (numeric
order when every id is an integer), and the items table keeps the raw id in `item_id`.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SEQUENCE_SUFFIXES = (".txt", ".seq", ".inter", ".dat")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


@dataclass
class Interactions:
    """An interaction table renumbered for the course.

    interactions: user (1..U), item (1..I), timestamp (seconds: int64, or float64 when the
        source has fractions of a second), [action (categorical)], [rating]; sorted by
        user, then time, ties in a seeded random order.
    items: item (1..I) and item_id (the raw id).
    has_timestamps: False when the source had no times (a sequence file): then timestamp is
        each event's position in its user's sequence, enough for order and nothing else.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    has_timestamps: bool = True

    @property
    def n_items(self) -> int:
        return len(self.items)


# --- numbering and time order ----------------------------------------------------------------

def renumber(values) -> tuple[np.ndarray, np.ndarray]:
    """(ids 1..N of `values`, the N distinct raw values in sorted order): ids[j] is the rank
    of values[j] among the distinct values, from 1. Integer-like strings sort as numbers
    ("2" before "10"), so numeric ids keep their order."""
    values = pd.Series(values)
    as_numbers = pd.to_numeric(values, errors="coerce")
    textual = pd.api.types.is_string_dtype(values) or values.dtype == object
    if textual and as_numbers.notna().all() and (as_numbers % 1 == 0).all():
        codes, _ = pd.factorize(as_numbers.astype(np.int64), sort=True)
        raw = values.groupby(codes).first().to_numpy()          # the raw spelling, per code
        return codes.astype(np.int64) + 1, raw
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64) + 1, np.asarray(uniques)


def chronological(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """`frame` sorted by user, then timestamp, with each user's events at one timestamp in a
    seeded random order (see the module docstring: never the file's order)."""
    missing = {"user", "timestamp"} - set(frame.columns)
    if missing:
        raise ValueError(f"the frame lacks columns {sorted(missing)}; expected user and "
                         "timestamp")
    tiebreak = np.random.default_rng(seed).permutation(len(frame))
    order = np.lexsort((tiebreak, frame["timestamp"].to_numpy(), frame["user"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


# --- an interactions table -------------------------------------------------------------------

def read_interactions(path: str | Path, seed: int = 0) -> Interactions:
    """Read a CSV (comma; tab for .tsv) or Parquet table with columns user, item, timestamp
    [, action][, rating]; see the module docstring. Ties in time are shuffled with `seed`.

    Duplicates: rows with the user, item, timestamp (and action, when there is one) of an
    earlier row are dropped, the first kept, and a warning says how many: one event logged
    twice would otherwise stand twice in the user's sequence, as its own next item. Rows
    that differ in the action (a view and a buy in one second) are different events and stay.
    """
    path = _existing(path)
    frame = _read_table(path)
    missing = {"user", "item", "timestamp"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path.name} lacks columns {sorted(missing)}; an interactions file "
                         f"needs user, item, timestamp (optional: action, rating), it has "
                         f"{list(frame.columns)}")
    if frame[["user", "item", "timestamp"]].isna().any().any():
        raise ValueError(f"{path.name} has empty user, item or timestamp cells; drop or fill "
                         "those rows first")
    if frame.empty:
        raise ValueError(f"{path.name} has no rows")
    user, _ = renumber(frame["user"])
    item, raw_items = renumber(frame["item"])
    table = pd.DataFrame({"user": user, "item": item,
                          "timestamp": _seconds(frame["timestamp"], path.name)})
    if "action" in frame.columns:
        table["action"] = pd.Categorical(frame["action"].astype(str))
    if "rating" in frame.columns:
        table["rating"] = _ratings(frame["rating"], path.name)
    table = _drop_duplicate_events(table, frame, path.name)
    items = pd.DataFrame({"item": np.arange(1, len(raw_items) + 1), "item_id": raw_items})
    return Interactions(chronological(table, seed), items)


def _read_table(path: Path) -> pd.DataFrame:
    """The file as a frame, or an error naming the file and the fix (never a parser's own)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as error:
            raise ImportError(f"reading {path.name} needs a Parquet engine: pip install pyarrow, "
                              "or save the table as CSV") from error
    try:
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",",
                           dtype={"user": str, "item": str, "action": str})
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path.name} is empty; an interactions file starts with the header "
                         "line user,item,timestamp and has one row per event") from error
    except pd.errors.ParserError as error:
        raise ValueError(f"{path.name} is not a regular table ({str(error).strip()}); every "
                         "row needs as many fields as the header (user,item,timestamp"
                         "[,action][,rating]): fix that row, or quote fields that hold the "
                         "separator") from error


def _not_utf8(path: Path, error: UnicodeDecodeError) -> ValueError:
    return ValueError(f"{path.name} is not UTF-8 text (byte {error.start}: {error.reason}); "
                      "save it as UTF-8 (a spreadsheet's 'CSV UTF-8'), or convert it, e.g. "
                      f"iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}")


def _seconds(column: pd.Series, name: str) -> np.ndarray:
    """Timestamps in seconds at full precision: numbers as they are, dates and times parsed;
    int64 when every time is a whole second, else float64 seconds, so that events within one
    second keep their order (dates: exact to the microsecond)."""
    if pd.api.types.is_numeric_dtype(column):
        seconds = column.to_numpy()
        if pd.api.types.is_integer_dtype(seconds):
            return seconds.astype(np.int64)
    else:
        try:
            times = pd.to_datetime(column, utc=True, format="mixed")
        except (ValueError, TypeError) as error:
            raise ValueError(f"the timestamp column of {name} holds neither numbers (seconds) "
                             f"nor dates, e.g. {column.iloc[0]!r}") from error
        seconds = (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    seconds = np.asarray(seconds, dtype=np.float64)
    return seconds.astype(np.int64) if (seconds % 1 == 0).all() else seconds


def _ratings(column: pd.Series, name: str) -> np.ndarray:
    """The rating column as float32, or an error naming the first cell that is no number."""
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = "an empty cell" if pd.isna(column.iloc[row]) else repr(column.iloc[row])
        raise ValueError(f"the rating column of {name} holds {value} in data row {row + 1}, "
                         "not a number; ratings are numbers such as 4 or 3.5: fix "
                         "or drop those rows, or drop the rating column")
    return numbers.astype(np.float32).to_numpy()


def _plain(value):
    """A numpy scalar as the Python number it holds, so messages say 2, not np.int64(2)."""
    return value.item() if isinstance(value, np.generic) else value


def _drop_duplicate_events(table: pd.DataFrame, frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """`table` without rows that repeat an earlier row's user, item, timestamp [, action],
    with a warning saying how many (see `read_interactions`)."""
    keys = [c for c in ("user", "item", "timestamp", "action") if c in table.columns]
    repeated = table.duplicated(subset=keys).to_numpy()
    if repeated.any():
        row, count = int(np.flatnonzero(repeated)[0]), int(repeated.sum())
        example = ", ".join(f"{c} {_plain(frame[c].iloc[row])!r}" for c in keys)
        warnings.warn(f"{name}: dropped {count} duplicate row{'s' if count > 1 else ''}, each "
                      f"with the {', '.join(keys)} of an earlier row (e.g. data row {row + 1}: "
                      f"{example}); one event logged twice would stand twice in the sequence. "
                      "Deduplicate the file to silence this warning", UserWarning, stacklevel=3)
    return table[~repeated].reset_index(drop=True)


# --- a sequence file -------------------------------------------------------------------------

def read_sequences(path: str | Path) -> Interactions:
    """Read a sequence file: one line per user, `user item item ...`, items in time order,
    separated by spaces or tabs (blank lines skipped). The file has no times, so `timestamp`
    is the position in the sequence and `has_timestamps` is False."""
    path = _existing(path)
    users, items, positions = [], [], []
    seen = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from error
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path.name} line {number}: {line.strip()!r} has a user but no "
                             "item; each line is `user item item ...`")
        if fields[0] in seen:
            raise ValueError(f"{path.name}: user {fields[0]!r} is on line {seen[fields[0]]} "
                             f"and again on line {number}; put each user's whole sequence "
                             "on one line")
        seen[fields[0]] = number
        users += [fields[0]] * (len(fields) - 1)
        items += fields[1:]
        positions += range(len(fields) - 1)
    if not users:
        raise ValueError(f"{path.name} holds no sequence; each line is `user item item ...`")
    user, _ = renumber(np.array(users, dtype=object))
    item, raw_items = renumber(np.array(items, dtype=object))
    table = pd.DataFrame({"user": user, "item": item,
                          "timestamp": np.asarray(positions, dtype=np.int64)})
    table = table.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    items_table = pd.DataFrame({"item": np.arange(1, len(raw_items) + 1), "item_id": raw_items})
    return Interactions(table, items_table, has_timestamps=False)


# --- item attributes -------------------------------------------------------------------------

def attribute_documents(path: str | Path, items: pd.DataFrame) -> list[list[str]]:
    """The attributes of every item of `items` (one token list per row, in its order), from a
    JSON object {raw item id: [attribute ids]}: tokens "attribute:<id>". Items the file does
    not list (or lists with no attribute) get no token, so an all-zero content row: a warning
    says how many; items the file lists but the interactions do not are ignored."""
    path = _existing(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path.name} is not valid JSON ({error}); expected "
                         '{"item id": [attribute ids], ...}') from error
    if not isinstance(table, dict):
        raise ValueError(f"{path.name} must hold a JSON object {{item id: [attribute ids]}}, "
                         f"got a {type(table).__name__}")
    table = {str(k): v for k, v in table.items()}
    for key, value in table.items():
        if not isinstance(value, list):
            raise ValueError(f"{path.name}: the attributes of item {key!r} must be a list, got "
                             f"{value!r}")
    documents = [[f"attribute:{a}" for a in table.get(str(raw), [])] for raw in items["item_id"]]
    if not any(documents):
        raise ValueError(f"none of the {len(items)} items of the interactions is listed in "
                         f"{path.name} (e.g. item {items['item_id'].iloc[0]!r}; the file has "
                         f"{next(iter(table), 'no item')!r}); do both files use the same ids?")
    _warn_items_without_attributes(documents, items, path.name)
    return documents


def _warn_items_without_attributes(documents: list[list[str]], items: pd.DataFrame,
                                   name: str) -> None:
    bare = [raw for raw, tokens in zip(items["item_id"], documents) if not tokens]
    if bare:
        warnings.warn(f"{len(bare)} of the {len(items)} items have no attributes in {name} "
                      f"(e.g. item {bare[0]!r}): their content rows stay all zero, so every "
                      "one of them looks the same to a quantizer; add their attributes to "
                      "the file, or expect them to share one semantic ID", UserWarning,
                      stacklevel=3)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}; give the path of your interactions "
                                f"({', '.join(TABLE_SUFFIXES)}) or sequence file")
    return path
