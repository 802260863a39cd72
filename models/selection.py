"""Model selection: candidates compared by repeated stratified cross-validated average precision on the
human labels (for K > 2 classes its macro average: the mean over classes of one-vs-rest average precision, over
the classes each held-out fold holds); the best is refitted on everything and calibrated on its out-of-fold
predictions.

Pseudo-labels, when given, join every training fold but never a held-out fold: they are never evaluated on.
Human labels are repeated ``human_weight`` times beside them, so true labels are sampled more often.

Generative candidates (models.generative_candidates: latent features, VAE balancing, the SGAN) compete by the
same measure when a GenerativeCandidates object is given; those that train a Keras model in each fold are
cross-validated on the first repeat of the same folds only (their mean average precision is over fewer folds).
"""
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.model_selection import RepeatedStratifiedKFold

from models import generative_candidates, weak

DEFAULT_FOLDS = 5
DEFAULT_REPEATS = 2


@dataclass
class Selected:
    """The serving model (a weak.WeakModel, or a generative candidate's model: ``predict(X)`` gives calibrated
    P(positive) from the same features, numpy in and out, picklable), its kind and the metrics of every
    candidate ({kind: {"auprc": ..., ...}}). ``queue_from_other``: the queue and the pseudo-labels follow
    ``model.other()`` (a blend's logistic part serves, the blend picks: models.prequential)."""

    model: weak.WeakModel
    kind: str
    metrics: dict = field(default_factory=dict)
    queue_from_other: bool = False

    def queue_model(self):
        """The model whose scores pick the queue and the pseudo-labels."""
        return self.model.other() if self.queue_from_other else self.model

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


def _repeats_of(kind, repeats):
    """The repeats ``kind`` is cross-validated on: one for a candidate that trains a Keras model per fold."""
    return 1 if generative_candidates.keras_per_fold(kind) else repeats


def _fit(kind, X, y, train, pseudo, human_weight, seed, generative, key, categorical=(), n_classes=2):
    """Model ``kind`` fitted on the human labels ``train`` (indices into ``X``/``y``) plus ``pseudo``;
    ``categorical`` names the one-hot blocks of ``X`` (weak.fit)."""
    X_fit, y_fit = _training_set(X, y, train, pseudo, human_weight)
    if not generative_candidates.is_generative(kind):
        return weak.fit(kind, X_fit, y_fit, seed=seed, categorical=categorical, n_classes=n_classes)
    if generative is None:
        raise ValueError(f"model kind {kind!r} needs the generative candidates of the pool")
    repeats = 1 if pseudo is None or len(pseudo[1]) == 0 else max(1, int(round(human_weight)))
    return generative.fit(kind, X[train], y[train], X_fit, y_fit, repeats, seed, key)


def _splits(X, y, folds, repeats, seed, n_classes):
    """The repeated stratified split; with K classes, classes of a single label train in every fold and are
    never held out (stratification needs two)."""
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    if n_classes == 2:
        return list(splitter.split(X, y))
    counts = np.bincount(y, minlength=n_classes)
    split_rows = np.flatnonzero(counts[y] >= 2)
    always = np.flatnonzero(counts[y] < 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class with fewer labels than folds: held out less often
        return [(np.sort(np.concatenate([split_rows[train], always])), split_rows[held])
                for train, held in splitter.split(split_rows, y[split_rows])]


def _fold_predictions(kind, X, y, pseudo, human_weight, folds, repeats, seed, generative=None, categorical=(),
                      n_classes=2):
    """[(held-out raw probabilities, held-out labels)] of model ``kind`` for each fold of the repeated split
    (the first repeat only for a candidate that trains a Keras model per fold)."""
    predictions = []
    for split, (train, held) in enumerate(_splits(X, y, folds, _repeats_of(kind, repeats), seed, n_classes)):
        try:
            p_held = _fit(kind, X, y, train, pseudo, human_weight, seed + split, generative, ("fold", split),
                          categorical, n_classes).raw(X[held])
        except generative_candidates.CandidateFailed:
            # no usable model ranks nothing: the fold's AP is its positive rate
            p_held = np.full(len(held), 0.5) if n_classes == 2 else np.full((len(held), n_classes), 1 / n_classes)
        predictions.append((p_held, y[held]))
    return predictions


def macro_average_precision(y, probabilities):
    """Mean one-vs-rest average precision of (n, K) ``probabilities`` for the class indices ``y``, over the
    classes that ``y`` holds; NaN when it holds fewer than two."""
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    return float(np.mean([average_precision_score(y == k, probabilities[:, k]) for k in present]))


def _summary(predictions, folds, repeats, n_classes=2):
    """(metrics, pooled held-out probabilities, pooled labels) of per-fold predictions."""
    if n_classes == 2:
        scores = [average_precision_score(truth, p) for p, truth in predictions]
    else:
        scores = [macro_average_precision(truth, p) for p, truth in predictions]
        scores = [score for score in scores if score == score] or [float("nan")]
    metrics = {"auprc": float(np.mean(scores)), "auprc_std": float(np.std(scores)), "folds": folds,
               "repeats": repeats}
    if n_classes > 2:
        metrics["measure"] = "macro average precision"
    return metrics, np.concatenate([p for p, _ in predictions]), np.concatenate([t for _, t in predictions])


def _fold_count(y, folds, n_classes=2):
    """How many folds the labels ``y`` allow: binary, as many as the rarer class has labels; K classes, as many
    as the largest class has, provided two classes have two labels each (else none)."""
    if n_classes == 2:
        return min(folds, int(min((y == 1).sum(), (y == 0).sum())))
    counts = np.sort(np.bincount(y, minlength=n_classes))
    return min(folds, int(counts[-1])) if counts[-2] >= 2 else 0


def cross_validate(kind, X, y, pseudo=None, human_weight=1.0, folds=DEFAULT_FOLDS, repeats=DEFAULT_REPEATS,
                   seed=0, generative=None, categorical=(), n_classes=2):
    """Out-of-fold check of model ``kind`` on the human labels ``X``, ``y`` (a generative kind needs the pool's
    ``generative`` candidates).

    Returns (metrics, out-of-fold raw probabilities, their labels): metrics holds "auprc" (mean average
    precision over held-out folds, None when a class has fewer than 2 labels), "auprc_std", "folds", "repeats".
    """
    X = np.asarray(X, dtype=np.float32)
    y = _labels(y, n_classes)
    folds = _fold_count(y, folds, n_classes)
    if folds < 2:
        return {"auprc": None, "auprc_std": None, "folds": 0, "repeats": 0}, np.zeros(0), np.zeros(0)
    return _summary(_fold_predictions(kind, X, y, pseudo, human_weight, folds, repeats, seed, generative,
                                      categorical, n_classes), folds,
                    _repeats_of(kind, repeats), n_classes)


def _labels(y, n_classes):
    """``y`` as binary int8 labels, or as int64 class indices for K > 2 classes."""
    return np.asarray(y, dtype=np.int8 if n_classes == 2 else np.int64)


def select(X, y, pseudo=None, human_weight=1.0, kinds=None, folds=DEFAULT_FOLDS, repeats=DEFAULT_REPEATS, seed=0,
           generative=None, categorical=(), n_classes=2):
    """Compare ``kinds`` (default: weak.candidate_kinds(y), plus ``generative.kinds(y)`` when a
    GenerativeCandidates object is given) by cross-validated average precision, refit the best on all human
    labels plus ``pseudo`` ((X, y) or None) and calibrate it; returns a Selected. ``categorical``: the one-hot
    blocks of ``X`` ((start, stop) column ranges), native categories for the boosted model. ``n_classes`` > 2:
    ``y`` holds class indices, the measure is the macro average precision and calibration is per class.

    A blend is scored from its parts' held-out predictions on the same folds (no extra fits). Ties, and a
    comparison impossible for lack of labels, go to the first kind. A generative candidate's metrics also name
    the device that trained its Keras model; one whose final fit fails (generative_candidates.CandidateFailed)
    is marked "failed" and the next best serves. Raises ValueError when ``y`` holds a single class, and
    CandidateFailed when every candidate failed.
    """
    X = np.asarray(X, dtype=np.float32)
    y = _labels(y, n_classes)
    if len(np.unique(y)) < 2:
        raise ValueError("two classes need at least one label each to fit a model")
    kinds = kinds or weak.candidate_kinds(y, n_classes) + (generative.kinds(y) if generative is not None else [])
    if generative is not None:
        generative.start_selection()
    folds = _fold_count(y, folds, n_classes)
    metrics, held = {}, {}
    if folds >= 2:
        per_fold = {}
        for kind in kinds:
            parts = generative_candidates.blend_parts(kind)
            if parts:
                predictions = [per_fold.get(part) or _fold_predictions(part, X, y, pseudo, human_weight, folds,
                                                                       repeats, seed, generative, categorical,
                                                                       n_classes)
                               for part in parts]
                per_fold[kind] = [(np.mean([p for p, _ in fold], axis=0), fold[0][1]) for fold in zip(*predictions)]
            else:
                per_fold[kind] = _fold_predictions(kind, X, y, pseudo, human_weight, folds, repeats, seed,
                                                   generative, categorical, n_classes)
            metrics[kind], *held[kind] = _summary(per_fold[kind], folds, _repeats_of(kind, repeats), n_classes)
        # stable: ties (and a measure no fold could take) keep the order of kinds
        ranked = sorted(kinds, key=lambda kind: -np.nan_to_num(metrics[kind]["auprc"], nan=-1.0))
    else:
        metrics = {kind: {"auprc": None, "auprc_std": None, "folds": 0, "repeats": 0} for kind in kinds}
        ranked = list(kinds)
    for position, best in enumerate(ranked):
        try:
            model = fit_final(best, X, y, pseudo, human_weight, seed, generative, categorical, n_classes)
            break
        except generative_candidates.CandidateFailed as error:
            metrics[best]["failed"] = str(error)
            if position == len(ranked) - 1:
                raise
    if best in held:
        model.calibration = (weak.fit_platt(*held[best]) if n_classes == 2
                             else weak.fit_platt_classes(*held[best], n_classes))
    if generative is not None:
        for kind in kinds:
            device = generative.device_of(kind)
            if device is not None:
                metrics[kind]["device"] = device
    return Selected(model=model, kind=best, metrics=metrics)


def fit_final(kind, X, y, pseudo=None, human_weight=1.0, seed=0, generative=None, categorical=(), n_classes=2):
    """Model ``kind`` fitted on all human labels plus ``pseudo``; returns a WeakModel, or a generative
    candidate's model (which needs ``generative``, else ValueError). Raises generative_candidates.CandidateFailed
    when a generative kind produced no usable model."""
    X = np.asarray(X, dtype=np.float32)
    y = _labels(y, n_classes)
    return _fit(kind, X, y, np.arange(len(y)), pseudo, human_weight, seed, generative, "final", categorical,
                n_classes)
