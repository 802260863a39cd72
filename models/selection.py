"""Model selection: candidates compared by repeated stratified cross-validated average precision on the
human labels; the best is refitted on everything and calibrated on its out-of-fold predictions.

Pseudo-labels, when given, join every training fold but never a held-out fold: they are never evaluated on.
Human labels are repeated ``human_weight`` times beside them, so true labels are sampled more often.
"""
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.model_selection import RepeatedStratifiedKFold

from models import weak

DEFAULT_FOLDS = 5
DEFAULT_REPEATS = 2


@dataclass
class Selected:
    """The serving model, its kind and the metrics of every candidate ({kind: {"auprc": ..., ...}})."""

    model: weak.WeakModel
    kind: str
    metrics: dict = field(default_factory=dict)

    @property
    def auprc(self):
        return self.metrics.get(self.kind, {}).get("auprc")


def _training_set(X, y, train, pseudo, human_weight):
    """Rows ``train`` of the human labels, each repeated ``human_weight`` times (rounded, at least once), plus
    the pseudo-labels once. Repeating rather than weighting keeps gradient boosting's binning fast."""
    if pseudo is None or len(pseudo[1]) == 0:
        return X[train], y[train]
    X_pseudo, y_pseudo = pseudo
    rows = np.repeat(train, max(1, int(round(human_weight))))
    return np.concatenate([X[rows], X_pseudo]), np.concatenate([y[rows], y_pseudo])


def _fold_predictions(kind, X, y, pseudo, human_weight, folds, repeats, seed):
    """[(held-out raw probabilities, held-out labels)] of model ``kind`` for each fold of the repeated split."""
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    predictions = []
    for split, (train, held) in enumerate(splitter.split(X, y)):
        X_fit, y_fit = _training_set(X, y, train, pseudo, human_weight)
        predictions.append((weak.fit(kind, X_fit, y_fit, seed=seed + split).raw(X[held]), y[held]))
    return predictions


def _summary(predictions, folds, repeats):
    """(metrics, pooled held-out probabilities, pooled labels) of per-fold predictions."""
    scores = [average_precision_score(truth, p) for p, truth in predictions]
    metrics = {"auprc": float(np.mean(scores)), "auprc_std": float(np.std(scores)), "folds": folds,
               "repeats": repeats}
    return metrics, np.concatenate([p for p, _ in predictions]), np.concatenate([t for _, t in predictions])


def _fold_count(y, folds):
    return min(folds, int(min((y == 1).sum(), (y == 0).sum())))


def cross_validate(kind, X, y, pseudo=None, human_weight=1.0, folds=DEFAULT_FOLDS, repeats=DEFAULT_REPEATS,
                   seed=0):
    """Out-of-fold check of model ``kind`` on the human labels ``X``, ``y``.

    Returns (metrics, out-of-fold raw probabilities, their labels): metrics holds "auprc" (mean average
    precision over held-out folds, None when a class has fewer than 2 labels), "auprc_std", "folds", "repeats".
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int8)
    folds = _fold_count(y, folds)
    if folds < 2:
        return {"auprc": None, "auprc_std": None, "folds": 0, "repeats": 0}, np.zeros(0), np.zeros(0)
    return _summary(_fold_predictions(kind, X, y, pseudo, human_weight, folds, repeats, seed), folds, repeats)


def select(X, y, pseudo=None, human_weight=1.0, kinds=None, folds=DEFAULT_FOLDS, repeats=DEFAULT_REPEATS, seed=0):
    """Compare ``kinds`` (default: weak.candidate_kinds(y)) by cross-validated average precision, refit the
    best on all human labels plus ``pseudo`` ((X, y) or None) and calibrate it; returns a Selected.

    A blend is scored from its parts' held-out predictions on the same folds (no extra fits). Ties, and a
    comparison impossible for lack of labels, go to the first kind. Raises ValueError when ``y`` holds a single
    class.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int8)
    if len(np.unique(y)) < 2:
        raise ValueError("both classes need at least one label to fit a model")
    kinds = kinds or weak.candidate_kinds(y)
    folds = _fold_count(y, folds)
    metrics, held = {}, {}
    if folds >= 2:
        per_fold = {}
        for kind in kinds:
            if kind == weak.BLEND:
                parts = [per_fold.get(part) or _fold_predictions(part, X, y, pseudo, human_weight, folds, repeats,
                                                                 seed) for part in weak.BLEND_PARTS]
                per_fold[kind] = [(np.mean([p for p, _ in fold], axis=0), fold[0][1]) for fold in zip(*parts)]
            else:
                per_fold[kind] = _fold_predictions(kind, X, y, pseudo, human_weight, folds, repeats, seed)
            metrics[kind], *held[kind] = _summary(per_fold[kind], folds, repeats)
        best = max(kinds, key=lambda kind: metrics[kind]["auprc"])
    else:
        metrics = {kind: {"auprc": None, "auprc_std": None, "folds": 0, "repeats": 0} for kind in kinds}
        best = kinds[0]
    model = fit_final(best, X, y, pseudo, human_weight, seed)
    if best in held:
        model.calibration = weak.fit_platt(*held[best])
    return Selected(model=model, kind=best, metrics=metrics)


def fit_final(kind, X, y, pseudo=None, human_weight=1.0, seed=0):
    """Model ``kind`` fitted on all human labels plus ``pseudo``; returns a WeakModel."""
    X_fit, y_fit = _training_set(np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int8),
                                 np.arange(len(y)), pseudo, human_weight)
    return weak.fit(kind, X_fit, y_fit, seed=seed)
