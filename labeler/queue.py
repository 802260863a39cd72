"""The labeling queue: items chosen ahead of time, each with the strategy that picked it and a suggestion.

With a serving model (written by labeler.engine.retrain) the pool is rescored with it and the queue follows the
dataset's mix of high-risk, uncertain and exploration picks. Before any model the queue is the cold start:
unsupervised anomalies spread over k-means clusters, with a share of random exploration.
"""
import pickle

import numpy as np

from labeler.engine import (ActiveLearner, cold_start_probability, human_labels, load_model, negative_label,
                            serving_version, settings_for, write_queue)
from labeler.pool import load_pool


def refresh_queue(dataset, size=None, seed=None):
    """Rewrite ``dataset``'s queue with ``size`` unlabeled items (default: the dataset's queue size setting);
    returns the number queued.

    Uses the serving model when one exists and its file loads, else the cold start. Trains no classifier.
    """
    settings = settings_for(dataset)
    size = settings["queue_size"] if size is None else size
    ids, features = load_pool(dataset)
    if len(ids) == 0:
        return write_queue(dataset, ids, [], np.zeros(0), negative_label(dataset))
    labeled, values = human_labels(dataset, ids)
    unlabeled_mask = np.ones(len(ids), dtype=bool)
    unlabeled_mask[labeled] = False
    unlabeled = np.flatnonzero(unlabeled_mask)
    learner = ActiveLearner(features, ids, settings, seed=seed)
    version = serving_version(dataset)
    model = None
    if version is not None and version.path:
        try:
            model = load_model(version.path)
        except (OSError, EOFError, ValueError, AttributeError, ImportError, pickle.UnpicklingError):
            model = None  # a missing or unreadable file: serve the cold start until the next retrain
    if model is None:
        p_positive = cold_start_probability(learner.anomaly)
        picks = learner.pick(None, unlabeled, size)
        return write_queue(dataset, ids, picks, p_positive, negative_label(dataset, values))
    p_positive = learner.score(model)
    picks = learner.pick(p_positive, unlabeled, size)
    return write_queue(dataset, ids, picks, p_positive, negative_label(dataset, values), version)
