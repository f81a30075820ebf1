"""Your own data: sequence files (S3Rec/RecBole layout), interaction tables (CSV, Parquet) and
item-attribute JSON, read into the same split, batches, content and evaluation as the
built-in datasets. Every file is written by the tests."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from course_lib.data.datasets import DATASETS, event_stream, load_dataset
from course_lib.data.interactions import (attribute_documents, chronological, read_interactions,
                                          read_sequences, renumber)
from course_lib.data.sequences import next_item_batches
from course_lib.models.baselines import Popularity
from course_lib.train import evaluate_model

# S3Rec's layout: `user item item ...`, ids from 1, items in time order.
SEQUENCES = """1 1 2 3 4
2 2 3 4 5 6
3 5 6 7 8
4 1 3 5 7 9 10
"""
# Items 1-5 are creams (attribute 1), 6-10 are lipsticks (attribute 2); 3 and 4 share 3.
ATTRIBUTES = {str(i): ([1] if i <= 5 else [2]) + ([3] if i in (3, 4) else []) for i in range(1, 11)}


@pytest.fixture
def sequence_file(tmp_path):
    path = tmp_path / "Tiny.txt"
    path.write_text(SEQUENCES)
    return path


@pytest.fixture
def attributes_file(tmp_path):
    path = tmp_path / "Tiny_item2attributes.json"
    path.write_text(json.dumps(ATTRIBUTES))
    return path


def write_csv(tmp_path, text, name="log.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- renumbering --------------------------------------------------------------------------

def test_integer_ids_keep_their_numeric_order():
    ids, raw = renumber(np.array(["10", "2", "1", "2"], dtype=object))
    assert ids.tolist() == [3, 2, 1, 2] and raw.tolist() == ["1", "2", "10"]


def test_text_ids_are_numbered_in_sorted_order():
    ids, raw = renumber(["b", "a", "c", "a"])
    assert ids.tolist() == [2, 1, 3, 1] and raw.tolist() == ["a", "b", "c"]


# ---- sequence files -----------------------------------------------------------------------

def test_a_sequence_file_with_ids_from_one_keeps_its_ids(sequence_file):
    own = read_sequences(sequence_file)
    assert own.n_items == 10 and own.items["item_id"].tolist() == [str(i) for i in range(1, 11)]
    first = own.interactions[own.interactions["user"] == 4]
    assert first["item"].tolist() == [1, 3, 5, 7, 9, 10]
    assert first["timestamp"].tolist() == list(range(6)) and not own.has_timestamps


def test_a_sequence_file_feeds_the_same_leave_one_out_split(sequence_file):
    data = load_dataset(sequence_file)
    assert data.name == "Tiny.txt" and data.n_items == 10 and not data.has_timestamps
    assert data.split.train[2].tolist() == [2, 3, 4] and data.split.valid[2] == 5
    assert data.split.test[2] == 6 and data.split.timestamps is None


def test_a_user_on_two_lines_is_an_error_naming_both(tmp_path):
    path = write_csv(tmp_path, "u1 a b c\nu2 a b c\nu1 d e\n", "twice.txt")
    with pytest.raises(ValueError, match="user 'u1' is on line 1 and again on line 3"):
        read_sequences(path)


def test_a_line_with_a_user_but_no_item_is_an_error(tmp_path):
    path = write_csv(tmp_path, "u1 a b c\nu2\n", "short.txt")
    with pytest.raises(ValueError, match="line 2: 'u2' has a user but no item"):
        read_sequences(path)


def test_blank_lines_are_skipped_and_tabs_separate_too(tmp_path):
    path = write_csv(tmp_path, "u1\ta\tb\tc\n\nu2 b c d\n", "tabs.txt")
    assert len(read_sequences(path).interactions) == 6


# ---- item attributes ----------------------------------------------------------------------

def test_attributes_become_content_where_items_sharing_attributes_are_closer(sequence_file,
                                                                             attributes_file):
    data = load_dataset(sequence_file, attributes=attributes_file)
    content = data.content                               # (11, D), row 0 padding
    assert content.shape[0] == 11 and not content[0].any()
    np.testing.assert_allclose(np.linalg.norm(content[1:], axis=1), 1.0, rtol=1e-5)
    assert content[3] @ content[4] > content[3] @ content[1] > content[3] @ content[7]


def test_items_missing_from_the_attributes_file_get_no_tokens(sequence_file, tmp_path):
    path = tmp_path / "some.json"
    path.write_text(json.dumps({"1": [5], "2": [5, 6]}))
    with pytest.warns(UserWarning, match="8 of the 10 items have no attributes"):
        documents = attribute_documents(path, read_sequences(sequence_file).items)
    assert documents[:3] == [["attribute:5"], ["attribute:5", "attribute:6"], []]


def test_an_attributes_file_covering_few_items_warns_how_many_rows_stay_zero(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"a": [1]}))
    sequences = write_csv(tmp_path, "u a b c d e\nv e d c b a\n", "five.txt")
    with pytest.warns(UserWarning, match=r"4 of the 5 items have no attributes in one\.json "
                                         r"\(e\.g\. item 'b'\).*all zero"):
        data = load_dataset(sequences, attributes=path)
    assert data.content[1].any() and not data.content[2:].any()


def test_an_attributes_file_about_other_items_is_an_error(sequence_file, tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"X1": [1], "X2": [2]}))
    with pytest.raises(ValueError, match="none of the 10 items.*same ids"):
        load_dataset(sequence_file, attributes=path)


@pytest.mark.parametrize("text, match", [("{not json", "not valid JSON"),
                                         ("[1, 2]", "must hold a JSON object"),
                                         ('{"1": 3}', "must be a list")])
def test_a_malformed_attributes_file_says_what_is_expected(sequence_file, tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_dataset(sequence_file, attributes=path)


def test_a_latin1_attributes_file_names_the_file_and_the_encoding(sequence_file, tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes('{"1": ["crème"]}'.encode("latin-1"))
    with pytest.raises(ValueError, match="latin.json is not UTF-8 text.*iconv"):
        load_dataset(sequence_file, attributes=path)


def test_a_latin1_sequence_file_names_the_file_and_the_encoding(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("josé a b c\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.txt is not UTF-8 text"):
        read_sequences(path)


def test_without_attributes_content_comes_from_training_sequences_only(tmp_path):
    # item 9 is only ever a validation or test item: no training sequence holds it
    path = write_csv(tmp_path, "a 1 2 3 9\nb 1 2 4 9\nc 3 4 5 6 7 8\nd 5 6 7 8 1 2\n", "t.txt")
    data = load_dataset(path)
    assert not data.content[9].any()
    assert data.content[1].any() and data.content[5] @ data.content[6] > 0.9   # always together


# ---- interaction tables -------------------------------------------------------------------

LOG = """user,item,timestamp,action
ann,shoe,100,view
ann,sock,100,view
ann,shoe,200,buy
ann,hat,300,buy
bob,hat,50,view
bob,sock,60,buy
bob,shoe,70,buy
bob,hat,80,buy
"""


def test_a_table_is_renumbered_and_keeps_actions_as_categories(tmp_path):
    own = read_interactions(write_csv(tmp_path, LOG))
    assert own.items["item_id"].tolist() == ["hat", "shoe", "sock"]
    assert own.interactions["user"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert list(own.interactions["action"].cat.categories) == ["buy", "view"]
    assert own.has_timestamps


def test_ties_in_a_table_are_shuffled_by_the_seed_not_the_file(tmp_path):
    path = write_csv(tmp_path, LOG)
    firsts = {tuple(read_interactions(path, seed=s).interactions["item"][:2]) for s in range(30)}
    assert firsts == {(2, 3), (3, 2)}                       # shoe/sock at t=100, both orders


def test_chronological_keeps_different_times_in_order():
    frame = pd.DataFrame({"user": [1, 1, 1, 2], "item": [1, 2, 3, 4], "timestamp": [5, 1, 5, 0]})
    for seed in range(5):
        ordered = chronological(frame, seed)
        assert ordered["timestamp"].tolist() == [1, 5, 5, 0]


def test_positive_actions_choose_what_the_split_consumes(tmp_path):
    data = load_dataset(write_csv(tmp_path, LOG), positive_actions=("buy",))
    assert data.split.train[2].tolist() == [3] and data.split.valid[2] == 2
    assert data.split.test[2] == 1
    assert 1 not in data.split.train                        # ann bought only twice: dropped


def test_event_stream_of_a_table_gives_every_event_with_its_action(tmp_path):
    data = load_dataset(write_csv(tmp_path, LOG), positive_actions=("buy",))
    events = event_stream(data)
    assert events.n_actions == 2 and events.positive_actions == (1,)
    assert events.split.actions[2].tolist() == [2, 1, 1, 1]          # view, buy, buy, buy
    assert events.split.timestamps[2].tolist() == [50, 60, 70, 80]


def test_dates_are_read_as_seconds(tmp_path):
    path = write_csv(tmp_path, "user,item,timestamp\nu,a,1970-01-01 00:01:00\nu,b,1970-01-02\n")
    assert read_interactions(path).interactions["timestamp"].tolist() == [60, 86_400]


def test_fractions_of_a_second_order_the_events_and_choose_the_test_target(tmp_path):
    path = write_csv(tmp_path, "user,item,timestamp\nu,a,1.7\nu,b,1.2\nu,c,1.9\nu,d,1.5\n")
    for seed in range(5):                                   # no ties: no seed may reorder
        data = load_dataset(path, seed=seed)                # items a, b, c, d are 1, 2, 3, 4
        assert data.interactions["timestamp"].tolist() == [1.2, 1.5, 1.7, 1.9]
        assert data.split.train[1].tolist() == [2, 4]       # b, d
        assert data.split.valid[1] == 1 and data.split.test[1] == 3     # a, then c


def test_dates_with_fractions_of_a_second_keep_their_order(tmp_path):
    path = write_csv(tmp_path, "user,item,timestamp\nu,a,2024-05-01 10:00:00.700\n"
                               "u,b,2024-05-01 10:00:00.200\nu,c,2024-05-01 10:00:00.900\n")
    frame = read_interactions(path).interactions
    assert frame["item"].tolist() == [2, 1, 3]
    assert np.diff(frame["timestamp"]).round(6).tolist() == [0.5, 0.2]


def test_a_repeated_event_is_dropped_with_a_warning_that_counts_it(tmp_path):
    path = write_csv(tmp_path, LOG + "ann,hat,300,buy\nbob,sock,60,buy\n")
    with pytest.warns(UserWarning, match="dropped 2 duplicate rows.*user 'ann', item 'hat'"):
        own = read_interactions(path)
    assert len(own.interactions) == 8 and own.interactions.equals(
        read_interactions(write_csv(tmp_path, LOG, "clean.csv")).interactions)


def test_the_same_item_and_time_with_another_action_is_another_event(tmp_path, recwarn):
    path = write_csv(tmp_path, LOG + "ann,hat,300,view\n")
    assert len(read_interactions(path).interactions) == 9
    assert not [w for w in recwarn if "duplicate" in str(w.message)]


@pytest.mark.parametrize("content, match", [
    (b"", "log.csv is empty; an interactions file starts with the header"),
    ("user,item,timestamp\njosé,a,1\n".encode("latin-1"), "log.csv is not UTF-8 text.*iconv"),
    (b"user,item,timestamp\nu,a,1\nu,b,2,3\n",
     "log.csv is not a regular table.*Expected 3 fields in line 3, saw 4"),
    (b"user,item,timestamp,rating\nu,a,1,4\nu,b,2,good\n",
     "rating column of log.csv holds 'good' in data row 2, not a number"),
    (b"user,item,timestamp,rating\nu,a,1,4\nu,b,2,\n",
     "rating column of log.csv holds an empty cell in data row 2"),
])
def test_an_unreadable_table_names_the_file_and_the_fix(tmp_path, content, match):
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_interactions(path)


def test_a_table_without_its_columns_names_them(tmp_path):
    path = write_csv(tmp_path, "userId,movieId,rating\n1,2,3\n")
    with pytest.raises(ValueError, match=r"lacks columns \['item', 'timestamp', 'user'\]"):
        read_interactions(path)


def test_an_unknown_positive_action_lists_the_file_s_actions(tmp_path):
    with pytest.raises(ValueError, match=r"\['cart'\] do not occur.*\['buy', 'view'\]"):
        load_dataset(write_csv(tmp_path, LOG), positive_actions=("cart",))


def test_a_parquet_table_reads_like_the_csv(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(write_csv(tmp_path, LOG))
    frame.to_parquet(tmp_path / "log.parquet")
    assert read_interactions(tmp_path / "log.parquet").interactions.equals(
        read_interactions(tmp_path / "log.csv").interactions)


def test_parquet_without_an_engine_says_what_to_install(tmp_path, monkeypatch):
    def no_engine(path):
        raise ImportError("Unable to find a usable engine")
    monkeypatch.setattr(pd, "read_parquet", no_engine)
    (tmp_path / "log.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match="pip install pyarrow"):
        read_interactions(tmp_path / "log.parquet")


# ---- the same functions as the built-in datasets -------------------------------------------

def test_own_data_trains_and_evaluates_with_the_course_functions(sequence_file):
    data = load_dataset(sequence_file)
    batch = next(next_item_batches(data.split.train, data.n_items, max_len=5, batch_size=4))
    assert batch["inputs"].shape == (4, 5) and int(batch["inputs"].max()) <= data.n_items
    result = evaluate_model(Popularity(data.split.train, data.n_items),
                            data.split.evaluation("test"), ks=(5,))
    assert 0 <= result["HR@5"] <= 1 and set(result) >= {"HR@5", "NDCG@5", "MRR"}


def test_a_name_that_is_neither_a_dataset_nor_a_file_lists_both_options(tmp_path):
    with pytest.raises(ValueError, match="amazon-beauty.*or give the path"):
        load_dataset(str(tmp_path / "missing.csv"))


def test_attributes_are_refused_for_a_built_in_dataset(attributes_file):
    assert "ml-1m" in DATASETS
    with pytest.raises(ValueError, match="for your own files"):
        load_dataset("ml-1m", attributes=attributes_file)


def test_item_lookup_hands_torch_no_read_only_array():
    # pandas' arrays are read-only (copy-on-write), and torch warns about one only once per
    # process: a fresh interpreter, with that warning an error, catches it every time.
    code = ("import pandas as pd; from course_lib.data.datasets import item_lookup; "
            "t = item_lookup(pd.DataFrame({'item': [2, 1], 'cat': [7, 5]}), 'cat'); "
            "assert t.tolist() == [0, 5, 7], t")
    done = subprocess.run([sys.executable, "-W", "error:The given NumPy array", "-c", code],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_content_has_one_row_per_item_plus_padding(sequence_file, attributes_file):
    data = load_dataset(sequence_file, attributes=attributes_file)
    assert torch.as_tensor(data.content).shape[0] == data.n_items + 1
