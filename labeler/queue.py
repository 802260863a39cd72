"""The labeling queue: items chosen ahead of time, each with the strategy that picked it and a suggestion.

With a serving model the queue follows the dataset's mix of high-risk, uncertain and exploration picks over the
pool scores that the retrain stored beside the model (labeler.engine.retrain): no model is loaded here, so the
web process never needs the model's libraries. When the serving version's files are missing or corrupt, the
newest earlier version whose files are intact serves instead, else the cold start: unsupervised anomalies
spread over k-means clusters, with a share of random exploration.
"""
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from labeler.db import ModelVersion, write_transaction
from labeler.engine import (COMPUTE_THREADS, ActiveLearner, cold_start_probability, human_labels, load_scores,
                            negative_label, serving_version, settings_for, version_name, version_problem,
                            write_queue)
from labeler.generative import stored_anomaly
from labeler.pool import load_pool


@dataclass
class Serving:
    """Whose stored scores the queue uses: ``version`` (None: the cold start), its ``scores`` when they were
    loaded, ``serving_id`` (the id of the version marked serving, None when none is) and ``notice``: one line
    saying which file is unusable and what serves instead (None when the serving version's files are intact)."""

    version: ModelVersion = None
    scores: np.ndarray = None
    serving_id: int = None
    notice: str = None


def serving_scores(dataset, pool_size=None):
    """The version whose stored scores serve ``dataset``'s queue: the serving one when its model and scores
    files are intact, else the newest earlier version that served and whose files are intact, else the cold
    start. With ``pool_size`` the scores are loaded too (a file longer than the pool counts as unusable).
    Returns a Serving."""
    serving = serving_version(dataset)
    if serving is None:
        return Serving()
    earlier = (ModelVersion.select()
               .where((ModelVersion.dataset == dataset) & ModelVersion.served_at.is_null(False)
                      & (ModelVersion.id < serving.id))
               .order_by(ModelVersion.id.desc()))
    first_problem = None
    for version in [serving, *earlier]:
        problem = version_problem(version)
        scores = None
        if problem is None and pool_size is not None:
            try:
                scores = load_scores(version.scores_path, version.digests["scores"])
                if len(scores) > pool_size:
                    problem = f"scores file scored {len(scores):,} items, the pool has {pool_size:,}"
            except (OSError, ValueError) as error:
                problem = f"scores file unusable: {error}"
        if problem is None:
            notice = None if version is serving else f"{version_name(serving)}: {first_problem}; serving " \
                                                     f"{version_name(version)} instead"
            return Serving(version, scores, serving.id, notice)
        first_problem = first_problem or problem
    return Serving(None, None, serving.id, f"{version_name(serving)}: {first_problem}; serving the cold start instead")


def cold_start_anomaly(dataset, ids, learner):
    """The cold start's anomaly score of the pool ``ids``: the autoencoder's stored score when the worker has
    computed one (labeler.generative.stored_anomaly), else the learner's robust-distance score."""
    stored = stored_anomaly(dataset, ids)
    return stored if stored is not None else learner.anomaly


def refresh_queue(dataset, size=None, seed=None):
    """Rewrite ``dataset``'s queue with ``size`` unlabeled items (default: the dataset's queue size setting);
    returns the number queued, or 0 when a retrain switched models meanwhile (its queue is left as written).

    Uses the stored pool scores of the version serving_scores chooses, else the cold start. Loads and trains no
    model; runs on COMPUTE_THREADS BLAS/OpenMP threads (the cold start's k-means), so the web's threads keep a core.
    """
    with threadpool_limits(limits=COMPUTE_THREADS):
        return _refresh(dataset, size, seed)


def _refresh(dataset, size, seed):
    settings = settings_for(dataset)
    size = settings["queue_size"] if size is None else size
    ids, features = load_pool(dataset)
    source = serving_scores(dataset, pool_size=len(ids))
    if len(ids) == 0:
        return _write_unless_switched(dataset, source, ids, [], np.zeros(0), negative_label(dataset))
    labeled, values = human_labels(dataset, ids)
    unlabeled_mask = np.ones(len(ids), dtype=bool)
    unlabeled_mask[labeled] = False
    learner = ActiveLearner(features, ids, settings, seed=seed)
    negative = negative_label(dataset, values)
    if source.version is None:
        learner.anomaly = cold_start_anomaly(dataset, ids, learner)
        picks = learner.pick(None, np.flatnonzero(unlabeled_mask), size)
        return _write_unless_switched(dataset, source, ids, picks, cold_start_probability(learner.anomaly), negative)
    p_positive = np.zeros(len(ids))
    p_positive[:len(source.scores)] = source.scores
    unlabeled_mask[len(source.scores):] = False  # items imported after the retrain wait for the next one
    picks = learner.pick(p_positive, np.flatnonzero(unlabeled_mask), size)
    return _write_unless_switched(dataset, source, ids, picks, p_positive, negative, source.version)


def _write_unless_switched(dataset, source, ids, picks, p_positive, negative, version=None):
    """write_queue in a write transaction, unless the serving version changed since ``source`` was chosen."""
    with write_transaction():
        now = serving_version(dataset)
        if (now.id if now is not None else None) != source.serving_id:
            return 0
        return write_queue(dataset, ids, picks, p_positive, negative, version)
