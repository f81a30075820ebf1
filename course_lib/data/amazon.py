"""Amazon product reviews (2014 release), the 5-core categories of the TIGER paper.

McAuley et al. 2015 ("Image-based recommendations on styles and substitutes", SIGIR) and He
& McAuley 2016 ("Ups and downs", WWW) published per-category review files; the "5-core"
files keep only users and products with at least 5 reviews each. TIGER (Rajput et al. 2023)
and SASRec-style baselines report on three of them, with leave-one-out and full ranking:

    category              users    items   reviews   (the 5-core file's counts)
    Beauty               22,363   12,101   198,502
    Sports_and_Outdoors  35,598   18,357   296,337
    Toys_and_Games       19,412   11,924   167,597

Two files per category, both gzipped, one record per line:

* reviews_<Category>_5.json.gz: JSON, e.g. {"reviewerID": "A1...", "asin": "B00...",
  "overall": 5.0, "unixReviewTime": 1391040000, ...}; the time is the review's DAY;
* meta_<Category>.json.gz: Python literals, not JSON (single quotes), read with
  `ast.literal_eval`: {'asin': ..., 'title': ..., 'brand': ..., 'price': 12.5,
  'categories': [['Beauty', 'Skin Care', 'Face']], ...}; any field may be missing.

`load_amazon` reads them from `data_dir/amazon-2014/` (default `default_data_dir()`:
$COURSE_DATA_DIR or the repository's data/), downloading the missing ones when `download` is
True (`download.download_file`: atomic, progress bar, restartable). No checksum of these
files is published, so a download is verified by decompressing it to the end (gzip's CRC-32
catches a cut-off or corrupt transfer) and, for a reviews file, by its line count against
the table above. Offline, the error says which files to put in which folder.

Numbering follows the course: items 1..I by sorted product id (asin), users 1..U by sorted
reviewer id; every reviewed product is an item (the 5-core file has no cold items).
Sequences are chronological, and because many users review several products on one day
(often their last two, the validation and test items), SAME-DAY REVIEWS ARE ORDERED BY A
SEEDED SHUFFLE (`interactions.chronological`), never by the file's order, which is sorted
by product id and leaks (see `interactions`).

`amazon_content` turns each product's title, brand, categories and price into a content
vector (TF-IDF + SVD, `content.lsa_content`); TIGER encodes the same fields with
Sentence-T5 (Rajput et al. 2023), and `item_text` gives those fields as one
sentence per item for anyone who wants to use a sentence encoder instead.
"""
from __future__ import annotations

import ast
import gzip
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from course_lib.data.content import DEFAULT_DIM, lsa_content
from course_lib.data.download import default_data_dir, download_file
from course_lib.data.interactions import chronological

BASE_URL = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
FOLDER = "amazon-2014"
# Short names (as `load_dataset("amazon-beauty")` uses them) of the categories in the papers.
CATEGORIES = {"beauty": "Beauty", "sports": "Sports_and_Outdoors", "toys": "Toys_and_Games"}
# (users, items, reviews) of each 5-core file, as the papers' dataset tables report them.
COUNTS = {
    "Beauty": (22_363, 12_101, 198_502),
    "Sports_and_Outdoors": (35_598, 18_357, 296_337),
    "Toys_and_Games": (19_412, 11_924, 167_597),
}
# MD5 of each file where one is published. The project page publishes none, so every entry
# is None and a download is checked by decompression and line count instead (module
# docstring); pin a value here once you have one from a source you trust.
MD5: dict[str, str | None] = {
    f"{kind}_{name}{suffix}": None for name in COUNTS
    for kind, suffix in (("reviews", "_5.json.gz"), ("meta", ".json.gz"))}

_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


@dataclass
class Amazon:
    """One Amazon 5-core category, renumbered for the course.

    interactions: user (1..U), item (1..I), timestamp (seconds, at the review's day), rating
        (1..5 stars); sorted by user, then time, same-day reviews in a seeded random order.
    items: item (1..I), asin, title, brand, categories (every category path, " > " between
        levels, " | " between paths), category (the first path's second level, e.g. "Skin
        Care", or its first when it has one level; "" without categories), price (float,
        NaN when missing).
    """

    category: str
    interactions: pd.DataFrame
    items: pd.DataFrame

    @property
    def n_users(self) -> int:
        return int(self.interactions["user"].max()) if len(self.interactions) else 0

    @property
    def n_items(self) -> int:
        return len(self.items)


def category_name(category: str) -> str:
    """"beauty" or "Beauty" -> "Beauty"; "sports" -> "Sports_and_Outdoors"; any other 2014
    category name (e.g. "Video_Games") is taken as it is."""
    if not isinstance(category, str) or not category:
        raise ValueError(f"category must be a name such as 'Beauty', got {category!r}")
    return CATEGORIES.get(category.lower(), category)


def file_names(category: str) -> tuple[str, str]:
    """(reviews file, metadata file) of a category, as the project page names them."""
    name = category_name(category)
    return f"reviews_{name}_5.json.gz", f"meta_{name}.json.gz"


def load_amazon(category: str = "Beauty", data_dir: str | Path | None = None,
                download: bool = True, seed: int = 0, base_url: str | None = None) -> Amazon:
    """Load a 5-core category from `data_dir/amazon-2014/`, downloading the files that are
    missing (from `base_url`, default BASE_URL) when `download` is True; same-day reviews are
    ordered by a shuffle with `seed`."""
    name = category_name(category)
    base_url = base_url or BASE_URL
    folder = Path(data_dir if data_dir is not None else default_data_dir()) / FOLDER
    reviews_file, meta_file = file_names(name)
    missing = [f for f in (reviews_file, meta_file) if not (folder / f).is_file()]
    if missing:
        if not download:
            raise FileNotFoundError(_missing_message(name, folder, missing, base_url))
        download_amazon(name, folder.parent, base_url)
    reviews = read_reviews(folder / reviews_file)
    _warn_on_unexpected_counts(name, reviews)
    asins = np.sort(reviews["asin"].unique())
    meta = read_metadata(folder / meta_file, set(asins))
    items = _items_table(asins, meta)
    return Amazon(name, _interactions_table(reviews, items, seed), items)


def _missing_message(name: str, folder: Path, missing: list[str], base_url: str) -> str:
    files = "\n".join(f"  {base_url}{f}  ->  {folder / f}" for f in missing)
    return (f"Amazon 2014 {name} not found. Put these files (as downloaded, still gzipped) in "
            f"{folder}:\n{files}\nor set COURSE_DATA_DIR to a folder that holds {FOLDER}/, or "
            "pass download=True when online.")


# ---- reading the two files ------------------------------------------------------------------

def read_reviews(path: str | Path) -> pd.DataFrame:
    """The reviews file as a frame: reviewerID, asin, rating (float32), timestamp (int64), in
    the file's order."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                review = json.loads(line)
                rows.append((review["reviewerID"], review["asin"], review.get("overall", 0.0),
                             review["unixReviewTime"]))
            except (json.JSONDecodeError, KeyError) as error:
                raise ValueError(f"{Path(path).name} line {number} is not a review with "
                                 f"reviewerID, asin and unixReviewTime ({error!r}); is this a "
                                 "2014 reviews_*_5.json.gz file?") from error
    if not rows:
        raise ValueError(f"{Path(path).name} holds no review")
    frame = pd.DataFrame(rows, columns=["reviewerID", "asin", "rating", "timestamp"])
    return frame.astype({"rating": np.float32, "timestamp": np.int64})


def read_metadata(path: str | Path, asins: set[str] | None = None) -> dict[str, dict]:
    """asin -> metadata record of the metadata file (Python literals, `ast.literal_eval`).
    With `asins`, only those products are parsed (the file lists many more products than
    the 5-core reviews, and parsing is the slow part)."""
    records = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            match = _ASIN.search(line)
            if match is None or (asins is not None and match.group(1) not in asins):
                continue
            try:
                record = ast.literal_eval(line)
            except (ValueError, SyntaxError) as error:
                raise ValueError(f"{Path(path).name} line {number} is not a Python literal "
                                 f"({error}); is this a 2014 meta_*.json.gz file?") from error
            records[record["asin"]] = record
    return records


def _warn_on_unexpected_counts(name: str, reviews: pd.DataFrame) -> None:
    if name not in COUNTS:
        return
    counts = (reviews["reviewerID"].nunique(), reviews["asin"].nunique(), len(reviews))
    if counts != COUNTS[name]:
        warnings.warn(f"Amazon {name}: {counts[0]:,} users, {counts[1]:,} items and {counts[2]:,} "
                      f"reviews, where the 2014 5-core file has {COUNTS[name][0]:,}, "
                      f"{COUNTS[name][1]:,} and {COUNTS[name][2]:,}: results will not be "
                      "comparable with the papers'", stacklevel=3)


# ---- renumbering ----------------------------------------------------------------------------

def _items_table(asins: np.ndarray, meta: dict[str, dict]) -> pd.DataFrame:
    """One row per reviewed product, numbered 1..I in asin order, with its metadata."""
    records = [meta.get(a, {}) for a in asins]
    paths = [r.get("categories") or [] for r in records]
    return pd.DataFrame({
        "item": np.arange(1, len(asins) + 1, dtype=np.int64),
        "asin": asins,
        "title": [str(r.get("title", "")) for r in records],
        "brand": [str(r.get("brand", "")) for r in records],
        "categories": [" | ".join(" > ".join(p) for p in ps) for ps in paths],
        "category": [ps[0][1] if ps and len(ps[0]) > 1 else (ps[0][0] if ps and ps[0] else "")
                     for ps in paths],
        "price": np.array([_price(r.get("price")) for r in records], dtype=np.float64),
    })


def _price(value) -> float:
    try:
        price = float(value)
    except (TypeError, ValueError):
        return math.nan
    return price if math.isfinite(price) and price >= 0 else math.nan


def _interactions_table(reviews: pd.DataFrame, items: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Reviews with users numbered by sorted reviewer id and products by item id, in time
    order with same-day reviews shuffled (`chronological`)."""
    _, user = np.unique(reviews["reviewerID"].to_numpy(), return_inverse=True)
    item = pd.Index(items["asin"]).get_indexer(reviews["asin"]) + 1
    frame = pd.DataFrame({"user": user.astype(np.int64) + 1, "item": item.astype(np.int64),
                          "timestamp": reviews["timestamp"].to_numpy(np.int64),
                          "rating": reviews["rating"].to_numpy(np.float32)})
    return chronological(frame, seed)


# ---- downloading ----------------------------------------------------------------------------

def download_amazon(category: str, data_dir: str | Path, base_url: str | None = None) -> Path:
    """Fetch the missing files of `category` into `data_dir/amazon-2014/` and return that
    folder. Each file appears only once it decompresses to the end (and, for a reviews file
    of a category in COUNTS, has the published number of reviews); on a failure the files
    still missing are named with where to put them."""
    name = category_name(category)
    base_url = base_url or BASE_URL
    folder = Path(data_dir) / FOLDER
    for filename in file_names(name):
        if (folder / filename).is_file():
            continue
        lines = COUNTS[name][2] if filename.startswith("reviews_") and name in COUNTS else None
        try:
            download_file(base_url + filename, folder / filename, md5=MD5.get(filename),
                          check=lambda path, lines=lines: _check_gzip(path, lines))
        except RuntimeError as error:
            missing = [f for f in file_names(name) if not (folder / f).is_file()]
            raise RuntimeError(f"{error}\n\n{_missing_message(name, folder, missing, base_url)}"
                               ) from error
    return folder


def _check_gzip(path: Path, expected_lines: int | None) -> None:
    """Decompress `path` to the end (gzip checks its CRC-32) and count its non-empty lines."""
    lines = 0
    try:
        with gzip.open(path, "rb") as f:
            for line in f:
                lines += bool(line.strip())
    except (OSError, EOFError) as error:   # BadGzipFile is an OSError
        raise RuntimeError(f"the download is not a whole gzip file ({error}); it was probably "
                           "cut off: try again") from error
    if expected_lines is not None and lines != expected_lines:
        raise RuntimeError(f"the download has {lines:,} reviews where the 5-core file has "
                           f"{expected_lines:,}; it is not the 2014 release")


# ---- content vectors ------------------------------------------------------------------------

def amazon_content(items: pd.DataFrame, dim: int | None = DEFAULT_DIM, seed: int = 0
                   ) -> np.ndarray:
    """Content vectors of the products, (I + 1, D) float32, row 0 (padding) zeros: latent
    semantic analysis (`content.lsa_content`) of each product's title words, brand,
    categories (every level of every path) and price band (a power of two, so 12.5 and 15
    share "price:8-16")."""
    documents = [item_tokens(*row) for row in
                 zip(items["title"], items["brand"], items["categories"], items["price"])]
    return lsa_content(documents, items["item"].to_numpy(), dim, seed)


def item_tokens(title: str, brand: str, categories: str, price: float) -> list[str]:
    """"Nivea Soft Cream", "Nivea", "Beauty > Skin Care", 12.5 -> ["nivea", "soft", "cream",
    "brand:nivea", "category:beauty", "category:skin care", "price:8-16"]."""
    tokens = re.findall(r"[^\W_]+", title.lower())
    if brand:
        tokens.append(f"brand:{brand.strip().lower()}")
    levels = {level.strip().lower() for path in categories.split(" | ")
              for level in path.split(" > ") if level.strip()}
    tokens += [f"category:{level}" for level in sorted(levels)]
    if not math.isnan(price) and price > 0:
        low = 2 ** math.floor(math.log2(price))
        tokens.append(f"price:{low:g}-{2 * low:g}")
    return tokens


def item_text(items: pd.DataFrame) -> list[str]:
    """One sentence per product with the fields TIGER encodes (title, price, brand,
    categories), for a sentence encoder of your choice, e.g.
    `SentenceTransformer("sentence-t5-base").encode(item_text(items))` (optional: the
    course never needs it)."""
    def sentence(title, brand, categories, price):
        price_text = "unknown" if math.isnan(price) else f"{price:.2f}"
        return (f"Title: {title}. Price: {price_text}. Brand: {brand or 'unknown'}. "
                f"Categories: {categories or 'unknown'}.")
    return [sentence(*row) for row in
            zip(items["title"], items["brand"], items["categories"], items["price"])]
