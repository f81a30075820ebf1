"""MovieLens: load it, download it safely, and give its movies content vectors.

Three releases from GroupLens (Harper & Konstan 2015, "The MovieLens Datasets: History and
Context", ACM TiiS 5(4)) are supported:

* `ml-latest-small`: 100,836 ratings by 610 users of 9,742 movies, CSV files with headers;
* `ml-1m`: 1,000,209 ratings by 6,040 users of 3,883 movies, `::`-separated, movies.dat in
  latin-1 (SASRec's and HSTU's ML-1M);
* `ml-20m`: 20,000,263 ratings by 138,493 users of 27,278 movies, CSV files with headers
  like ml-latest-small (HSTU's ML-20M).

What `load_movielens` returns follows the course's conventions (see `sequences`): item ids
are 1..I and 0 is padding. Every movie of the movies file becomes an item, sorted by its
original movieId, so movies nobody rated stay as cold items: they have content (title,
genres, year) but no interactions. Users are renumbered 1..U in order of their original id.

Time order: by user, then timestamp. Many ratings share their second (15% of the test
targets of ml-latest-small do), and GroupLens lists a user's ratings by movie id, so keeping
the file's order would make every tied test target the tied movie with the largest id: a
pattern a model can learn and no user shows. Ties are therefore ordered by a shuffle seeded
with `tie_seed` (0 by default; `interactions.chronological`), the course's rule for every
dataset; `tie_seed=None` keeps the file's order, to measure what it does.

Where the files are looked for: `data_dir`, else `$COURSE_DATA_DIR`, else the repository's
`data/` folder. When they are missing, `download_movielens` fetches the official zip
(`download.download_file`: a progress bar, the zip's MD5 checked against the one GroupLens
publishes beside it, `<zip>.md5`), unpacks it, checks the SHA-256 of the files we read where
we pin them, and only then moves the folder into place; on any failure it removes what it
wrote, so no half file is ever left to be mistaken for data.

`movie_content` turns each movie's title words, genres and decade into a dense vector
(TF-IDF, then truncated SVD, i.e. latent semantic analysis, Deerwester et al. 1990), the
content that semantic-ID lessons quantize. Shapes: I items, D = dim.
"""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from course_lib.data.content import lsa_content
from course_lib.data.download import (claimed, default_data_dir, download_file, file_digest,
                                      remove_stale_parts)
from course_lib.data.interactions import chronological

ML_LATEST_SMALL = "ml-latest-small"
ML_1M = "ml-1m"
ML_20M = "ml-20m"

URLS = {
    ML_LATEST_SMALL: "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
    ML_1M: "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    ML_20M: "https://files.grouplens.org/datasets/movielens/ml-20m.zip",
}
FILES = {  # (ratings, movies) of each release
    ML_LATEST_SMALL: ("ratings.csv", "movies.csv"),
    ML_1M: ("ratings.dat", "movies.dat"),
    ML_20M: ("ratings.csv", "movies.csv"),
}
# MD5 of each zip as GroupLens publishes it beside the zip (URLS[name] + ".md5"). The
# ml-latest-small zip is re-released from time to time, so it has none here: its files are
# pinned by SHA-256 below instead.
ZIP_MD5 = {
    ML_LATEST_SMALL: None,
    ML_1M: "c4d9eecfca2ab87c1945afe126590906",
    ML_20M: "cd245b17a1ae2cc31bb14903e1204af3",
}
# SHA-256 of the files we read, from the official 2018 release of ml-latest-small; ml-1m and
# ml-20m are covered by their zip's MD5.
SHA256 = {
    ML_LATEST_SMALL: {
        "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
        "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    },
    ML_1M: {},
    ML_20M: {},
}

# "Heat (1995)", "Death Note: Desu nôto (2006–2007)": a year, or a range, ends the title.
_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)$")


@dataclass
class MovieLens:
    """One MovieLens release, renumbered for the course.

    interactions: user (1..U), item (1..I), timestamp (seconds), rating; sorted by user, then
        time (ties shuffled with `tie_seed`, or in the file's order when it is None).
    items: one row per movie: item (1..I), movie_id (GroupLens id), title (year removed),
        genres ("A|B" as in the file), year (nullable Int64, <NA> when the title has none).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame

    @property
    def n_users(self) -> int:
        return int(self.interactions["user"].max()) if len(self.interactions) else 0

    @property
    def n_items(self) -> int:
        return len(self.items)


def load_movielens(name: str = ML_LATEST_SMALL, data_dir: str | Path | None = None,
                   download: bool = True, url: str | None = None,
                   tie_seed: int | None = 0) -> MovieLens:
    """Load `name` from `data_dir/name/` (default: `default_data_dir()`; the zip unpacked
    inside that folder, `data_dir/name/name/`, is found too), downloading it first when it is
    missing and `download` is True. tie_seed: the seed of the shuffle that orders ratings at
    the same second; None keeps the file's order (by movie id)."""
    _check_name(name)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = _folder_with_files(data_dir / name, name)
    if folder is None:
        if not download:
            raise FileNotFoundError(_missing_message(name, data_dir / name))
        folder = download_movielens(name, data_dir, url)
    ratings, movies = _read_ml_1m(folder) if name == ML_1M else _read_ml_latest(folder)
    items = _items_table(movies)
    interactions = _interactions_table(ratings, items)
    if tie_seed is not None:
        interactions = chronological(interactions, tie_seed)
    return MovieLens(name, interactions, items)


def _check_name(name: str) -> None:
    if name not in FILES:
        raise ValueError(f"unknown MovieLens release {name!r}; supported: {sorted(FILES)}")


def _has_files(folder: Path, name: str) -> bool:
    return all((folder / f).is_file() for f in FILES[name])


def _folder_with_files(target: Path, name: str) -> Path | None:
    """The folder holding the release's files: `target` (data_dir/name) itself, or the
    `name/` folder inside it that unzipping the release into `target` makes; None if neither."""
    for folder in (target, target / name):
        if _has_files(folder, name):
            return folder
    return None


def _missing_message(name: str, folder: Path) -> str:
    files = " and ".join(FILES[name])
    return (f"MovieLens {name} not found: expected {files} in {folder}. Either unzip "
            f"{URLS[name]} into {folder.parent} (the zip holds the folder {name}/, so the files "
            f"land in {folder}), set COURSE_DATA_DIR to a folder that holds {name}/, or pass "
            "download=True when online.")


# ---- reading the two file layouts -----------------------------------------------------------

def _read_ml_latest(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ratings.csv (userId,movieId,rating,timestamp) and movies.csv (movieId,title,genres), the
    layout of ml-latest-small and ml-20m."""
    ratings = pd.read_csv(folder / "ratings.csv",
                          dtype={"userId": "int64", "movieId": "int64", "rating": "float32",
                                 "timestamp": "int64"})
    movies = pd.read_csv(folder / "movies.csv", dtype={"movieId": "int64", "title": str,
                                                       "genres": str}, keep_default_na=False)
    return ratings, movies


def _read_ml_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ratings.dat (UserID::MovieID::Rating::Timestamp) and movies.dat (MovieID::Title::Genres,
    latin-1). `::` becomes a tab so pandas' fast C parser reads a million lines in a second."""
    ratings = _read_dat(folder / "ratings.dat", ["userId", "movieId", "rating", "timestamp"],
                        {"userId": "int64", "movieId": "int64", "rating": "float32",
                         "timestamp": "int64"})
    movies = _read_dat(folder / "movies.dat", ["movieId", "title", "genres"],
                       {"movieId": "int64", "title": str, "genres": str})
    return ratings, movies


def _read_dat(path: Path, names: list[str], dtype: dict) -> pd.DataFrame:
    text = path.read_text(encoding="latin-1").replace("::", "\t")
    return pd.read_csv(io.StringIO(text), sep="\t", header=None, names=names, dtype=dtype,
                       quoting=csv.QUOTE_NONE, keep_default_na=False)


# ---- renumbering ----------------------------------------------------------------------------

def _items_table(movies: pd.DataFrame) -> pd.DataFrame:
    """Every movie, sorted by movieId, numbered 1..I; the year is split off the title."""
    duplicated = movies["movieId"][movies["movieId"].duplicated()]
    if len(duplicated):
        raise ValueError(f"the movies file lists movieId {duplicated.iloc[0]} more than once; "
                         "the file is corrupt: download it again")
    movies = movies.sort_values("movieId", kind="stable").reset_index(drop=True)
    titles, years = zip(*(split_title(t) for t in movies["title"])) if len(movies) else ((), ())
    return pd.DataFrame({
        "item": np.arange(1, len(movies) + 1, dtype=np.int64),
        "movie_id": movies["movieId"].to_numpy(np.int64),
        "title": list(titles),
        "genres": movies["genres"].astype(str).to_numpy(),
        "year": pd.array(list(years), dtype="Int64"),
    })


def split_title(title: str) -> tuple[str, int | None]:
    """"Heat (1995) " -> ("Heat", 1995); "Babylon 5" -> ("Babylon 5", None)."""
    title = title.strip()
    match = _YEAR.search(title)
    if match is None:
        return title, None
    return title[:match.start()].strip(), int(match.group(1))


def _interactions_table(ratings: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Ratings with users numbered 1..U (by original id) and movies replaced by item ids."""
    item = pd.Index(items["movie_id"]).get_indexer(ratings["movieId"]) + 1
    if (item == 0).any():
        unknown = sorted(set(ratings["movieId"][item == 0].tolist()))
        raise ValueError(f"ratings reference {len(unknown)} movieId(s) missing from the movies "
                         f"file, e.g. {unknown[:5]}; the two files come from different releases "
                         "or one is truncated: unpack both from the same zip")
    _, user = np.unique(ratings["userId"].to_numpy(), return_inverse=True)
    frame = pd.DataFrame({
        "user": user.astype(np.int64) + 1,
        "item": item.astype(np.int64),
        "timestamp": ratings["timestamp"].to_numpy(np.int64),
        "rating": ratings["rating"].to_numpy(np.float32),
    })
    return frame.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)


# ---- downloading ----------------------------------------------------------------------------

def download_movielens(name: str, data_dir: Path, url: str | None = None) -> Path:
    """Fetch the zip of `name` (from GroupLens, or `url`), check its MD5, unpack and verify
    it, and move it to `data_dir/name/`; return that folder.

    Everything is written under temporary names in `data_dir` first and renamed into place only
    after the checksums match, so an interrupted or corrupt download leaves `data_dir` as it
    was. Any failure raises RuntimeError saying what to do.
    """
    _check_name(name)
    data_dir = Path(data_dir)
    target = data_dir / name
    if (found := _folder_with_files(target, name)) is not None:
        return found
    if target.exists():
        raise RuntimeError(_incomplete_message(name, target))
    data_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(data_dir, f".{name}-")              # what a killed download left
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", suffix=".part", dir=data_dir))
    try:
        with claimed(work):
            zip_path = download_file(url or URLS[name], work / f"{name}.zip", md5=ZIP_MD5[name],
                                     offline_hint=(
                f"If you are offline, download {URLS[name]} on a machine with internet and "
                f"unzip it into {data_dir} (the zip holds the folder {name}/, so the files "
                f"land in {target}), or set COURSE_DATA_DIR to a folder that holds {name}/."))
            folder = _unpack(zip_path, work / "unpacked", name)
            _verify(folder, name)
            folder.chmod(0o755)  # mkdtemp makes it private; the data is not
            os.replace(folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _incomplete_message(name: str, target: Path) -> str:
    files = " and ".join(FILES[name])
    holds = sorted(p.name for p in target.iterdir())[:5] if target.is_dir() else []
    return (f"{target} exists but holds neither {files} nor a {name}/ folder with them (it "
            f"holds {holds or 'nothing'}); put {files} in {target} (or in {target / name}), "
            f"or move {target} away to download {name} afresh")


def _unpack(zip_path: Path, into: Path, name: str) -> Path:
    """Unzip and return the folder holding the files: the zip's top-level `name/` folder (as
    GroupLens packs it), or the zip's root."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(into)
    except zipfile.BadZipFile as error:
        raise RuntimeError(f"the download of {name} is not a valid zip ({error}); it was "
                           "probably cut off: try again") from error
    for folder in (into / name, into):
        if _has_files(folder, name):
            return folder
    raise RuntimeError(f"the {name} zip does not contain {' and '.join(FILES[name])}; is the "
                       "URL right?")


def _verify(folder: Path, name: str) -> None:
    """Compare the SHA-256 of the files we read with the pinned ones."""
    for filename, expected in SHA256[name].items():
        actual = file_digest(folder / filename, "sha256")
        if actual != expected:
            raise RuntimeError(
                f"checksum mismatch for {name}/{filename}: expected {expected}, got {actual}. "
                "The download is corrupt or not the official release; nothing was kept. Try "
                "again, or unpack a copy you trust into the data folder yourself.")


# ---- content vectors ------------------------------------------------------------------------

def movie_content(items: pd.DataFrame, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Content vectors of the movies, (I + 1, D) float32: row i is item i, row 0 (padding) is
    zeros, the other rows have unit L2 norm.

    Latent semantic analysis (Deerwester et al. 1990, `content.lsa_content`): TF-IDF over
    each movie's title words, genre tokens and a decade token, reduced to `dim` dimensions by
    truncated SVD.
    """
    if dim is None or dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    documents = [_movie_tokens(t, g, y) for t, g, y in
                 zip(items["title"], items["genres"], items["year"])]
    return lsa_content(documents, items["item"].to_numpy(), dim, seed)


def _movie_tokens(title: str, genres: str, year) -> list[str]:
    """"Heat", "Action|Crime", 1995 -> ["heat", "genre:action", "genre:crime", "decade:1990"]."""
    tokens = re.findall(r"[^\W_]+", title.lower())
    tokens += [f"genre:{g.lower()}" for g in genres.split("|") if g]
    if not pd.isna(year):
        tokens.append(f"decade:{int(year) // 10 * 10}")
    return tokens
