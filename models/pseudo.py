"""Pseudo-labels: the model's confident predictions on unlabeled items, trained on beside the human labels.

The items chosen follow a fixed pseudo-random order of their ids, so successive retrains keep most of the same
pseudo-labels instead of drawing a new sample each time.
"""
import numpy as np


def stable_order(ids):
    """A fixed pseudo-random permutation key for integer ids (Knuth's multiplicative hash)."""
    return (np.asarray(ids, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2 ** 32)


def choose(p_positive, candidates, ids, confidence, limit, positives=True):
    """Pseudo-labels for the pool: (pool indices, binary labels) of at most ``limit`` ``candidates`` whose
    predicted class has probability >= ``confidence``.

    Confident positives come first (only when ``positives``), then confident negatives in the fixed order of
    their ``ids``. Raises ValueError unless 0.5 < confidence <= 1.
    """
    if not 0.5 < confidence <= 1.0:
        raise ValueError(f"pseudo-label confidence must be above 0.5 and at most 1, got {confidence}")
    candidates = np.asarray(candidates, dtype=np.int64)
    p = np.asarray(p_positive, dtype=np.float64)[candidates]
    chosen_positive = candidates[p >= confidence] if positives else candidates[:0]
    chosen_positive = chosen_positive[:limit]
    negatives = candidates[p <= 1.0 - confidence]
    room = max(0, limit - len(chosen_positive))
    if len(negatives) > room:
        key = stable_order(np.asarray(ids)[negatives])
        negatives = negatives[np.argpartition(key, room - 1)[:room]] if room else negatives[:0]
    indices = np.concatenate([chosen_positive, np.sort(negatives)])
    labels = np.concatenate([np.ones(len(chosen_positive), np.int8), np.zeros(len(negatives), np.int8)])
    return indices, labels


def choose_classes(probabilities, candidates, ids, confidence, limit, positives=(), include_positives=True):
    """Pseudo-labels over K classes: (pool indices, class indices) of at most ``limit`` ``candidates`` whose
    most likely class has probability >= ``confidence`` (``probabilities``: (n, K)). Items predicted as one of
    the ``positives`` (class indices) come first (only when ``include_positives``, else they are left out),
    then the rest in the fixed order of their ``ids``. Raises ValueError unless 0.5 < confidence <= 1."""
    if not 0.5 < confidence <= 1.0:
        raise ValueError(f"pseudo-label confidence must be above 0.5 and at most 1, got {confidence}")
    candidates = np.asarray(candidates, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)[candidates]
    predicted = p.argmax(axis=1)
    confident = p.max(axis=1) >= confidence
    positive = confident & np.isin(predicted, list(positives))
    chosen_positive = candidates[positive][:limit] if include_positives else candidates[:0]
    rest = candidates[confident & ~positive]
    room = max(0, limit - len(chosen_positive))
    if len(rest) > room:
        key = stable_order(np.asarray(ids)[rest])
        rest = rest[np.argpartition(key, room - 1)[:room]] if room else rest[:0]
    indices = np.concatenate([chosen_positive, np.sort(rest)])
    lookup = dict(zip(candidates.tolist(), predicted.tolist()))
    return indices, np.array([lookup[index] for index in indices.tolist()], dtype=np.int64)
