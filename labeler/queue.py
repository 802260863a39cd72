"""The labeling queue: items chosen ahead of time, each with the strategy that picked it and a suggestion.

Before any model exists the queue comes from an unsupervised anomaly score: a robust distance from the
pool's centre, mixed with random exploration.
"""
import numpy as np

from labeler.db import Item, Label, QueueEntry, database
from labeler.pool import load_pool

DEFAULT_QUEUE_SIZE = 500
EXPLORATION_SHARE = 0.2


def anomaly_scores(features):
    """Root mean squared robust z-score of each row (median / interquartile range of the pool)."""
    centre = np.median(features, axis=0)
    spread = np.subtract(*np.percentile(features, [75, 25], axis=0))
    spread[spread == 0] = 1.0
    z = (features - centre) / spread
    return np.sqrt(np.mean(z * z, axis=1))


def _cold_start_probability(scores):
    """Map anomaly scores to a rough fraud probability by their rank in the pool (top 0.2% above 0.5)."""
    ranks = scores.argsort().argsort() / max(len(scores) - 1, 1)
    return ranks ** 350


def labeled_item_ids(dataset):
    """Ids of items of ``dataset`` that carry a standing human label."""
    return {label.item_id for label in Label.effective(dataset).select(Label.item)}


def refresh_queue(dataset, size=DEFAULT_QUEUE_SIZE, seed=None):
    """Rewrite ``dataset``'s queue with ``size`` unlabeled items; returns the number queued."""
    ids, features = load_pool(dataset)
    if len(ids) == 0:
        return 0
    unlabeled = ~np.isin(ids, np.fromiter(labeled_item_ids(dataset), dtype=np.int64))
    scores = anomaly_scores(features)
    p_positive = _cold_start_probability(scores)
    candidates = np.flatnonzero(unlabeled)
    rng = np.random.default_rng(seed)
    n_explore = int(round(min(size, len(candidates)) * EXPLORATION_SHARE))
    n_top = min(size, len(candidates)) - n_explore
    by_score = candidates[np.argsort(-scores[candidates], kind="stable")]
    top = by_score[:n_top]
    rest = by_score[n_top:]
    explore = rng.choice(rest, size=min(n_explore, len(rest)), replace=False) if len(rest) else rest[:0]
    positive = dataset.positive_label
    negative = next((label for label in dataset.labels if label != positive), positive)
    rows = []
    for order, (index, strategy) in enumerate(_interleave(top, explore)):
        p = float(p_positive[index])
        suggested, probability = (positive, p) if p >= 0.5 else (negative, 1.0 - p)
        probabilities = {label: 0.0 for label in dataset.labels}
        probabilities.update({positive: p, negative: 1.0 - p})
        rows.append({
            "dataset": dataset.id, "item": int(ids[index]), "priority": float(order), "strategy": strategy,
            "suggested": suggested, "probability": probability, "probabilities": probabilities,
            "model_version": None,
        })
    with database.atomic():
        QueueEntry.delete().where(QueueEntry.dataset == dataset).execute()
        for start in range(0, len(rows), 500):
            QueueEntry.insert_many(rows[start:start + 500]).execute()
    return len(rows)


def _interleave(top, explore):
    """(pool index, strategy) pairs: anomalies with an exploration pick spread evenly among them."""
    order = [(index, "cold start") for index in top]
    if len(explore):
        step = max(1, len(order) // len(explore))
        for n, index in enumerate(explore):
            order.insert(min(len(order), n * (step + 1) + step), (index, "exploration"))
    return order
