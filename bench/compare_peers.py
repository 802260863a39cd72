"""Benchmark: labeler's default loop against random, plain uncertainty and the query strategies of scikit-activeml
and small-text, with the simulation protocol, on the credit-card file and on Caravan.

    pip install -e '.[bench]'      # scikit-activeml and small-text (Caravan: bench/real_tables.py)
    python bench/compare_peers.py [--datasets creditcard,caravan] [--seeds 0,1,2] [--budgets 100,250,500,1000]
                                  [--methods all] [--out bench/results] [--quick]
    python bench/compare_peers.py --methods uncertainty+labeler-start --out /tmp/warm   # a peer, labeler's start
    python bench/compare_peers.py --merge /tmp/warm/peers.json     # add those rows to bench/results/peers.*

Protocol (labeler.worker.simulate's): a stratified 80/20 split per seed, the 80% is the pool, the oracle is the ground
truth, batches of 10; after each batch a model is trained on the labels so far and its average precision (AUPRC)
measured on the 20% test split. Every peer queries with the same base classifier, the product's logistic
candidate (models.weak: standardized features, logistic regression), and is evaluated with it, so only the query
strategy differs; labeler's default loop runs as shipped (its cold start, mix, pseudo-labels and model
selection). Peers without a cold start of their own begin with the same random draws as simulate's baselines.
Writes OUT/peers.md, OUT/peers.json (curves per batch, figures per budget, timings) and OUT/peers.png.
"""
import argparse
import contextlib
import datetime
import inspect
import json
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import real_tables

from labeler.store.settings import DEFAULTS as DEFAULT_SETTINGS
from labeler.worker import simulate
from models.learner import ActiveLearner
from models import strategies, weak

DATASETS = ("creditcard", "caravan")
DEFAULT_BUDGETS = (100, 250, 500, 1000)
DEFAULT_SEEDS = (0, 1, 2)
QUICK_BUDGETS = (50, 100)
QUICK_SEEDS = (0,)
BATCH = 10
COMMITTEE_SIZE = 5
CLASSES = np.array([0, 1])
SUBSAMPLE = 4096  # small-text's own SubsamplingQueryStrategy default
TIMING_LABELS = 1000  # the labeled set every method's query step is timed at, side by side
TIMING_POSITIVE_SHARE = 0.25  # of it positives (at most half the pool's), about the default loop's share then
TIMING_ROUNDS = 5

# how a method starts: its own cold start, random batches until both classes are labeled (a classifier is needed),
# or one shared random first batch and then its own strategy (it needs a labeled set but no classifier)
OWN, UNTIL_BOTH, FIRST_BATCH, ALWAYS_RANDOM = "own", "until both classes", "first batch", "random"
OURS = ("default", "default-logistic")  # labeler's loop and its logistic-only variant: not peers
WARM = "+labeler-start"  # a peer given labeler's cold-start batch as its first batch instead of a random one
COLD_START_TEXT = {
    OWN: "its own: anomaly score spread over k-means clusters, plus random exploration",
    UNTIL_BOTH: "random batches (shared draw) until both classes are labeled",
    FIRST_BATCH: "one random batch of 10 (shared draw), then its own strategy",
    ALWAYS_RANDOM: "random throughout",
}


# ---- the base classifier ---------------------------------------------------------------------------------


class WeakLogistic(ClassifierMixin, BaseEstimator):
    """The product's logistic candidate (weak.LOGISTIC: StandardScaler + LogisticRegression) as a scikit-learn
    estimator whose ``fit`` takes ``sample_weight``: None (small-text always passes it, the bare pipeline refuses
    it) or whole-number counts (a bagging committee's bootstrap), applied by repeating rows as models.selection
    does. Raises ValueError for fractional weights or a single class."""

    def fit(self, X, y, sample_weight=None):
        if sample_weight is not None:
            counts = np.rint(sample_weight).astype(np.int64)
            if not np.allclose(counts, sample_weight):
                raise ValueError("WeakLogistic takes whole-number sample weights only")
            rows = np.repeat(np.arange(len(y)), counts)
            X, y = np.asarray(X)[rows], np.asarray(y)[rows]
        self.model_ = weak.fit(weak.LOGISTIC, X, y)
        self.classes_ = self.model_.estimators[0].classes_
        return self

    def predict_proba(self, X):  # the product's own evaluation of its logistic candidate (models.weak)
        p_positive = weak.positive_probability(self.model_.estimators[0], np.asarray(X, dtype=np.float32))
        return np.column_stack([1.0 - p_positive, p_positive])

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# ---- the peers: one object per run, ``query(labeled, y_labeled, unlabeled, size) -> (picks, fit s, query s)`` --


class Peer:
    """A query strategy over one pool ``Z`` (pool rows standardized on the whole pool, float64)."""

    def __init__(self, Z, seed):
        self.Z = Z
        self.seed = seed


class LabelerUncertainty(Peer):
    """labeler's plain baseline (simulate's "uncertainty"): least confidence of the weak logistic model."""

    def __init__(self, Z, seed, X_pool):
        super().__init__(Z, seed)
        self.X_pool = X_pool

    def query(self, labeled, y_labeled, unlabeled, size):
        started = time.perf_counter()
        model = weak.fit(weak.LOGISTIC, self.X_pool[labeled], y_labeled)
        fitted = time.perf_counter()
        picks = strategies.uncertainty_batch(model.predict(self.X_pool), unlabeled, size)
        return picks, fitted - started, time.perf_counter() - fitted


class SkactivemlPeer(Peer):
    """A scikit-activeml pool strategy; ``needs`` says what its query takes beside X and y: "clf" (fitted
    SklearnClassifier), "ensemble" (fitted bagging committee) or nothing."""

    def __init__(self, Z, seed, strategy, needs=None):
        from skactiveml.classifier import SklearnClassifier
        from sklearn.ensemble import BaggingClassifier

        super().__init__(Z, seed)
        self.strategy = strategy
        self.needs = needs
        self.y = np.full(len(Z), np.nan)
        if needs == "ensemble":
            member = SklearnClassifier(WeakLogistic(), classes=[0, 1], random_state=seed)
            self.model = SklearnClassifier(BaggingClassifier(member, n_estimators=COMMITTEE_SIZE, random_state=seed),
                                           classes=[0, 1], random_state=seed)
        else:
            self.model = SklearnClassifier(WeakLogistic(), classes=[0, 1], random_state=seed)

    def query(self, labeled, y_labeled, unlabeled, size):
        self.y[labeled] = y_labeled
        started = time.perf_counter()
        kwargs = {}
        if self.needs:
            model = clone(self.model).fit(self.Z, self.y)
            if not model.is_fitted_:  # the wrapper would fall back to the class prior, silently
                raise RuntimeError(f"{type(self.strategy).__name__}: the classifier could not be fitted "
                                   f"on {len(labeled)} labels")
            if self.needs == "clf":
                classifier, fit_flag = _classifier_arguments(self.strategy)
                kwargs = {classifier: model, fit_flag: False}
            else:
                kwargs = {"ensemble": model, "fit_ensemble": False}
        fitted = time.perf_counter()
        picks = self.strategy.query(self.Z, self.y, batch_size=size, **kwargs)
        return np.asarray(picks, dtype=np.int64), fitted - started, time.perf_counter() - fitted


def _classifier_arguments(strategy):
    """The names of a scikit-activeml query's classifier argument and of its 'fit it first' switch (they vary:
    clf/fit_clf, estimator/fit_estimator)."""
    parameters = inspect.signature(strategy.query).parameters
    return next((name, f"fit_{name}") for name in ("clf", "estimator") if name in parameters)


def small_text_classifier():
    """small-text's SklearnClassifier around WeakLogistic, with the standardized pool rows as its embedding (what
    small-text's embedding-based strategies need; a linear model has no other)."""
    from small_text.classifiers import SklearnClassifier

    class Embedding(SklearnClassifier):
        def embed(self, data_set, return_proba=False, pbar=None, **kwargs):
            if return_proba:
                return data_set.x, None
            return data_set.x

    return Embedding(WeakLogistic(), num_classes=2)


class SmallTextPeer(Peer):
    """A small-text query strategy on an SklearnDataset of the pool (labels hidden: -1); ``needs_model`` fits the
    classifier on the labeled rows first."""

    def __init__(self, Z, seed, strategy, needs_model):
        from small_text import SklearnDataset

        super().__init__(Z, seed)
        self.strategy = strategy
        self.needs_model = needs_model
        self.dataset = SklearnDataset(Z, np.full(len(Z), -1, dtype=np.int64), target_labels=CLASSES)
        self.classifier = small_text_classifier()
        np.random.seed(seed)  # small-text's subsampling and lightweight coreset draw from numpy's global generator

    def query(self, labeled, y_labeled, unlabeled, size):
        from small_text import SklearnDataset

        started = time.perf_counter()
        if self.needs_model:
            self.classifier.fit(SklearnDataset(self.Z[labeled], np.asarray(y_labeled, dtype=np.int64),
                                               target_labels=CLASSES))
        fitted = time.perf_counter()
        picks = self.strategy.query(self.classifier, self.dataset, np.asarray(unlabeled), np.asarray(labeled),
                                    np.asarray(y_labeled, dtype=np.int64), n=size)
        return np.asarray(picks, dtype=np.int64), fitted - started, time.perf_counter() - fitted


def skactiveml_peer(make, needs=None):
    def build(Z, seed, X_pool):
        return SkactivemlPeer(Z, seed, make(seed), needs)
    return build


def small_text_peer(make, needs_model):
    def build(Z, seed, X_pool):
        return SmallTextPeer(Z, seed, make(), needs_model)
    return build


def _skal(name, **kwargs):
    def make(seed):
        from skactiveml import pool

        return getattr(pool, name)(random_state=seed, **kwargs)
    return make


def _typiclust(seed):
    from skactiveml.pool import TypiClust
    from sklearn.cluster import MiniBatchKMeans

    return TypiClust(random_state=seed, cluster_algo=MiniBatchKMeans, cluster_algo_dict={"n_init": 1})


def _small_text(name, subsample=False):
    def make():
        import small_text

        strategy = getattr(small_text, name)()
        return small_text.SubsamplingQueryStrategy(strategy, subsample_size=SUBSAMPLE) if subsample else strategy
    return make


# name: (library, label, cold start, builder or None for labeler's loop / random, note)
METHODS = {
    "default": ("labeler", "labeler default loop (as shipped)", OWN, None,
                "mix of high risk, uncertain and exploration picks, pseudo-labels, model selection"),
    "default-logistic": ("labeler", "labeler default loop, logistic only", OWN, None,
                         ("the shipped loop with model selection limited to the logistic candidate (patched in "
                          "this bench only), so its classifier is the peers' (trained with its pseudo-labels)")),
    "random": ("labeler", "random", ALWAYS_RANDOM, None, "uniform draws from the pool"),
    "uncertainty": ("labeler", "labeler plain uncertainty", UNTIL_BOTH,
                    lambda Z, seed, X_pool: LabelerUncertainty(Z, seed, X_pool), "least confidence"),
    "skal-uncertainty": ("scikit-activeml", "skactiveml UncertaintySampling", UNTIL_BOTH,
                         skactiveml_peer(_skal("UncertaintySampling", method="least_confident"), "clf"),
                         "least confident"),
    "skal-qbc": ("scikit-activeml", "skactiveml QueryByCommittee", UNTIL_BOTH,
                 skactiveml_peer(_skal("QueryByCommittee", method="KL_divergence"), "ensemble"),
                 f"KL divergence, bagging committee of {COMMITTEE_SIZE} logistic models"),
    "skal-badge": ("scikit-activeml", "skactiveml Badge", UNTIL_BOTH, skactiveml_peer(_skal("Badge"), "clf"),
                   "k-means++ over gradient embeddings"),
    "skal-clue": ("scikit-activeml", "skactiveml Clue", UNTIL_BOTH,
                  skactiveml_peer(_skal("Clue", method="least_confident", cluster_algo_dict={"n_init": 1}), "clf"),
                  "uncertainty-weighted k-means, 10 clusters"),
    "skal-coreset": ("scikit-activeml", "skactiveml CoreSet", FIRST_BATCH, skactiveml_peer(_skal("CoreSet")),
                     "greedy k-center on the standardized features"),
    "skal-typiclust": ("scikit-activeml", "skactiveml TypiClust", FIRST_BATCH, skactiveml_peer(_typiclust),
                       "MiniBatchKMeans with labeled + 10 clusters (full KMeans is too slow on 227k rows)"),
    "st-least-confidence": ("small-text", "small-text LeastConfidence", UNTIL_BOTH,
                            small_text_peer(_small_text("LeastConfidence"), True), ""),
    "st-breaking-ties": ("small-text", "small-text BreakingTies", UNTIL_BOTH,
                         small_text_peer(_small_text("BreakingTies"), True), "margin"),
    "st-greedy-coreset": ("small-text", "small-text GreedyCoreset", FIRST_BATCH,
                          small_text_peer(_small_text("GreedyCoreset", subsample=True), False),
                          (f"on a random subsample of {SUBSAMPLE:,} unlabeled items per step "
                           "(small-text's SubsamplingQueryStrategy; the full pool takes minutes per step)")),
    "st-lightweight-coreset": ("small-text", "small-text LightweightCoreset", FIRST_BATCH,
                               small_text_peer(_small_text("LightweightCoreset"), False), ""),
}


def base_method(name):
    """The METHODS key of a method name, with or without the WARM suffix."""
    return name.removesuffix(WARM)


def check_method(name):
    """Raises SystemExit unless ``name`` is a METHODS key, or a peer that needs a start with the WARM suffix."""
    if base_method(name) not in METHODS:
        raise SystemExit(f"--methods: unknown method {name!r} (known: {', '.join(METHODS)}; a peer may end "
                         f"with {WARM})")
    if name.endswith(WARM) and METHODS[base_method(name)][2] not in (UNTIL_BOTH, FIRST_BATCH):
        raise SystemExit(f"--methods: {base_method(name)} has no random start to replace ({name!r})")


def cold_start_text(name):
    cold_start = METHODS[base_method(name)][2]
    if not name.endswith(WARM):
        return COLD_START_TEXT[cold_start]
    rest = "its own strategy" if cold_start == FIRST_BATCH else "random batches until both classes are labeled"
    return f"labeler's cold-start batch (the default loop's first 10 picks), then {rest}"


def labeler_start(X_pool, pool, seed, size):
    """The first batch labeler's default loop picks on this pool (its cold start): pool indices."""
    learner = ActiveLearner(X_pool, pool, dict(DEFAULT_SETTINGS), seed)
    return np.array([index for index, _ in learner.pick(None, np.arange(len(pool)), size)], dtype=np.int64)


# ---- the runs ----------------------------------------------------------------------------------------------


def holdout_auprc(X_pool, y_pool, labeled, X_test, y_test):
    """Test AUPRC of the weak logistic model on the labeled rows (simulate's evaluation of its baselines); the
    positive rate when the labels hold one class."""
    y_labeled = y_pool[labeled]
    if len(np.unique(y_labeled)) < 2:
        return float(average_precision_score(y_test, np.zeros(len(y_test))))
    model = weak.fit(weak.LOGISTIC, X_pool[labeled], y_labeled)
    return float(average_precision_score(y_test, model.predict(X_test)))


def run_peer(name, X, y, budget, batch, seed):
    """One run of peer ``name`` with seed ``seed``: (rows, fit seconds, query seconds), one row per batch
    {"labels", "auprc", "positives_found"}, the timings one per step where the peer's own strategy picked."""
    cold_start, build = METHODS[base_method(name)][2], METHODS[base_method(name)][3]
    pool, test = simulate.split(y, seed)
    X_pool, y_pool, X_test, y_test = X[pool], y[pool], X[test], y[test]
    budget = min(budget, len(pool))
    peer = None
    if build is not None:
        Z = StandardScaler().fit_transform(X_pool.astype(np.float64))
        peer = build(Z, seed, X_pool)
    rng = np.random.default_rng(seed)  # the same draws as simulate's random and uncertainty baselines
    labeled_mask = np.zeros(len(pool), dtype=bool)
    order = []
    rows, fit_seconds, query_seconds = [], [], []
    while len(order) < budget:
        size = min(batch, budget - len(order))
        unlabeled = np.flatnonzero(~labeled_mask)
        labeled = np.asarray(order, dtype=np.int64)
        y_labeled = y_pool[labeled]
        own = ((cold_start == FIRST_BATCH and len(order) > 0)
               or (cold_start == UNTIL_BOTH and len(np.unique(y_labeled)) == 2))
        if not order and name.endswith(WARM):
            picks = labeler_start(X_pool, pool, seed, size)
        elif own:
            picks, fit_s, query_s = peer.query(labeled, y_labeled, unlabeled, size)
            fit_seconds.append(fit_s)
            query_seconds.append(query_s)
        else:
            picks = rng.choice(unlabeled, size=size, replace=False)
        if len(picks) != size or labeled_mask[picks].any() or len(np.unique(picks)) != size:
            raise RuntimeError(f"{name} picked {len(picks)} items, {int(labeled_mask[picks].sum())} already "
                               f"labeled, {size - len(np.unique(picks))} twice, at {len(order)} labels")
        labeled_mask[picks] = True
        order.extend(np.asarray(picks).tolist())
        labeled = np.asarray(order, dtype=np.int64)
        rows.append({"labels": len(order), "auprc": holdout_auprc(X_pool, y_pool, labeled, X_test, y_test),
                     "positives_found": int(y_pool[labeled].sum())})
    return rows, fit_seconds, query_seconds


class TimedLearner(ActiveLearner):
    """labeler's ActiveLearner with each step timed: fit = train + choosing pseudo-labels, query = rescoring the
    pool + picking the batch (each step closes at its pick)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fit_seconds, self.query_seconds = [], []
        self._fit = self._query = 0.0

    def _timed(self, method, bucket, *args, **kwargs):
        started = time.perf_counter()
        result = method(*args, **kwargs)
        setattr(self, bucket, getattr(self, bucket) + time.perf_counter() - started)
        return result

    def train(self, *args, **kwargs):
        return self._timed(super().train, "_fit", *args, **kwargs)

    def pseudo(self, *args, **kwargs):
        return self._timed(super().pseudo, "_fit", *args, **kwargs)

    def score(self, model, X=None, *args, **kwargs):
        if X is not None:  # the test set: evaluation, not the loop
            return super().score(model, X, *args, **kwargs)
        return self._timed(super().score, "_query", model, *args, **kwargs)

    def pick(self, *args, **kwargs):
        picks = self._timed(super().pick, "_query", *args, **kwargs)
        self.fit_seconds.append(self._fit)
        self.query_seconds.append(self._query)
        self._fit = self._query = 0.0
        return picks


def run_default(X, y, budget, batch, seed, logistic_only=False, settings=None):
    """One run of labeler's default loop through labeler.worker.simulate.run (the code path of ``manage.py simulate``),
    timed by TimedLearner: (rows, fit seconds, query seconds). ``logistic_only`` limits its model selection to
    the logistic candidate for the run; ``settings`` (over DEFAULT_SETTINGS) change the loop's (bench/suite.py's
    adaptive loop)."""
    learners = []

    class Recording(TimedLearner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            learners.append(self)

    shipped = simulate.ActiveLearner
    simulate.ActiveLearner = Recording
    try:
        with model_selection(logistic_only):
            rows = simulate.run(X, y, simulate.DEFAULT, budget, batch, seed, {**DEFAULT_SETTINGS, **(settings or {})})
    finally:
        simulate.ActiveLearner = shipped
    rows = [{"labels": row["labels"], "auprc": row["auprc"], "positives_found": row["positives_found"]}
            for row in rows]
    return rows, learners[0].fit_seconds, learners[0].query_seconds


@contextlib.contextmanager
def model_selection(logistic_only):
    """Within the block, labeler's model selection compares the logistic candidate only (when ``logistic_only``)."""
    shipped = weak.candidate_kinds
    if logistic_only:
        weak.candidate_kinds = lambda y, n_classes=2: [weak.LOGISTIC]
    try:
        yield
    finally:
        weak.candidate_kinds = shipped


def run_method(name, X, y, budget, batch, seed):
    if name in ("default", "default-logistic"):
        return run_default(X, y, budget, batch, seed, logistic_only=name == "default-logistic")
    return run_peer(name, X, y, budget, batch, seed)


def summarize(runs, fit_seconds, query_seconds, budgets):
    """One method on one dataset over seeds: the curve (mean and min AUPRC, mean positives per batch), the
    figures at each budget and the median step timings."""
    curve = []
    for rows in zip(*runs):
        curve.append({"labels": rows[0]["labels"],
                      "auprc": round(float(np.mean([row["auprc"] for row in rows])), 4),
                      "auprc_min": round(float(np.min([row["auprc"] for row in rows])), 4),
                      "positives_found": round(float(np.mean([row["positives_found"] for row in rows])), 2)})
    by_labels = {row["labels"]: row for row in curve}
    steps = [fit + query for fit, query in zip(fit_seconds, query_seconds)]
    median = (lambda values: round(float(np.median(values)), 4) if values else None)
    return {"curve": curve,
            "at": {str(budget): by_labels[budget] for budget in budgets if budget in by_labels},
            "query_seconds_median": median(query_seconds), "fit_seconds_median": median(fit_seconds),
            "step_seconds_median": median(steps), "timed_steps": len(query_seconds)}


# ---- the query step, timed side by side ------------------------------------------------------------------------


def timing_state(y_pool, seed):
    """A fixed labeled set (sorted pool indices): TIMING_LABELS items drawn with ``seed``, a TIMING_POSITIVE_SHARE
    of them positives (at most half the pool's)."""
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(y_pool == 1), np.flatnonzero(y_pool == 0)
    count = min(int(TIMING_LABELS * TIMING_POSITIVE_SHARE), len(positives) // 2)
    return np.sort(np.concatenate([rng.choice(positives, count, replace=False),
                                   rng.choice(negatives, TIMING_LABELS - count, replace=False)]))


def default_step(X_pool, pool, labeled, y_labeled, unlabeled, batch, seed, logistic_only):
    """A function running one step of labeler's loop at a fixed state -> (fit s, query s): fit = train (model
    selection on the first call, a refit of the selected kind after) + choosing pseudo-labels, query = score the
    pool + pick the batch. Its ``learner`` attribute is the ActiveLearner."""
    learner = ActiveLearner(X_pool, pool, dict(DEFAULT_SETTINGS), seed)
    state = {"pseudo": None}

    def step():
        with model_selection(logistic_only):
            started = time.perf_counter()
            selected = learner.train(labeled, y_labeled, state["pseudo"])
            trained = time.perf_counter()
            p_positive = learner.score(selected.queue_model())
            learner.pick(p_positive, unlabeled, batch)
            picked = time.perf_counter()
            state["pseudo"] = learner.pseudo(p_positive, unlabeled)
            return trained - started + time.perf_counter() - picked, picked - trained

    step.learner = learner
    return step


def time_query_steps(names, X, y, batch, seed, rounds=TIMING_ROUNDS):
    """Each method's step at the same state of the seed's pool (timing_state), ``rounds`` times round-robin so
    that the machine's load weighs on all alike: {"labels", "positives", "rounds", "load_average", "methods":
    {name: {"fit_seconds", "query_seconds"}} (medians), "default_kind"}. Methods that query like another (random,
    the WARM variants) are left out."""
    pool, _ = simulate.split(y, seed)
    X_pool, y_pool = X[pool], y[pool]
    labeled = timing_state(y_pool, seed)
    y_labeled = y_pool[labeled]
    unlabeled = np.setdiff1d(np.arange(len(pool)), labeled)
    Z = StandardScaler().fit_transform(X_pool.astype(np.float64))
    steps = {}
    for name in names:
        if name in OURS:
            steps[name] = default_step(X_pool, pool, labeled, y_labeled, unlabeled, batch, seed,
                                       logistic_only=name == "default-logistic")
        elif name != "random" and not name.endswith(WARM):
            peer = METHODS[name][3](Z, seed, X_pool)
            steps[name] = (lambda peer=peer: peer.query(labeled, y_labeled, unlabeled, batch)[1:])
    times = {name: [] for name in steps}
    load_before = os.getloadavg()[0]
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(step())
    timing = {"labels": len(labeled), "positives": int(y_labeled.sum()), "rounds": rounds, "seed": seed,
              "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "methods": {name: {"fit_seconds": round(float(np.median([fit for fit, _ in pairs])), 4),
                                 "query_seconds": round(float(np.median([query for _, query in pairs])), 4)}
                          for name, pairs in times.items()}}
    if "default" in steps:
        timing["default_kind"] = steps["default"].learner.selected.kind
    return timing


def load(name):
    if name == "creditcard":
        return real_tables.creditcard()
    if name == "caravan":
        return real_tables.caravan()
    raise SystemExit(f"--datasets: unknown dataset {name!r} (known: {', '.join(DATASETS)})")


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "load_average": [round(value, 2) for value in os.getloadavg()]}


def versions():
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("scikit-learn", "scikit-activeml", "small-text", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


# ---- the outputs -------------------------------------------------------------------------------------------


def write_json(results, path):
    temporary = path + ".part"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(results, stream, indent=1)
    os.replace(temporary, path)


def step_seconds(dataset, name):
    """(query s, step s) of method ``name``: from the side-by-side timing when the run has one (a WARM variant
    queries like its peer), else the medians over its own runs."""
    timing = dataset.get("timing", {}).get("methods", {}).get(base_method(name))
    if timing is not None:
        return timing["query_seconds"], timing["query_seconds"] + timing["fit_seconds"]
    result = dataset["methods"][name]
    return result["query_seconds_median"], result["step_seconds_median"]


def verdict(dataset, budgets):
    """Lines saying where labeler's default loop stands against the best other method at each budget from 250
    on, and its query step against the fastest peer's (and the fastest library peer's, when labeler's own
    baseline is the fastest)."""
    methods = dataset["methods"]
    if "default" not in methods:
        return []
    lines = []
    ours = methods["default"]
    for budget in [budget for budget in budgets if budget >= 250] or budgets:
        key = str(budget)
        others = {name: result["at"][key]["auprc"] for name, result in methods.items()
                  if name not in OURS and key in result["at"]}
        if key not in ours["at"] or not others:
            continue
        best = max(others, key=others.get)
        mine = ours["at"][key]["auprc"]
        word = "ahead of" if mine > others[best] else "BEHIND"
        lines.append(f"- {budget} labels: default {mine:.3f}, {word} the best peer, {best} "
                     f"{others[best]:.3f} ({mine - others[best]:+.3f})")
    timed = {name: step_seconds(dataset, name)[0] for name in methods
             if name not in OURS + ("random",) and not name.endswith(WARM)}
    timed = {name: seconds for name, seconds in timed.items() if seconds is not None}
    if timed and step_seconds(dataset, "default")[0] is not None:
        fastest = min(timed, key=timed.get)
        mine = step_seconds(dataset, "default")[0]
        word = "at least as fast as" if mine <= timed[fastest] else "SLOWER than"
        lines.append(f"- query step: default {1000 * mine:.1f} ms, {word} the fastest peer, {fastest} "
                     f"{1000 * timed[fastest]:.1f} ms")
        libraries = {name: seconds for name, seconds in timed.items() if METHODS[base_method(name)][0] != "labeler"}
        if libraries and METHODS[base_method(fastest)][0] == "labeler":
            fastest = min(libraries, key=libraries.get)
            word = "at least as fast as" if mine <= libraries[fastest] else "SLOWER than"
            lines.append(f"- query step: default {1000 * mine:.1f} ms, {word} the fastest library peer, {fastest} "
                         f"{1000 * libraries[fastest]:.1f} ms")
    return lines


def write_markdown(results, path):
    budgets = results["protocol"]["budgets"]
    host = results["machine"]
    after = [result["load_average_after"] for dataset in results["datasets"].values()
             for result in dataset["methods"].values()]
    loads = f"{min(after):.1f} to {max(after):.1f}" if after else "-"
    end = results.get("machine_at_end") or {"load_average": "(not recorded: the run did not finish)"}
    busiest = max(after + [host["load_average"][0]] + ([end["load_average"][0]] if "machine_at_end" in results else []))
    contention = ("The load went above 1 while this ran, so the cores were shared with other work and the timings "
                  "were measured under that contention. " if busiest > 1.0 else "")
    lines = [
        "# labeler against active-learning libraries",
        "",
    ]
    if not results.get("complete"):
        lines += ["**Partial run: it stopped before every dataset and method was done.**", ""]
    lines += [
        (f"Run {results['date']} on {host['platform']}, {host['processor']}, {host['cpu_count']} cpus, "
        f"python {host['python']}; load average (1, 5, 15 min) {host['load_average']} at the start, "
        f"{end['load_average']} at the end, {loads} after each method. {contention}"
        f"BLAS/OpenMP threads: {results['threads']}. "
        "Libraries: " + ", ".join(f"{name} {version}" for name, version in results["versions"].items()) + "."),
        "",
        (f"Protocol: stratified 80/20 split per seed (seeds {', '.join(map(str, results['protocol']['seeds']))}), "
        f"the 80% is the pool and the ground truth its oracle, batches of {results['protocol']['batch']}; after "
        "each batch the base classifier (the product's logistic candidate: standardized features, logistic "
        "regression) is trained on the labels so far and its AUPRC measured on the 20% test split. Every peer "
        "queries with that classifier; labeler's default loop runs as shipped and is evaluated with the model it "
        "selects. Cells: mean AUPRC over seeds (worst seed in brackets). *found*: positives the analyst was shown "
        f"in the first {max(budgets)} labels (mean). *query ms*: median milliseconds of one query step on the whole "
        "pool (rescore the pool and pick a batch of 10; for labeler's loop `score` + `pick`); *step ms*: the same "
        "plus fitting the method's model (labeler: training, a refit of the kind model selection chose, and "
        "choosing pseudo-labels). Both are timed side by side: every method at the same labeled set of the first "
        "seed's pool, round-robin, so the machine's load weighs on all alike (the section's timing line says "
        "which set); a `+labeler-start` row queries like its peer. The medians over each method's own runs, "
        "taken at whatever the load was then, are in peers.json."),
        "",
    ]
    for dataset_name, dataset in results["datasets"].items():
        lines += [(f"## {dataset_name}: {dataset['rows']:,} rows, {dataset['features']} features, "
                   f"{dataset['positives']} positives ({dataset['pool_positives']} in each pool of "
                   f"{dataset['pool_rows']:,})"), ""]
        header = ["method", "library"] + [f"AUPRC@{budget}" for budget in budgets] + [
            f"found@{max(budgets)}", "query ms", "step ms"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, result in dataset["methods"].items():
            cells = []
            for budget in budgets:
                row = result["at"].get(str(budget))
                cells.append(f"{row['auprc']:.3f} ({row['auprc_min']:.3f})" if row else "-")
            last = result["at"].get(str(max(budgets)))
            timing = (lambda value: "-" if value is None else f"{1000 * value:.1f}")
            name_cell = f"**{name}**" if name == "default" else name
            query, step = step_seconds(dataset, name)
            lines.append("| " + " | ".join([name_cell, METHODS[base_method(name)][0]] + cells + [
                f"{last['positives_found']:.1f}" if last else "-", timing(query), timing(step)]) + " |")
        lines += ["", ("Against the targets (default ahead of every peer from 250 labels on, query step at least "
                       "as fast as the fastest peer's, random left out of the speed comparison):"), ""]
        lines += verdict(dataset, budgets) + [""]
        timing = dataset.get("timing")
        if timing:
            kind = f"; labeler's model selection chose {timing['default_kind']}" if "default_kind" in timing else ""
            when = f" on {timing['date']}" if "date" in timing else ""
            lines += [(f"Timing{when}: {timing['labels']:,} labels ({timing['positives']} positives) drawn from "
                       f"the pool of seed {timing['seed']}, {timing['rounds']} rounds, load average "
                       f"{timing['load_average'][0]} before and {timing['load_average'][1]} after{kind}."), ""]
    lines += ["## Methods", "", "| method | library | what it does | cold start |", "|---|---|---|---|"]
    for name in results["protocol"]["methods"]:
        library, label, _, _, note = METHODS[base_method(name)]
        lines.append(f"| {name} | {library} | {label}{': ' + note if note else ''} | {cold_start_text(name)} |")
    lines += ["", ("The shared random draws are those of labeler's `simulate` baselines (numpy generator seeded "
                   "with the split seed), so every method that starts at random starts from the same labeled set. "
                   f"A method named with `{WARM}` is the same peer started from the batch labeler's own cold start "
                   "picks first (anomaly score spread over k-means clusters), to tell the cold start's share of the "
                   "gap from the query strategy's. In a binary task least confidence, margin (breaking ties) and "
                   "entropy rank the pool in the same order, so the uncertainty rows differ only in tie-breaking "
                   "and speed."), "", f"Command: `{results['command'].strip()}`.", ""]
    for merged in results.get("merged", []):
        lines.append(f"Rows {', '.join(merged['methods'])} added from `{merged['command']}`, run {merged['date']}, "
                     f"load average {merged['machine']['load_average']} at its start.")
    lines.append("")
    text = "\n".join(lines)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
    return text


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    datasets = list(results["datasets"].items())
    figure, axes = pyplot.subplots(len(datasets), 2, figsize=(15, 4.6 * len(datasets)), squeeze=False)
    colours = pyplot.get_cmap("tab20").colors
    colours = colours[0::2] + colours[1::2]  # the strong shade of each hue first
    for row, (dataset_name, dataset) in enumerate(datasets):
        left, right = axes[row]
        for position, (name, result) in enumerate(dataset["methods"].items()):
            labels = [point["labels"] for point in result["curve"]]
            style = ({"linewidth": 2.6, "color": "black"} if name == "default" else
                     {"linewidth": 1.8, "color": "black", "linestyle": "--"} if name in OURS else
                     {"linewidth": 1.1, "color": colours[position % len(colours)],
                      "linestyle": ":" if name.endswith(WARM) else
                      "--" if METHODS[base_method(name)][0] == "small-text" else "-"})
            left.plot(labels, [point["auprc"] for point in result["curve"]], label=name, **style)
            right.plot(labels, [point["positives_found"] for point in result["curve"]], label=name, **style)
        left.set(title=f"{dataset_name}: test AUPRC (mean over seeds)", xlabel="labels", ylabel="AUPRC",
                 ylim=(0, 1 if dataset_name == "creditcard" else None))
        right.set(title=f"{dataset_name}: positives shown (mean), pool holds {dataset['pool_positives']}",
                  xlabel="labels", ylabel="positives found")
        for axis in (left, right):
            axis.grid(alpha=0.3)
        right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    seeds = ", ".join(map(str, results["protocol"]["seeds"]))
    figure.suptitle(f"labeler's default loop against random, uncertainty, scikit-activeml and small-text "
                    f"(batch {results['protocol']['batch']}, seeds {seeds}, {results['date'][:10]})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


# ---- main --------------------------------------------------------------------------------------------------


def parse_list(text, kind, option):
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"{option}: expected a comma-separated list, got {text!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="methods: " + ", ".join(METHODS))
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"Comma-separated datasets (default: {','.join(DATASETS)}).")
    parser.add_argument("--seeds", default=None, help="Comma-separated split seeds (default: 0,1,2; --quick: 0).")
    parser.add_argument("--budgets", default=None,
                        help="Comma-separated label counts to report; the runs go to the largest "
                             "(default: 100,250,500,1000; --quick: 50,100).")
    parser.add_argument("--methods", default="all",
                        help="Comma-separated methods, or 'all' (default). Known: " + ", ".join(METHODS) + f"; a "
                             f"peer name ending in {WARM} starts that peer from labeler's cold-start batch.")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"Labels per query step (default {BATCH}).")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads for every method (default 1: the machine's cores are shared).")
    parser.add_argument("--out", default=None,
                        help="Folder for peers.md, peers.json and peers.png (default: bench/results; "
                             "--quick: a temporary folder).")
    parser.add_argument("--quick", action="store_true",
                        help="A small run for development: seed 0, budgets 50,100 (a couple of minutes).")
    parser.add_argument("--render-only", action="store_true",
                        help="Run nothing: rewrite OUT/peers.md and OUT/peers.png from OUT/peers.json.")
    parser.add_argument("--timing-only", action="store_true",
                        help="Run only the side-by-side timing of the query steps for the methods and datasets of "
                             "OUT/peers.json, store it there and rewrite OUT/peers.md and .png.")
    parser.add_argument("--merge", metavar="PATH",
                        help="Run nothing: add the methods of the finished run saved at PATH (a peers.json with the "
                             "same seeds, budgets and batch) to OUT/peers.json, then rewrite OUT/peers.md and .png.")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, os.path.join(args.out or os.path.join(ROOT, "bench", "results"), "peers.json"))
    if args.timing_only:
        warnings.filterwarnings("ignore")
        threadpool_limits(args.threads)
        retime(os.path.join(args.out or os.path.join(ROOT, "bench", "results"), "peers.json"))
    if args.render_only or args.merge or args.timing_only:
        render(args.out or os.path.join(ROOT, "bench", "results"))
        return

    seeds = parse_list(args.seeds, int, "--seeds") if args.seeds else list(QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    budgets = sorted(parse_list(args.budgets, int, "--budgets") if args.budgets else
                     (QUICK_BUDGETS if args.quick else DEFAULT_BUDGETS))
    names = list(METHODS) if args.methods == "all" else parse_list(args.methods, str, "--methods")
    for name in names:
        check_method(name)
    if not budgets or min(budgets) < 1 or args.batch < 1:
        raise SystemExit("--budgets and --batch must be at least 1")
    out = args.out or (tempfile.mkdtemp(prefix="peers-quick-") if args.quick else os.path.join(ROOT, "bench", "results"))
    os.makedirs(out, exist_ok=True)
    warnings.filterwarnings("ignore")  # the libraries' deprecation and convergence chatter
    threadpool_limits(args.threads)

    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
               "threads": args.threads, "versions": versions(),
               "command": " ".join(["python bench/compare_peers.py"] + sys.argv[1:]),
               "protocol": {"seeds": seeds, "budgets": budgets, "batch": args.batch, "test_share": simulate.TEST_SHARE,
                            "methods": names, "base_classifier": "models.weak LOGISTIC (StandardScaler + "
                                                                 f"LogisticRegression C={weak.LOGISTIC_C_TOTAL}/features)"},
               "datasets": {}}
    print(f"machine: {results['machine']}, threads {args.threads}; {results['versions']}", flush=True)
    for dataset_name in parse_list(args.datasets, str, "--datasets"):
        X, y = load(dataset_name)
        pool_rows = len(simulate.split(y, seeds[0])[0])
        dataset = {"rows": len(y), "features": int(X.shape[1]), "positives": int(y.sum()),
                   "pool_rows": pool_rows, "pool_positives": round(int(y.sum()) * (1 - simulate.TEST_SHARE)),
                   "methods": {}}
        results["datasets"][dataset_name] = dataset
        print(f"{dataset_name}: {len(y):,} rows, {X.shape[1]} features, {int(y.sum())} positives; pool {pool_rows:,}",
              flush=True)
        for name in names:
            started = time.perf_counter()
            runs, fits, queries = [], [], []
            for seed in seeds:
                rows, fit_seconds, query_seconds = run_method(name, X, y, max(budgets), args.batch, seed)
                runs.append(rows)
                fits += fit_seconds
                queries += query_seconds
                print(f"  {name} seed {seed}: AUPRC {rows[-1]['auprc']:.3f}, found {rows[-1]['positives_found']} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
            dataset["methods"][name] = {**summarize(runs, fits, queries, budgets),
                                        "library": METHODS[base_method(name)][0], "cold_start": cold_start_text(name),
                                        "note": METHODS[base_method(name)][4],
                                        "seconds": round(time.perf_counter() - started, 1),
                                        "load_average_after": round(os.getloadavg()[0], 2)}
            write_json({**results, "complete": False}, os.path.join(out, "peers.json"))
        print(f"  timing each query step at the same state, {TIMING_ROUNDS} rounds", flush=True)
        dataset["timing"] = time_query_steps(names, X, y, args.batch, seeds[0])
    results["machine_at_end"] = machine()
    results["complete"] = True
    write_json(results, os.path.join(out, "peers.json"))
    render(out)


def read_results(path):
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError) as error:
        raise SystemExit(f"{path}: cannot read the results ({error})")


def retime(path):
    """Redo the side-by-side timing of the run saved at ``path`` (its methods, datasets, batch, first seed) and
    store it there."""
    results = read_results(path)
    protocol = results["protocol"]
    for name, dataset in results["datasets"].items():
        X, y = load(name)
        print(f"{name}: timing each query step at the same state, {TIMING_ROUNDS} rounds", flush=True)
        dataset["timing"] = time_query_steps(protocol["methods"], X, y, protocol["batch"], protocol["seeds"][0])
        dataset["timing"]["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    write_json(results, path)


def merge(source, target):
    """Add the methods of the finished run saved at ``source`` to the run saved at ``target`` (rewritten in
    place). Raises SystemExit when either cannot be read, ``source`` did not finish, the protocols differ or a
    dataset of ``source`` is not in ``target``."""
    extra, results = read_results(source), read_results(target)
    if not extra.get("complete"):
        raise SystemExit(f"--merge {source}: the run that wrote it did not finish")
    for key in ("seeds", "budgets", "batch", "test_share"):
        if extra["protocol"][key] != results["protocol"][key]:
            raise SystemExit(f"--merge {source}: its {key} {extra['protocol'][key]} differ from {target}'s "
                             f"{results['protocol'][key]}")
    for name, dataset in extra["datasets"].items():
        if name not in results["datasets"]:
            raise SystemExit(f"--merge {source}: dataset {name!r} is not in {target}")
        results["datasets"][name]["methods"].update(dataset["methods"])
    methods = extra["protocol"]["methods"]
    results["protocol"]["methods"] += [name for name in methods if name not in results["protocol"]["methods"]]
    results.setdefault("merged", []).append({key: extra.get(key) for key in ("date", "command", "machine",
                                                                             "machine_at_end", "threads")}
                                            | {"methods": methods})
    write_json(results, target)


def render(out):
    """Write OUT/peers.md and OUT/peers.png from OUT/peers.json (the md says so when the run did not finish) and
    print the markdown."""
    path = os.path.join(out, "peers.json")
    results = read_results(path)
    if not results.get("complete"):
        print(f"{path}: the run that wrote it did not finish; rendering what it has", file=sys.stderr)
    print(write_markdown(results, os.path.join(out, "peers.md")))
    plot(results, os.path.join(out, "peers.png"))
    print("wrote", *(os.path.join(out, f"peers.{ext}") for ext in ("md", "json", "png")))


if __name__ == "__main__":
    main()
