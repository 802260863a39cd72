"""Query strategies, weak models, selection and pseudo-labels on the bundled real sample (numpy, no store)."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from models import generative_candidates, names, pseudo, selection, strategies, weak
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def sample(small_csv):
    """(features float32 without Time, binary truth) of the small real sample: 2,049 rows, 49 frauds."""
    frame = pd.read_csv(small_csv)
    y = frame.pop("Class").to_numpy(dtype=np.int8)
    return frame.drop(columns=["Time"]).to_numpy(dtype=np.float32), y


@pytest.fixture(scope="module")
def scored(sample):
    """A calibrated logistic model fitted on 200 labeled rows (10 frauds among them) and P(fraud) of every row."""
    X, y = sample
    rng = np.random.default_rng(0)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == 1), 10, replace=False),
                              rng.choice(np.flatnonzero(y == 0), 190, replace=False)])
    p = selection.select(X[labeled], y[labeled], kinds=[weak.LOGISTIC]).model.predict(X)
    unlabeled = np.setdiff1d(np.arange(len(y)), labeled)
    return p, labeled, unlabeled


def test_uncertainty_scores_rank_as_defined(scored):
    p, _, unlabeled = scored
    nearest_half = np.abs(p[unlabeled] - 0.5)
    for name in ("least_confidence", "margin", "entropy"):
        picks = strategies.uncertainty_batch(p, unlabeled, 10, name)
        assert len(set(picks.tolist())) == 10 and set(picks.tolist()) <= set(unlabeled.tolist())
        # the picks are the 10 unlabeled items nearest 0.5 (binary: all three scores rank alike)
        assert np.abs(p[picks] - 0.5).max() <= np.sort(nearest_half)[9] + 1e-12
    two = np.column_stack([1 - p, p])  # each item's two label probabilities, by the scores' definitions
    assert np.allclose(strategies.least_confidence(p), 1 - two.max(axis=1))
    assert np.allclose(strategies.margin(p), 1 - np.abs(two[:, 1] - two[:, 0]))
    clipped = np.clip(two, 1e-12, 1)
    assert np.allclose(strategies.entropy(p), -(clipped * np.log(clipped)).sum(axis=1))
    assert strategies.margin(np.array([0.5]))[0] == 1.0 and strategies.least_confidence(np.array([1.0]))[0] == 0.0


def test_high_risk_picks_highest_probability_and_mix_is_recorded(sample, scored):
    X, _ = sample
    p, _, unlabeled = scored
    z = strategies.RobustScale(X).transform(X)
    picks = strategies.plan_batch(p, z, unlabeled, 10, {"high risk": 0.5, "uncertain": 0.4, "exploration": 0.1},
                                  np.random.default_rng(1))
    by_strategy = {}
    for index, name in picks:
        by_strategy.setdefault(name, []).append(index)
    assert {name: len(indices) for name, indices in by_strategy.items()} == {
        "high risk": 5, "uncertain": 4, "exploration": 1}
    highest = strategies.top_indices(p, unlabeled, 5)
    # the high-risk picks are the 5 highest unless a near-duplicate of a higher one was skipped
    assert sorted(p[by_strategy["high risk"]]) == pytest.approx(sorted(p[highest]))
    assert picks[0][1] in ("high risk", "uncertain")
    assert set(index for index, _ in picks) <= set(unlabeled.tolist())


def test_batches_hold_no_duplicates_even_when_the_pool_has_copies(sample, scored):
    X, _ = sample
    p, _, unlabeled = scored
    top = strategies.top_indices(p, unlabeled, 3)
    # the pool gains exact copies of its three riskiest rows, all unlabeled and scored alike
    X_copies = np.vstack([X, X[top], X[top]])
    p_copies = np.concatenate([p, p[top], p[top]])
    candidates = np.concatenate([unlabeled, np.arange(len(X), len(X_copies))])
    z = strategies.RobustScale(X_copies).transform(X_copies)
    picks = [index for index, _ in strategies.plan_batch(
        p_copies, z, candidates, 30, {"high risk": 1.0}, np.random.default_rng(0))]
    assert len(picks) == len(set(picks)) == 30
    rows = z[picks]
    distances = np.sqrt(((rows[:, None, :] - rows[None, :, :]) ** 2).mean(axis=2))
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= strategies.DUPLICATE_RADIUS


def test_cold_start_with_zero_labels_finds_frauds_and_spreads_out(sample):
    X, y = sample
    scale = strategies.RobustScale(X)
    z = scale.transform(X)
    anomaly = strategies.anomaly_scores(X, scale)
    everything = np.arange(len(y))
    picks = strategies.cold_start(z, anomaly, everything, 20, seed=0)
    assert len(set(picks.tolist())) == 20
    # anomalies hold far more frauds than the sample's 2.4%: at least 5 of 20 (random would expect 0.5)
    assert y[picks].sum() >= 5
    # a burst of 40 close variants of the top anomaly (0.3 IQR apart, not duplicates) fills the top of the
    # ranking; the cold start takes a couple of them, not the whole batch
    top = int(np.argmax(anomaly))
    jitter = np.random.default_rng(0).normal(0, 0.3, size=(40, X.shape[1])) * scale.spread
    burst = (X[top] + jitter).astype(np.float32)
    X_burst = np.vstack([X, burst])
    z_burst = scale.transform(X_burst)
    anomaly_burst = strategies.anomaly_scores(X_burst, scale)
    everything = np.arange(len(X_burst))
    in_burst = lambda indices: int(np.sum((indices >= len(X)) | (indices == top)))  # noqa: E731
    assert in_burst(strategies.top_indices(anomaly_burst, everything, 20)) >= 15
    assert in_burst(strategies.cold_start(z_burst, anomaly_burst, everything, 20, seed=0)) <= 2


def test_selection_cross_validates_on_human_labels_and_calibrates(sample):
    X, y = sample
    rng = np.random.default_rng(3)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == 1), 30, replace=False),
                              rng.choice(np.flatnonzero(y == 0), 270, replace=False)])
    assert weak.candidate_kinds(y[labeled]) == ["blend"]  # the default once both classes have 10 labels
    chosen = selection.select(X[labeled], y[labeled], kinds=list(weak.KINDS), seed=0, repeats=1)
    assert set(chosen.metrics) == {"logistic", "boosted", "blend"}
    assert chosen.kind == max(chosen.metrics, key=lambda kind: chosen.metrics[kind]["auprc"])
    assert 0.5 < chosen.auprc <= 1.0
    rest = np.setdiff1d(np.arange(len(y)), labeled)
    p = chosen.model.predict(X[rest])
    assert ((0 <= p) & (p <= 1)).all()
    # calibrated on held-out folds: the mean probability is near the labeled fraud rate (10%), not 0 or 0.5
    assert 0.002 < chosen.model.predict(X[labeled]).mean() < 0.3


def test_selection_with_too_few_labels_serves_logistic_unmeasured(sample):
    X, y = sample
    few = np.concatenate([np.flatnonzero(y == 1)[:1], np.flatnonzero(y == 0)[:9]])
    chosen = selection.select(X[few], y[few])
    assert chosen.kind == "logistic" and chosen.auprc is None
    with pytest.raises(ValueError, match="two classes need"):
        weak.fit(weak.LOGISTIC, X[:5], np.zeros(5))


def test_pseudo_labels_are_confident_capped_and_stable(scored):
    p, labeled, unlabeled = scored
    ids = np.arange(len(p)) + 1000
    indices, labels = pseudo.choose(p, unlabeled, ids, confidence=0.99, limit=500, positives=False)
    assert len(indices) == 500 and not set(indices.tolist()) & set(labeled.tolist())
    assert (labels == 0).all() and (p[indices] <= 0.01).all()
    # a slightly different pool keeps most of the same pseudo-labels (fixed order of ids)
    fewer = unlabeled[50:]
    again, _ = pseudo.choose(p, fewer, ids, confidence=0.99, limit=500, positives=False)
    assert len(set(again.tolist()) & set(indices.tolist())) >= 400
    with_positives, positive_labels = pseudo.choose(p, unlabeled, ids, confidence=0.9, limit=500)
    assert (p[with_positives[positive_labels == 1]] >= 0.9).all()
    with pytest.raises(ValueError, match="confidence"):
        pseudo.choose(p, unlabeled, ids, confidence=0.4, limit=10)


def test_mix_counts_round_to_the_batch():
    assert strategies.mix_counts(10, {"high risk": 0.5, "uncertain": 0.4, "exploration": 0.1}) == {
        "high risk": 5, "uncertain": 4, "exploration": 1}
    assert sum(strategies.mix_counts(7, {"high risk": 1, "uncertain": 1, "exploration": 1}).values()) == 7
    with pytest.raises(ValueError, match="no strategy"):
        strategies.mix_counts(10, {"high risk": 0})


def test_blend_is_the_mean_of_its_parts(sample):
    X, y = sample
    rng = np.random.default_rng(5)
    rows = np.concatenate([np.flatnonzero(y == 1)[:20], rng.choice(np.flatnonzero(y == 0), 200, replace=False)])
    blend = weak.fit(weak.BLEND, X[rows], y[rows], seed=1)
    parts = [weak.fit(kind, X[rows], y[rows], seed=1).raw(X) for kind in weak.BLEND_PARTS]
    assert np.allclose(blend.raw(X), np.mean(parts, axis=0))
    with pytest.raises(ValueError, match="unknown model kind"):
        weak.fit("forest", X[rows], y[rows])


def test_the_names_that_settings_refer_to_are_the_ones_the_models_use_and_load_no_machine_learning():
    assert tuple(strategies.UNCERTAINTY) == names.UNCERTAINTY_MEASURES
    assert names.MIX_STRATEGIES == (strategies.HIGH_RISK, strategies.UNCERTAIN, strategies.COMMITTEE,
                                    strategies.EXPLORATION)
    assert generative_candidates.NAMES == names.GENERATIVE_CANDIDATES
    code = ("import sys, models.names; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'sklearn', 'scipy', 'tensorflow', 'keras', 'flask', 'peewee', 'labeler')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_boosting_splits_a_one_hot_block_as_one_categorical_feature():
    """Frauds come from two of five categories, only above a threshold of x: boosting with native categories
    learns it from the codes, and a category it never saw at fit time (the "(other)" column) scores as the
    model scores missing values, without an error."""
    rng = np.random.default_rng(3)
    n = 4000
    category = rng.integers(0, 5, n)
    x = rng.normal(size=n)
    y = (np.isin(category, [2, 4]) & (x > 0)).astype(np.int8)
    X = np.column_stack([x, np.eye(6)[category]]).astype(np.float32)  # the sixth column: "(other)", never set
    model = weak.fit(weak.BOOSTED, X, y, seed=0, categorical=[(1, 7)])
    booster = model.estimators[0]
    assert isinstance(booster, weak.NativeCategories)
    assert booster.boosted.is_categorical_.tolist() == [False, True]
    assert average_precision_score(y, model.raw(X)) > 0.99
    unseen = X[:50].copy()
    unseen[:, 1:] = 0
    unseen[:, 6] = 1
    assert np.all(np.isfinite(model.raw(unseen)))
    blend = weak.fit(weak.BLEND, X, y, seed=0, categorical=[(1, 7)])
    assert isinstance(blend.estimators[1], weak.NativeCategories)  # the logistic part keeps the one-hot columns


def test_rank_union_takes_the_tops_of_each_score_in_turn():
    first = np.array([9.0, 8.0, 1.0, 2.0, 3.0, 0.0])
    second = np.array([np.nan, 0.0, 7.0, 9.0, np.nan, 1.0])  # NaN: this score says nothing of the row
    combined = strategies.rank_union(first, second)
    assert np.argsort(-combined, kind="stable")[:4].tolist() == [0, 3, 1, 2]
    assert combined[4] == pytest.approx(4 / 6) and np.all((combined > 0) & (combined <= 1))


def test_a_cold_start_larger_than_its_cluster_cap_fills_with_the_next_anomalies(monkeypatch):
    monkeypatch.setattr(strategies, "COLD_START_CLUSTERS", 20)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, 5))
    anomaly = np.abs(z).sum(axis=1)
    picks = strategies.cold_start(z, anomaly, np.arange(3000), 200, seed=0)
    assert len(picks) == len(set(picks.tolist())) == 200
    assert np.median(anomaly[picks]) > np.quantile(anomaly, 0.8)  # still the anomalous end of the pool


def test_a_large_pool_is_scaled_on_a_draw_and_scored_block_by_block(monkeypatch):
    X = np.random.default_rng(3).lognormal(size=(20_000, 4)).astype(np.float32)
    full = strategies.RobustScale(X)
    assert np.array_equal(full.centre, np.median(X, axis=0))  # under FIT_ROWS rows: every row
    drawn = strategies.RobustScale(X, fit_rows=5_000)
    assert np.allclose(drawn.centre, full.centre, rtol=0.05) and np.allclose(drawn.spread, full.spread, rtol=0.1)
    assert np.array_equal(drawn.centre, strategies.RobustScale(X, fit_rows=5_000).centre)  # seeded
    whole = strategies.anomaly_scores(X, full)
    monkeypatch.setattr(strategies, "SCORE_ROWS", 999)
    assert np.allclose(strategies.anomaly_scores(X, full), whole)
