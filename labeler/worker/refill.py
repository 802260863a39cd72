"""The queue refill: the worker rewrites a dataset's labeling queue ahead of time, each entry with the strategy
that picked it and a suggestion, and keeps the pool's feature statistics up to date for the screen.

With a serving model the queue follows the dataset's mix of high-risk, uncertain, committee and exploration picks
over the pool scores that the retrain stored (labeler.store.serving; the committee's disagreement in its own
file): no model is loaded. When the serving version's scores file is missing or corrupt, the newest earlier
version whose file is intact serves instead, else the cold start: unsupervised anomalies spread over k-means
clusters, with a share of random exploration.
"""
import itertools

import numpy as np
from peewee import SQL, fn
from threadpoolctl import threadpool_limits

from labeler.store.artifacts import stored_anomaly, stored_sequence_error
from labeler.store.db import (FeatureStats, Item, Label, QueueEntry, advisory_lock, database, refresh_statistics,
                              utcnow, write_transaction)
from labeler.store.files import load_scores
from labeler.store.pool import human_labels, load_pool
from labeler.store.serving import serving_scores, serving_version
from labeler.store.settings import engine_settings
from models.features import one_hot_blocks
from models.learner import ActiveLearner, cold_start_probability
from models.names import ADAPTIVE_ARMS
from models.strategies import rank_union

# BLAS/OpenMP threads of a retrain and of a queue refill: the weak models train on a few thousand labels plus
# pseudo-labels, where a second thread gains little, and on busy cores (the web server, other work) spinning
# OpenMP threads multiplied the CPU time of a retrain by ten (25 s against 2.9 s on 2 shared cores, 1,000 labels).
# Keras models keep TensorFlow's own thread pools.
COMPUTE_THREADS = 1
INSERT_BATCH = 500


def class_count(dataset):
    """How many labels the models tell apart: 2 (binary: the positive label against the other), or K > 2."""
    return max(2, len(dataset.labels))


def binary_positive(dataset):
    """The label that is class 1 of a two-label dataset: its positive label, else the second label."""
    return dataset.positive_label or dataset.labels[-1]


def positive_classes(dataset):
    """The class indices (into ``dataset.labels``) of the labels that count as fraud; binary: [1]."""
    if class_count(dataset) == 2:
        return [1]
    return [dataset.labels.index(label) for label in dataset.positive_labels if label in dataset.labels]


def class_labels(dataset, values):
    """The models' labels of label ``values``: binary int8 (1 for the positive label), or for K labels int64
    indices into ``dataset.labels`` (a value outside the label set is -1; the caller drops it)."""
    if class_count(dataset) == 2:
        positive = binary_positive(dataset)
        return np.array([value == positive for value in values], dtype=np.int8)
    index = {label: position for position, label in enumerate(dataset.labels)}
    return np.array([index.get(value, -1) for value in values], dtype=np.int64)


def learner_for(dataset, ids, features, settings, seed=None, groups=None, categorical=()):
    """The ActiveLearner of ``dataset``'s pool with the dataset's classes and positive classes."""
    return ActiveLearner(features, ids, settings, seed=0 if seed is None else seed, groups=groups,
                         categorical=categorical, n_classes=class_count(dataset),
                         positives=positive_classes(dataset), image_shape=dataset.image_shape)


def categorical_blocks(dataset):
    """The (start, stop) feature ranges of the dataset's categorical columns (one-hot at import): the boosted
    model splits them as native categories (models.weak.NativeCategories)."""
    return one_hot_blocks(dataset.feature_columns, (dataset.roles or {}).get("categorical") or {})


def run_refill(dataset, progress, config):
    """The refill job's handler (labeler.worker.jobs): the feature statistics when the pool changed size, then
    the queue. Returns the job's summary."""
    progress("loading the pool", 10)
    ids, features = load_pool(dataset, config.MODEL_FOLDER)
    stats_rows = update_feature_stats(dataset, features)
    progress("choosing the queue", 50)
    queued = refresh_queue(dataset, pool=(ids, features))
    if queued or not len(ids):
        stage = f"queue refilled: {queued} queued"
    else:
        stage = "nothing queued: every item is labeled, or a retrain switched models meanwhile"
    return {"stage": stage, "queued": queued, "feature_stats_rows": stats_rows}


def update_feature_stats(dataset, features):
    """Store the per-feature mean and standard deviation of ``features`` (``dataset``'s whole pool) unless they
    were stored for a pool of this size already; returns the pool size they describe."""
    rows = len(features)
    stored = FeatureStats.get_or_none(FeatureStats.dataset == dataset)
    if stored is not None and stored.rows == rows and len(stored.mean) == dataset.n_features:
        return rows
    mean = features.mean(axis=0, dtype=np.float64) if rows else np.zeros(dataset.n_features)
    std = features.std(axis=0, dtype=np.float64) if rows else np.ones(dataset.n_features)
    std[~(std > 0)] = 1.0
    fields = {"rows": rows, "mean": mean.tolist(), "std": std.tolist(), "created_at": utcnow()}
    with write_transaction():
        if FeatureStats.update(**fields).where(FeatureStats.dataset == dataset).execute() == 0:
            FeatureStats.create(dataset=dataset, **fields)
    return rows


def cold_start_anomaly(dataset, ids, learner):
    """The cold start's anomaly score of the pool ``ids``: the autoencoder's stored score when the worker has
    computed one (labeler.store.artifacts.stored_anomaly), else the learner's robust-distance score; for raw
    transactions with a stored sequence error, combined with it (models.strategies.rank_union: the cold start
    takes the tops of both)."""
    stored = stored_anomaly(dataset, ids)
    anomaly = stored if stored is not None else learner.anomaly
    sequence_error = stored_sequence_error(dataset, ids)
    return anomaly if sequence_error is None else rank_union(anomaly, sequence_error)


def refresh_queue(dataset, size=None, seed=None, pool=None):
    """Rewrite ``dataset``'s queue with ``size`` unlabeled items (default: the dataset's queue size setting);
    returns the number queued, or 0 when a retrain switched models meanwhile (its queue is left as written).
    ``pool``: the dataset's (ids, features) when loaded already.

    Uses the stored pool scores of the version serving_scores chooses, else the cold start. Loads and trains no
    model; runs on COMPUTE_THREADS BLAS/OpenMP threads (the cold start's k-means). Raises SettingsError.
    """
    with threadpool_limits(limits=COMPUTE_THREADS):
        return _refresh(dataset, size, seed, pool)


def _refresh(dataset, size, seed, pool):
    settings = engine_settings(dataset)
    size = settings["queue_size"] if size is None else size
    ids, features = load_pool(dataset) if pool is None else pool
    source = serving_scores(dataset, pool_size=len(ids))
    if len(ids) == 0:
        return _write_unless_switched(dataset, source, ids, [], np.zeros(0), negative_label(dataset))
    labeled, values = human_labels(dataset, ids)
    unlabeled_mask = np.ones(len(ids), dtype=bool)
    unlabeled_mask[labeled] = False
    learner = learner_for(dataset, ids, features, settings, seed)
    found = int(np.isin(class_labels(dataset, values), positive_classes(dataset)).sum())  # positives labeled
    replay_picks(dataset, learner, found)
    negative = negative_label(dataset, values)
    if source.version is None:
        learner.anomaly = cold_start_anomaly(dataset, ids, learner)
        picks = learner.pick(None, np.flatnonzero(unlabeled_mask), size, found)
        cold = cold_start_probability(learner.anomaly) if class_count(dataset) == 2 else None
        return _write_unless_switched(dataset, source, ids, picks, cold, negative)
    p_positive = np.zeros((len(ids), *source.scores.shape[1:]))  # the suggestions
    p_positive[:len(source.scores)] = source.scores
    queue_scores = np.zeros_like(p_positive)  # what picks the queue
    queue_scores[:len(source.scores)] = queue_scores_of(source)
    unlabeled_mask[len(source.scores):] = False  # items imported after the retrain wait for the next one
    learner.disagreement = committee_scores_of(source.version, len(source.scores))
    picks = learner.pick(queue_scores, np.flatnonzero(unlabeled_mask), size)
    return _write_unless_switched(dataset, source, ids, picks, p_positive, negative, source.version)


def queue_scores_of(serving):
    """The pool scores that pick the queue of the Serving ``serving`` (its scores loaded): its version's
    counterpart file when its retrain said so (a blend's logistic part serves, the blend picks:
    models.prequential), else the served scores, which also stand in for a counterpart file that is missing,
    corrupt or of another length."""
    version = serving.version
    if not (version.metrics or {}).get("queue_from_counterpart"):
        return serving.scores
    try:
        scores = load_scores(version.counterpart_path, (version.digests or {}).get("counterpart"))
    except (OSError, ValueError):
        return serving.scores
    return scores if scores.shape == serving.scores.shape else serving.scores


def committee_scores_of(version, scored):
    """The committee's disagreement per pool item (models.committee) that ``version``'s retrain stored for the
    ``scored`` items it scored (items imported since are not picked until the next retrain); None when it stored
    none or its file is missing, corrupt or of another length (the committee's share of the queue then goes to
    the uncertain picks)."""
    try:
        scores = load_scores(version.committee_path, (version.digests or {}).get("committee"))
    except (OSError, ValueError):
        return None
    return scores if scores.shape == (scored,) else None


def replay_picks(dataset, learner, positives):
    """Fold what the adaptive loop's earlier picks brought into ``learner``'s bandit (models.adaptive; nothing when
    the ``adaptive`` setting is off), since every job builds a fresh learner: each standing human answer to an
    item one of its arms picked, grouped by the queue (model version) that picked it, with P(positive) as the
    analyst's screen carried it. ``positives``: how many positives are labeled. Returns the rewards folded in."""
    if learner.adaptive is None:
        return 0
    positive = binary_positive(dataset)
    undo = Label.alias("undo")
    rows = (Label.select(Label.model_version, Label.strategy, Label.value, Label.suggested,
                         Label.suggested_probability)
            .join(Item)
            .where((Item.dataset == dataset) & (Label.source == "human") & (Label.kind == "label")
                   & Label.bulk_of.is_null() & Label.strategy.in_(ADAPTIVE_ARMS) & Label.model_version.is_null(False)
                   & Label.suggested_probability.is_null(False)
                   & ~fn.EXISTS(undo.select(SQL("1")).where(undo.retracts == Label.id)))
            .order_by(Label.model_version, Label.id)
            .tuples())
    batches = []
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        group = list(group)
        batches.append(([strategy for _, strategy, _, _, _ in group],
                        [p if suggested == positive else 1.0 - p for _, _, _, suggested, p in group],
                        [int(value == positive) for _, _, value, _, _ in group]))
    return learner.adaptive.replay(batches, positives)


def _write_unless_switched(dataset, source, ids, picks, p_positive, negative, version=None):
    """write_queue in a write transaction, unless the serving version changed since ``source`` was chosen."""
    with write_transaction():
        advisory_lock("queue", dataset.id)  # the check and the write are one step against a retrain's switch
        now = serving_version(dataset)
        if (now.id if now is not None else None) != source.serving_id:
            return 0
        return write_queue(dataset, ids, picks, p_positive, negative, version)


def negative_label(dataset, values=()):
    """The label suggested when the model says 'not positive': the most common non-positive human label,
    else the first non-positive label of the label set."""
    positive = binary_positive(dataset)
    others = [value for value in values if value != positive]
    if others:
        names, counts = np.unique(others, return_counts=True)
        return str(names[np.argmax(counts)])
    return next((label for label in dataset.labels if label != positive), positive)


def label_probabilities(dataset, p, negative):
    """(suggested label, its probability, {label: probability}) for P(positive) ``p``, or for K labels for
    ``p`` the item's class probabilities (the most likely label is suggested)."""
    if np.ndim(p) == 1:
        probabilities = {label: round(float(value), 6) for label, value in zip(dataset.labels, p)}
        best = int(np.argmax(p))
        return dataset.labels[best], float(p[best]), probabilities
    positive = binary_positive(dataset)
    probabilities = {label: 0.0 for label in dataset.labels}
    probabilities[negative] = 1.0 - p
    probabilities[positive] = p
    if p >= 0.5:
        return positive, p, probabilities
    return negative, 1.0 - p, probabilities


def write_queue(dataset, ids, picks, p_positive, negative, model_version=None):
    """Replace ``dataset``'s queue with ``picks`` ([(pool index, strategy)], shown in that order); returns the
    number queued. ``p_positive``: P(positive) per pool item, (n, K) class probabilities, or None (K labels
    before any model: no suggestion, stored as an empty label)."""
    rows = []
    for order, (index, strategy) in enumerate(picks):
        if p_positive is None:
            suggested, probability, probabilities = "", 0.0, {}
        else:
            p = p_positive[index]
            suggested, probability, probabilities = label_probabilities(dataset, p if np.ndim(p) else float(p),
                                                                        negative)
        rows.append({
            "dataset": dataset.id, "item": int(ids[index]), "priority": float(order), "strategy": strategy,
            "suggested": suggested, "probability": probability, "probabilities": probabilities,
            "model_version": model_version.id if model_version else None,
        })
    with database.atomic():
        QueueEntry.delete().where(QueueEntry.dataset == dataset).execute()
        for start in range(0, len(rows), INSERT_BATCH):
            QueueEntry.insert_many(rows[start:start + INSERT_BATCH]).execute()
    refresh_statistics(QueueEntry)
    return len(rows)
