"""The retrain: train and select the weak model on the human labels, gate it, score the whole pool, store the
scores, switch the serving version and rewrite the queue, write pseudo-labels. The worker runs it as a job
(``run_retrain``); the numpy loop itself is models.learner.ActiveLearner.
"""
import os
import time
import uuid

import numpy as np
from peewee import fn
from threadpoolctl import threadpool_limits

from labeler.store.artifacts import artifacts_of
from labeler.store.db import (Item, Label, ModelVersion, advisory_lock, database, refresh_statistics, utcnow,
                              write_transaction)
from labeler.store.files import load_scores, save_scores
from labeler.store.pool import groups_of, human_labels, load_pool, pool_size
from labeler.store.serving import serving_scores, version_name
from labeler.store.settings import engine_settings
from labeler.worker import jobs
from labeler.worker.prequential import record_labels, record_of
from labeler.worker.refill import (COMPUTE_THREADS, binary_positive, categorical_blocks, class_count, class_labels,
                                    cold_start_anomaly, learner_for, negative_label, refresh_queue, replay_picks,
                                    update_feature_stats, write_queue)
from labeler.worker.retention import prune_version_files
from models import gate, generative_candidates, selection, weak

INSERT_BATCH = 500


def standing_pseudo(dataset):
    """{item id: (label row id, value)} of the pseudo-labels of ``dataset`` that stand."""
    query = Label.effective(dataset, ("pseudo",)).select(Label.id, Label.item, Label.value).tuples()
    return {item: (label_id, value) for label_id, item, value in query}


def write_pseudo_labels(dataset, ids, indices, labels, negative):
    """Make the standing pseudo-labels of ``dataset`` exactly the given ones (pool indices, binary labels or
    class indices for K labels): retract the ones dropped or changed, add the new ones, keep the rest. Returns
    (added, retracted)."""
    if class_count(dataset) == 2:
        names = {0: negative, 1: binary_positive(dataset)}
    else:
        names = dict(enumerate(dataset.labels))
    wanted = {int(ids[index]): names[int(label)] for index, label in zip(indices, labels)}
    standing = standing_pseudo(dataset)
    retract = [(item, label_id) for item, (label_id, value) in standing.items() if wanted.get(item) != value]
    add = [(item, value) for item, value in wanted.items() if standing.get(item, (None, None))[1] != value]
    rows = ([{"item": item, "kind": "undo", "value": None, "retracts": label_id, "source": "pseudo"}
             for item, label_id in retract]
            + [{"item": item, "kind": "label", "value": value, "source": "pseudo"} for item, value in add])
    with database.atomic():
        for start in range(0, len(rows), INSERT_BATCH):
            Label.insert_many(rows[start:start + INSERT_BATCH]).execute()
    if rows:
        refresh_statistics(Label)
    return len(add), len(retract)


def run_retrain(dataset, progress, config):
    """The retrain job's handler (labeler.worker.jobs): retrain unless no human label arrived since the last
    finished retrain and the serving scores cover the pool; afterwards queue the autoencoder job when its stored
    outputs are missing or were computed on a pool of another size. Returns the job's summary, with the
    human-label watermark it trained on."""
    watermark = human_label_watermark(dataset)
    progress.record(watermark=watermark)
    if watermark <= last_trained_watermark(dataset) and not scores_fall_short(dataset):
        return {"stage": "no new labels: nothing to do"}
    summary = retrain(dataset, config.MODEL_FOLDER, progress)
    pruned, freed = prune_version_files(dataset)
    if pruned:
        summary["pruned"] = {"versions": pruned, "bytes": freed}
    if autoencoder_outdated(dataset):
        jobs.request(dataset, jobs.AUTOENCODER, "after a retrain")
    return summary


def human_label_watermark(dataset):
    """The id of the newest human or review label row (labels and undos) of ``dataset``, 0 when none."""
    return (Label.select(fn.MAX(Label.id)).join(Item)
            .where((Item.dataset == dataset) & Label.source.in_(("human", "review"))).scalar() or 0)


def scores_fall_short(dataset):
    """True when the version whose stored scores serve ``dataset``'s queue scored fewer items than the pool holds
    now: rows appended since (pushed through the API, imported) wait unqueued until a retrain scores them, with
    new labels or not."""
    size = pool_size(dataset)
    source = serving_scores(dataset, pool_size=size)
    return source.version is not None and len(source.scores) < size


def last_trained_watermark(dataset):
    """The watermark of the newest finished retrain of ``dataset``, 0 when none finished."""
    job = jobs.latest(dataset, jobs.RETRAIN, state="done")
    return (job.payload or {}).get("watermark", 0) if job else 0


def autoencoder_outdated(dataset):
    """True when ``dataset`` has no autoencoder outputs or they were computed on a pool of another size, and no
    autoencoder job of it waits or runs, and the last one did not fail on the pool as it is now."""
    size = pool_size(dataset)
    record = artifacts_of(dataset)
    if record is not None and record.pool_rows == size:
        return False
    if jobs.is_pending(dataset, jobs.AUTOENCODER):
        return False
    last = jobs.latest(dataset, jobs.AUTOENCODER)
    return last is None or not (last.state == "failed" and (last.payload or {}).get("pool_rows") == size)


def retrain(dataset, folder, progress=None, seed=None):
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

    Binary: the labels given since the last retrain join the prequential record (labeler.worker.prequential) with
    the scores their version stored, and the record chooses between the blend and its logistic part
    (models.prequential); the version serving either stores the other's pool scores too (``counterpart_path``).
    While the logistic part serves because the record cannot yet trust the blend, the queue and the pseudo-labels
    follow the blend's scores in that file (the version's metrics say "queue_from_counterpart"); the suggestions
    are the served scores, and the screen says which model picked (labeler.web.screen.pick_reason).

    Until both the positive label and another label were given, no model is trained and the queue comes from
    the cold start. ``progress(stage, percent)`` is told where it is; files go to ``folder``. Returns a summary dict for the job record, with seconds per stage under "timings".
    Runs on COMPUTE_THREADS BLAS/OpenMP threads. Raises OSError when a file cannot be written (the store is
    then unchanged).
    """
    with threadpool_limits(limits=COMPUTE_THREADS):
        return _retrain(dataset, progress, folder, seed)


def _retrain(dataset, progress, folder, seed):
    progress = progress or (lambda stage, percent: None)
    timings = Stopwatch()
    settings = engine_settings(dataset)
    progress("loading the pool", 5)
    ids, X = load_pool(dataset, folder)
    update_feature_stats(dataset, X)  # the screen's bars, when the pool grew since the last refill
    labeled, values = human_labels(dataset, ids)
    y = class_labels(dataset, values)
    known = y >= 0  # a label outside the label set (none is written so) is left out
    labeled, y = labeled[known], y[known]
    if len(ids) == 0 or len(np.unique(y)) < 2:
        queued = refresh_queue(dataset, size=settings["queue_size"], seed=seed, pool=(ids, X))
        return {"stage": f"cold start: {queued} queued (a model needs both labels)", "labels_used": int(len(y)),
                "queued": queued, "timings": timings.lap("cold start queue")}
    negative = negative_label(dataset, values)
    groups = groups_of(dataset, ids)  # the merchants of raw transactions: their label rates are features
    learner = learner_for(dataset, ids, X, settings, seed, groups, categorical_blocks(dataset))
    replay_picks(dataset, learner, int(np.sum(y == 1)))
    if learner.n_classes == 2:
        record_labels(dataset, ids)
        learner.prequential = record_of(dataset, ids, labeled, y)
    unlabeled_mask = np.ones(len(ids), dtype=bool)
    unlabeled_mask[labeled] = False
    pseudo = standing_pseudo_positions(dataset, ids, unlabeled_mask) if settings["pseudo_labels"] else None
    in_holdout = gate.holdout_mask(ids)
    held = in_holdout[labeled]
    timings.lap("load")

    progress("selecting the model", 20)
    baseline = serving_scores(dataset).version
    if len(np.unique(y[~held])) >= 2:
        twin_pseudo = None if pseudo is None else tuple(part[~in_holdout[pseudo[0]]] for part in pseudo)
        twin = learner.train(labeled[~held], y[~held], twin_pseudo)
        timings.lap("select")
        progress("gating", 50)
        holdout_scores = np.full((len(ids), *(() if learner.n_classes == 2 else (learner.n_classes,))), np.nan,
                                 dtype=np.float32)
        holdout_scores[in_holdout] = learner.score(
            twin.model, X[in_holdout], None if groups is None else tuple(part[in_holdout] for part in groups))
        verdict, baseline_name = gate_against(baseline, labeled[held], y[held], holdout_scores,
                                              lambda: cold_start_anomaly(dataset, ids, learner), learner.positives)
        timings.lap("gate")
    else:
        twin, holdout_scores, baseline_name = None, None, version_name(baseline)
        verdict = gate.GateResult(True, None, None, int(held.sum()), int(np.isin(y[held], learner.positives).sum()),
                                  None, "not compared: the labels outside the holdout hold a single label")
    kind = twin.kind if twin is not None else None
    metrics = {"positives": int(np.isin(y, learner.positives).sum()), "holdout_labels": int(held.sum()),
               "pseudo_labels": 0 if pseudo is None else int(len(pseudo[0]))}
    summary_gate = {**verdict.as_dict(), "level": gate.LEVEL, "baseline": baseline_name,
                    "baseline_version": baseline.id if baseline is not None else None}
    if not verdict.passed:
        line = (f"{baseline_name} kept: new model {'macro ' if learner.n_classes > 2 else ''}AP "
                f"{verdict.new_ap:.2f} vs {verdict.old_ap:.2f} "
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
    pool = learner.pool_features()  # with the merchants' label rates, if grouped: computed once for both scores
    p_positive = served.model.predict(pool)
    timings.lap("score pool")
    progress("saving the scores", 75)
    stem = os.path.join(folder, f"dataset-{dataset.id}-{uuid.uuid4().hex}")
    files = {"scores": stem + ".scores.npy"}
    digests = {"scores": save_scores(p_positive, files["scores"])}
    if holdout_scores is not None:
        files["holdout"] = stem + ".holdout.npy"
        digests["holdout"] = save_scores(holdout_scores, files["holdout"])
    queue_scores = p_positive  # what picks the queue and the pseudo-labels
    if learner.n_classes == 2 and served.kind in (weak.BLEND, weak.LOGISTIC_PART):  # for the prequential record
        files["counterpart"] = stem + ".counterpart.npy"
        counterpart = served.model.counterpart(pool)
        digests["counterpart"] = save_scores(counterpart, files["counterpart"])
        if served.queue_from_other:
            queue_scores = counterpart
            metrics["queue_from_counterpart"] = True  # the refill picks by the counterpart file too
    timings.lap("save files")
    unlabeled = np.flatnonzero(unlabeled_mask)
    picks = learner.pick(queue_scores, unlabeled, settings["queue_size"])
    if learner.disagreement is not None:  # the committee picked a share: the refill picks it by the same scores
        files["committee"] = stem + ".committee.npy"
        digests["committee"] = save_scores(learner.disagreement, files["committee"])
    if learner.adaptive is not None:
        metrics["adaptive"] = learner.adaptive.state()  # the shares this queue took, for the models page
    timings.lap("pick queue")
    progress("switching to the new model", 85)
    metrics.update(served.metrics.get(served.kind) or {}, candidates=served.metrics, seconds=timings.total())
    device = training_device_of(learner, served.kind)
    with write_transaction():
        advisory_lock("queue", dataset.id)  # a refill that scored the old version then writes nothing
        ModelVersion.update(serving=False).where(ModelVersion.dataset == dataset).execute()
        version = ModelVersion.create(dataset=dataset, kind=served.kind, scores_path=files["scores"],
                                      holdout_path=files.get("holdout"), counterpart_path=files.get("counterpart"),
                                      committee_path=files.get("committee"),
                                      digests=digests, metrics=metrics, device=device, labels_used=int(len(y)),
                                      serving=True, served_at=utcnow(), gate=summary_gate)
        queued = write_queue(dataset, ids, picks, p_positive, negative, version)
    timings.lap("switch + queue")
    progress("writing pseudo-labels", 90)
    # switched off, the standing pseudo-labels are retracted: none is left in the item table or the export
    indices, pseudo_y = learner.pseudo(queue_scores, unlabeled) or (np.zeros(0, np.int64), np.zeros(0, np.int8))
    written = write_pseudo_labels(dataset, ids, indices, pseudo_y, negative)
    with write_transaction():
        ModelVersion.update(metrics={**metrics, "pseudo_standing": int(len(indices))}).where(
            ModelVersion.id == version.id).execute()
    timings.lap("pseudo-labels")
    auprc = metrics.get("auprc")
    measure = "macro AP" if learner.n_classes > 2 else "AP"
    stage = (f"model {version.id} ({served.kind}) serving; holdout {measure} "
             f"{'-' if verdict.new_ap is None else f'{verdict.new_ap:.2f}'} vs {baseline_name} "
             f"{'-' if verdict.old_ap is None else f'{verdict.old_ap:.2f}'}; {queued} queued")
    return {"stage": stage[:120], "model_version": version.id, "serving": True, "kind": served.kind,
            "auprc": auprc, "labels_used": int(len(y)), "gate": summary_gate, "device": device,
            "pseudo_added": written[0], "pseudo_retracted": written[1], "queued": queued,
            "timings": timings.laps}


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


def standing_pseudo_positions(dataset, ids, unlabeled_mask):
    """(pool indices, labels as class_labels gives them) of ``dataset``'s standing pseudo-labels on items still
    unlabeled."""
    standing = standing_pseudo(dataset)
    items = np.array(list(standing), dtype=np.int64)
    positions = np.searchsorted(ids, items)
    keep = positions < len(ids)
    keep[keep] &= ids[positions[keep]] == items[keep]
    positions, items = positions[keep], items[keep]
    keep = unlabeled_mask[positions]
    labels = class_labels(dataset, [standing[item][1] for item in items[keep]])
    known = labels >= 0
    return positions[keep][known], labels[known]


def fit_serving(learner, selected, labeled, y, pseudo=None):
    """The model to serve: ``selected`` (learner.train's choice on part of the labels) refitted on the pool
    indices ``labeled`` with labels ``y`` and the optional pseudo-labels ((pool indices, labels)), with the same
    kind and calibration. Returns a selection.Selected. Raises ValueError when ``y`` holds a single class."""
    features = learner.features_with_labels(labeled, y)  # with the merchants' label rates, if grouped
    pseudo_set = None
    if pseudo is not None and len(pseudo[0]):
        pseudo_set = (features[pseudo[0]], learner.labels_of(pseudo[1]))
    weight = learner.settings["human_weight"] if pseudo_set is not None else 1.0
    model = selection.fit_final(selected.kind, features[labeled], learner.labels_of(y), pseudo_set,
                                weight, learner.seed, learner.generative, learner.categorical, learner.n_classes)
    model.calibration = selected.model.calibration
    return selection.Selected(model=model, kind=selected.kind, metrics=selected.metrics,
                              queue_from_other=selected.queue_from_other)


def gate_against(baseline, held, y_held, holdout_scores, cold_start_score, positives=(1,)):
    """The gate's verdict on the new twin's pool-aligned ``holdout_scores`` at the held-out pool indices ``held``
    (labels ``y_held``) against ``baseline``: the version whose scores serve the queue (its stored twin scores),
    or None for the cold start, whose pool score ``cold_start_score()`` gives. K labels (``holdout_scores``
    (n, K)): macro average precision (gate.compare_classes, ``positives`` the positive classes), and the cold
    start, which ranks no label, is every label equally likely. Without a baseline's scores to compare with, the
    new twin is measured alone (gate.alone). Returns (GateResult, baseline name).
    """
    name = version_name(baseline)
    classes = holdout_scores.ndim == 2
    y_held = np.asarray(y_held, dtype=np.int64 if classes else np.int8)

    def compare(y, new, old):
        return gate.compare_classes(y, new, old, positives) if classes else gate.compare(y, new, old)

    if baseline is None:
        if classes:
            return compare(y_held, holdout_scores[held], np.full(holdout_scores[held].shape, 1.0)), name
        return compare(y_held, holdout_scores[held], cold_start_score()[held]), name
    try:
        old = load_scores(baseline.holdout_path, (baseline.digests or {}).get("holdout"))
    except (OSError, ValueError) as error:
        return gate.alone(y_held, holdout_scores[held],
                          f"not compared: {name} has no readable held-out scores ({error})", positives), name
    if old.ndim != holdout_scores.ndim:
        return gate.alone(y_held, holdout_scores[held], f"not compared: {name} scored another label set",
                          positives), name
    scored = held < len(old)  # items imported after the baseline was trained have no score of it
    held, y_held = held[scored], y_held[scored]
    scored = ~np.isnan(old[held]).reshape(len(held), -1).any(axis=1)
    return compare(y_held[scored], holdout_scores[held[scored]], old[held[scored]]), name


def training_device_of(learner, kind):
    """The device that trained model ``kind``: for a generative candidate, the device its Keras model trained on
    (models.keras_common.training_device, as the learner's GenerativeCandidates recorded it), else "cpu" (the
    weak models are scikit-learn)."""
    if learner.generative is None or not generative_candidates.is_generative(kind):
        return "cpu"
    return learner.generative.device_of(kind) or "cpu"
