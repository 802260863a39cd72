"""The active-learning engine: train and select the weak model on the human labels, score the whole pool,
write pseudo-labels and the queue. No Flask here; the worker runs ``retrain``.

``ActiveLearner`` is the numpy loop (train, score, pick a batch) shared by the store's retrain and the
in-memory simulation, so both pick batches by the same code.
"""
import os
import pickle
import platform
import tempfile
import time
import uuid

import numpy as np
from peewee import SqliteDatabase

from labeler.db import Label, ModelVersion, QueueEntry, database
from labeler.pool import load_pool
from models import pseudo as pseudo_labels
from models import selection, strategies, weak

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_SETTINGS = {
    "mix": {strategies.HIGH_RISK: 0.5, strategies.UNCERTAIN: 0.4, strategies.EXPLORATION: 0.1},
    "uncertainty": "least_confidence",  # or "margin", "entropy"
    "queue_size": 500,
    "pseudo_labels": True,
    "pseudo_confidence": 0.99,  # a prediction at least this sure becomes a pseudo-label
    "pseudo_limit": 20000,  # most pseudo-labels kept
    "pseudo_positives": False,  # also pseudo-label confident positives (off: only confident negatives)
    "human_weight": 5,  # each human label is trained on this many times beside the pseudo-labels
    "anomaly_feature": False,  # append the anomaly score to the features
    "cv_folds": 5,
    "cv_repeats": 2,
    "select_every": 50,  # the simulation re-runs model selection once this many labels arrived since the last
}
INSERT_BATCH = 500


class SettingsError(ValueError):
    """A dataset's engine setting is out of range; the message names the dataset and the setting."""


def settings_for(dataset):
    """The dataset's engine settings: ``Dataset.settings`` over DEFAULT_SETTINGS (the mix merged by key).

    Raises SettingsError for an unknown strategy or uncertainty name or a value out of range.
    """
    stored = dict(dataset.settings or {})
    merged = {**DEFAULT_SETTINGS, **{key: value for key, value in stored.items() if key in DEFAULT_SETTINGS}}
    merged["mix"] = {**DEFAULT_SETTINGS["mix"], **(stored.get("mix") or {})}
    where = f"dataset {dataset.name!r}, setting"
    unknown = set(merged["mix"]) - set(strategies.MIX_STRATEGIES)
    if unknown:
        raise SettingsError(f"{where} mix: unknown strategy {sorted(unknown)[0]!r} "
                            f"(known: {', '.join(strategies.MIX_STRATEGIES)})")
    shares = list(merged["mix"].values())
    if not all(isinstance(share, (int, float)) and share >= 0 for share in shares) or sum(shares) <= 0:
        raise SettingsError(f"{where} mix: shares must be numbers >= 0 with a positive sum, got {merged['mix']}")
    if merged["uncertainty"] not in strategies.UNCERTAINTY:
        raise SettingsError(f"{where} uncertainty: {merged['uncertainty']!r} is not one of "
                            f"{', '.join(strategies.UNCERTAINTY)}")
    if not 0.5 < float(merged["pseudo_confidence"]) <= 1:
        raise SettingsError(f"{where} pseudo_confidence: must be above 0.5 and at most 1")
    for key in ("queue_size", "pseudo_limit", "human_weight", "select_every", "cv_repeats"):
        if not isinstance(merged[key], (int, float)) or merged[key] < 1:
            raise SettingsError(f"{where} {key}: must be a number of at least 1, got {merged[key]!r}")
    if not isinstance(merged["cv_folds"], int) or merged["cv_folds"] < 2:
        raise SettingsError(f"{where} cv_folds: must be an integer of at least 2, got {merged['cv_folds']!r}")
    return merged


def model_folder():
    """Where model files go: ``models`` beside a SQLite store, else in the instance folder (LABELER_INSTANCE,
    else ``instance`` beside the package, as create_app uses)."""
    path = getattr(database.obj, "database", None)
    if isinstance(database.obj, SqliteDatabase) and path and path != ":memory:":
        return os.path.join(os.path.dirname(os.path.abspath(path)), "models")
    return os.path.join(os.environ.get("LABELER_INSTANCE") or os.path.join(ROOT, "instance"), "models")


def cold_start_probability(anomaly):
    """A rough P(positive) from the anomaly score's rank in the pool: only the top 0.2% reach 0.5."""
    ranks = anomaly.argsort().argsort() / max(len(anomaly) - 1, 1)
    return ranks ** 350


class ActiveLearner:
    """The loop over one pool (``X`` float32 rows, ``ids`` their integer ids): ``train`` on labels given as
    pool indices, ``score`` the pool, ``pseudo`` to pick pseudo-labels, ``pick`` the next batch."""

    def __init__(self, X, ids, settings, seed=0):
        self.X = np.asarray(X, dtype=np.float32)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.settings = settings
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.scale = strategies.RobustScale(self.X)
        self.z = self.scale.transform(self.X)
        self.anomaly = strategies.anomaly_scores(self.X, self.scale)
        self.features = self.features_of(self.X, self.anomaly)
        self.selected = None
        self.selected_at = None
        self.selected_kinds = None

    def train(self, labeled, y, pseudo=None):
        """Fit the serving model on pool indices ``labeled`` with binary labels ``y`` and optional pseudo-labels
        ((pool indices, labels)); model selection runs on the first call and again once ``select_every`` more
        labels arrived (or a new candidate became eligible). Returns a selection.Selected.

        Raises ValueError when ``y`` holds a single class.
        """
        labeled = np.asarray(labeled, dtype=np.int64)
        y = np.asarray(y, dtype=np.int8)
        X = self.features[labeled]
        pseudo_set = None
        if pseudo is not None and len(pseudo[0]):
            pseudo_set = (self.features[pseudo[0]], np.asarray(pseudo[1], dtype=np.int8))
        weight = self.settings["human_weight"] if pseudo_set is not None else 1.0
        kinds = weak.candidate_kinds(y)
        due = (self.selected is None or len(labeled) - self.selected_at >= self.settings["select_every"]
               or kinds != self.selected_kinds)
        if due:
            self.selected = selection.select(X, y, pseudo_set, weight, kinds, self.settings["cv_folds"],
                                             self.settings["cv_repeats"], self.seed)
            self.selected_at = len(labeled)
            self.selected_kinds = kinds
            return self.selected
        model = selection.fit_final(self.selected.kind, X, y, pseudo_set, weight, self.seed)
        model.calibration = self.selected.model.calibration
        self.selected = selection.Selected(model=model, kind=self.selected.kind, metrics=self.selected.metrics)
        return self.selected

    def features_of(self, X, anomaly=None):
        """The rows ``X`` as the models see them: the anomaly score appended when the settings say so."""
        if not self.settings["anomaly_feature"]:
            return X
        if anomaly is None:
            anomaly = strategies.anomaly_scores(X, self.scale)
        return np.column_stack([X, anomaly.astype(np.float32)])

    def score(self, model, X=None):
        """Calibrated P(positive) of every pool item, or of the rows ``X`` from outside the pool."""
        return model.predict(self.features if X is None else self.features_of(np.asarray(X, dtype=np.float32)))

    def pseudo(self, p_positive, unlabeled):
        """(pool indices, labels) of the pseudo-labels for the next training, or None when switched off."""
        if not self.settings["pseudo_labels"]:
            return None
        return pseudo_labels.choose(p_positive, unlabeled, self.ids, self.settings["pseudo_confidence"],
                                    self.settings["pseudo_limit"], self.settings["pseudo_positives"])

    def pick(self, p_positive, unlabeled, size):
        """[(pool index, strategy)] of ``size`` items from the pool indices ``unlabeled``: the mix when a
        model scored the pool (``p_positive``), else the cold start (anomalies spread over k-means clusters)
        with the mix's exploration share drawn at random."""
        if p_positive is not None:
            return strategies.plan_batch(p_positive, self.z, unlabeled, size, self.settings["mix"], self.rng,
                                         self.settings["uncertainty"])
        size = min(size, len(unlabeled))
        mix = self.settings["mix"]
        share = mix.get(strategies.EXPLORATION, 0) / max(sum(mix.values()), 1e-12)
        n_explore = int(round(size * share))
        cold = strategies.cold_start(self.z, self.anomaly, unlabeled, size - n_explore, self.seed)
        rest = np.setdiff1d(unlabeled, cold)
        explore = self.rng.choice(rest, size=min(n_explore, len(rest)), replace=False)
        return strategies.interleave({strategies.COLD_START: cold, strategies.EXPLORATION: explore})


# ---- the store ----------------------------------------------------------------------------------------------


def human_labels(dataset, ids):
    """(pool indices, label values) of the standing human labels of ``dataset``; ``ids`` sorted item ids."""
    rows = list(Label.effective(dataset).select(Label.item, Label.value).tuples())
    if not rows:
        return np.zeros(0, dtype=np.int64), []
    items = np.array([item for item, _ in rows], dtype=np.int64)
    return np.searchsorted(ids, items), [value for _, value in rows]


def standing_pseudo(dataset):
    """{item id: (label row id, value)} of the pseudo-labels of ``dataset`` that stand."""
    query = Label.effective(dataset, ("pseudo",)).select(Label.id, Label.item, Label.value).tuples()
    return {item: (label_id, value) for label_id, item, value in query}


def negative_label(dataset, values=()):
    """The label suggested when the model says 'not positive': the most common non-positive human label,
    else the first non-positive label of the label set."""
    others = [value for value in values if value != dataset.positive_label]
    if others:
        names, counts = np.unique(others, return_counts=True)
        return str(names[np.argmax(counts)])
    return next((label for label in dataset.labels if label != dataset.positive_label), dataset.positive_label)


def label_probabilities(dataset, p, negative):
    """(suggested label, its probability, {label: probability}) for P(positive) ``p``."""
    probabilities = {label: 0.0 for label in dataset.labels}
    probabilities[negative] = 1.0 - p
    probabilities[dataset.positive_label] = p
    if p >= 0.5:
        return dataset.positive_label, p, probabilities
    return negative, 1.0 - p, probabilities


def write_queue(dataset, ids, picks, p_positive, negative, model_version=None):
    """Replace ``dataset``'s queue with ``picks`` ([(pool index, strategy)], shown in that order); returns the
    number queued."""
    rows = []
    for order, (index, strategy) in enumerate(picks):
        p = float(p_positive[index])
        suggested, probability, probabilities = label_probabilities(dataset, p, negative)
        rows.append({
            "dataset": dataset.id, "item": int(ids[index]), "priority": float(order), "strategy": strategy,
            "suggested": suggested, "probability": probability, "probabilities": probabilities,
            "model_version": model_version.id if model_version else None,
        })
    with database.atomic():
        QueueEntry.delete().where(QueueEntry.dataset == dataset).execute()
        for start in range(0, len(rows), INSERT_BATCH):
            QueueEntry.insert_many(rows[start:start + INSERT_BATCH]).execute()
    return len(rows)


def write_pseudo_labels(dataset, ids, indices, labels, negative):
    """Make the standing pseudo-labels of ``dataset`` exactly the given ones (pool indices, binary labels):
    retract the ones dropped or changed, add the new ones, keep the rest. Returns (added, retracted)."""
    wanted = {int(ids[index]): (dataset.positive_label if label else negative)
              for index, label in zip(indices, labels)}
    standing = standing_pseudo(dataset)
    retract = [(item, label_id) for item, (label_id, value) in standing.items() if wanted.get(item) != value]
    add = [(item, value) for item, value in wanted.items() if standing.get(item, (None, None))[1] != value]
    rows = ([{"item": item, "kind": "undo", "value": None, "retracts": label_id, "source": "pseudo"}
             for item, label_id in retract]
            + [{"item": item, "kind": "label", "value": value, "source": "pseudo"} for item, value in add])
    with database.atomic():
        for start in range(0, len(rows), INSERT_BATCH):
            Label.insert_many(rows[start:start + INSERT_BATCH]).execute()
    return len(add), len(retract)


def save_model(model, folder, dataset):
    """Pickle ``model`` into ``folder`` under a new name (temp file, then os.replace); returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"dataset-{dataset.id}-{uuid.uuid4().hex}.pkl")
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(model, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def load_model(path):
    """The WeakModel pickled at ``path`` by save_model. Raises OSError or pickle.UnpicklingError."""
    with open(path, "rb") as stream:
        return pickle.load(stream)


def serving_version(dataset):
    """The ModelVersion serving ``dataset``, or None."""
    return ModelVersion.get_or_none((ModelVersion.dataset == dataset) & (ModelVersion.serving == True))  # noqa: E712


def retrain(dataset, progress=None, folder=None, seed=None):
    """Train and select the weak model on ``dataset``'s human labels (plus its pseudo-labels), record a serving
    ModelVersion, score the pool, write the pseudo-labels and rewrite the queue.

    Until both the positive label and another label were given, no model is trained and the queue comes from
    the cold start. ``progress(stage, percent)`` is told where it is; the model file goes to ``folder`` (default:
    model_folder()). Returns a summary dict for the job record.
    Raises OSError when the model file cannot be written (the store is then unchanged).
    """
    from labeler.queue import refresh_queue

    progress = progress or (lambda stage, percent: None)
    settings = settings_for(dataset)
    started = time.perf_counter()
    progress("loading the pool", 5)
    ids, X = load_pool(dataset)
    labeled, values = human_labels(dataset, ids)
    y = np.array([value == dataset.positive_label for value in values], dtype=np.int8)
    if len(ids) == 0 or len(np.unique(y)) < 2:
        queued = refresh_queue(dataset, size=settings["queue_size"], seed=seed)
        return {"stage": f"cold start: {queued} queued (a model needs both labels)", "labels_used": int(len(y)),
                "queued": queued}
    negative = negative_label(dataset, values)
    learner = ActiveLearner(X, ids, settings, seed=0 if seed is None else seed)
    unlabeled_mask = np.ones(len(ids), dtype=bool)
    unlabeled_mask[labeled] = False
    pseudo = None
    if settings["pseudo_labels"]:
        standing = standing_pseudo(dataset)
        items = np.array(list(standing), dtype=np.int64)
        positions = np.searchsorted(ids, items)
        keep = (positions < len(ids))
        keep[keep] &= ids[positions[keep]] == items[keep]
        positions, items = positions[keep], items[keep]
        keep = unlabeled_mask[positions]
        pseudo_y = np.array([standing[item][1] == dataset.positive_label for item in items[keep]], dtype=np.int8)
        pseudo = (positions[keep], pseudo_y)
    progress("selecting the model", 20)
    selected = learner.train(labeled, y, pseudo)
    progress("scoring the pool", 70)
    p_positive = learner.score(selected.model)
    unlabeled = np.flatnonzero(unlabeled_mask)
    path = save_model(selected.model, folder or model_folder(), dataset)
    metrics = {**(selected.metrics.get(selected.kind) or {}), "candidates": selected.metrics,
               "positives": int(y.sum()), "pseudo_labels": 0 if pseudo is None else int(len(pseudo[0])),
               "seconds": round(time.perf_counter() - started, 2)}
    with database.atomic():
        ModelVersion.update(serving=False).where(ModelVersion.dataset == dataset).execute()
        version = ModelVersion.create(dataset=dataset, kind=selected.kind, path=path, metrics=metrics,
                                      device=f"cpu ({platform.machine()})", labels_used=int(len(y)), serving=True)
    written = (0, 0)
    if settings["pseudo_labels"]:
        progress("writing pseudo-labels", 80)
        indices, pseudo_y = learner.pseudo(p_positive, unlabeled)
        written = write_pseudo_labels(dataset, ids, indices, pseudo_y, negative)
    progress("rewriting the queue", 90)
    picks = learner.pick(p_positive, unlabeled, settings["queue_size"])
    queued = write_queue(dataset, ids, picks, p_positive, negative, version)
    auprc = metrics.get("auprc")
    return {"stage": f"model {version.id} ({selected.kind}, CV AUPRC {auprc if auprc is None else round(auprc, 3)})"
                     f" serving; {queued} queued",
            "model_version": version.id, "kind": selected.kind, "auprc": auprc, "labels_used": int(len(y)),
            "pseudo_added": written[0], "pseudo_retracted": written[1], "queued": queued}
