"""Amazon 2014 5-core: reading both files (JSON reviews, Python-literal metadata), numbering,
same-day ties broken by a seeded shuffle, the download and its checks, the offline message,
content vectors, and the dataset entry. Every file is written by the tests."""
import gzip
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from course_lib.data import amazon
from course_lib.data.amazon import (FOLDER, amazon_content, category_name, download_amazon,
                                    file_names, item_text, item_tokens, load_amazon)
from course_lib.data.datasets import load_dataset

DAY = 86_400
# (reviewer, asin, stars, day); sorted by asin as the real files are. User A's last two
# reviews share day 9, so which one is the test item is decided by the tie rule.
REVIEWS = [
    ("A", "B001", 5.0, 9), ("B", "B001", 4.0, 1), ("C", "B001", 3.0, 2),
    ("A", "B002", 4.0, 9), ("B", "B002", 2.0, 3), ("C", "B002", 5.0, 1),
    ("A", "B003", 1.0, 2), ("B", "B003", 5.0, 5), ("C", "B003", 4.0, 3),
    ("A", "B004", 3.0, 1), ("B", "B004", 4.0, 4),
]
META = [  # Python literals, single quotes: not JSON
    "{'asin': 'B001', 'title': 'Nivea Soft Cream', 'brand': 'Nivea', 'price': 12.5, "
    "'categories': [['Beauty', 'Skin Care', 'Face'], ['Beauty', 'Bath']]}",
    "{'asin': 'B002', 'title': \"Olay Night Cream\", 'price': 15.0, "
    "'categories': [['Beauty', 'Skin Care', 'Face']]}",
    "{'asin': 'B003', 'title': 'Red Lipstick', 'brand': 'Maybelline', "
    "'categories': [['Beauty', 'Makeup', 'Lips']], 'related': {'also_bought': ['B001']}}",
    "{'asin': 'B999', 'title': 'Never reviewed', 'categories': [['Beauty']]}",
]  # B004 has no metadata at all


def review_lines(reviews=REVIEWS) -> list[str]:
    return [json.dumps({"reviewerID": u, "asin": a, "overall": r, "unixReviewTime": d * DAY,
                        "reviewTime": "unused", "reviewText": "..."}) for u, a, r, d in reviews]


def write_gz(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_category(data_dir: Path, category="Beauty", reviews=REVIEWS, meta=META) -> Path:
    reviews_file, meta_file = file_names(category)
    write_gz(data_dir / FOLDER / reviews_file, review_lines(reviews))
    write_gz(data_dir / FOLDER / meta_file, meta)
    return data_dir / FOLDER


@pytest.fixture
def tiny(tmp_path):
    write_category(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # the tiny counts are not Beauty's
        return load_amazon(data_dir=tmp_path, download=False)


@pytest.fixture
def tiny_counts(monkeypatch):
    """Pin Beauty's published counts to the tiny files', as if they were the real release."""
    monkeypatch.setitem(amazon.COUNTS, "Beauty", (3, 4, len(REVIEWS)))


# ---- names -------------------------------------------------------------------------------

def test_short_names_map_to_the_2014_category_names():
    assert [category_name(c) for c in ("beauty", "Sports", "toys", "Video_Games")] == [
        "Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Video_Games"]
    assert file_names("sports") == ("reviews_Sports_and_Outdoors_5.json.gz",
                                    "meta_Sports_and_Outdoors.json.gz")


# ---- reading and numbering ----------------------------------------------------------------

def test_items_are_numbered_by_asin_and_users_by_reviewer_id(tiny):
    assert tiny.items["asin"].tolist() == ["B001", "B002", "B003", "B004"]
    assert tiny.items["item"].tolist() == [1, 2, 3, 4]
    assert (tiny.n_users, tiny.n_items, len(tiny.interactions)) == (3, 4, len(REVIEWS))


def test_metadata_is_read_as_python_literals_and_missing_fields_stay_empty(tiny):
    items = tiny.items.set_index("asin")
    assert items.loc["B001", "title"] == "Nivea Soft Cream"
    assert items.loc["B001", "brand"] == "Nivea" and items.loc["B002", "brand"] == ""
    assert items.loc["B001", "categories"] == "Beauty > Skin Care > Face | Beauty > Bath"
    assert items.loc["B003", "category"] == "Makeup"
    assert items.loc["B001", "price"] == 12.5 and np.isnan(items.loc["B003", "price"])
    assert items.loc["B004", ["title", "categories"]].tolist() == ["", ""]   # no metadata
    assert "B999" not in items.index                                          # never reviewed


def test_interactions_have_the_documented_columns_and_time_order(tiny):
    frame = tiny.interactions
    assert frame.dtypes.astype(str).to_dict() == {"user": "int64", "item": "int64",
                                                  "timestamp": "int64", "rating": "float32"}
    keys = frame["user"].to_numpy() * 10**9 + frame["timestamp"].to_numpy()
    assert (np.diff(keys) >= 0).all()
    user_c = frame[frame["user"] == 3]
    assert user_c["item"].tolist() == [2, 1, 3] and user_c["rating"].tolist() == [5.0, 3.0, 4.0]


# ---- same-day ties ------------------------------------------------------------------------

def last_two_of_user_a(seed, data_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = load_amazon(data_dir=data_dir, download=False, seed=seed).interactions
    return frame[frame["user"] == 1]["item"].tolist()[-2:]


def test_same_day_reviews_are_ordered_by_the_seeded_shuffle_not_the_file(tmp_path):
    write_category(tmp_path)
    orders = [tuple(last_two_of_user_a(seed, tmp_path)) for seed in range(40)]
    assert set(orders) == {(1, 2), (2, 1)}               # both orders of the day-9 pair occur
    file_order_share = orders.count((1, 2)) / len(orders)
    assert 0.2 < file_order_share < 0.8                  # the file's (asin) order is not favoured


def test_the_same_seed_gives_the_same_sequences(tmp_path):
    write_category(tmp_path)
    assert [last_two_of_user_a(7, tmp_path) for _ in range(3)] == [last_two_of_user_a(7, tmp_path)] * 3


def test_reviews_on_different_days_keep_their_time_order_under_any_seed(tmp_path):
    write_category(tmp_path)
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = load_amazon(data_dir=tmp_path, download=False, seed=seed).interactions
        assert frame[frame["user"] == 2]["item"].tolist() == [1, 2, 4, 3]   # days 1, 3, 4, 5


# ---- counts -------------------------------------------------------------------------------

def test_counts_unlike_the_published_5_core_file_warn(tmp_path):
    write_category(tmp_path)
    with pytest.warns(UserWarning, match="22,363.*not be comparable"):
        load_amazon(data_dir=tmp_path, download=False)


def test_the_published_counts_raise_no_warning(tmp_path, tiny_counts):
    write_category(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_amazon(data_dir=tmp_path, download=False)


# ---- missing files and the download -------------------------------------------------------

def test_missing_files_offline_say_which_files_go_in_which_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        load_amazon("toys", download=False)
    message = str(error.value)
    folder = tmp_path / FOLDER
    assert str(folder / "reviews_Toys_and_Games_5.json.gz") in message
    assert str(folder / "meta_Toys_and_Games.json.gz") in message
    assert "COURSE_DATA_DIR" in message and amazon.BASE_URL in message


@pytest.fixture
def mirror(tmp_path) -> str:
    """A folder of the two Beauty files served as file:// URLs, like the project page."""
    source = tmp_path / "mirror"
    reviews_file, meta_file = file_names("Beauty")
    write_gz(source / reviews_file, review_lines())
    write_gz(source / meta_file, META)
    return source.as_uri() + "/"


def test_download_puts_both_checked_files_in_place(tmp_path, mirror, tiny_counts):
    data_dir = tmp_path / "data"
    beauty = load_amazon(data_dir=data_dir, base_url=mirror)
    assert beauty.n_items == 4
    assert sorted(os.listdir(data_dir / FOLDER)) == sorted(file_names("Beauty"))


def test_download_fetches_only_the_missing_file(tmp_path, mirror, tiny_counts):
    data_dir = tmp_path / "data"
    reviews_file, meta_file = file_names("Beauty")
    write_gz(data_dir / FOLDER / reviews_file, review_lines())
    before = (data_dir / FOLDER / reviews_file).stat().st_mtime_ns
    download_amazon("Beauty", data_dir, base_url=mirror)
    assert (data_dir / FOLDER / meta_file).is_file()
    assert (data_dir / FOLDER / reviews_file).stat().st_mtime_ns == before


def test_a_reviews_file_with_the_wrong_count_is_refused_and_nothing_kept(tmp_path, mirror):
    data_dir = tmp_path / "data"                  # Beauty's real count: 198,502 reviews
    with pytest.raises(RuntimeError, match="has 11 reviews where the 5-core file has 198,502"):
        download_amazon("Beauty", data_dir, base_url=mirror)
    assert os.listdir(data_dir / FOLDER) == []


def test_a_pinned_md5_is_enforced_once_one_is_known(tmp_path, mirror, tiny_counts, monkeypatch):
    assert set(amazon.MD5.values()) == {None}              # none is published
    reviews_file, _ = file_names("Beauty")
    monkeypatch.setitem(amazon.MD5, reviews_file, "0" * 32)
    with pytest.raises(RuntimeError, match="checksum mismatch for reviews_Beauty_5.json.gz"):
        download_amazon("Beauty", tmp_path / "data", base_url=mirror)
    assert os.listdir(tmp_path / "data" / FOLDER) == []


def test_a_cut_off_gzip_is_refused_and_nothing_kept(tmp_path, tiny_counts):
    source = tmp_path / "mirror"
    reviews_file, meta_file = file_names("Beauty")
    whole = write_gz(source / reviews_file, review_lines()).read_bytes()
    (source / reviews_file).write_bytes(whole[: len(whole) // 2])
    data_dir = tmp_path / "data"
    with pytest.raises(RuntimeError, match="not a whole gzip file") as error:
        download_amazon("Beauty", data_dir, base_url=source.as_uri() + "/")
    assert str(data_dir / FOLDER / meta_file) in str(error.value)   # what is still missing
    assert os.listdir(data_dir / FOLDER) == []


def test_an_unreachable_server_names_the_files_and_the_folder(tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(RuntimeError, match="could not download") as error:
        load_amazon("sports", data_dir=data_dir, base_url=(tmp_path / "nowhere").as_uri() + "/")
    message = str(error.value)
    assert str(data_dir / FOLDER / "reviews_Sports_and_Outdoors_5.json.gz") in message
    assert "COURSE_DATA_DIR" in message
    assert os.listdir(data_dir / FOLDER) == []


# ---- bad files ----------------------------------------------------------------------------

def test_a_metadata_line_that_is_no_python_literal_is_an_error(tmp_path, tiny_counts):
    write_category(tmp_path, meta=["{'asin': 'B001', 'title': 'cut off"])
    with pytest.raises(ValueError, match="line 1 is not a Python literal"):
        load_amazon(data_dir=tmp_path, download=False)


def test_a_review_without_its_fields_is_an_error(tmp_path):
    reviews_file, meta_file = file_names("Beauty")
    write_gz(tmp_path / FOLDER / reviews_file, ['{"asin": "B001"}'])
    write_gz(tmp_path / FOLDER / meta_file, META)
    with pytest.raises(ValueError, match="line 1 is not a review with reviewerID"):
        load_amazon(data_dir=tmp_path, download=False)


# ---- content ------------------------------------------------------------------------------

def test_item_tokens_cover_title_brand_every_category_level_and_a_price_band():
    tokens = item_tokens("Nivea Soft Cream", "Nivea", "Beauty > Skin Care | Beauty > Bath", 12.5)
    assert tokens == ["nivea", "soft", "cream", "brand:nivea", "category:bath",
                      "category:beauty", "category:skin care", "price:8-16"]
    assert item_tokens("", "", "", float("nan")) == []


def test_content_is_padded_unit_norm_and_products_alike_are_closer(tiny):
    content = amazon_content(tiny.items, dim=3)
    assert content.shape == (5, 3) and content.dtype == np.float32 and not content[0].any()
    np.testing.assert_allclose(np.linalg.norm(content[1:4], axis=1), 1.0, rtol=1e-5)
    assert not content[4].any()                         # B004: no text, a zero row
    creams, cream_lipstick = content[1] @ content[2], content[1] @ content[3]
    assert creams > cream_lipstick


def test_item_text_names_the_fields_tiger_encodes(tiny):
    text = item_text(tiny.items)
    assert text[0] == ("Title: Nivea Soft Cream. Price: 12.50. Brand: Nivea. Categories: "
                       "Beauty > Skin Care > Face | Beauty > Bath.")
    assert "Price: unknown. Brand: unknown." in text[3]


# ---- the dataset entry --------------------------------------------------------------------

def test_load_dataset_gives_a_leave_one_out_split_with_content(tmp_path, tiny_counts):
    write_category(tmp_path)
    data = load_dataset("amazon-beauty", data_dir=tmp_path)
    assert data.name == "amazon-beauty" and data.n_items == 4
    assert data.content.shape[0] == 5 and not data.content[0].any()
    assert data.split.test[3] == 3 and data.split.valid[3] == 1      # user C: days 2, 3 last
    assert data.split.timestamps[3].tolist() == [DAY, 2 * DAY, 3 * DAY]
    assert "label" in data.items


def test_load_dataset_of_an_unavailable_category_raises_instead_of_falling_back(tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr(amazon, "BASE_URL", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(FileNotFoundError, match="(?s)neither layout of Amazon 2014 Toys_and_Games"
                                                ".*amazon-2014.*amazon-s3rec/Toys_and_Games.txt"
                                                ".*Amazon 2014 Toys_and_Games not found"):
        load_dataset("amazon-toys", data_dir=tmp_path / "data")


def write_s3rec(data_dir: Path, category="Toys_and_Games", attributes=True) -> Path:
    """A tiny S3Rec layout: 4 users over items 1..5, items 1-3 of brand 7, 4-5 of brand 8."""
    folder = data_dir / "amazon-s3rec"
    folder.mkdir(parents=True)
    (folder / f"{category}.txt").write_text("1 1 2 3 4\n2 2 3 1\n3 4 5 1 2\n4 5 4 3\n")
    if attributes:
        (folder / f"{category}_item2attributes.json").write_text(json.dumps(
            {str(i): [1, 7] if i <= 3 else [2, 8] for i in range(1, 6)}))
    return folder


def test_the_s3rec_layout_is_found_by_the_short_name(tmp_path):
    write_s3rec(tmp_path)
    data = load_dataset("amazon-toys", data_dir=tmp_path)
    assert data.name == "amazon-toys" and data.n_items == 5 and len(data.split.train) == 4
    assert data.split.seen == "exclude" and not data.has_timestamps
    raw = dict(zip(data.items["item"], data.items["item_id"].astype(int)))
    assert [raw[i] for i in data.split.train[1]] == [1, 2] and raw[data.split.test[1]] == 4
    same_brand = data.content[[raw_to for raw_to, r in raw.items() if r <= 3]]
    assert np.allclose(same_brand, same_brand[0])                    # content from attributes
    assert data.items.set_index("item_id")["attributes"].loc["1"] == "1 7"   # shown as they are


def test_the_official_files_win_over_the_s3rec_layout_when_both_are_there(tmp_path, tiny_counts):
    write_category(tmp_path)                                          # Beauty, official
    write_s3rec(tmp_path, "Beauty")
    assert load_dataset("amazon-beauty", data_dir=tmp_path).n_items == 4     # not 5
