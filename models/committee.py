"""Query by committee (Seung, Opper and Sompolinsky 1992; the KL form of McCallum and Nigam 1998, as
scikit-activeml's QueryByCommittee): the items on which logistic models fitted on different bootstrap draws of
the labels disagree most. Where the uncertain arm asks where the model's P(positive) is nearest a coin toss,
the committee asks where the labels leave the model undetermined: on a weak-signal table (Caravan) its picks
taught the model more (bench/results/committee_dev.txt). Binary, numpy in and out.
"""
import numpy as np

from models import names, weak

MEMBERS = 5  # the committee's size (scikit-activeml's bagging committee in bench/compare_peers.py has 5 too)
CLIP = 1e-6  # probabilities kept off 0 and 1 for the logarithms


def wanted(auprc):
    """Whether the committee picks for a model whose cross-validated AUPRC is ``auprc`` (None: not measured):
    below names.COMMITTEE_WEAK_BELOW, while the model ranks the labels weakly."""
    return auprc is None or auprc < names.COMMITTEE_WEAK_BELOW


def disagreement(features, labeled, y, members=MEMBERS, seed=0):
    """Each row of ``features`` (the pool as the models see it): the mean KL divergence of ``members`` logistic
    models (models.weak.LOGISTIC), each fitted on a bootstrap of the labels (pool indices ``labeled``, binary
    ``y``) drawn within each class, from their mean P(positive); float64, 0 where they all agree.

    Raises ValueError when ``y`` holds a single class."""
    labeled = np.asarray(labeled, dtype=np.int64)
    y = np.asarray(y, dtype=np.int8)
    by_class = [np.flatnonzero(y == value) for value in (0, 1)]
    if not all(len(part) for part in by_class):
        raise ValueError("a committee needs labels of both classes")
    rng = np.random.default_rng(seed)
    p = np.empty((members, len(features)), dtype=np.float64)
    for member in range(members):
        rows = np.concatenate([rng.choice(part, size=len(part), replace=True) for part in by_class])
        model = weak.fit(weak.LOGISTIC, features[labeled[rows]], y[rows], seed)
        p[member] = np.clip(weak.positive_probability(model.estimators[0], features), CLIP, 1 - CLIP)
    mean = p.mean(axis=0)
    return np.mean(p * np.log(p / mean) + (1 - p) * np.log((1 - p) / (1 - mean)), axis=0)
