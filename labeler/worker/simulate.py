"""Simulated labeling with the ground truth as the oracle, in memory: nothing is written to the store.

Protocol (fixed so results compare across tools): a stratified 80/20 split with the seed; the 80% is the pool,
the 20% the test set. Each batch is picked from the pool and labeled by the oracle, then a model is trained on
the labels so far and its average precision (AUPRC) measured on the test set.

Strategies: "default" is the product's loop (models.learner.ActiveLearner: cold start, then the mix of high
risk, uncertain and exploration picks, pseudo-labels and model selection as the settings say); "random" and
"uncertainty" (least confidence, random cold start) are the baselines, both with logistic regression.
"""
import json
import os
import time

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from labeler.store.db import GroundTruth, Item
from labeler.store.pool import groups_of, load_pool
from models import strategies, weak
from models.selection import macro_average_precision
from models.learner import ActiveLearner

DEFAULT = "default"
RANDOM = "random"
UNCERTAINTY = "uncertainty"
STRATEGIES = (DEFAULT, RANDOM, UNCERTAINTY)
TEST_SHARE = 0.2


class SimulationError(ValueError):
    """The simulation cannot run: the message says why in one line."""


def load_truth(dataset):
    """(features float32, binary ground truth int8, group codes or None) of ``dataset``'s pool, positive = the
    positive label; the groups are the merchants of raw transactions and their times (labeler.store.pool.groups_of).

    Raises SimulationError when an item has no ground truth or a class is missing.
    """
    ids, X = load_pool(dataset)
    truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
                 .where(Item.dataset == dataset).tuples())
    missing = sum(1 for item in ids.tolist() if item not in truth)
    if missing:
        raise SimulationError(f"dataset {dataset.name!r}: {missing:,} of {len(ids):,} items have no ground truth "
                              "(import the file with --label-column)")
    y = np.array([truth[item] == dataset.positive_label for item in ids.tolist()], dtype=np.int8)
    check_classes(y, dataset.name)
    return X, y, groups_of(dataset, ids)


def check_classes(y, name):
    """Raises SimulationError unless both classes have at least 2 items (one for the pool, one for the test)."""
    positives = int(np.sum(y))
    if positives < 2 or len(y) - positives < 2:
        raise SimulationError(f"dataset {name!r}: the ground truth needs at least 2 positives and 2 negatives, "
                              f"it has {positives} and {len(y) - positives}")


def split(y, seed):
    """(pool indices, test indices): stratified 80/20 with ``seed``."""
    return train_test_split(np.arange(len(y)), test_size=TEST_SHARE, stratify=y, random_state=seed)


def _test_auprc(y_test, scores):
    return float(average_precision_score(y_test, scores))


def _test_figures(y_test, scores, n_classes, only_class=None):
    """{"auprc": ..., "accuracy": ...} of test ``scores`` (binary: P(positive), AUPRC only; K classes: (n, K)
    probabilities, macro average precision as "auprc" and accuracy); ``scores`` None before a model exists
    (with ``only_class``, the one class labeled so far, predicted for every item)."""
    if n_classes == 2:
        return {"auprc": _test_auprc(y_test, np.zeros(len(y_test)) if scores is None else scores)}
    if scores is None:
        scores = np.full((len(y_test), n_classes), 1.0 / n_classes)
        predicted = np.full(len(y_test), -1 if only_class is None else only_class)
    else:
        predicted = scores.argmax(axis=1)
    return {"auprc": macro_average_precision(y_test, scores), "accuracy": float(np.mean(predicted == y_test))}


def run(X, y, strategy, budget, batch, seed, settings, progress=None, final=None, pool_and_test=None, groups=None,
        categorical=(), cold_start=None, n_classes=2, positives=(1,), retrain_due=None, first_of_class_retrains=True):
    """One simulated labeling run; returns one row per batch: {"labels", "auprc", "positives_found", "seconds"}.

    ``n_classes`` > 2: ``y`` holds class indices, ``positives`` the indices of the classes that count as
    positive (positives found); "auprc" is then the test set's macro average precision, and each row also has
    "accuracy" and "found" (labels per class).

    ``settings`` are the loop's (labeler.store.settings.engine_settings of a dataset, or its DEFAULTS).
    ``progress(labels)`` is called after each batch. A dict given as ``final`` receives the last "model" trained
    (None if none was), its "test_scores" and the "labeled" rows of ``X`` in the order they were labeled.
    ``pool_and_test`` (index arrays) replaces the seeded stratified split, e.g. by time.
    ``groups`` ((codes, epoch seconds) per row: the merchants of raw transactions) give the default loop its
    label rates; ``categorical`` (one-hot blocks, models.weak.NativeCategories) its native categories;
    ``cold_start`` (an anomaly score per row) replaces the robust distance of its cold start, as the stored
    scores do in the queue refill (labeler.worker.refill.cold_start_anomaly).
    ``retrain_due`` None refits the default loop's model after every batch; a function refits it as the product
    retrains (labeler.labeling.decisions): when ``retrain_due(labels, new labels, new positives)`` (since the
    last retrain) is true (the product's: labeler.store.settings.retrain_due with the dataset's retrain_every),
    and, with ``first_of_class_retrains``, at once after a batch that brings a class's first label beside
    another class's.
    Between retrains the batches are picked by the last model's scores, and the figures are its.
    Raises SimulationError for an unknown strategy or a budget below 1.
    """
    if strategy not in STRATEGIES:
        raise SimulationError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if budget < 1 or batch < 1:
        raise SimulationError("--budget and --batch must be at least 1")
    pool, test = split(y, seed) if pool_and_test is None else pool_and_test
    X_pool, y_pool, X_test, y_test = X[pool], y[pool], X[test], y[test]
    budget = min(budget, len(pool))
    rng = np.random.default_rng(seed)
    groups_pool, groups_test = (None, None) if groups is None else (
        tuple(part[pool] for part in groups), tuple(part[test] for part in groups))
    learner = ActiveLearner(X_pool, pool, settings, seed, groups=groups_pool, categorical=categorical,
                            n_classes=n_classes, positives=positives) if strategy == DEFAULT else None
    positive_class = np.isin(np.arange(max(n_classes, 2)), list(positives) if n_classes > 2 else [1])
    if learner is not None and cold_start is not None:
        learner.anomaly = np.asarray(cold_start, dtype=np.float64)[pool]
    labeled_mask = np.zeros(len(pool), dtype=bool)
    order = []
    p_pool = None  # the current model's P(positive) over the pool, None before a model exists
    pseudo = None
    model = None
    test_scores = None
    rows = []
    retrained_at, classes_seen = 0, 0  # the labels at the last (simulated) retrain; the classes labeled then
    while len(order) < budget:
        started = time.perf_counter()
        size = min(batch, budget - len(order))
        unlabeled = np.flatnonzero(~labeled_mask)
        if strategy == DEFAULT:
            found = int(positive_class[y_pool[np.asarray(order, dtype=np.int64)]].sum()) if order else 0
            picks = np.array([index for index, _ in learner.pick(p_pool, unlabeled, size, found)], dtype=np.int64)
        elif strategy == UNCERTAINTY and p_pool is not None:
            picks = strategies.uncertainty_batch(p_pool, unlabeled, size)
        else:
            picks = rng.choice(unlabeled, size=size, replace=False)
        labeled_mask[picks] = True
        order.extend(picks.tolist())
        labeled = np.asarray(order, dtype=np.int64)
        y_labeled = y_pool[labeled]
        classes, seen_before = len(np.unique(y_labeled)), classes_seen
        classes_seen = classes
        retrains = strategy != DEFAULT or retrain_due is None or retrain_due(
            len(order), len(order) - retrained_at, int(positive_class[y_pool[labeled[retrained_at:]]].sum())) or (
            first_of_class_retrains and classes > seen_before and classes >= 2)
        if retrains:
            retrained_at = len(order)
        if strategy == DEFAULT and not retrains:  # the last model's scores still pick, and its figures stand
            figures = _test_figures(y_test, test_scores, n_classes, y_labeled[0] if classes < 2 else None)
        elif classes < 2:
            p_pool = None
            figures = _test_figures(y_test, None, n_classes, y_labeled[0])  # no ranking yet: the positive rate
        elif strategy == DEFAULT:
            if pseudo is not None:  # items labeled since the pseudo-labels were chosen keep their human label only
                fresh = ~labeled_mask[pseudo[0]]
                pseudo = (pseudo[0][fresh], pseudo[1][fresh])
            served = learner.train(labeled, y_labeled, pseudo)
            model = served.model
            test_scores = learner.score(model, X_test, groups_test)
            figures = _test_figures(y_test, test_scores, n_classes)
            p_pool = learner.score(served.queue_model())  # what picks the next batch and the pseudo-labels
            pseudo = learner.pseudo(p_pool, np.flatnonzero(~labeled_mask))
        else:
            model = weak.fit(weak.LOGISTIC, X_pool[labeled], y_labeled, n_classes=n_classes)
            test_scores = model.predict(X_test)
            figures = _test_figures(y_test, test_scores, n_classes)
            p_pool = model.predict(X_pool) if strategy == UNCERTAINTY else None
        row = {"labels": len(order), **figures, "positives_found": int(positive_class[y_labeled].sum()),
               "seconds": time.perf_counter() - started}
        if n_classes > 2:
            row["found"] = np.bincount(y_labeled, minlength=n_classes).tolist()
        rows.append(row)
        if progress:
            progress(len(order))
    if final is not None:
        final["model"] = model
        final["test_scores"] = test_scores
        final["labeled"] = pool[np.asarray(order, dtype=np.int64)]  # rows of X in the order they were labeled
    return rows


def average(runs):
    """One curve from runs of equal length (one per seed): mean AUPRC, worst AUPRC, mean positives, mean seconds."""
    curve = []
    for rows in zip(*runs):
        curve.append({
            "labels": rows[0]["labels"],
            "auprc": round(float(np.mean([row["auprc"] for row in rows])), 4),
            "auprc_min": round(float(np.min([row["auprc"] for row in rows])), 4),
            "positives_found": round(float(np.mean([row["positives_found"] for row in rows])), 2),
            "seconds": round(float(np.mean([row["seconds"] for row in rows])), 3),
        })
    return curve


def simulate(X, y, name, strategy, budget, batch, seeds, settings, progress=None, groups=None, categorical=()):
    """Run ``strategy`` and the baselines (random, uncertainty) for each seed; returns the results document:
    {"dataset", "strategy", "budget", "batch", "seeds", "curve", "baselines": {strategy: curve}}.

    ``progress(strategy, seed, labels)`` is called after each batch; ``groups`` and ``categorical`` as for run. Raises
    SimulationError.
    """
    check_classes(y, name)
    compared = [strategy] + [other for other in (RANDOM, UNCERTAINTY) if other != strategy]
    curves = {}
    for current in compared:
        runs = []
        for seed in seeds:
            report = (lambda labels, current=current, seed=seed: progress(current, seed, labels)) if progress else None
            runs.append(run(X, y, current, budget, batch, seed, settings, report, groups=groups,
                            categorical=categorical))
        curves[current] = average(runs)
    return {"dataset": name, "strategy": strategy, "budget": budget, "batch": batch, "seeds": list(seeds),
            "curve": curves[strategy], "baselines": {key: curves[key] for key in compared[1:]}}


def write_outputs(results, folder):
    """Write ``folder``/results.json and ``folder``/curve.png; returns their paths. Raises OSError."""
    os.makedirs(folder, exist_ok=True)
    json_path = os.path.join(folder, "results.json")
    temporary = json_path + ".part"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=2)
    os.replace(temporary, json_path)
    png_path = os.path.join(folder, "curve.png")
    plot(results, png_path)
    return json_path, png_path


def plot(results, path):
    """AUPRC and positives found against labels, the strategy beside the baselines, as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    curves = {results["strategy"]: results["curve"], **results.get("baselines", {})}
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for name, curve in curves.items():
        labels = [row["labels"] for row in curve]
        style = {"linewidth": 2.2} if name == results["strategy"] else {"linewidth": 1.2, "linestyle": "--"}
        left.plot(labels, [row["auprc"] for row in curve], label=name, **style)
        right.plot(labels, [row["positives_found"] for row in curve], label=name, **style)
    seeds = ", ".join(str(seed) for seed in results["seeds"])
    left.set(title="Test AUPRC", xlabel="labels", ylabel="average precision (mean over seeds)", ylim=(0, 1))
    right.set(title="Positives shown to the analyst", xlabel="labels", ylabel="positives found (mean)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{results['dataset']}: batch {results['batch']}, seeds {seeds}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
