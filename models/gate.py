"""The gate between a newly trained model and the one serving: numpy in and out, no store, no web.

Holdout: an item belongs to the holdout when a fixed hash of its id (models.pseudo.stable_order, Knuth's
multiplicative hash) falls in the lowest ``share`` of the hash range. Membership depends on the id alone, so it
never changes between retrains; the holdout grows only as analysts label items that belong to it.

Noise: a stratified, paired bootstrap of the difference AP(new) - AP(old) on the held-out labels. Positives and
negatives are resampled separately (every resample keeps both classes and the holdout's class balance) and both
models are scored on the same resample. The new model loses only when it is worse beyond noise: when the
``level`` quantile (default 95%) of the resampled differences is below zero, i.e. it is worse than the old one
in more than 95% of the resamples. A small holdout gives wide differences, so the gate then rarely blocks.
With fewer than MIN_POSITIVES held-out positives the models are not compared at all (the new one passes): a
resample can then only repeat the same few ranks, and the bootstrap understates how much AP would vary.

K classes (``compare_classes``): the measure is the macro average precision, the mean of one-vs-rest AP over
the classes with at least MIN_POSITIVES held-out labels (and not every held-out label); the bootstrap resamples
each class separately.
"""
from dataclasses import asdict, dataclass

import numpy as np

from models.pseudo import stable_order

HOLDOUT_SHARE = 0.2
ROUNDS = 1000
LEVEL = 0.95
MIN_POSITIVES = 5
CHUNK_CELLS = 2_000_000  # bootstrap resamples are scored in blocks of about this many (resample, label) cells


def holdout_mask(ids, share=HOLDOUT_SHARE):
    """True for the ``ids`` (integer item ids) in the fixed holdout: those whose stable hash falls in the lowest
    ``share`` of the hash range. Raises ValueError unless 0 < share < 1."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"holdout share must lie strictly between 0 and 1, got {share}")
    return stable_order(ids) < np.uint64(int(share * 2 ** 32))


def _average_precision_rows(y, scores):
    """Average precision of each row of ``scores`` (2-d) against the binary labels ``y`` (2-d, same shape), as
    scikit-learn computes it: tied scores form one threshold. Rows without a positive give NaN."""
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    t = np.take_along_axis(y, order, axis=1).astype(np.float64)
    n = s.shape[1]
    true_positives = np.cumsum(t, axis=1)
    precision = true_positives / np.arange(1, n + 1)
    group_end = np.empty(s.shape, dtype=bool)
    group_end[:, -1] = True
    group_end[:, :-1] = s[:, :-1] != s[:, 1:]
    # each position takes the precision at the last position of its group of tied scores
    end_index = np.where(group_end, np.arange(n), n)
    end_index = np.minimum.accumulate(end_index[:, ::-1], axis=1)[:, ::-1]
    at_end = np.take_along_axis(precision, end_index, axis=1)
    positives = true_positives[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, (t * at_end).sum(axis=1) / positives, np.nan)


def average_precision(y, scores):
    """Average precision of ``scores`` for the binary labels ``y``; NaN when ``y`` has no positive.

    Raises ValueError when the lengths differ or ``scores`` holds NaN.
    """
    y = np.asarray(y).astype(np.int8)
    scores = np.asarray(scores, dtype=np.float64)
    if y.shape != scores.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-d of one length, got {y.shape} and {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN")
    if len(y) == 0:
        return float("nan")
    return float(_average_precision_rows(y[None, :], scores[None, :])[0])


@dataclass
class GateResult:
    """The gate's verdict: ``passed``, both average precisions on the holdout, its size and positives, the
    ``level`` quantile of the bootstrapped difference (None when not compared) and ``reason`` in words."""

    passed: bool
    new_ap: float
    old_ap: float
    holdout: int
    positives: int
    bound: float
    reason: str

    def as_dict(self):
        return asdict(self)


def compare(y, new, old, rounds=ROUNDS, level=LEVEL, seed=0):
    """Gate the new model's scores ``new`` against the serving model's ``old`` on held-out binary labels ``y``.

    With fewer than MIN_POSITIVES positives or no negative held out the models are not compared and the new one
    passes. Returns a GateResult. Raises ValueError when the arrays differ in length or hold NaN.
    """
    y = np.asarray(y).astype(np.int8)
    new = np.asarray(new, dtype=np.float64)
    old = np.asarray(old, dtype=np.float64)
    if not (y.shape == new.shape == old.shape) or y.ndim != 1:
        raise ValueError(f"labels and both scores must be 1-d of one length, got {y.shape}, {new.shape}, "
                         f"{old.shape}")
    if np.isnan(new).any() or np.isnan(old).any():
        raise ValueError("scores hold NaN")
    positives = int(y.sum())
    if positives < MIN_POSITIVES or positives == len(y):
        why = (f"{positives} positive" if positives < MIN_POSITIVES else "no negative")
        return GateResult(True, None, None, len(y), positives, None,
                          f"not compared: {why} among {len(y)} held-out labels (the gate needs {MIN_POSITIVES} "
                          f"positives and a negative)")
    new_ap, old_ap = average_precision(y, new), average_precision(y, old)
    differences = _bootstrap_differences(y, new, old, rounds, seed)
    bound = float(np.quantile(differences, level))
    passed = bound >= 0.0
    figures = f"AP {new_ap:.2f} vs {old_ap:.2f} on {len(y)} held-out labels ({positives} positive)"
    if passed:
        reason = f"{figures}: not worse beyond noise"
    else:
        reason = (f"{figures}: worse beyond noise (in {level:.0%} of {rounds} bootstrap resamples the difference "
                  f"is below {bound:+.3f})")
    return GateResult(passed, new_ap, old_ap, len(y), positives, bound, reason)


def _bootstrap_differences(y, new, old, rounds, seed):
    """AP(new) - AP(old) on ``rounds`` stratified resamples of the holdout (both models on the same rows)."""
    rng = np.random.default_rng(seed)
    positive, negative = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n = len(y)
    labels = np.concatenate([np.ones(len(positive), np.int8), np.zeros(len(negative), np.int8)])
    block = max(1, CHUNK_CELLS // n)
    differences = []
    for start in range(0, rounds, block):
        size = min(block, rounds - start)
        rows = np.concatenate([rng.choice(positive, size=(size, len(positive))),
                               rng.choice(negative, size=(size, len(negative)))], axis=1)
        y_rows = np.broadcast_to(labels, rows.shape)
        differences.append(_average_precision_rows(y_rows, new[rows]) - _average_precision_rows(y_rows, old[rows]))
    return np.concatenate(differences)


def macro_average_precision(y, scores, classes):
    """Mean one-vs-rest average precision over ``classes`` of the (n, K) ``scores`` for class indices ``y``."""
    return float(np.mean([average_precision(y == k, scores[:, k]) for k in classes]))


def compare_classes(y, new, old, positives=(), rounds=ROUNDS, level=LEVEL, seed=0):
    """Gate K-class scores: the new model's (n, K) probabilities ``new`` against the serving model's ``old`` on
    held-out class indices ``y``, by macro average precision over the classes with MIN_POSITIVES held-out labels
    (``positives``, the positive classes' indices, only count the held-out positives for the record). With no
    such class the new model passes uncompared. Returns a GateResult. Raises ValueError when the shapes differ
    or a score is NaN."""
    y = np.asarray(y).astype(np.int64)
    new = np.asarray(new, dtype=np.float64)
    old = np.asarray(old, dtype=np.float64)
    if new.ndim != 2 or new.shape != old.shape or new.shape[0] != len(y) or y.ndim != 1:
        raise ValueError(f"labels must be 1-d and both scores (n, K) of their length, got {y.shape}, {new.shape}, "
                         f"{old.shape}")
    if np.isnan(new).any() or np.isnan(old).any():
        raise ValueError("scores hold NaN")
    counts = np.bincount(y, minlength=new.shape[1])
    classes = [k for k in range(new.shape[1]) if MIN_POSITIVES <= counts[k] < len(y)]
    held_positives = int(np.isin(y, list(positives)).sum())
    if not classes:
        return GateResult(True, None, None, len(y), held_positives, None,
                          f"not compared: no label has {MIN_POSITIVES} of the {len(y)} held-out labels")
    new_ap, old_ap = macro_average_precision(y, new, classes), macro_average_precision(y, old, classes)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y == k) for k in range(new.shape[1]) if counts[k]]
    rows = np.concatenate([rng.choice(member, size=(rounds, len(member))) for member in members], axis=1)
    y_rows = y[rows]
    differences = np.zeros(rounds)
    for k in classes:
        truth = (y_rows == k).astype(np.int8)
        differences += (_average_precision_rows(truth, new[rows, k]) - _average_precision_rows(truth, old[rows, k]))
    differences /= len(classes)
    bound = float(np.quantile(differences, level))
    passed = bound >= 0.0
    figures = (f"macro AP {new_ap:.2f} vs {old_ap:.2f} over {len(classes)} label(s) on {len(y)} held-out labels "
               f"({held_positives} positive)")
    reason = (f"{figures}: not worse beyond noise" if passed else
              f"{figures}: worse beyond noise (in {level:.0%} of {rounds} bootstrap resamples the difference is "
              f"below {bound:+.3f})")
    return GateResult(passed, new_ap, old_ap, len(y), held_positives, bound, reason)
