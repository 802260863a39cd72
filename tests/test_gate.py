"""models.gate: average precision as scikit-learn computes it, the fixed holdout, and the bootstrap verdict, on
scores of real models fitted to the bundled credit-card sample."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from models import gate
from tests.conftest import ROOT, SAMPLE


@pytest.fixture(scope="module")
def real_scores():
    """(held-out labels, good, poor, weaker) scores of logistic regressions fitted on half of the sample and
    scored on rows of the other half: good on all features, poor on two of the least useful ones, weaker on a
    quarter of the training rows with strong regularisation."""
    frame = pd.read_csv(SAMPLE)
    y = frame.pop("Class").to_numpy()
    X = frame.drop(columns=["Time"]).to_numpy(dtype=np.float64)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[: len(y) // 2], order[len(y) // 2:]
    test = np.concatenate([test[y[test] == 1], test[y[test] == 0][:600]])
    good = LogisticRegression(max_iter=2000).fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    few_columns = [frame.columns.get_loc("V22"), frame.columns.get_loc("V25")]
    poor = LogisticRegression(max_iter=2000).fit(X[train][:, few_columns], y[train]).predict_proba(
        X[test][:, few_columns])[:, 1]
    quarter = train[: len(train) // 4]
    weaker = LogisticRegression(max_iter=2000, C=0.01).fit(X[quarter], y[quarter]).predict_proba(X[test])[:, 1]
    return y[test], good, poor, weaker


def test_average_precision_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    for size in (2, 7, 60, 400):
        for _ in range(50):
            y = rng.integers(0, 2, size)
            if y.sum() == 0:
                continue
            scores = np.round(rng.random(size), 1)  # many ties
            assert gate.average_precision(y, scores) == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert np.isnan(gate.average_precision([0, 0, 0], [0.1, 0.2, 0.3]))


def test_holdout_membership_depends_on_the_id_alone():
    ids = np.arange(1, 200_001)
    mask = gate.holdout_mask(ids)
    assert 0.19 < mask.mean() < 0.21
    subset = ids[::7]
    assert np.array_equal(gate.holdout_mask(subset), mask[::7])  # the same ids, whatever else is in the pool
    assert np.array_equal(gate.holdout_mask(ids[::-1]), mask[::-1])
    assert (gate.holdout_mask(ids, 0.1) <= mask).all()  # a smaller share holds a subset of the larger one
    with pytest.raises(ValueError, match="share"):
        gate.holdout_mask(ids, 1.0)


def test_a_clearly_worse_model_loses_and_a_comparable_one_passes(real_scores):
    y, good, poor, _ = real_scores
    worse = gate.compare(y, poor, good)
    assert not worse.passed and worse.bound < 0 and worse.new_ap < worse.old_ap
    assert worse.holdout == len(y) and worse.positives == int(y.sum())
    assert worse.reason.startswith(f"AP {worse.new_ap:.2f} vs {worse.old_ap:.2f} on {len(y)} held-out labels")
    assert "worse beyond noise" in worse.reason
    better = gate.compare(y, good, poor)
    assert better.passed and better.bound > 0
    rng = np.random.default_rng(1)
    jittered = good + rng.normal(0, 1e-4, len(good))  # the same model, retrained: differences are noise
    assert gate.compare(y, jittered, good).passed
    assert gate.compare(y, poor, good).as_dict() == worse.as_dict()  # a fixed seed: the same verdict every time
    json.dumps(worse.as_dict())  # stored in ModelVersion.gate as JSON


def test_a_small_holdout_is_noise_and_too_few_positives_are_not_compared(real_scores):
    y, good, _, other = real_scores
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    few = np.concatenate([positives[:6], negatives[:40]])
    small = gate.compare(y[few], other[few], good[few])
    assert small.new_ap < small.old_ap - 0.1 and small.passed  # lower, but 6 positives cannot tell
    two = np.concatenate([positives[:2], negatives[:40]])
    not_compared = gate.compare(y[two], other[two], good[two])
    assert not_compared.passed and not_compared.bound is None and not_compared.new_ap is None
    assert not_compared.reason == ("not compared: 2 positive among 42 held-out labels (the gate needs 5 positives "
                                   "and a negative)")
    assert gate.compare(y[positives], other[positives], good[positives]).reason.startswith("not compared: no negative")


def test_bad_input_raises():
    with pytest.raises(ValueError, match="one length"):
        gate.compare([0, 1], [0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match="NaN"):
        gate.compare([0, 1], [0.1, np.nan], [0.3, 0.4])


def test_the_gate_imports_neither_flask_nor_peewee():
    code = ("import sys, models.gate; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'peewee', 'labeler')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
