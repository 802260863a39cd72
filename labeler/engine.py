"""The active-learning engine: train and select the weak model on the human labels, score the whole pool,
write pseudo-labels and the queue. No Flask here; the worker runs ``retrain``.

``ActiveLearner`` is the numpy loop (train, score, pick a batch) shared by the store's retrain and the
in-memory simulation, so both pick batches by the same code.
"""
import hashlib
import os
import pickle
import tempfile
import time
import uuid

import numpy as np
from peewee import SqliteDatabase
from threadpoolctl import threadpool_limits

from labeler.db import Label, ModelVersion, QueueEntry, database, utcnow, write_transaction
from labeler.pool import load_pool
from models import pseudo as pseudo_labels
from models import gate, generative_candidates, selection, strategies, weak

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_SETTINGS = {
    "mix": {strategies.HIGH_RISK: 0.2, strategies.UNCERTAIN: 0.7, strategies.EXPLORATION: 0.1},
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
    "generative_candidates": [],  # any of "latent", "vae_balance", "sgan": models.generative_candidates
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
    names = merged["generative_candidates"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise SettingsError(f"{where} generative_candidates: must be a list of names, got {names!r}")
    unknown = generative_candidates.check_names(names)
    if unknown is not None:
        raise SettingsError(f"{where} generative_candidates: unknown candidate {unknown!r} "
                            f"(known: {', '.join(generative_candidates.NAMES)})")
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
        names = settings.get("generative_candidates") or []
        # trains nothing until model selection asks: the web process builds learners and never imports Keras
        self.generative = (generative_candidates.GenerativeCandidates(self.features, names, seed) if names
                           else None)
        self.selected = None
        self.selected_at = None
        self.selected_kinds = None

    def train(self, labeled, y, pseudo=None):
        """Fit the serving model on pool indices ``labeled`` with binary labels ``y`` and optional pseudo-labels
        ((pool indices, labels)); model selection (the weak kinds, plus the generative candidates the setting
        ``generative_candidates`` names: models.generative_candidates, trained here, so Keras loads in this
        process) runs on the first call and again once ``select_every`` more labels arrived, a new candidate
        became eligible, or the selected generative kind failed to fit. Returns a selection.Selected.

        Raises ValueError when ``y`` holds a single class.
        """
        labeled = np.asarray(labeled, dtype=np.int64)
        y = np.asarray(y, dtype=np.int8)
        X = self.features[labeled]
        pseudo_set = None
        if pseudo is not None and len(pseudo[0]):
            pseudo_set = (self.features[pseudo[0]], np.asarray(pseudo[1], dtype=np.int8))
        weight = self.settings["human_weight"] if pseudo_set is not None else 1.0
        kinds = weak.candidate_kinds(y) + (self.generative.kinds(y) if self.generative is not None else [])
        due = (self.selected is None or len(labeled) - self.selected_at >= self.settings["select_every"]
               or kinds != self.selected_kinds)
        if not due:
            try:
                model = selection.fit_final(self.selected.kind, X, y, pseudo_set, weight, self.seed,
                                            self.generative)
            except generative_candidates.CandidateFailed:
                due = True  # the selected generative kind failed on the new labels: choose again
            else:
                model.calibration = self.selected.model.calibration
                self.selected = selection.Selected(model=model, kind=self.selected.kind,
                                                   metrics=self.selected.metrics)
                return self.selected
        self.selected = selection.select(X, y, pseudo_set, weight, kinds, self.settings["cv_folds"],
                                         self.settings["cv_repeats"], self.seed, self.generative)
        self.selected_at = len(labeled)
        self.selected_kinds = kinds
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


def save_model(model, path):
    """Pickle ``model`` to ``path`` (temp file, then os.replace); returns the file's sha256.

    Raises OSError when it cannot be written (nothing is left at ``path`` then).
    """
    return write_atomically(path, lambda stream: pickle.dump(model, stream, protocol=pickle.HIGHEST_PROTOCOL))


def load_model(path):
    """The WeakModel pickled at ``path`` by save_model. Raises OSError or pickle.UnpicklingError."""
    with open(path, "rb") as stream:
        return pickle.load(stream)


def serving_version(dataset):
    """The ModelVersion serving ``dataset``, or None."""
    return ModelVersion.get_or_none((ModelVersion.dataset == dataset) & (ModelVersion.serving == True))  # noqa: E712


# BLAS/OpenMP threads of a retrain and of a queue refresh: the weak models train on a few thousand labels plus
# pseudo-labels, where a second thread gains little, and on busy cores (the web server, other work) spinning
# OpenMP threads multiplied the CPU time of a retrain by ten (25 s against 2.9 s on 2 shared cores, 1,000 labels).
# Keras models keep TensorFlow's own thread pools.
COMPUTE_THREADS = 1


def retrain(dataset, progress=None, folder=None, seed=None):
    """Train and select a model on ``dataset``'s human labels outside the fixed holdout (plus its pseudo-labels),
    gate it against the model serving now on the held-out labels (models.gate), and when it passes refit it on
    all human labels, score the whole pool, store the scores and switch: the new ModelVersion serves and the
    queue is rewritten from its scores in one transaction. A model that loses the gate is recorded, not serving,
    with the gate's figures and reason; the serving model and its queue stay.

    Why a twin: a model cannot be judged on labels it trained on, yet the served model should learn from every
    label. So each version has a twin trained without the holdout items (their labels and pseudo-labels), whose
    scores on the pool's holdout items are stored (``holdout_path``); the gate compares the new twin with the
    serving version's twin on today's held-out labels. Holdout membership depends on the item id alone, so no
    twin ever trained on an item of the holdout, and the serving twin's stored scores stay fair for labels
    given after it was trained. The served model is the twin's kind and calibration refitted on all labels.
    The first model is gated against the cold start's anomaly score.

    Until both the positive label and another label were given, no model is trained and the queue comes from
    the cold start. ``progress(stage, percent)`` is told where it is; files go to ``folder`` (default:
    model_folder()). Returns a summary dict for the job record, with seconds per stage under "timings".
    Runs on COMPUTE_THREADS BLAS/OpenMP threads. Raises OSError when a file cannot be written (the store is
    then unchanged).
    """
    with threadpool_limits(limits=COMPUTE_THREADS):
        return _retrain(dataset, progress, folder, seed)


def _retrain(dataset, progress, folder, seed):
    from labeler.queue import cold_start_anomaly, refresh_queue, serving_scores

    progress = progress or (lambda stage, percent: None)
    timings = Stopwatch()
    settings = settings_for(dataset)
    progress("loading the pool", 5)
    ids, X = load_pool(dataset)
    labeled, values = human_labels(dataset, ids)
    y = np.array([value == dataset.positive_label for value in values], dtype=np.int8)
    if len(ids) == 0 or len(np.unique(y)) < 2:
        queued = refresh_queue(dataset, size=settings["queue_size"], seed=seed)
        return {"stage": f"cold start: {queued} queued (a model needs both labels)", "labels_used": int(len(y)),
                "queued": queued, "timings": timings.lap("cold start queue")}
    negative = negative_label(dataset, values)
    learner = ActiveLearner(X, ids, settings, seed=0 if seed is None else seed)
    unlabeled_mask = np.ones(len(ids), dtype=bool)
    unlabeled_mask[labeled] = False
    pseudo = standing_pseudo_positions(dataset, ids, unlabeled_mask) if settings["pseudo_labels"] else None
    in_holdout = gate.holdout_mask(ids)
    held = in_holdout[labeled]
    timings.lap("load")

    progress("selecting the model", 20)
    baseline = serving_scores(dataset).version
    if len(np.unique(y[~held])) == 2:
        twin_pseudo = None if pseudo is None else tuple(part[~in_holdout[pseudo[0]]] for part in pseudo)
        twin = learner.train(labeled[~held], y[~held], twin_pseudo)
        timings.lap("select")
        progress("gating", 50)
        holdout_scores = np.full(len(ids), np.nan, dtype=np.float32)
        holdout_scores[in_holdout] = learner.score(twin.model, X[in_holdout])
        verdict, baseline_name = gate_against(baseline, labeled[held], y[held], holdout_scores,
                                              lambda: cold_start_anomaly(dataset, ids, learner))
        timings.lap("gate")
    else:
        twin, holdout_scores, baseline_name = None, None, version_name(baseline)
        verdict = gate.GateResult(True, None, None, int(held.sum()), int(y[held].sum()), None,
                                  "not compared: the labels outside the holdout hold a single class")
    kind = twin.kind if twin is not None else None
    metrics = {"positives": int(y.sum()), "holdout_labels": int(held.sum()),
               "pseudo_labels": 0 if pseudo is None else int(len(pseudo[0]))}
    summary_gate = {**verdict.as_dict(), "baseline": baseline_name,
                    "baseline_version": baseline.id if baseline is not None else None}
    if not verdict.passed:
        line = (f"{baseline_name} kept: new model AP {verdict.new_ap:.2f} vs {verdict.old_ap:.2f} "
                f"on {verdict.holdout} held-out labels")
        metrics.update(twin.metrics.get(kind) or {}, candidates=twin.metrics, seconds=timings.total())
        with write_transaction():
            version = ModelVersion.create(dataset=dataset, kind=kind, metrics=metrics,
                                          device=training_device_of(learner, kind),
                                          labels_used=int(len(y)), serving=False, gate={**summary_gate, "line": line})
        return {"stage": line[:120], "model_version": version.id, "serving": False, "kind": kind,
                "labels_used": int(len(y)), "gate": summary_gate, "timings": timings.lap("record")}

    progress("fitting on all labels", 60)
    served = fit_serving(learner, twin, labeled, y, pseudo) if twin is not None else learner.train(labeled, y, pseudo)
    timings.lap("fit on all labels")
    progress("scoring the pool", 70)
    p_positive = learner.score(served.model)
    timings.lap("score pool")
    progress("saving the model and scores", 75)
    stem = os.path.join(folder or model_folder(), f"dataset-{dataset.id}-{uuid.uuid4().hex}")
    files = {"model": stem + ".pkl", "scores": stem + ".scores.npy"}
    digests = {"model": save_model(served.model, files["model"]),
               "scores": save_scores(p_positive, files["scores"])}
    if holdout_scores is not None:
        files["holdout"] = stem + ".holdout.npy"
        digests["holdout"] = save_scores(holdout_scores, files["holdout"])
    timings.lap("save files")
    unlabeled = np.flatnonzero(unlabeled_mask)
    picks = learner.pick(p_positive, unlabeled, settings["queue_size"])
    timings.lap("pick queue")
    progress("switching to the new model", 85)
    metrics.update(served.metrics.get(served.kind) or {}, candidates=served.metrics, seconds=timings.total())
    device = training_device_of(learner, served.kind)
    with write_transaction():
        ModelVersion.update(serving=False).where(ModelVersion.dataset == dataset).execute()
        version = ModelVersion.create(dataset=dataset, kind=served.kind, path=files["model"],
                                      scores_path=files["scores"], holdout_path=files.get("holdout"),
                                      digests=digests, metrics=metrics, device=device, labels_used=int(len(y)),
                                      serving=True, served_at=utcnow(), gate=summary_gate)
        queued = write_queue(dataset, ids, picks, p_positive, negative, version)
    timings.lap("switch + queue")
    written = (0, 0)
    if settings["pseudo_labels"]:
        progress("writing pseudo-labels", 90)
        indices, pseudo_y = learner.pseudo(p_positive, unlabeled)
        written = write_pseudo_labels(dataset, ids, indices, pseudo_y, negative)
        timings.lap("pseudo-labels")
    auprc = metrics.get("auprc")
    stage = (f"model {version.id} ({served.kind}) serving; holdout AP "
             f"{'-' if verdict.new_ap is None else f'{verdict.new_ap:.2f}'} vs {baseline_name} "
             f"{'-' if verdict.old_ap is None else f'{verdict.old_ap:.2f}'}; {queued} queued")
    return {"stage": stage[:120], "model_version": version.id, "serving": True, "kind": served.kind,
            "auprc": auprc, "labels_used": int(len(y)), "gate": summary_gate, "device": device,
            "pseudo_added": written[0], "pseudo_retracted": written[1], "queued": queued,
            "timings": timings.laps}


# ---- stored scores, the gate and the switch (issue 6) ------------------------------------------------------


class Stopwatch:
    """Seconds per stage: ``lap(name)`` adds the time since the previous lap to ``name`` and returns all laps."""

    def __init__(self):
        self.started = self.last = time.perf_counter()
        self.laps = {}

    def lap(self, name):
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self.last, 3)
        self.last = now
        return self.laps

    def total(self):
        return round(time.perf_counter() - self.started, 2)


_digest_cache = {}


def file_digest(path):
    """The sha256 (hex) of the file at ``path``; cached while its size, mtime and inode stay the same, so the
    polled status costs one stat per file. Raises OSError when the file cannot be read."""
    stat = os.stat(path)
    key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    cached = _digest_cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    _digest_cache[path] = (key, digest.hexdigest())
    return digest.hexdigest()


def write_atomically(path, write):
    """Write a file by ``write(binary stream)`` into a temp file beside ``path``, fsync it and os.replace it
    there, so ``path`` is never half-written; returns the file's sha256. Raises OSError (no file left then)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return file_digest(path)


def save_scores(scores, path):
    """Save per-item scores (aligned to the pool's item ids) as a float32 .npy at ``path`` via write_atomically;
    returns its sha256. Raises OSError."""
    array = np.ascontiguousarray(scores, dtype=np.float32)
    return write_atomically(path, lambda stream: np.save(stream, array, allow_pickle=False))


def load_scores(path, digest=None):
    """The 1-d float32 scores saved at ``path`` by save_scores; with ``digest``, only if the file still has it.

    Raises OSError when the file cannot be read, ValueError when no path is given or the file is corrupt.
    """
    if not path:
        raise ValueError("no file recorded")
    name = os.path.basename(path)
    if digest is not None and file_digest(path) != digest:
        raise ValueError(f"{name} is corrupt (its checksum changed)")
    try:
        scores = np.load(path, allow_pickle=False)
    except (EOFError, ValueError) as error:
        raise ValueError(f"{name} is corrupt ({error})") from None
    if scores.ndim != 1 or scores.dtype != np.float32:
        raise ValueError(f"{name} is not a 1-d float32 score array")
    return scores


def version_problem(version):
    """None when ``version``'s model and scores files are there and unchanged since written, else one line
    naming the file and what is wrong with it."""
    digests = version.digests or {}
    for role, path in (("model", version.path), ("scores", version.scores_path)):
        if not path or role not in digests:
            return f"no {role} file with a checksum recorded (trained before retrains stored scores)"
        try:
            digest = file_digest(path)
        except FileNotFoundError:
            return f"{role} file {os.path.basename(path)} is missing"
        except OSError as error:
            return f"{role} file {os.path.basename(path)} cannot be read ({error.strerror})"
        if digest != digests[role]:
            return f"{role} file {os.path.basename(path)} is corrupt"
    return None


def version_name(version):
    """How the status line names a ModelVersion, or the cold start for None."""
    return "cold start" if version is None else f"model {version.id}"


def standing_pseudo_positions(dataset, ids, unlabeled_mask):
    """(pool indices, binary labels) of ``dataset``'s standing pseudo-labels on items still unlabeled."""
    standing = standing_pseudo(dataset)
    items = np.array(list(standing), dtype=np.int64)
    positions = np.searchsorted(ids, items)
    keep = positions < len(ids)
    keep[keep] &= ids[positions[keep]] == items[keep]
    positions, items = positions[keep], items[keep]
    keep = unlabeled_mask[positions]
    labels = np.array([standing[item][1] == dataset.positive_label for item in items[keep]], dtype=np.int8)
    return positions[keep], labels


def fit_serving(learner, selected, labeled, y, pseudo=None):
    """The model to serve: ``selected`` (learner.train's choice on part of the labels) refitted on the pool
    indices ``labeled`` with labels ``y`` and the optional pseudo-labels ((pool indices, labels)), with the same
    kind and calibration. Returns a selection.Selected. Raises ValueError when ``y`` holds a single class."""
    pseudo_set = None
    if pseudo is not None and len(pseudo[0]):
        pseudo_set = (learner.features[pseudo[0]], np.asarray(pseudo[1], dtype=np.int8))
    weight = learner.settings["human_weight"] if pseudo_set is not None else 1.0
    model = selection.fit_final(selected.kind, learner.features[labeled], np.asarray(y, dtype=np.int8), pseudo_set,
                                weight, learner.seed, learner.generative)
    model.calibration = selected.model.calibration
    return selection.Selected(model=model, kind=selected.kind, metrics=selected.metrics)


def gate_against(baseline, held, y_held, holdout_scores, cold_start_score):
    """The gate's verdict on the new twin's pool-aligned ``holdout_scores`` at the held-out pool indices ``held``
    (labels ``y_held``) against ``baseline``: the version whose scores serve the queue (its stored twin scores),
    or None for the cold start, whose pool score ``cold_start_score()`` gives. Returns (GateResult, baseline name).
    """
    name = version_name(baseline)
    y_held = np.asarray(y_held, dtype=np.int8)
    if baseline is None:
        return gate.compare(y_held, holdout_scores[held], cold_start_score()[held]), name
    try:
        old = load_scores(baseline.holdout_path, (baseline.digests or {}).get("holdout"))
    except (OSError, ValueError) as error:
        return gate.GateResult(True, None, None, len(held), int(y_held.sum()), None,
                               f"not compared: {name} has no readable held-out scores ({error})"), name
    scored = held < len(old)  # items imported after the baseline was trained have no score of it
    held, y_held = held[scored], y_held[scored]
    scored = ~np.isnan(old[held])
    return gate.compare(y_held[scored], holdout_scores[held[scored]], old[held[scored]]), name


def training_device_of(learner, kind):
    """The device that trained model ``kind``: for a generative candidate, the device its Keras model trained on
    (models.keras_common.training_device, as the learner's GenerativeCandidates recorded it), else "cpu" (the
    weak models are scikit-learn)."""
    if learner.generative is None or not generative_candidates.is_generative(kind):
        return "cpu"
    return learner.generative.device_of(kind) or "cpu"
