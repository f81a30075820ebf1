"""bench/reproduce.py: its main() trains every model on a tiny sequence file the test writes
(one epoch), prints the table and writes the JSON rows; the published numbers it carries
are consistent with the datasets and models it knows; bad options are refused."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from course_lib.data.datasets import DATASETS

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("reproduce", ROOT / "bench" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
sys.modules["reproduce"] = reproduce            # dataclasses look their module up by name
spec.loader.exec_module(reproduce)


@pytest.fixture
def files(tmp_path):
    """60 users over 60 items, item i followed by i + 1; attributes: a group of five items, a
    residue and an id of their own."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, 61):
        start, length = rng.integers(1, 61), rng.integers(5, 12)
        lines.append(" ".join(map(str, [user, *((start - 1 + np.arange(length)) % 60 + 1)])))
    sequences = tmp_path / "Tiny.txt"
    sequences.write_text("\n".join(lines) + "\n")
    attributes = tmp_path / "Tiny_item2attributes.json"
    attributes.write_text(json.dumps({str(i): [(i - 1) // 5, 10 + i % 3, 20 + i]
                                      for i in range(1, 61)}))
    return sequences, attributes


def test_main_trains_every_model_one_epoch_and_writes_the_rows(files, tmp_path, capsys):
    sequences, attributes = files
    out = tmp_path / "rows.json"
    rows = reproduce.main(["--sequences", str(sequences), "--attributes", str(attributes),
                           "--epochs", "1", "--json", str(out), "--device", "cpu", "--budget", "5"])
    assert [r["model"] for r in rows] == list(reproduce.MODELS)
    assert json.loads(out.read_text()) == rows
    for row in rows:
        assert row["dataset"] == "Tiny.txt" and row["split"] == "test"
        assert 0 <= row["NDCG@10"] <= row["HR@10"] <= 1 and row["HR@5"] <= row["HR@10"]
        assert row["published"] == {} and row["source"] is None
    trained = [r for r in rows if r["model"] != "popularity"]
    assert all(r["epochs_run"] == 1 and r["best_epoch"] == 0 for r in trained)
    assert "HR@50" in rows[0] and "HR@200" not in rows[0]         # no cut-off above 60 items
    by_model = {r["model"]: r for r in rows}
    assert "HR@50" not in by_model["tiger"]                        # TIGER ranks 5 and 10
    assert "HR@50" in by_model["pinrec"]                           # PinRec scores every item
    assert all(set(r["valid_curve"]) == {"10", "20", "40", "60"} for r in trained)
    assert by_model["popularity"]["valid_curve"] is None
    printed = capsys.readouterr().out
    assert "| model | R@5 | R@10 | N@5 | N@10 |" in printed and "laptop recipe" in printed
    assert "| tiger |" in printed and "| pinrec |" in printed
    assert "seen items excluded" in printed                        # the protocol line


def test_a_model_subset_runs_only_those(files):
    rows = reproduce.main(["--sequences", str(files[0]), "--models", "popularity,sasrec-bce",
                           "--epochs", "1", "--device", "cpu", "--max-len", "8"])
    assert [r["model"] for r in rows] == ["popularity", "sasrec-bce"]


def test_published_numbers_name_known_datasets_models_and_a_source():
    for (dataset, model), metrics in reproduce.PUBLISHED.items():
        assert dataset in DATASETS and model in reproduce.MODELS
        assert reproduce.SOURCES[dataset]
        assert set(metrics) <= {"HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@50", "HR@200"}
        assert all(0 < v < 1 for v in metrics.values())
    assert reproduce.PUBLISHED["amazon-beauty", "tiger"]["HR@10"] == 0.0648


def test_the_table_puts_the_published_value_and_the_curve_beside_ours():
    row = {"model": "tiger", "HR@10": 0.05, "NDCG@10": 0.03, "HR@5": 0.04, "NDCG@5": 0.02,
           "published": {"HR@10": 0.0648, "NDCG@10": 0.0384}, "best_epoch": 3,
           "epochs_run": 9, "train_seconds": 720.0,
           "valid_curve": {"10": 0.021, "20": 0.025, "40": 0.027, "60": 0.028}}
    line = reproduce.table([row]).splitlines()[-1]
    assert line == ("| tiger | 0.0400 | 0.0500 | 0.0200 | 0.0300 | 0.0648 | 0.0384 | 0.0210 | "
                    "0.0250 | 0.0270 | 0.0280 | 3 / 9 | 12.0 |")


def test_the_curve_keeps_the_best_validation_reached_within_each_mark():
    from course_lib.train import FitResult
    result = FitResult(valid_metric=[0.01, 0.03, 0.02, 0.04], seconds=[300, 900, 1500, 3000])
    assert reproduce.curve(result) == {"10": 0.01, "20": 0.03, "40": 0.03, "60": 0.04}
    assert reproduce.curve(None) is None


def test_an_s3rec_file_is_compared_with_its_amazon_category(tmp_path):
    sequences = tmp_path / "Toys_and_Games.txt"
    sequences.write_text("".join(f"{u} {u % 7 + 1} {u % 5 + 1} {u % 3 + 8}\n" for u in range(1, 30)))
    args = reproduce.parse_args(["--sequences", str(sequences)])
    assert reproduce.load(args, reproduce.get_profile("quick"))[1] == "amazon-toys"


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "ml-1m", "--models", "sasrec,gpt"], "unknown models"),
    (["--dataset", "ml-1m", "--attributes", "a.json"], "--attributes goes with --sequences"),
    (["--dataset", "ml-1m", "--epochs", "0"], "--epochs must be >= 1"),
    (["--dataset", "ml-1m", "--budget", "0"], "--budget must be > 0 minutes"),
    (["--models", "popularity"], "one of the arguments --dataset --sequences is required"),
])
def test_bad_options_are_refused_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit):
        reproduce.parse_args(argv)
    assert message in capsys.readouterr().err


def test_a_dataset_that_cannot_be_read_stops_instead_of_using_the_world(tmp_path, monkeypatch):
    from course_lib.data import movielens
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(movielens.URLS, "ml-latest-small", (tmp_path / "none.zip").as_uri())
    with pytest.raises(SystemExit, match="runs on real data only"):
        reproduce.main(["--dataset", "movielens", "--models", "popularity"])
