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

Interval: the new model's own measure on the holdout comes with a percentile interval of the same stratified
bootstrap (``ap_interval``, ``macro_ap_interval``; default 95%): the range its AP would plausibly take on another
holdout of the same size and balance. Only with MIN_POSITIVES held-out positives, like the comparison.
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
    ``level`` quantile of the bootstrapped difference (None when not compared), ``reason`` in words and the new
    model's [low, high] bootstrap interval of its measure (None when not measured)."""

    passed: bool
    new_ap: float
    old_ap: float
    holdout: int
    positives: int
    bound: float
    reason: str
    interval: list = None

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
    new_aps, old_aps = _bootstrap_aps(y, (new, old), rounds, seed)
    bound = float(np.quantile(new_aps - old_aps, level))
    passed = bound >= 0.0
    figures = f"AP {new_ap:.2f} vs {old_ap:.2f} on {len(y)} held-out labels ({positives} positive)"
    if passed:
        reason = f"{figures}: not worse beyond noise"
    else:
        reason = (f"{figures}: worse beyond noise (in {level:.0%} of {rounds} bootstrap resamples the difference "
                  f"is below {bound:+.3f})")
    return GateResult(passed, new_ap, old_ap, len(y), positives, bound, reason, _percentiles(new_aps, level))


def ap_interval(y, scores, rounds=ROUNDS, level=LEVEL, seed=0):
    """[low, high]: the ``level`` (default 95%) percentile interval of the average precision of ``scores`` on
    the held-out binary labels ``y`` over ``rounds`` stratified bootstrap resamples (seeded), or None with fewer
    than MIN_POSITIVES positives or no negative. Raises ValueError when the lengths differ, ``scores`` holds NaN
    or ``level`` is not strictly between 0 and 1."""
    y = np.asarray(y).astype(np.int8)
    scores = np.asarray(scores, dtype=np.float64)
    if y.shape != scores.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-d of one length, got {y.shape} and {scores.shape}")
    _check_interval_input(scores, level)
    positives = int(y.sum())
    if positives < MIN_POSITIVES or positives == len(y):
        return None
    return _percentiles(_bootstrap_aps(y, (scores,), rounds, seed)[0], level)


def macro_ap_interval(y, scores, rounds=ROUNDS, level=LEVEL, seed=0):
    """[low, high]: the ``level`` (default 95%) percentile interval of the macro average precision of the (n, K)
    ``scores`` on held-out class indices ``y``, over the classes ``compare_classes`` measures, from ``rounds``
    bootstrap resamples stratified by class (seeded); None when no class has MIN_POSITIVES held-out labels.
    Raises ValueError when the shapes differ, a score is NaN or ``level`` is not strictly between 0 and 1."""
    y = np.asarray(y).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(y) or y.ndim != 1:
        raise ValueError(f"labels must be 1-d and scores (n, K) of their length, got {y.shape} and {scores.shape}")
    _check_interval_input(scores, level)
    classes = _measured_classes(y, scores.shape[1])
    if not classes:
        return None
    return _percentiles(_bootstrap_macro_aps(y, (scores,), classes, rounds, seed)[0], level)


def alone(y, new, reason, positives=(1,), rounds=ROUNDS, level=LEVEL, seed=0):
    """The verdict when the new model's scores ``new`` on held-out labels ``y`` have nothing to be compared
    with: it passes with ``reason``, measured alone (AP, or for (n, K) ``new`` macro AP with ``positives`` the
    positive classes counted for the record) with its interval; both None when the holdout is too small. Raises
    ValueError as ap_interval and macro_ap_interval do."""
    new = np.asarray(new, dtype=np.float64)
    if new.ndim == 2:
        y = np.asarray(y).astype(np.int64)
        interval = macro_ap_interval(y, new, rounds, level, seed)
        measure = None if interval is None else macro_average_precision(y, new, _measured_classes(y, new.shape[1]))
        held_positives = int(np.isin(y, list(positives)).sum())
    else:
        y = np.asarray(y).astype(np.int8)
        interval = ap_interval(y, new, rounds, level, seed)
        measure = None if interval is None else average_precision(y, new)
        held_positives = int(y.sum())
    return GateResult(True, measure, None, len(y), held_positives, None, reason, interval)


def _check_interval_input(scores, level):
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN")
    if not 0.0 < level < 1.0:
        raise ValueError(f"the interval's level must lie strictly between 0 and 1, got {level}")


def _percentiles(values, level):
    """[low, high]: the central ``level`` share of ``values``."""
    tail = (1.0 - level) / 2
    low, high = np.quantile(values, (tail, 1.0 - tail))
    return [float(low), float(high)]


def _resamples(y, rounds, seed):
    """Blocks of stratified bootstrap resamples of the labels ``y``: each block is (resamples, len(y)) row
    indices, every class drawn with replacement to its own count."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y == value) for value in np.unique(y)[::-1]]
    block = max(1, CHUNK_CELLS // len(y))
    for start in range(0, rounds, block):
        size = min(block, rounds - start)
        yield np.concatenate([rng.choice(member, size=(size, len(member))) for member in members], axis=1)


def _bootstrap_aps(y, score_sets, rounds, seed):
    """(len(score_sets), rounds): the AP of each of ``score_sets`` on ``rounds`` stratified resamples of the
    binary labels ``y``, every set scored on the same rows."""
    blocks = []
    for rows in _resamples(y, rounds, seed):
        y_rows = y[rows]
        blocks.append(np.stack([_average_precision_rows(y_rows, scores[rows]) for scores in score_sets]))
    return np.concatenate(blocks, axis=1)


def _bootstrap_macro_aps(y, score_sets, classes, rounds, seed):
    """(len(score_sets), rounds): the macro AP over ``classes`` of each of the (n, K) ``score_sets`` on
    ``rounds`` resamples of the class indices ``y`` stratified by class, every set scored on the same rows."""
    blocks = []
    for rows in _resamples(y, rounds, seed):
        y_rows = y[rows]
        truths = [(y_rows == k).astype(np.int8) for k in classes]
        blocks.append(np.stack([np.mean([_average_precision_rows(truth, scores[rows, k])
                                         for truth, k in zip(truths, classes)], axis=0)
                                for scores in score_sets]))
    return np.concatenate(blocks, axis=1)


def _measured_classes(y, k):
    """The classes among ``k`` with at least MIN_POSITIVES of the held-out class indices ``y``, but not all."""
    counts = np.bincount(y, minlength=k)
    return [c for c in range(k) if MIN_POSITIVES <= counts[c] < len(y)]


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
    classes = _measured_classes(y, new.shape[1])
    held_positives = int(np.isin(y, list(positives)).sum())
    if not classes:
        return GateResult(True, None, None, len(y), held_positives, None,
                          f"not compared: no label has {MIN_POSITIVES} of the {len(y)} held-out labels")
    new_ap, old_ap = macro_average_precision(y, new, classes), macro_average_precision(y, old, classes)
    new_aps, old_aps = _bootstrap_macro_aps(y, (new, old), classes, rounds, seed)
    bound = float(np.quantile(new_aps - old_aps, level))
    passed = bound >= 0.0
    figures = (f"macro AP {new_ap:.2f} vs {old_ap:.2f} over {len(classes)} label(s) on {len(y)} held-out labels "
               f"({held_positives} positive)")
    reason = (f"{figures}: not worse beyond noise" if passed else
              f"{figures}: worse beyond noise (in {level:.0%} of {rounds} bootstrap resamples the difference is "
              f"below {bound:+.3f})")
    return GateResult(passed, new_ap, old_ap, len(y), held_positives, bound, reason, _percentiles(new_aps, level))
