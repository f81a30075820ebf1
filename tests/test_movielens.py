"""MovieLens: loading both file layouts, the safe download, the data folder, content vectors."""
import dataclasses
import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from course_lib.data import download, movielens
from course_lib.data.movielens import (ML_1M, ML_20M, ML_LATEST_SMALL, default_data_dir,
                                       download_movielens, load_movielens, movie_content,
                                       split_title)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

# Three users (original ids 10, 3, 7), five movies; movie 40 is never rated (a cold item).
MOVIES_CSV = """movieId,title,genres
20,"American President, The (1995)",Comedy|Drama|Romance
10,Heat (1995) ,Action|Crime|Thriller
30,Babylon 5,Sci-Fi
40,Death Note: Desu nôto (2006–2007),(no genres listed)
50,Toy Story 2 (1999),Animation|Children|Comedy
"""
RATINGS_CSV = """userId,movieId,rating,timestamp
10,20,4.0,300
10,10,3.5,100
3,50,5.0,200
3,30,2.0,200
7,10,1.0,50
"""
MOVIES_DAT = ("1::Toy Story (1995)::Animation|Children's|Comedy\n"
              "2::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
              "3::Heat (1995)::Action|Crime|Thriller\n")
RATINGS_DAT = "1::2::5::978300760\n1::1::3::978300000\n2::3::4::978301000\n"


def write_ml_latest(folder: Path, movies: str = MOVIES_CSV, ratings: str = RATINGS_CSV) -> Path:
    folder.mkdir(parents=True)
    (folder / "movies.csv").write_text(movies, encoding="utf-8")
    (folder / "ratings.csv").write_text(ratings, encoding="utf-8")
    return folder


def write_ml_1m(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "movies.dat").write_bytes(MOVIES_DAT.encode("latin-1"))
    (folder / "ratings.dat").write_bytes(RATINGS_DAT.encode("latin-1"))
    return folder


def zip_of(folder: Path, zip_path: Path, top_level: str | None) -> str:
    """Zip `folder`'s files under `top_level/` (as GroupLens does) and return a file:// URL."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{top_level}/{path.name}" if top_level else path.name)
    return zip_path.as_uri()


@pytest.fixture
def tiny_zip(tmp_path) -> str:
    source = write_ml_latest(tmp_path / "source")
    return zip_of(source, tmp_path / "ml-latest-small.zip", top_level=ML_LATEST_SMALL)


@pytest.fixture
def tiny_checksums(tmp_path, monkeypatch):
    """Pin the checksum table to the tiny files, as if they were the official release."""
    sha = {name: hashlib.sha256(text.encode()).hexdigest()
           for name, text in (("movies.csv", MOVIES_CSV), ("ratings.csv", RATINGS_CSV))}
    monkeypatch.setitem(movielens.SHA256, ML_LATEST_SMALL, sha)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "README.md").write_text("downloads land here\n")
    return folder


# ---- the tiny ml-latest-small layout --------------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    write_ml_latest(tmp_path / ML_LATEST_SMALL)
    return load_movielens(data_dir=tmp_path, download=False)


def test_every_movie_is_an_item_numbered_by_movie_id(tiny):
    assert tiny.items["item"].tolist() == [1, 2, 3, 4, 5]
    assert tiny.items["movie_id"].tolist() == [10, 20, 30, 40, 50]
    assert tiny.n_items == 5


def test_unrated_movies_stay_as_cold_items(tiny):
    assert 4 in tiny.items["item"].tolist() and 4 not in tiny.interactions["item"].tolist()


def test_users_are_renumbered_by_original_id(tiny):
    # original 3 -> 1, 7 -> 2, 10 -> 3
    assert tiny.interactions["user"].tolist() == [1, 1, 2, 3, 3]
    assert tiny.n_users == 3


def test_interactions_are_sorted_by_user_then_time_keeping_file_order_on_ties(tiny):
    frame = tiny.interactions
    assert frame["timestamp"].tolist() == [200, 200, 50, 100, 300]
    assert frame["item"].tolist() == [5, 3, 1, 1, 2]   # user 1's tie: movie 50 came first


def test_interaction_columns_have_the_documented_dtypes(tiny):
    dtypes = tiny.interactions.dtypes.astype(str).to_dict()
    assert dtypes == {"user": "int64", "item": "int64", "timestamp": "int64",
                      "rating": "float32"}
    assert str(tiny.items["year"].dtype) == "Int64"


def test_titles_lose_their_year_and_genres_stay_as_in_the_file(tiny):
    items = tiny.items.set_index("movie_id")
    assert items.loc[20, "title"] == "American President, The"
    assert items.loc[10, "title"] == "Heat" and items.loc[10, "year"] == 1995
    assert items.loc[30, "genres"] == "Sci-Fi"
    assert items.loc[40, "genres"] == "(no genres listed)"


def test_title_without_year_keeps_its_number_and_gets_no_year():
    assert split_title("Babylon 5") == ("Babylon 5", None)


def test_year_range_gives_its_first_year():
    assert split_title("Death Note: Desu nôto (2006–2007)") == ("Death Note: Desu nôto", 2006)


def test_trailing_spaces_do_not_hide_the_year():
    assert split_title("Heat (1995) ") == ("Heat", 1995)


def test_missing_year_is_na(tiny):
    assert tiny.items.set_index("movie_id")["year"].isna().to_dict() == {
        10: False, 20: False, 30: True, 40: False, 50: False}


# ---- the ml-1m layout -----------------------------------------------------------------------

def test_ml_1m_layout_with_double_colons_and_latin1_titles_loads(tmp_path):
    write_ml_1m(tmp_path / ML_1M)
    ml = load_movielens(ML_1M, data_dir=tmp_path, download=False)
    assert ml.items["title"].tolist()[1] == "Amélie (Fabuleux destin d'Amélie Poulain, Le)"
    assert ml.items["genres"].tolist()[0] == "Animation|Children's|Comedy"
    assert ml.items["year"].tolist() == [1995, 2001, 1995]
    assert ml.interactions[["user", "item"]].values.tolist() == [[1, 1], [1, 2], [2, 3]]
    assert ml.interactions["rating"].dtype == np.float32


def test_ml_20m_layout_is_read_like_ml_latest_small(tmp_path):
    write_ml_latest(tmp_path / ML_20M)
    ml = load_movielens(ML_20M, data_dir=tmp_path, download=False)
    assert ml.n_items == 5 and ml.interactions["user"].tolist() == [1, 1, 2, 3, 3]


# ---- ties at one second ---------------------------------------------------------------------

TIED_RATINGS = "userId,movieId,rating,timestamp\n" + "".join(
    f"1,{m},4.0,100\n" for m in (10, 20, 30, 40, 50)) + "2,10,3.0,50\n2,20,3.0,60\n"


def test_tie_seed_shuffles_same_second_ratings_and_repeats_with_the_seed(tmp_path):
    write_ml_latest(tmp_path / ML_LATEST_SMALL, ratings=TIED_RATINGS)
    def order(**kwargs):
        frame = load_movielens(data_dir=tmp_path, download=False, **kwargs).interactions
        return frame[frame["user"] == 1]["item"].tolist()
    assert order(tie_seed=None) == [1, 2, 3, 4, 5]                # the file's order, on request
    assert order() == order(tie_seed=0) != [1, 2, 3, 4, 5]        # default: shuffled, seed 0
    shuffled = {tuple(order(tie_seed=seed)) for seed in range(10)}
    assert len(shuffled) > 1 and all(sorted(o) == [1, 2, 3, 4, 5] for o in shuffled)
    assert order(tie_seed=3) == order(tie_seed=3)


def test_tie_seed_never_reorders_ratings_at_different_times(tmp_path):
    write_ml_latest(tmp_path / ML_LATEST_SMALL, ratings=TIED_RATINGS)
    frame = load_movielens(data_dir=tmp_path, download=False, tie_seed=1).interactions
    assert frame[frame["user"] == 2]["timestamp"].tolist() == [50, 60]


# ---- where the data is looked for -----------------------------------------------------------

def test_course_data_dir_is_honoured(tmp_path, monkeypatch):
    write_ml_latest(tmp_path / ML_LATEST_SMALL)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert load_movielens(download=False).n_items == 5


def test_without_course_data_dir_the_repository_data_folder_is_used(monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert default_data_dir() == Path(__file__).resolve().parents[1] / "data"


def test_missing_data_offline_names_the_path_and_the_fixes(data_dir):
    with pytest.raises(FileNotFoundError) as error:
        load_movielens(data_dir=data_dir, download=False)
    message = str(error.value)
    assert str(data_dir / ML_LATEST_SMALL) in message and "COURSE_DATA_DIR" in message
    assert "ratings.csv" in message and "download=True" in message


# ---- the download ---------------------------------------------------------------------------

def test_download_puts_the_verified_folder_in_place(data_dir, tiny_zip, tiny_checksums):
    ml = load_movielens(data_dir=data_dir, url=tiny_zip)
    assert ml.n_items == 5 and len(ml.interactions) == 5
    assert sorted(os.listdir(data_dir)) == ["README.md", ML_LATEST_SMALL]
    assert sorted(os.listdir(data_dir / ML_LATEST_SMALL)) == ["movies.csv", "ratings.csv"]


def test_download_of_a_zip_without_top_level_folder_works_too(tmp_path, data_dir,
                                                              tiny_checksums):
    url = zip_of(write_ml_latest(tmp_path / "flat"), tmp_path / "flat.zip", top_level=None)
    assert download_movielens(ML_LATEST_SMALL, data_dir, url) == data_dir / ML_LATEST_SMALL
    assert load_movielens(data_dir=data_dir, download=False).n_users == 3


def test_ml_1m_download_is_accepted_when_the_zip_matches_the_published_md5(tmp_path, data_dir,
                                                                           monkeypatch):
    zip_path = tmp_path / "ml-1m.zip"
    url = zip_of(write_ml_1m(tmp_path / "src"), zip_path, top_level=ML_1M)
    monkeypatch.setitem(movielens.ZIP_MD5, ML_1M, hashlib.md5(zip_path.read_bytes()).hexdigest())
    assert load_movielens(ML_1M, data_dir=data_dir, url=url).n_items == 3


@pytest.mark.parametrize("release", [ML_1M, ML_20M])
def test_a_zip_that_is_not_the_published_one_is_refused_and_nothing_kept(tmp_path, data_dir,
                                                                         release):
    write = write_ml_1m if release == ML_1M else write_ml_latest
    url = zip_of(write(tmp_path / "src"), tmp_path / "other.zip", top_level=release)
    before = sorted(os.listdir(data_dir))
    with pytest.raises(RuntimeError, match=f"checksum mismatch.*md5 {movielens.ZIP_MD5[release]}"):
        load_movielens(release, data_dir=data_dir, url=url)      # the real GroupLens MD5
    assert sorted(os.listdir(data_dir)) == before


def test_published_zip_md5s_are_pinned_for_the_paper_releases():
    assert set(movielens.ZIP_MD5) == set(movielens.URLS)
    assert all(len(movielens.ZIP_MD5[r]) == 32 for r in (ML_1M, ML_20M))


def test_checksum_mismatch_raises_and_leaves_nothing_behind(data_dir, tiny_zip):
    before = sorted(os.listdir(data_dir))
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        load_movielens(data_dir=data_dir, url=tiny_zip)   # real pins, tiny files
    assert sorted(os.listdir(data_dir)) == before


def test_unreachable_url_raises_with_the_offline_fix_and_leaves_nothing_behind(tmp_path,
                                                                               data_dir):
    before = sorted(os.listdir(data_dir))
    with pytest.raises(RuntimeError, match="could not download") as error:
        load_movielens(data_dir=data_dir, url=(tmp_path / "absent.zip").as_uri())
    assert "COURSE_DATA_DIR" in str(error.value)
    assert str(data_dir / ML_LATEST_SMALL) in str(error.value)
    assert sorted(os.listdir(data_dir)) == before


def test_corrupt_zip_raises_and_leaves_nothing_behind(tmp_path, data_dir):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 cut off here")
    before = sorted(os.listdir(data_dir))
    with pytest.raises(RuntimeError, match="not a valid zip"):
        load_movielens(data_dir=data_dir, url=broken.as_uri())
    assert sorted(os.listdir(data_dir)) == before


def test_download_returns_an_existing_copy_untouched(tmp_path):
    folder = write_ml_latest(tmp_path / ML_LATEST_SMALL)
    assert download_movielens(ML_LATEST_SMALL, tmp_path, url="file:///nowhere.zip") == folder


def test_the_offline_hint_s_layout_unzipped_into_the_release_folder_loads(tmp_path):
    write_ml_1m(tmp_path / ML_1M / ML_1M)                 # unzipped into data/ml-1m/
    assert load_movielens(ML_1M, data_dir=tmp_path, download=False).n_items == 3
    assert download_movielens(ML_1M, tmp_path) == tmp_path / ML_1M / ML_1M


def test_the_offline_hint_says_to_unzip_into_the_data_folder(data_dir):
    with pytest.raises(FileNotFoundError, match=f"unzip .*ml-1m.zip into {data_dir} "
                                                r"\(the zip holds the folder ml-1m/"):
        load_movielens(ML_1M, data_dir=data_dir, download=False)


def test_a_release_folder_without_the_files_says_where_they_go_not_to_delete_data(tmp_path):
    (tmp_path / ML_1M).mkdir()
    (tmp_path / ML_1M / "ratings.csv").write_text("wrong release\n")
    with pytest.raises(RuntimeError, match=r"holds \['ratings.csv'\]\); put ratings.dat and "
                                           "movies.dat in"):
        download_movielens(ML_1M, tmp_path)


def test_a_killed_download_s_work_folder_is_removed_by_the_next_download(data_dir, tiny_zip,
                                                                          tiny_checksums):
    left = data_dir / f".{ML_LATEST_SMALL}-killed.part"
    left.mkdir()
    (left / f".{ML_LATEST_SMALL}.zip-x.part").write_bytes(b"half a zip")
    download_movielens(ML_LATEST_SMALL, data_dir, tiny_zip)
    assert sorted(os.listdir(data_dir)) == ["README.md", ML_LATEST_SMALL]


# ---- download_file: cut-off transfers and what killed downloads leave ------------------------

class PartialServer(http.server.BaseHTTPRequestHandler):
    """Announces 100 bytes and sends `sent` of them, then closes: a transfer cut off."""

    sent = 40

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"x" * self.sent)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def serve(monkeypatch):
    """A local HTTP server sending `sent` of 100 announced bytes; yields its URL maker."""
    monkeypatch.setenv("no_proxy", "*")
    servers = []

    def url(sent: int) -> str:
        handler = type("Handler", (PartialServer,), {"sent": sent})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/data.bin"
    yield url
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_transfer_cut_off_before_its_content_length_is_refused_and_nothing_kept(tmp_path,
                                                                                 serve):
    with pytest.raises(RuntimeError, match="was cut off: 40 of 100 bytes arrived, and nothing "
                                           "was kept. Try again"):
        download.download_file(serve(40), tmp_path / "data.bin")
    assert os.listdir(tmp_path) == []


def test_a_transfer_of_every_announced_byte_is_kept(tmp_path, serve):
    download.download_file(serve(100), tmp_path / "data.bin")
    assert (tmp_path / "data.bin").read_bytes() == b"x" * 100
    assert os.listdir(tmp_path) == ["data.bin"]


def test_a_killed_download_s_part_file_is_removed_by_the_next_call(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".data.bin-killed.part").write_bytes(b"da")
    (tmp_path / "data" / ".other.bin-killed.part").write_bytes(b"ot")  # another target's
    download.download_file(source.as_uri(), tmp_path / "data" / "data.bin")
    assert sorted(os.listdir(tmp_path / "data")) == [".other.bin-killed.part", "data.bin"]


def test_the_part_file_of_a_live_download_is_left_alone(tmp_path):
    live = tmp_path / "data" / ".data.bin-live.part"
    live.parent.mkdir()
    live.write_bytes(b"da")
    source = tmp_path / "source.bin"
    source.write_bytes(b"data")
    with open(live, "rb"), download.claimed(live):   # as a live download in another process
        download.download_file(source.as_uri(), tmp_path / "data" / "data.bin")
        assert live.exists() and (tmp_path / "data" / "data.bin").read_bytes() == b"data"


# ---- bad inputs -----------------------------------------------------------------------------

def test_unknown_release_lists_the_supported_ones(tmp_path):
    with pytest.raises(ValueError, match="ml-1m.*ml-20m.*ml-latest-small"):
        load_movielens("ml-25m", data_dir=tmp_path, download=False)


def test_rating_of_a_movie_missing_from_the_movies_file_is_an_error(tmp_path):
    write_ml_latest(tmp_path / ML_LATEST_SMALL, ratings=RATINGS_CSV + "3,99,4.0,500\n")
    with pytest.raises(ValueError, match=r"missing from the movies file.*\[99\]"):
        load_movielens(data_dir=tmp_path, download=False)


def test_content_dim_below_one_is_an_error(tiny):
    with pytest.raises(ValueError, match="dim must be >= 1"):
        movie_content(tiny.items, dim=0)


def test_content_dim_not_below_the_feature_count_is_an_error(tiny):
    with pytest.raises(ValueError, match="pick dim <"):
        movie_content(tiny.items, dim=1000)


def test_content_of_tiny_movies_is_padded_and_unit_norm(tiny):
    content = movie_content(tiny.items, dim=3)
    assert content.shape == (6, 3) and content.dtype == np.float32
    assert not content[0].any()
    np.testing.assert_allclose(np.linalg.norm(content[1:], axis=1), 1.0, rtol=1e-5)


# ---- the real ml-latest-small ---------------------------------------------------------------

@pytest.fixture(scope="module")
def real():
    if not (SHARED / ML_LATEST_SMALL / "ratings.csv").is_file():
        pytest.skip(f"no MovieLens copy at {SHARED / ML_LATEST_SMALL}")
    return load_movielens(data_dir=SHARED, download=False)


def test_real_copy_has_the_published_counts(real):
    assert (real.n_users, real.n_items, len(real.interactions)) == (610, 9742, 100836)


def test_real_ids_are_contiguous(real):
    assert sorted(real.interactions["user"].unique()) == list(range(1, 611))
    assert real.items["item"].tolist() == list(range(1, 9743))
    assert real.interactions["item"].between(1, 9742).all()


def test_real_interactions_are_sorted_by_user_then_time(real):
    frame = real.interactions
    keys = frame["user"].to_numpy() * 10**10 + frame["timestamp"].to_numpy()
    assert (np.diff(keys) >= 0).all()


def test_real_years_are_parsed_for_almost_all_movies(real):
    assert real.items["year"].isna().sum() <= 20      # 12 titles have none, e.g. "Babylon 5"
    assert real.items["year"].min() >= 1900 and real.items["year"].max() <= 2018


@pytest.fixture(scope="module")
def real_content(real):
    return movie_content(real.items)


def test_real_content_is_padded_and_unit_norm(real_content):
    assert real_content.shape == (9743, 32) and not real_content[0].any()
    np.testing.assert_allclose(np.linalg.norm(real_content[1:], axis=1), 1.0, rtol=1e-5)


def test_movies_sharing_a_genre_are_more_similar_than_random_pairs(real, real_content):
    # Measured on ml-latest-small, seed 0: ~0.28 for pairs sharing a genre, ~0.16 overall.
    rng = np.random.default_rng(0)
    a, b = rng.integers(1, real.n_items + 1, size=(2, 5000))
    similarity = (real_content[a] * real_content[b]).sum(axis=1)
    genres = [set(g.split("|")) for g in real.items["genres"]]
    share = np.array([bool(genres[i - 1] & genres[j - 1]) for i, j in zip(a, b)])
    assert similarity[share].mean() > similarity.mean() + 0.05


def test_pinned_checksums_match_the_real_copy(real):
    movielens._verify(SHARED / ML_LATEST_SMALL, ML_LATEST_SMALL)   # raises on a mismatch


def test_event_stream_turns_ratings_into_whole_star_actions():
    import pandas as pd

    from course_lib.data.datasets import Dataset, event_stream
    from course_lib.data.sequences import leave_one_out, user_sequences
    frame = pd.DataFrame({"user": [1, 1, 1, 1], "item": [3, 1, 2, 4],
                          "timestamp": [10, 20, 30, 40], "rating": [0.5, 3.5, 4.0, 5.0]})
    data = Dataset("movielens", frame, pd.DataFrame({"item": [1, 2, 3, 4]}),
                   np.zeros((5, 2), np.float32), leave_one_out(user_sequences(frame), 4))
    events = event_stream(data)
    assert events.positive_actions == (4, 5) and events.n_actions == 5
    assert events.split.actions[1].tolist() == [1, 4, 4, 5]
    assert events.split.timestamps[1].tolist() == [10, 20, 30, 40]
    test = events.split.evaluation("test")
    assert test.targets.tolist() == [4] and test.target_actions.tolist() == [5]
    without = dataclasses.replace(data, name="other", interactions=frame.drop(columns="rating"))
    with pytest.raises(ValueError, match="neither actions nor ratings"):
        event_stream(without)
