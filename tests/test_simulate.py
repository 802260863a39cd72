"""The simulate command and service on the small real sample: the JSON contract, the PNG, no writes, and
the product's loop against random labeling."""
import json

import numpy as np
import pandas as pd
import pytest

from labeler.data.importer import import_file
from labeler.store.db import Label, ModelVersion, QueueEntry
from labeler.store.settings import DEFAULTS
from labeler.worker import simulate
from tests.conftest import SAMPLE

FAST = {**{key: value for key, value in DEFAULTS.items() if key != "labeling"}, "cv_repeats": 1, "cv_folds": 3}


@pytest.mark.slow
def test_simulate_command_writes_results_and_leaves_the_store_alone(runner, dataset, tmp_path):
    dataset.settings = {"cv_repeats": 1, "cv_folds": 3}
    dataset.save()
    out = tmp_path / "sim"
    result = runner.invoke(args=["simulate", "--dataset", "cc", "--budget", "60", "--batch", "20", "--seeds", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert {"dataset", "strategy", "budget", "seeds", "curve"} <= set(document)
    assert (document["dataset"], document["strategy"], document["budget"], document["seeds"]) == (
        "cc", "default", 60, [0, 1])
    assert [row["labels"] for row in document["curve"]] == [20, 40, 60]
    for row in document["curve"]:
        assert set(row) == {"labels", "auprc", "auprc_min", "positives_found", "seconds"}
        assert 0 <= row["auprc_min"] <= row["auprc"] <= 1 and row["seconds"] > 0
    assert set(document["baselines"]) == {"random", "uncertainty"}
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Wrote" in result.output
    assert Label.select().count() == 0 and ModelVersion.select().count() == 0
    assert QueueEntry.select().count() == 0


def test_simulate_refuses_bad_input_in_one_line(runner, app, small_csv, tmp_path):
    result = runner.invoke(args=["simulate", "--dataset", "nope", "--budget", "10", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "no dataset named 'nope'" in result.output
    import_file(small_csv, "unlabeled")  # the Class column imported as a feature: no ground truth
    result = runner.invoke(args=["simulate", "--dataset", "unlabeled", "--budget", "10", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "have no ground truth" in result.output
    labeled = import_file(small_csv, "labeled", label_column="Class").dataset
    labeled.settings = {"generative_candidates": ["latent", "gan"]}
    labeled.save()
    result = runner.invoke(args=["simulate", "--dataset", "labeled", "--budget", "10", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: dataset 'labeled', setting generative_candidates: unknown candidate "
                                     "'gan' (known: latent, vae_balance, sgan)")
    assert not (tmp_path / "results.json").exists()


def _features_and_truth(path):
    frame = pd.read_csv(path)
    y = frame.pop("Class").to_numpy(dtype=np.int8)
    return frame.drop(columns=["Time"]).to_numpy(dtype=np.float32), y


@pytest.fixture(scope="module")
def sample(small_csv):
    """The small sample: 2,041 rows with all 49 frauds of the bundled file (2.4% positives)."""
    return _features_and_truth(small_csv)


@pytest.mark.slow
def test_the_loop_beats_random_on_the_bundled_sample():
    """The whole bundled sample (28,481 rows, 49 frauds: the real 0.17% rate), 200 labels in batches of 20."""
    X, y = _features_and_truth(SAMPLE)
    results = simulate.simulate(X, y, "sample", "default", 200, 20, [0, 1], FAST)
    loop, random = results["curve"], results["baselines"]["random"]
    assert loop[-1]["labels"] == random[-1]["labels"] == 200
    assert loop[-1]["auprc"] > random[-1]["auprc"] + 0.2
    # the pool holds 39 of the 49 frauds; random labeling of 200 of 22,784 expects 0.3 of them
    assert loop[-1]["positives_found"] >= 20
    assert loop[-1]["positives_found"] > 5 * max(random[-1]["positives_found"], 1)


def test_runs_are_reproducible_and_count_what_they_label(sample):
    X, y = sample
    first = simulate.run(X, y, "uncertainty", 50, 10, 3, FAST)
    again = simulate.run(X, y, "uncertainty", 50, 10, 3, FAST)
    assert [row["auprc"] for row in first] == [row["auprc"] for row in again]
    assert [row["labels"] for row in first] == [10, 20, 30, 40, 50]
    found = [row["positives_found"] for row in first]
    assert found == sorted(found) and found[-1] <= int(y.sum())
    with pytest.raises(simulate.SimulationError, match="unknown strategy"):
        simulate.run(X, y, "oracle", 10, 10, 0, FAST)


@pytest.mark.parametrize("every", [None, 50])  # (a flat 50: the product's labeler.store.settings.retrain_due)
def test_the_product_cadence_refits_every_n_labels_and_at_the_first_positive(sample, monkeypatch, every):
    X, y = sample
    fits = []
    shipped = simulate.ActiveLearner.train

    def train(self, labeled, y_labeled, pseudo=None):
        fits.append(len(labeled))
        return shipped(self, labeled, y_labeled, pseudo)

    monkeypatch.setattr(simulate.ActiveLearner, "train", train)
    runs = {}
    for first_of_class in (True, False):
        fits.clear()
        due = every and (lambda labels, new, positives: new >= every)
        rows = simulate.run(X, y, "default", 150, 10, 0, FAST, retrain_due=due, first_of_class_retrains=first_of_class)
        runs[first_of_class] = (list(fits), [row["auprc"] for row in rows])
    first = next(row["labels"] for row in rows if row["positives_found"])  # the batch of the first fraud
    if every is None:  # the benchmarks' loop: a refit after every batch once both classes are labeled
        assert runs[True] == runs[False] and runs[True][0] == list(range(first, 151, 10))
        return
    assert first % 50  # (this seed's first fraud comes between two retrains)
    assert runs[True][0] == list(range(first, 151, 50))
    assert runs[False][0] == list(range(-(-first // 50) * 50, 151, 50))
    before_model = runs[False][1][:(-(-first // 50) * 50) // 10 - 1]
    assert len(before_model) >= first // 10 and len(set(before_model)) == 1  # the positive rate: no model yet
