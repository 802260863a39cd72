"""Issue 20, the early loop: variants of the default loop's first labels against the default, paired over seeds.

    nice -n 19 .venv/bin/python bench/early_loop.py --tables caravan,wage_high --seeds 10-19 \
        --budget 250 --variants nopseudo,young150

Each variant is the default loop (bench/compare_peers.run_default) with settings or a patch of models/ held for
the run; runs are kept in bench/results/suite_runs/TABLE/early_VARIANT/seedN.json. Printed: per table and variant
the mean test AUPRC at 50/100/150/250 labels, the paired difference to the kept ``default`` runs of bench/suite.py
(else the default run here, ``new``; mean, standard error across seeds) and to plain ``uncertainty``, and the
positives found at 100.
"""
import argparse
import contextlib
import datetime
import functools
import json
import os
import sys
import time
import warnings

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH))
sys.path.insert(0, BENCH)

import compare_peers  # noqa: E402
import real_tables  # noqa: E402
import suite  # noqa: E402
from labeler.store.settings import retrain_due, retrain_step  # noqa: E402
from labeler.worker import simulate  # noqa: E402
from models import (adaptive, generative_candidates, learner as learner_module, prequential, selection,  # noqa: E402
                    strategies, weak)
from models.names import COLD_START, COMMITTEE, DIVERSITY, EXPLORATION, HIGH_RISK, UNCERTAIN  # noqa: E402

RUNS = os.path.join(BENCH, "results", "suite_runs")


@contextlib.contextmanager
def patched(owner, name, value):
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def young_mix(limit, mix):
    """The mix while fewer than ``limit`` labels are in: ``mix`` in place of the settings' mix."""
    shipped = learner_module.ActiveLearner.pick

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        if p_positive is not None and len(self.ids) - len(unlabeled) < limit:
            return strategies.plan_batch(p_positive, self.z, unlabeled, size, mix, self.rng,
                                         self.settings["uncertainty"], self.positives)
        return shipped(self, p_positive, unlabeled, size, labeled_positives)

    return patched(learner_module.ActiveLearner, "pick", pick)


def cold_mix(shares):
    """The cold start (before the first positive, before the widening) in ``shares`` of anomaly (COLD_START),
    diversity (uncovered clusters) and random."""
    shipped = learner_module.ActiveLearner.pick

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        n_labeled = len(self.ids) - len(unlabeled)
        if p_positive is not None or (labeled_positives == 0 and n_labeled >= adaptive.WIDEN_AFTER):
            return shipped(self, p_positive, unlabeled, size, labeled_positives)
        unlabeled = np.asarray(unlabeled, dtype=np.int64)
        counts = adaptive.counts_of(size, shares)
        labeled = np.setdiff1d(np.arange(len(self.ids)), unlabeled)
        picked, taken = {}, np.zeros(0, dtype=np.int64)
        if counts.get(COLD_START):
            picked[COLD_START] = strategies.cold_start(self.z, self.anomaly, unlabeled, counts[COLD_START], self.seed)
            taken = picked[COLD_START]
        if counts.get(DIVERSITY):
            rest = unlabeled[~np.isin(unlabeled, taken)]
            picked[DIVERSITY] = adaptive.uncovered(self.z, rest, np.concatenate([labeled, taken]), counts[DIVERSITY],
                                                   self.rng, self.seed)
            taken = np.concatenate([taken, picked[DIVERSITY]])
        rest = unlabeled[~np.isin(unlabeled, taken)]
        picked[EXPLORATION] = self.rng.choice(rest, size=size - len(taken), replace=False)
        return strategies.interleave(picked)

    return patched(learner_module.ActiveLearner, "pick", pick)


def logistic_only():
    """Model selection limited to the logistic model."""
    return patched(weak, "candidate_kinds", lambda y, n_classes=2: [weak.LOGISTIC])


def binary_logistic(build):
    """models.weak makes the binary logistic model as ``build(the pipeline it would have made)``."""
    shipped = weak._make

    def make(kind, seed, categorical=(), n_classes=2, n_features=1):
        model = shipped(kind, seed, categorical, n_classes, n_features)
        return build(model) if kind == weak.LOGISTIC and n_classes == 2 else model

    return patched(weak, "_make", make)


def logistic_c_by_cv(Cs=(0.01, 0.1, 1.0)):
    """The binary logistic model's C chosen by 3-fold cross-validated log loss on the labels, among ``Cs``
    (C=0.01 while a class has fewer than 3 labels)."""
    return binary_logistic(lambda shipped: CrossValidatedC(list(Cs)))


class CrossValidatedC:
    """The logistic pipeline whose C is chosen among ``Cs`` by LogisticRegressionCV (its folds see the training
    set as given: repeated human rows and pseudo-labels included)."""

    def __init__(self, Cs):
        self.Cs = Cs

    def fit(self, X, y):
        if np.bincount(np.asarray(y, dtype=np.int64), minlength=2).min() < 3:
            self.model = make_pipeline(StandardScaler(), weak.LogisticRegression(C=0.01, max_iter=2000))
        else:
            self.model = make_pipeline(StandardScaler(), LogisticRegressionCV(
                Cs=self.Cs, cv=3, scoring="neg_log_loss", max_iter=2000))
        self.model.fit(X, y)
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, X):
        return self.model.predict_proba(X)


def fixed_c(C):
    """The binary logistic model's C is ``C`` on every table (0.01 before the per-feature penalty)."""
    return patched(weak, "logistic_c",
                   lambda n_features, n_classes=2: C if n_classes == 2 else weak.LOGISTIC_C_CLASSES)


def no_prequential():
    """The blend serves whatever the prequential record says (the loop before models.prequential)."""
    return patched(learner_module.ActiveLearner, "prequential_choice", lambda self, selected: selected)


def prequential_rule(last=None, min_each=prequential.MIN_EACH):
    """The prequential choice decided on the record's ``last`` labels only (all: None), once they hold
    ``min_each`` of each class."""
    def prefers_logistic(self, _min_each=None):
        window = slice(-last if last else None, None)
        recent = prequential.Record(self.truth[window], self.blend[window], self.logistic[window])
        figures = recent.figures(min_each)
        return figures["blend_ap"] is not None and figures["logistic_ap"] > figures["blend_ap"]

    return patched(prequential.Record, "prefers_logistic", prefers_logistic)


def undecided(truth, min_each):
    """Whether the record's labels ``truth`` hold fewer than ``min_each`` of either class."""
    positives = int(np.sum(truth))
    return min(positives, len(truth) - positives) < min_each


def logistic_first(min_each=prequential.MIN_EACH, measure=average_precision_score, first=True):
    """The prequential choice by ``measure`` (of truth and scores; average precision as shipped) and, when
    ``first``, the other way round: the blend's logistic part serves until the record holds ``min_each`` labels of
    each class and the blend ranked them at least as well."""
    def prefers_logistic(self, _min_each=None):
        truth = np.asarray(self.truth)
        if undecided(truth, min_each):
            return first
        return measure(truth, self.logistic) > measure(truth, self.blend)

    return patched(prequential.Record, "prefers_logistic", prefers_logistic)


def bootstrap_ap(truth, scores, draws=200, seed=0):
    """Average precision of ``scores`` on ``truth`` under ``draws`` Poisson bootstrap reweightings of the labels
    (rows: draws; ties broken by order)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    truth = np.asarray(truth, dtype=np.float64)[order]
    weights = np.random.default_rng(seed).poisson(1.0, size=(draws, len(truth))).astype(np.float64)
    hits = np.cumsum(weights * truth, axis=1)
    precision = hits / np.maximum(np.cumsum(weights, axis=1), 1e-12)
    return (weights * truth * precision).sum(axis=1) / np.maximum((weights * truth).sum(axis=1), 1e-12)


def logistic_until_confident(confidence=0.9, min_each=prequential.MIN_EACH, draws=200):
    """The logistic part serves until the blend ranked the record's labels better (average precision) in at
    least ``confidence`` of ``draws`` bootstrap reweightings of the record."""
    def prefers_logistic(self, _min_each=None):
        truth = np.asarray(self.truth)
        if undecided(truth, min_each):
            return True
        seed = len(truth)
        better = bootstrap_ap(truth, self.blend, draws, seed) > bootstrap_ap(truth, self.logistic, draws, seed)
        return better.mean() < confidence

    return patched(prequential.Record, "prefers_logistic", prefers_logistic)


def blend_first():
    """The blend serves, and picks, unless the prequential record prefers its logistic part: the default before
    the blend's scores waited for the record's trust (models.prequential.SERVE_EACH, 2026-12-03)."""
    def prequential_choice(self, selected):
        if self.n_classes != 2 or selected.kind != weak.BLEND or not self.prequential.prefers_logistic():
            return selected
        return selection.Selected(model=weak.WeakModel(weak.LOGISTIC_PART, selected.model.estimators,
                                                       selected.model.calibration),
                                  kind=weak.LOGISTIC_PART, metrics=selected.metrics)

    return patched(learner_module.ActiveLearner, "prequential_choice", prequential_choice)


def reported_by(prefers_logistic):
    """The loop picks, pseudo-labels and trains as shipped, but the model scored on the test set (the one whose
    scores the team would see) is a blend's logistic part while ``prefers_logistic(record)`` says so."""
    shipped_train, shipped_score = learner_module.ActiveLearner.train, learner_module.ActiveLearner.score

    def train(self, labeled, y, pseudo=None):
        served = shipped_train(self, labeled, y, pseudo)
        self.reported = served.model
        if self.selected is not None and self.selected.kind == weak.BLEND and prefers_logistic(self.prequential):
            self.reported = weak.WeakModel(weak.LOGISTIC_PART, self.selected.model.estimators)
        return served

    def score(self, model, X=None, groups=None):
        if X is not None and getattr(self, "reported", None) is not None:
            model = self.reported
        return shipped_score(self, model, X, groups)

    return stack(patched(learner_module.ActiveLearner, "train", train),
                 patched(learner_module.ActiveLearner, "score", score))


def record_rule(min_each, confidence=None, draws=200):
    """The record prefers the logistic part until it holds ``min_each`` labels of each class and the blend ranked
    them at least as well (average precision), or with ``confidence``, better in that share of ``draws``
    bootstrap reweightings."""
    def prefers_logistic(record):
        truth = np.asarray(record.truth)
        if undecided(truth, min_each):
            return True
        if confidence is None:
            return average_precision_score(truth, record.logistic) > average_precision_score(truth, record.blend)
        seed = len(truth)
        better = bootstrap_ap(truth, record.blend, draws, seed) > bootstrap_ap(truth, record.logistic, draws, seed)
        return better.mean() < confidence

    return prefers_logistic


class RampedParts(list):
    """A blend's estimators with the boosted part's share (blend_ramp), carried wherever the list goes."""
    boosted_share = 0.5


def blend_ramp(positives):
    """The blend's boosted part weighted by 0.5 x min(1, positive training rows / ``positives``) instead of 0.5
    (distinct rows: human labels repeated beside pseudo-labels count once): it joins as its positives grow."""
    shipped_fit, shipped_raw = weak.fit, weak.WeakModel.raw

    def fit(kind, X, y, seed=0, categorical=(), n_classes=2):
        model = shipped_fit(kind, X, y, seed, categorical, n_classes)
        if kind == weak.BLEND and n_classes == 2:
            distinct = len(np.unique(np.asarray(X)[np.asarray(y) == 1], axis=0))
            model.estimators = RampedParts(model.estimators)
            model.estimators.boosted_share = 0.5 * min(1.0, distinct / positives)
        return model

    def raw(self, X):
        if self.kind != weak.BLEND or not isinstance(self.estimators, RampedParts):
            return shipped_raw(self, X)
        X = np.asarray(X, dtype=np.float32)
        share = self.estimators.boosted_share
        return ((1.0 - share) * weak.positive_probability(self.estimators[0], X)
                + share * weak.positive_probability(self.estimators[1], X))

    return stack(patched(weak, "fit", fit), patched(weak.WeakModel, "raw", raw))


def boosted_params(**params):
    """The boosted part of the blend (weak._make's HistGradientBoostingClassifier) with ``params`` changed."""
    shipped = weak._make

    def make(kind, seed, categorical=(), n_classes=2, n_features=1):
        model = shipped(kind, seed, categorical, n_classes, n_features)
        if kind == weak.BOOSTED:
            (model.boosted if isinstance(model, weak.NativeCategories) else model).set_params(**params)
        return model

    return patched(weak, "_make", make)


def boosted_once_weighted():
    """The boosted part fitted on each human label once with weight ``human_weight`` instead of repeated, so that
    its ``min_samples_leaf`` counts distinct labels (the logistic part as shipped, on the repeated rows)."""
    shipped = selection._fit

    def fit(kind, X, y, train, pseudo, human_weight, seed, generative, key, categorical=(), n_classes=2):
        if generative_candidates.is_generative(kind) or pseudo is None or len(pseudo[1]) == 0:
            return shipped(kind, X, y, train, pseudo, human_weight, seed, generative, key, categorical, n_classes)
        X_repeated, y_repeated = selection._training_set(X, y, train, pseudo, human_weight)
        X_once = np.concatenate([X[train], pseudo[0]]).astype(np.float32)
        y_once = np.concatenate([y[train], pseudo[1]])
        weights = np.concatenate([np.full(len(train), float(max(1, int(round(human_weight))))),
                                  np.ones(len(pseudo[1]))])
        dtype = np.int8 if n_classes == 2 else np.int64
        parts = weak.BLEND_PARTS if kind in (weak.BLEND, weak.LOGISTIC_PART) else (kind,)
        estimators = []
        for part in parts:
            model = weak._make(part, seed, categorical, n_classes, X.shape[1])
            if part != weak.BOOSTED:
                estimators.append(model.fit(np.asarray(X_repeated, np.float32), y_repeated.astype(dtype)))
            elif isinstance(model, weak.NativeCategories):
                n_plain = X.shape[1] - sum(stop - start for start, stop in model.blocks)
                model.boosted.set_params(categorical_features=list(range(n_plain, n_plain + len(model.blocks))))
                model.boosted.fit(model.codes(X_once), y_once.astype(dtype), sample_weight=weights)
                estimators.append(model)
            else:
                estimators.append(model.fit(X_once, y_once.astype(dtype), sample_weight=weights))
        if n_classes == 2:
            return weak.WeakModel(kind, estimators)
        return weak.MultiClassModel(kind, estimators, n_classes)

    return patched(selection, "_fit", fit)


def logit_blend():
    """The binary blend as the mean of its parts' log-odds instead of their probabilities."""
    shipped = weak.WeakModel.raw

    def raw(self, X):
        if self.kind != weak.BLEND:
            return shipped(self, X)
        X = np.asarray(X, dtype=np.float32)
        return expit(np.mean([weak.logit(weak.positive_probability(estimator, X)) for estimator in self.estimators],
                             axis=0))

    return patched(weak.WeakModel, "raw", raw)


def young_diversity(limit, share):
    """While fewer than ``limit`` labels are in and a model scored the pool: ``share`` of each batch typical items
    of parts of the pool no label covers (models.adaptive.uncovered), the rest picked as shipped."""
    shipped = learner_module.ActiveLearner.pick

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        unlabeled = np.asarray(unlabeled, dtype=np.int64)
        if p_positive is None or len(self.ids) - len(unlabeled) >= limit:
            return shipped(self, p_positive, unlabeled, size, labeled_positives)
        labeled = np.setdiff1d(np.arange(len(self.ids)), unlabeled)
        diverse = adaptive.uncovered(self.z, unlabeled, labeled, int(round(size * share)), self.rng, self.seed)
        rest = unlabeled[~np.isin(unlabeled, diverse)]
        return ([(int(index), DIVERSITY) for index in diverse]
                + list(shipped(self, p_positive, rest, size - len(diverse), labeled_positives)))

    return patched(learner_module.ActiveLearner, "pick", pick)


def young_exploration(positives_below, share):
    """While a model scored the pool but fewer than ``positives_below`` positives are labeled: ``share`` of each
    batch drawn at random (typical positives, where the first ones found were the pool's odd ones), the rest
    picked as shipped."""
    shipped = learner_module.ActiveLearner.pick

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        unlabeled = np.asarray(unlabeled, dtype=np.int64)
        if p_positive is None or labeled_positives is None or labeled_positives >= positives_below:
            return shipped(self, p_positive, unlabeled, size, labeled_positives)
        drawn = self.rng.choice(unlabeled, size=min(int(round(size * share)), len(unlabeled)), replace=False)
        rest = unlabeled[~np.isin(unlabeled, drawn)]
        return ([(int(index), EXPLORATION) for index in drawn]
                + list(shipped(self, p_positive, rest, size - len(drawn), labeled_positives)))

    return patched(learner_module.ActiveLearner, "pick", pick)


def pool_density(z, seed, reference=1000):
    """Each pool row's mean Gaussian similarity to a seeded draw of ``reference`` rows of ``z``, the bandwidth
    the draw's median distance: high for typical rows, low for the odd ones; scaled to at most 1."""
    rng = np.random.default_rng(seed)
    drawn = z[rng.choice(len(z), size=min(reference, len(z)), replace=False)].astype(np.float64)
    squared = (np.square(z).sum(axis=1)[:, None] - 2.0 * z @ drawn.T + np.square(drawn).sum(axis=1)[None, :])
    squared = np.maximum(squared, 0.0)
    bandwidth = np.median(squared)
    density = np.exp(-squared / max(bandwidth, 1e-12)).mean(axis=1)
    return density / density.max()


def density_frontier(positives_below, power=1.0):
    """While a model scored the pool but fewer than ``positives_below`` positives are labeled: the mix picks
    by P(positive) times the pool density to the ``power`` (information density, Settles and Craven 2008)."""
    shipped = learner_module.ActiveLearner.pick

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        if p_positive is None or labeled_positives is None or labeled_positives >= positives_below:
            return shipped(self, p_positive, unlabeled, size, labeled_positives)
        if getattr(self, "density", None) is None:
            self.density = pool_density(self.z, self.seed)
        return shipped(self, np.asarray(p_positive) * self.density ** power, unlabeled, size, labeled_positives)

    return patched(learner_module.ActiveLearner, "pick", pick)


def both_kinds_compared(y, n_classes=2):
    """Binary: cross-validation chooses between the logistic model and the blend once both classes have
    MIN_BOOSTED_PER_CLASS labels (as it does for K classes), instead of the blend always."""
    y = np.asarray(y)
    if n_classes == 2 and min(int((y == 1).sum()), int((y == 0).sum())) >= weak.MIN_BOOSTED_PER_CLASS:
        return [weak.LOGISTIC, weak.BLEND]
    return shipped_candidate_kinds(y, n_classes)


shipped_candidate_kinds = weak.candidate_kinds


def widen_after(labels):
    """The cold start widens its search after ``labels`` labels without a positive (cold_start_shares' default
    argument holds WIDEN_AFTER from import time: patching the constant alone changes nothing)."""
    shipped = adaptive.cold_start_shares

    def widened(n_labeled, n_positive, widen_after=None, shares=adaptive.COLD_SHARES):
        return shipped(n_labeled, n_positive, labels, shares)

    return patched(adaptive, "cold_start_shares", widened)


def widen10rand():
    """The search widens after 10 labels without a positive, to random picks only. (Before 2026-12-03 this
    patched the constant WIDEN_AFTER, which cold_start_shares never read: it widened after 20.)"""
    return stack(widen_after(10), patched(adaptive, "WIDER_SHARES", {EXPLORATION: 1.0}))


def cold_start(cold, widen=adaptive.WIDEN_AFTER):
    """The binary cold start in ``cold`` ({strategy: share}) from the first batch, widening as shipped
    (WIDER_SHARES) after ``widen`` labels without a positive: patched where the learner reads it
    (models.adaptive.cold_start_shares)."""
    def replacement(n_labeled, n_positive, widen_after=None, shares=None):
        if n_positive == 0 and n_labeled >= widen:
            return dict(adaptive.WIDER_SHARES)
        return dict(cold)

    return patched(adaptive, "cold_start_shares", replacement)


def product_cadence(due, first_of_class):
    """The default loop refit as the product retrains (labeler.worker.simulate.run's ``retrain_due``)."""
    return patched(simulate, "run", functools.partial(simulate.run, retrain_due=due,
                                                      first_of_class_retrains=first_of_class))


def committee_disagreement(features, labeled, y, members=5, seed=0):
    """Per pool row: the mean KL divergence of ``members`` logistic models (models.weak.LOGISTIC), each fitted on
    a bootstrap of the labels (pool indices ``labeled``, binary ``y``) drawn within each class, from their mean
    P(positive): query by committee (Seung et al. 1992; McCallum and Nigam 1998's KL form, as scikit-activeml's
    QueryByCommittee)."""
    rng = np.random.default_rng(seed)
    labeled = np.asarray(labeled, dtype=np.int64)
    y = np.asarray(y)
    by_class = [np.flatnonzero(y == value) for value in (0, 1)]
    p = []
    for _ in range(members):
        rows = np.concatenate([rng.choice(part, size=len(part), replace=True) for part in by_class])
        model = weak.fit(weak.LOGISTIC, features[labeled[rows]], y[rows])
        p.append(np.clip(weak.positive_probability(model.estimators[0], features), 1e-6, 1 - 1e-6))
    p = np.array(p)
    mean = p.mean(axis=0)
    return np.mean(p * np.log(p / mean) + (1 - p) * np.log((1 - p) / (1 - mean)), axis=0)


def committee_arm(share, after=0, frontier=None, weak_below=None):
    """Once a model scored the pool and ``after`` labels are in: ``share`` of each batch the unlabeled items with
    the largest committee disagreement (committee_disagreement over the last training's labels), near-duplicates
    skipped, recorded as uncertain picks; the rest picked as shipped. ``frontier``: only among that many times
    the committee's count of the most uncertain items (least confidence). ``weak_below``: only while the
    selected model's cross-validated AUPRC on the labels is below it (or unmeasured)."""
    shipped = learner_module.ActiveLearner.pick

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        unlabeled = np.asarray(unlabeled, dtype=np.int64)
        if p_positive is None or self.labels_seen is None or len(self.ids) - len(unlabeled) < after:
            return shipped(self, p_positive, unlabeled, size, labeled_positives)
        measured = self.selected.auprc if self.selected is not None else None
        if weak_below is not None and measured is not None and measured >= weak_below:
            return shipped(self, p_positive, unlabeled, size, labeled_positives)
        labeled, y = self.labels_seen
        disagreement = committee_disagreement(self.pool_features(), labeled, y, seed=self.seed + len(labeled))
        count = int(round(size * share))
        candidates = unlabeled
        if frontier:
            closeness = strategies.least_confidence(np.asarray(p_positive)[unlabeled])
            candidates = unlabeled[np.argsort(-closeness, kind="stable")[:frontier * count]]
        window = candidates[np.argsort(-disagreement[candidates], kind="stable")[:4 * count + 10]]
        chosen = strategies.diverse(window, self.z, count)
        rest = unlabeled[~np.isin(unlabeled, chosen)]
        return ([(int(index), UNCERTAIN) for index in chosen]
                + list(shipped(self, p_positive, rest, size - len(chosen), labeled_positives)))

    return patched(learner_module.ActiveLearner, "pick", pick)


def stack(*managers):
    @contextlib.contextmanager
    def both():
        with contextlib.ExitStack() as exits:
            for manager in managers:
                exits.enter_context(manager)
            yield
    return both()


UNC = {UNCERTAIN: 1.0}
VARIANTS = {
    # diagnostics
    "same": lambda: ({}, contextlib.nullcontext()),  # the default as it was (runs kept before the change)
    "new": lambda: ({}, contextlib.nullcontext()),  # the default as changed (COLD_START_SHARES)
    # the default before the change: anomaly-led with the mix's 0.1 random, wider search after 20
    "old": lambda: ({}, cold_mix({COLD_START: 0.9, EXPLORATION: 0.1})),
    "nopseudo": lambda: ({"pseudo_labels": False}, contextlib.nullcontext()),
    "mixunc": lambda: ({"mix": UNC}, contextlib.nullcontext()),
    "logistic": lambda: ({}, logistic_only()),
    "coldrandom": lambda: ({}, cold_mix({EXPLORATION: 1.0})),
    "peerlike": lambda: ({"mix": UNC, "pseudo_labels": False},
                         stack(logistic_only(), cold_mix({EXPLORATION: 1.0}))),
    "coldrandom_unc": lambda: ({"mix": UNC}, cold_mix({EXPLORATION: 1.0})),
    "coldrandom_nop": lambda: ({"pseudo_labels": False}, cold_mix({EXPLORATION: 1.0})),
    "coldrandom_log": lambda: ({}, stack(logistic_only(), cold_mix({EXPLORATION: 1.0}))),
    "boost20": lambda: ({}, patched(weak, "MIN_BOOSTED_PER_CLASS", 20)),
    # on the cold start of COLD_START_SHARES (kept runs of "logistic" and "boost20" are of the one before it)
    "noblend": lambda: ({}, logistic_only()),
    "blend30": lambda: ({}, patched(weak, "MIN_BOOSTED_PER_CLASS", 30)),
    "cvchoice": lambda: ({}, patched(weak, "candidate_kinds", both_kinds_compared)),
    "youngdiv150": lambda: ({}, young_diversity(150, 0.3)),
    # the logistic model's L2 penalty (weak.logistic_c: 0.85 / features as shipped) and the prequential choice
    # between the blend and its logistic part (models.prequential), since 2026-12-03 both in the default
    "before": lambda: ({}, stack(fixed_c(0.01), no_prequential())),  # the default before them
    "noprequential": lambda: ({}, no_prequential()),
    "window100": lambda: ({}, prequential_rule(last=100)),
    "window200": lambda: ({}, prequential_rule(last=200)),
    "min10": lambda: ({}, prequential_rule(min_each=10)),
    # the blend's early cost on Wage and rules that would avoid it (2026-12-03, results/suite_wage_fresh.txt)
    "noblend_uncal": lambda: ({}, stack(logistic_only(), patched(weak, "fit_platt", lambda p, y: (1.0, 0.0)))),
    "uncal": lambda: ({}, patched(weak, "fit_platt", lambda p, y: (1.0, 0.0))),
    "logfirst": lambda: ({}, logistic_first()),
    "logfirst3": lambda: ({}, logistic_first(3)),
    "ramp50": lambda: ({}, blend_ramp(50)),
    "leaf50": lambda: ({}, boosted_params(min_samples_leaf=50)),
    "leaf100": lambda: ({}, boosted_params(min_samples_leaf=100)),
    "leaf50lr1": lambda: ({}, boosted_params(min_samples_leaf=50, learning_rate=0.1)),
    "onceweighted": lambda: ({}, boosted_once_weighted()),
    "logitblend": lambda: ({}, logit_blend()),
    # the served model apart from the one that picks (2026-12-03, results/suite_serve_dev.txt): report10, the
    # logistic part served until the record holds 10 of each class, became the default; blendfirst is the one before.
    # The report variants were run on that loop; on the loop as it is now they overrule its own choice.
    "report10": lambda: ({}, reported_by(record_rule(10))),
    "report5": lambda: ({}, reported_by(record_rule(prequential.MIN_EACH))),
    "reportboot90": lambda: ({}, reported_by(record_rule(prequential.MIN_EACH, 0.9))),
    "blendfirst": lambda: ({}, blend_first()),
    "logfirst10": lambda: ({}, logistic_first(10)),
    "logboot90": lambda: ({}, logistic_until_confident(0.9)),
    "logboot75": lambda: ({}, logistic_until_confident(0.75)),
    "logfirst_auc": lambda: ({}, logistic_first(measure=roc_auc_score)),
    "prequential_auc": lambda: ({}, logistic_first(measure=roc_auc_score, first=False)),
    "c001": lambda: ({}, fixed_c(0.01)),
    "c01": lambda: ({}, fixed_c(0.1)),
    "c1": lambda: ({}, fixed_c(1.0)),
    "c1_noblend": lambda: ({}, stack(fixed_c(1.0), logistic_only())),
    "ccv": lambda: ({}, logistic_c_by_cv()),
    "widen10rand_log": lambda: ({}, stack(widen10rand(), logistic_only())),
    # (a) the frontier weighted up while the model is young
    "young100": lambda: ({}, young_mix(100, UNC)),
    "young150": lambda: ({}, young_mix(150, UNC)),
    "young200": lambda: ({}, young_mix(200, UNC)),
    "young150hr": lambda: ({}, young_mix(150, {HIGH_RISK: 0.1, UNCERTAIN: 0.9})),
    # (b) widen earlier
    "widen10": lambda: ({}, widen_after(10)),
    "widen20rand": lambda: ({}, patched(adaptive, "WIDER_SHARES", {EXPLORATION: 1.0})),
    "widen10rand": lambda: ({}, widen10rand()),
    "density10": lambda: ({}, density_frontier(10)),
    "density5": lambda: ({}, density_frontier(5)),
    "density10p2": lambda: ({}, density_frontier(10, 2.0)),
    "density20": lambda: ({}, density_frontier(20)),
    "youngexp3": lambda: ({}, young_exploration(3, 0.5)),
    "youngexp5": lambda: ({}, young_exploration(5, 0.5)),
    "youngexp3_w10r": lambda: ({}, stack(young_exploration(3, 0.5), widen10rand())),
    # (c) cold start with diversity from the first batch
    "colddiv": lambda: ({}, cold_mix({COLD_START: 0.5, DIVERSITY: 0.5})),
    "colddivexp": lambda: ({}, cold_mix({COLD_START: 0.4, DIVERSITY: 0.3, EXPLORATION: 0.3})),
    "coldadaptive": lambda: ({}, cold_mix(adaptive.COLD_SHARES)),
    "halfrand": lambda: ({}, cold_mix({COLD_START: 0.5, EXPLORATION: 0.5})),
    # (b) + (c)
    "halfrand_w10r": lambda: ({}, stack(cold_mix({COLD_START: 0.5, EXPLORATION: 0.5}), widen10rand())),
    # the cold start that keeps its anomaly picks only while they hit (2026-12-03, fresh development seeds)
    "anomrand_w10": lambda: ({}, cold_start({COLD_START: 0.5, EXPLORATION: 0.5}, widen=10)),
    "shipped_w10": lambda: ({}, cold_start({COLD_START: 0.4, DIVERSITY: 0.3, EXPLORATION: 0.3}, widen=10)),
    "colddivexp_w10r": lambda: ({}, stack(cold_mix({COLD_START: 0.4, DIVERSITY: 0.3, EXPLORATION: 0.3}),
                                          widen10rand())),
    # the product's cadence (2026-12-03): a retrain every 50 labels (every50_before); at once after the first label
    # of a class beside another's too (every50); and a tenth of the labels, 10 to 50, apart (product); or 5 new
    # positives among 10 or more (product5, the product since); the benchmarks refit after every batch of 10
    "every50": lambda: ({}, product_cadence(lambda labels, new, positives: new >= 50, first_of_class=True)),
    "every50_before": lambda: ({}, product_cadence(lambda labels, new, positives: new >= 50, first_of_class=False)),
    "product": lambda: ({}, product_cadence(lambda labels, new, positives: new >= retrain_step(labels, 50),
                                            first_of_class=True)),
    "product5": lambda: ({}, product_cadence(functools.partial(retrain_due, every=50), first_of_class=True)),
    # a committee-disagreement arm (2026-12-03: caravan at 1,000 labels behind query by committee): its share of
    # each batch taken from the mix (committee_arm)
    "qbc2": lambda: ({}, committee_arm(0.2)),
    "qbc4": lambda: ({}, committee_arm(0.4)),
    "qbc7": lambda: ({}, committee_arm(0.7)),
    "qbc2late": lambda: ({}, committee_arm(0.2, after=500)),
    "qbc7late": lambda: ({}, committee_arm(0.7, after=500)),
    "qbc2front": lambda: ({}, committee_arm(0.2, frontier=20)),
    "qbc2weak3": lambda: ({}, committee_arm(0.2, weak_below=0.3)),
    # the committee in the mix (models.committee: while the model ranks weakly), half the frontier share
    "committee": lambda: ({"mix": {HIGH_RISK: 0.2, UNCERTAIN: 0.35, COMMITTEE: 0.35, EXPLORATION: 0.1}},
                          contextlib.nullcontext()),
    "qbc2weak5": lambda: ({}, committee_arm(0.2, weak_below=0.5)),
    "qbc7weak5": lambda: ({}, committee_arm(0.7, weak_below=0.5)),
}


def run(table, variant, X, y, budget, seed, fresh=False):
    """The rows of one run of ``variant`` (or "peer_NAME", a peer of bench/compare_peers.py, e.g.
    "peer_uncertainty"; "peer_NAME+VARIANT": that peer under VARIANT's patch of models/), kept."""
    folder = os.path.join(RUNS, table, f"early_{variant}")
    path = os.path.join(folder, f"seed{seed}.json")
    if not fresh and os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            kept = json.load(stream)
        if kept["rows"][-1]["labels"] >= budget:
            return kept["rows"]
    started = time.perf_counter()
    if variant.startswith("peer_"):  # peer_NAME, or peer_NAME+VARIANT: the peer under that variant's patch
        peer, _, under = variant[len("peer_"):].partition("+")
        with VARIANTS[under]()[1] if under else contextlib.nullcontext():
            rows, _, _ = compare_peers.run_peer(peer, X, y, budget, suite.BATCH, seed)
    else:
        settings, patch = VARIANTS[variant]()
        with patch:
            rows, _, _ = compare_peers.run_default(X, y, budget, suite.BATCH, seed, settings=settings)
    rows = [{key: row[key] for key in ("labels", "auprc", "positives_found")} for row in rows]
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump({"table": table, "variant": variant, "seed": seed, "rows": rows,
                   "seconds": round(time.perf_counter() - started, 1),
                   "date": datetime.datetime.now().isoformat(timespec="seconds")}, stream)
    return rows


def kept(table, method, seed):
    path = os.path.join(RUNS, table, method, f"seed{seed}.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)["rows"]


def at(rows, labels, key="auprc"):
    return next(row[key] for row in rows if row["labels"] == labels)


def seeds_of(text):
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(part) for part in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="caravan,wage_high", help="comma-separated tables of bench/real_tables.py")
    parser.add_argument("--seeds", default="10-19", help="FIRST-LAST or comma-separated seeds (development: 10-19, "
                                                         "20-89; never the report seeds 0-9 for choosing)")
    parser.add_argument("--budget", type=int, default=250, help="labels per run")
    parser.add_argument("--variants", default="new,old", help=f"comma-separated, of: {', '.join(VARIANTS)}; or "
                                                              "peer_NAME[+VARIANT] (a peer, under a variant's patch)")
    parser.add_argument("--points", default="50,100,150,250", help="label counts printed")
    parser.add_argument("--against", default="", help="comma-separated variants (or peer_NAME[+VARIANT]) each "
                                                       "variant is also paired against, e.g. new")
    parser.add_argument("--fresh", action="store_true", help="rerun runs that are kept")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    args = parser.parse_args()
    threadpool_limits(args.threads)
    warnings.filterwarnings("ignore")
    seeds = seeds_of(args.seeds)
    points = [point for point in map(int, args.points.split(",")) if point <= args.budget]
    for table in args.tables.split(","):
        X, y = real_tables.load(table)
        base = {seed: kept(table, "default", seed) for seed in seeds}
        peer = {seed: kept(table, "uncertainty", seed) for seed in seeds}
        for seed in seeds:  # seeds without kept suite runs: run the default and the peer here
            if base[seed] is None or base[seed][-1]["labels"] < args.budget:
                base[seed] = run(table, "new", X, y, args.budget, seed)
            if peer[seed] is None or peer[seed][-1]["labels"] < args.budget:
                peer[seed] = run(table, "peer_uncertainty", X, y, args.budget, seed)
        for variant in args.variants.split(","):
            started = time.perf_counter()
            rows = {seed: run(table, variant, X, y, args.budget, seed, args.fresh) for seed in seeds}
            parts = []
            for point in points:
                mine = [at(rows[seed], point) for seed in seeds]
                mean, error, _ = suite.paired(mine, [at(base[seed], point) for seed in seeds])
                text = f"@{point} {np.mean(mine):.3f} {mean:+.3f} ({error:.3f})"
                if all(peer[seed] is not None and peer[seed][-1]["labels"] >= point for seed in seeds):
                    vs, vs_error, _ = suite.paired(mine, [at(peer[seed], point) for seed in seeds])
                    text += f" unc {vs:+.3f} ({vs_error:.3f})"
                parts.append(text)
            found = np.mean([at(rows[seed], min(100, args.budget), "positives_found") for seed in seeds])
            found_base = np.mean([at(base[seed], min(100, args.budget), "positives_found") for seed in seeds])
            print(f"{table:<12} {variant:<12} " + " | ".join(parts)
                  + f" | found@100 {found:.1f} (default {found_base:.1f}) [{time.perf_counter() - started:.0f} s]",
                  flush=True)
            for other in filter(None, args.against.split(",")):
                theirs = {seed: run(table, other, X, y, args.budget, seed) for seed in seeds}
                differences = [suite.paired([at(rows[seed], point) for seed in seeds],
                                            [at(theirs[seed], point) for seed in seeds]) for point in points]
                print(f"{'':<12} {variant:<12} against {other}: " + "   ".join(
                    f"@{point} {mean:+.3f} ({error:.3f})" for point, (mean, error, _) in zip(points, differences)),
                    flush=True)


if __name__ == "__main__":
    main()
