"""Weak models trained on the analysts' labels: the candidates model selection chooses from.

A dataset of two labels is binary (its positive label against the other) and its models give P(positive) as a
float64 vector: the fast path. A dataset of K > 2 labels (fraud types, digits) has multi-class models (multinomial
logistic, gradient boosting, their blend) fitted on class indices 0..K-1, which give an (n, K) array of
probabilities, a zero column for a class without training labels. Probabilities are calibrated after fitting
by a Platt sigmoid fitted on out-of-fold predictions (see models.selection), one-vs-rest per class and then
renormalized for K classes; a binary sigmoid keeps the ranking unchanged.
"""
import numpy as np
from scipy.special import expit, softmax
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

LOGISTIC = "logistic"
BOOSTED = "boosted"
BLEND = "blend"  # the mean of the logistic and boosted probabilities
KINDS = (LOGISTIC, BOOSTED, BLEND)  # the candidates of model selection
# binary: the blend fitted, its logistic part alone served (models.prequential chooses it over the blend)
LOGISTIC_PART = "logistic part"
BLEND_PARTS = (LOGISTIC, BOOSTED)
MIN_BOOSTED_PER_CLASS = 10  # boosting joins the logistic model (the blend) once each class has this many
# binary: C = LOGISTIC_C_TOTAL / (number of features), the same prior variance of the linear score on every table
# (0.01 on Caravan's 85 features, the penalty every table had before; with it the loop on ISLP's Default, 3
# features, gained +0.024 / +0.019 / +0.010 AUPRC at 100 / 250 / 500 labels, development seeds 10-29:
# bench/results/suite_model_choice_dev.txt)
LOGISTIC_C_TOTAL = 0.85
# K classes (multinomial): each class has a tenth of the labels or fewer, and C=0.01 underfit the digits (test
# accuracy 0.64-0.78 at 100 random labels against 0.81-0.90 at C=0.1; development seeds 10-12)
LOGISTIC_C_CLASSES = 0.1


def logistic_c(n_features, n_classes=2):
    """The logistic model's inverse L2 penalty for rows of ``n_features`` standardized features."""
    return LOGISTIC_C_TOTAL / max(int(n_features), 1) if n_classes == 2 else LOGISTIC_C_CLASSES


def _make(kind, seed, categorical=(), n_classes=2, n_features=1):
    """An unfitted classifier of ``kind`` (logistic or boosted) for rows of ``n_features`` features; the boosted
    one treats the one-hot blocks ``categorical`` ((start, stop) column ranges) as native categorical features.
    Raises ValueError for another kind."""
    if kind == LOGISTIC:
        C = logistic_c(n_features, n_classes)
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    if kind == BOOSTED:
        boosted = HistGradientBoostingClassifier(
            # few shallow trees: rescoring 284,807 rows stays well under a second
            early_stopping=False, max_iter=40, learning_rate=0.2, max_depth=4, max_leaf_nodes=None,
            min_samples_leaf=20, l2_regularization=1.0, random_state=seed,
        )
        return NativeCategories(boosted, categorical) if categorical else boosted
    raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")


class NativeCategories:
    """Gradient boosting that splits each categorical column on sets of its categories (scikit-learn's native
    categorical support) rather than on one 0/1 column at a time: the rows' one-hot blocks (``blocks``,
    (start, stop) column ranges, one column per category and the last for any other value) are given to
    ``boosted`` as one integer code each. A category without training rows goes, at scoring time, where the
    model sends missing values."""

    def __init__(self, boosted, blocks):
        self.boosted = boosted
        self.blocks = [tuple(block) for block in blocks]

    def codes(self, X):
        """``X`` with each one-hot block replaced by one column of category codes (after the other columns)."""
        in_block = np.zeros(X.shape[1], dtype=bool)
        for start, stop in self.blocks:
            in_block[start:stop] = True
        codes = [np.argmax(X[:, start:stop], axis=1) for start, stop in self.blocks]
        return np.column_stack([X[:, ~in_block], *codes]).astype(np.float32)

    def fit(self, X, y):
        n_plain = X.shape[1] - sum(stop - start for start, stop in self.blocks)
        self.boosted.set_params(categorical_features=list(range(n_plain, n_plain + len(self.blocks))))
        self.boosted.fit(self.codes(X), y)
        return self

    def predict_proba(self, X):
        return self.boosted.predict_proba(self.codes(X))

    @property
    def classes_(self):
        return self.boosted.classes_


def candidate_kinds(y, n_classes=2):
    """The model kinds to cross-validate for the labels ``y``. Binary: the logistic model, then the blend of
    logistic and boosted once both classes are frequent (cross-validated average precision on a few hundred
    labels is too noisy to pick a winner by; the average lowers the variance instead). K classes: the logistic
    model, and once two classes have MIN_BOOSTED_PER_CLASS labels each, the blend beside it (cross-validation
    chooses: boosting on pixels needs many more labels than on transaction features)."""
    y = np.asarray(y)
    if n_classes == 2:
        per_class = min(int((y == 1).sum()), int((y == 0).sum()))
        return [BLEND] if per_class >= MIN_BOOSTED_PER_CLASS else [LOGISTIC]
    counts = np.sort(np.bincount(y.astype(np.int64), minlength=n_classes))
    return [LOGISTIC, BLEND] if counts[-2] >= MIN_BOOSTED_PER_CLASS else [LOGISTIC]


class WeakModel:
    """A fitted binary model: ``predict(X)`` gives calibrated P(positive) for each row.

    ``estimators`` holds one fitted scikit-learn classifier, or the parts of a blend (their mean is the model; of
    kind LOGISTIC_PART, the first part alone, served uncalibrated: its ``calibration`` is the blend's, for
    ``other``).
    """

    n_classes = 2

    def __init__(self, kind, estimators, calibration=(1.0, 0.0)):
        self.kind = kind
        self.estimators = estimators
        self.calibration = calibration

    def raw(self, X):
        """Uncalibrated P(positive) of each row of ``X``."""
        X = np.asarray(X, dtype=np.float32)
        if self.kind == LOGISTIC_PART:
            return positive_probability(self.estimators[0], X)
        return np.mean([positive_probability(estimator, X) for estimator in self.estimators], axis=0,
                       dtype=np.float64)

    def predict(self, X):
        """P(positive) of each row of ``X`` as the model serves it: calibrated, except a LOGISTIC_PART model's."""
        if self.kind == LOGISTIC_PART:
            return self.raw(X)
        return platt(self.raw(X), *self.calibration)

    def other(self):
        """The other model of the pair models.prequential compares, as it would serve: the logistic part of a
        blend, the whole (calibrated) blend of a LOGISTIC_PART model. Raises ValueError for another kind."""
        if self.kind not in (BLEND, LOGISTIC_PART):
            raise ValueError(f"a model of kind {self.kind!r} has no counterpart")
        return WeakModel(LOGISTIC_PART if self.kind == BLEND else BLEND, self.estimators, self.calibration)

    def counterpart(self, X):
        """P(positive) of each row of ``X`` under ``other()``. Raises ValueError for another kind."""
        return self.other().predict(X)


class MultiClassModel(WeakModel):
    """A fitted model of ``n_classes`` labels: ``predict(X)`` gives calibrated class probabilities, (n, K) rows
    summing to 1; ``calibration`` is a list of K (slope, intercept) Platt pairs, one-vs-rest."""

    def __init__(self, kind, estimators, n_classes, calibration=None):
        super().__init__(kind, estimators, calibration or [(1.0, 0.0)] * n_classes)
        self.n_classes = n_classes

    def raw(self, X):
        """Uncalibrated (n, K) class probabilities of the rows of ``X``."""
        X = np.asarray(X, dtype=np.float32)
        return np.mean([class_probabilities(estimator, X, self.n_classes) for estimator in self.estimators],
                       axis=0, dtype=np.float64)

    def predict(self, X):
        """Calibrated (n, K) class probabilities of the rows of ``X``."""
        return calibrate_classes(self.raw(X), self.calibration)


def class_probabilities(estimator, X, n_classes):
    """(n, K) probabilities of a fitted classifier made by ``_make`` over class indices 0..K-1; a class the
    estimator never saw in training gets 0. The logistic pipeline runs as one affine map and a softmax."""
    classes = np.asarray(estimator.classes_, dtype=np.int64)
    if isinstance(estimator, Pipeline) and len(classes) > 2:
        scaler, logistic = estimator[0], estimator[-1]
        weights = logistic.coef_ / scaler.scale_
        bias = logistic.intercept_ - weights @ scaler.mean_
        known = softmax(X @ weights.T.astype(np.float32) + bias.astype(np.float32), axis=1).astype(np.float64)
    elif len(classes) == 2:
        p = positive_probability(estimator, X)
        known = np.column_stack([1.0 - p, p])
    else:
        known = estimator.predict_proba(X).astype(np.float64)
    probabilities = np.zeros((len(X), n_classes))
    probabilities[:, classes] = known
    return probabilities


def calibrate_classes(raw, calibration):
    """(n, K) probabilities ``raw`` through one Platt sigmoid per class (``calibration``: K (slope, intercept)
    pairs), renormalized to sum to 1; a class whose raw probability is 0 (no training labels) stays 0."""
    raw = np.asarray(raw, dtype=np.float64)
    calibrated = np.column_stack([platt(raw[:, k], *pair) for k, pair in enumerate(calibration)])
    calibrated[raw <= 0.0] = 0.0
    total = calibrated.sum(axis=1, keepdims=True)
    return np.divide(calibrated, total, out=np.full_like(calibrated, 1.0 / raw.shape[1]), where=total > 0)


def fit_platt_classes(raw, y, n_classes):
    """K one-vs-rest Platt pairs mapping out-of-fold (n, K) probabilities ``raw`` to the class indices ``y``."""
    y = np.asarray(y)
    return [fit_platt(raw[:, k], (y == k).astype(np.int8)) for k in range(n_classes)]


def positive_probability(estimator, X):
    """P(positive) of each row of ``X`` (float32) from a fitted classifier made by ``_make``.

    The logistic pipeline is evaluated as one affine map with the scaler folded into the weights: the same
    probabilities as its ``predict_proba`` (to float32 rounding), without its copies and checks (on 227,845
    rows 1.3 ms instead of 14 ms)."""
    if isinstance(estimator, Pipeline):
        scaler, logistic = estimator[0], estimator[-1]
        weights = logistic.coef_[0] / scaler.scale_
        bias = logistic.intercept_[0] - weights @ scaler.mean_
        return expit(X @ weights.astype(np.float32) + np.float32(bias)).astype(np.float64)
    return estimator.predict_proba(X)[:, 1]


def fit(kind, X, y, seed=0, categorical=(), n_classes=2):
    """Fit a model of ``kind`` on ``X`` (float32) and the labels ``y`` (binary, or class indices 0..K-1 for
    ``n_classes`` K > 2); returns a WeakModel or a MultiClassModel (not yet calibrated). ``categorical``: the
    one-hot blocks of ``X`` ((start, stop) column ranges), native categories for boosting.

    Raises ValueError for an unknown kind or when ``y`` holds a single class.
    """
    y = np.asarray(y, dtype=np.int8 if n_classes == 2 else np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError("two classes need at least one label each to fit a model")
    X = np.asarray(X, dtype=np.float32)
    parts = BLEND_PARTS if kind in (BLEND, LOGISTIC_PART) else (kind,)
    estimators = [_make(part, seed, categorical, n_classes, X.shape[1]).fit(X, y) for part in parts]
    return WeakModel(kind, estimators) if n_classes == 2 else MultiClassModel(kind, estimators, n_classes)


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(p) - np.log1p(-p)


def platt(p, slope, intercept):
    """sigmoid(slope * logit(p) + intercept)."""
    return expit(slope * logit(p) + intercept)


def fit_platt(p, y):
    """(slope, intercept) of a Platt sigmoid mapping raw probabilities ``p`` to the binary outcomes ``y``;
    the identity when ``y`` holds one class."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    model = LogisticRegression(C=1e4, max_iter=1000).fit(logit(p).reshape(-1, 1), y)
    slope = float(model.coef_[0, 0])
    if slope <= 0:  # a sigmoid that reverses the ranking means the held-out scores carry no signal
        return 1.0, 0.0
    return slope, float(model.intercept_[0])
