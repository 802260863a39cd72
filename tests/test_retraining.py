"""The job lifecycle (labeler.worker.jobs) for each kind: single-flight requests, progress, failures, recovery of
interrupted jobs, the retrain trigger after labels; then the real retrain on the real sample: the gate, stored
scores, the atomic switch, unusable scores files, labels posted during a retrain."""
import os
import pickle
import threading

import numpy as np
import pytest
from playhouse.migrate import SqliteMigrator, migrate

from labeler.labeling import decisions, leases
from labeler.store import migrations
from labeler.store.db import (GroundTruth, Item, Job, Label, ModelVersion, QueueEntry, Standing, database,
                              open_database, write_transaction)
from labeler.store.artifacts import artifacts_of
from labeler.store.pool import load_pool, pool_size
from labeler.store.serving import serving_scores, version_problem
from labeler.web.screen import dataset_status
from labeler.worker import autoencoder as autoencoder_module
from labeler.worker import jobs
from labeler.worker import refill as refill_module
from labeler.worker import retrain as retrain_module
from labeler.worker.jobs import task_queue
from labeler.worker.refill import refresh_queue
from labeler.worker.retrain import retrain
from models import gate, learner, selection
from tests.conftest import login

HX = {"HX-Request": "true"}


def _label(dataset, user, n, start=0):
    items = list(Item.select().where(Item.dataset == dataset).order_by(Item.id).offset(start).limit(n))
    for item in items:
        Label.create(item=item, value="genuine", annotator=user, source="human")
    Standing.refresh(item.id for item in items)


def handed_to_the_queue(kind=None):
    """The job ids sent to the task queue and not consumed yet, oldest first (of ``kind`` when given)."""
    ids = [task.args[0] for task in task_queue.huey.pending()]
    return [job_id for job_id in ids if kind is None or Job.get_by_id(job_id).kind == kind]


def decide_next(dataset, user, decision="accept"):
    """Lease the next item as the labeling screen does and decide it; returns the Outcome."""
    lease = leases.next_item(dataset, user)
    outcome, _ = decisions.decide(dataset, user, lease.item_id, decision)
    assert outcome.kind == "recorded", outcome.message
    return outcome


def test_a_request_is_single_flight_per_dataset_and_kind(dataset):
    first, created = jobs.request(dataset, jobs.RETRAIN, "test")
    assert created and (first.state, first.stage, first.payload) == ("queued", "queued", {"reason": "test"})
    again, created_again = jobs.request(dataset, jobs.RETRAIN, "cron")
    assert again.id == first.id and not created_again
    other, created_other = jobs.request(dataset, jobs.AUTOENCODER, "test", options={"epochs": 2})
    assert created_other and other.id != first.id and other.payload["options"] == {"epochs": 2}
    assert handed_to_the_queue() == [first.id, other.id]  # the committed job, once; the duplicate not at all
    silent, _ = jobs.request(dataset, jobs.REFILL, "test", enqueue=False)
    assert handed_to_the_queue() == [first.id, other.id] and jobs.is_pending(dataset, jobs.REFILL)
    assert jobs.latest(dataset, jobs.REFILL).id == silent.id and jobs.latest(dataset, jobs.REFILL, "done") is None
    with pytest.raises(ValueError, match="unknown job kind 'train'"):
        jobs.request(dataset, "train", "test")


def test_labeling_screen_decisions_queue_one_debounced_retrain(queued, analyst):
    queued.settings = {**queued.settings, "retrain_every": 3}
    queued.save()
    for _ in range(2):  # one class only: no first label of a class beside another's to retrain for at once
        decide_next(queued, analyst, "label:genuine")
    assert jobs.latest(queued, jobs.RETRAIN) is None  # the trigger runs inline after each decision
    decide_next(queued, analyst, "label:genuine")
    job = jobs.latest(queued, jobs.RETRAIN)
    assert (job.state, job.payload["reason"]) == ("queued", "3 new labels")
    for _ in range(5):
        decide_next(queued, analyst, "label:genuine")
    assert Job.select().where(Job.kind == jobs.RETRAIN).count() == 1
    assert jobs.latest(queued, jobs.RETRAIN).id == job.id
    assert handed_to_the_queue(jobs.RETRAIN) == [job.id]


def test_a_retrain_job_records_progress_queues_the_autoencoder_and_skips_when_nothing_is_new(dataset, analyst,
                                                                                           config, monkeypatch):
    _label(dataset, analyst, 4)
    calls = []

    def train(ds, folder, progress=None, seed=None):
        progress("training", 50)
        calls.append((Job.get(Job.state == "running").stage, folder))
        return {"stage": "model 1 serving", "model_version": 1}

    monkeypatch.setattr(retrain_module, "retrain", train)
    job, created = jobs.request(dataset, jobs.RETRAIN, "test")
    assert created
    assert jobs.run(job.id, config) == "done"
    done = Job.get_by_id(job.id)
    assert calls == [("training", config.MODEL_FOLDER)]
    assert (done.stage, done.percent, done.payload["model_version"]) == ("model 1 serving", 100.0, 1)
    assert done.payload["watermark"] == retrain_module.human_label_watermark(dataset) > 0
    assert done.started_at is not None and done.finished_at is not None and done.error is None
    # no autoencoder outputs yet: the retrain asks the worker for them
    autoencoder = jobs.latest(dataset, jobs.AUTOENCODER)
    assert (autoencoder.state, autoencoder.payload["reason"]) == ("queued", "after a retrain")
    assert jobs.run(job.id, config) == "done"  # a job no longer waiting is left alone
    assert len(calls) == 1

    again, _ = jobs.request(dataset, jobs.RETRAIN, "cron")
    assert jobs.run(again.id, config) == "done"
    assert len(calls) == 1
    assert Job.get_by_id(again.id).stage == "no new labels: nothing to do"
    assert Job.select().where(Job.kind == jobs.AUTOENCODER).count() == 1


def test_a_failed_retrain_is_recorded_and_counts_no_labels_as_trained(dataset, analyst, config, monkeypatch):
    _label(dataset, analyst, 2)

    def train(ds, folder, progress=None, seed=None):
        raise ValueError("only one class labeled")

    monkeypatch.setattr(retrain_module, "retrain", train)
    job, _ = jobs.request(dataset, jobs.RETRAIN, "test")
    assert jobs.run(job.id, config) == "failed"
    failed = Job.get_by_id(job.id)
    assert (failed.state, failed.stage) == ("failed", "failed")
    assert failed.error == "ValueError: only one class labeled" and failed.finished_at is not None
    assert failed.payload["watermark"] == retrain_module.human_label_watermark(dataset)  # recorded first, kept
    assert retrain_module.last_trained_watermark(dataset) == 0
    assert jobs.latest(dataset, jobs.AUTOENCODER) is None


def test_a_failed_refill_keeps_the_queue_that_was_there(queued, config, monkeypatch):
    before = [(entry.id, entry.item_id) for entry in QueueEntry.select().where(QueueEntry.dataset == queued)]
    assert len(before) == 500

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(refill_module, "load_pool", broken)
    job, created = jobs.request(queued, jobs.REFILL, "test")
    assert created and jobs.run(job.id, config) == "failed"
    assert Job.get_by_id(job.id).error == "OSError: disk full"
    assert [(entry.id, entry.item_id) for entry in QueueEntry.select().where(QueueEntry.dataset == queued)] == before


def test_a_failed_autoencoder_job_records_the_pool_it_failed_on(dataset, config, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError("the autoencoder does not fit")

    monkeypatch.setattr(autoencoder_module, "fit_autoencoder", out_of_memory)
    job, _ = jobs.request(dataset, jobs.AUTOENCODER, "after a retrain")
    assert jobs.run(job.id, config) == "failed"
    failed = Job.get_by_id(job.id)
    assert failed.error == "MemoryError: the autoencoder does not fit"
    assert failed.payload["pool_rows"] == pool_size(dataset) == len(load_pool(dataset)[0])  # recorded first, kept
    assert artifacts_of(dataset) is None and not os.path.exists(os.path.join(config.MODEL_FOLDER,
                                                                             f"generative-{dataset.id}"))
    assert not retrain_module.autoencoder_outdated(dataset)  # not retried after every retrain on this pool


@pytest.mark.parametrize("kind", [jobs.RETRAIN, jobs.AUTOENCODER, jobs.REFILL])
def test_an_interrupted_job_is_failed_and_queued_again(dataset, analyst, kind):
    _label(dataset, analyst, 2)
    job, _ = jobs.request(dataset, kind, "test", enqueue=False)
    with write_transaction():
        Job.update(state="running", stage="halfway").where(Job.id == job.id).execute()
    other = next(name for name in jobs.HANDLERS if name != kind)
    waiting, _ = jobs.request(dataset, other, "test", enqueue=False)  # its message was lost with the worker
    assert handed_to_the_queue() == []
    assert jobs.recover_interrupted() == {kind: 1}
    stopped = Job.get_by_id(job.id)
    assert (stopped.state, stopped.stage) == ("failed", "interrupted") and "worker stopped" in stopped.error
    fresh = Job.get((Job.kind == kind) & (Job.state == "queued"))
    assert fresh.id != job.id and fresh.payload["reason"] == f"retry after an interrupted {kind} job"
    assert handed_to_the_queue() == [waiting.id, fresh.id]
    assert jobs.recover_interrupted() == {}  # nothing runs now: only the waiting jobs are handed over again


# ---------------------------------------------------------------------------------------------------------------
# The real retrain


def truth_of(dataset):
    return dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item).where(Item.dataset == dataset)
                .order_by(GroundTruth.item).tuples())


def label_truth(dataset, user, frauds, genuine):
    """Human labels copied from the ground truth: the first ``frauds`` positives and ``genuine`` negatives."""
    truth = truth_of(dataset)
    chosen = ([i for i, v in truth.items() if v == dataset.positive_label][:frauds]
              + [i for i, v in truth.items() if v != dataset.positive_label][:genuine])
    for item_id in chosen:
        Label.create(item=item_id, value=truth[item_id], annotator=user, source="human")
    Standing.refresh(chosen)
    return chosen


def queue_of(dataset):
    return list(QueueEntry.select().where(QueueEntry.dataset == dataset).order_by(QueueEntry.priority))


def status_html(app):
    client = app.test_client()
    login(client, "ana")
    return client.get("/datasets/cc/label/status", headers=HX).get_data(as_text=True)


def test_first_model_is_gated_against_the_cold_start_and_its_scores_are_stored(app, quick, analyst, tmp_path,
                                                                                run_jobs, monkeypatch):
    labeled = label_truth(quick, analyst, frauds=20, genuine=200)
    summary = retrain(quick, str(tmp_path))
    version = ModelVersion.get_by_id(summary["model_version"])
    ids, _ = load_pool(quick)
    in_holdout = gate.holdout_mask(ids)
    assert version.serving and version.served_at is not None and version.device == "cpu"
    assert version.labels_used == 220 and version.gate["passed"] and version.gate["baseline"] == "cold start"
    assert version.gate["holdout"] == version.metrics["holdout_labels"] == int(gate.holdout_mask(labeled).sum()) > 0
    scores = np.load(version.scores_path)
    assert scores.dtype == np.float32 and scores.shape == ids.shape and ((scores >= 0) & (scores <= 1)).all()
    twin = np.load(version.holdout_path)
    assert np.isnan(twin[~in_holdout]).all() and not np.isnan(twin[in_holdout]).any()
    assert version_problem(version) is None
    assert version.path is None and set(version.digests) == {"scores", "holdout", "counterpart"}  # no model file at all

    # the refill job queues from the stored scores: it neither unpickles nor trains a model
    def refuse(*args, **kwargs):
        raise AssertionError("the queue refill loaded or trained a model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(learner.ActiveLearner, "train", refuse)
    monkeypatch.setattr(selection, "fit_final", refuse)
    job, _ = jobs.request(quick, jobs.REFILL, "test")
    assert run_jobs(quick) == {job.id: "done"}
    assert Job.get_by_id(job.id).payload["queued"] == 500
    entries = queue_of(quick)
    assert {entry.model_version_id for entry in entries} == {version.id}
    position = {item: index for index, item in enumerate(ids.tolist())}
    stored = [float(scores[position[entry.item_id]]) for entry in entries]
    assert np.allclose([entry.probabilities["fraud"] for entry in entries], stored, atol=1e-6)
    assert not set(labeled) & {entry.item_id for entry in entries}


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_worse_model_loses_the_gate_and_the_serving_model_stays(app, config, quick, analyst, tmp_path):
    labeled = label_truth(quick, analyst, frauds=30, genuine=300)
    first = retrain(quick, str(tmp_path))
    assert first["serving"], first
    queue_before = [(entry.id, entry.item_id, entry.model_version_id) for entry in queue_of(quick)]
    # an analyst inverts every label outside the holdout: the new model learns the opposite of the truth
    truth = truth_of(quick)
    outside = [item for item in labeled if not gate.holdout_mask([item])[0]]
    for item in outside:
        flipped = "genuine" if truth[item] == quick.positive_label else quick.positive_label
        Label.create(item=item, value=flipped, annotator=analyst, source="human")
    Standing.refresh(outside)
    job, _ = jobs.request(quick, jobs.RETRAIN, "test")
    assert jobs.run(job.id, config) == "done"

    serving = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
    loser = ModelVersion.select().order_by(ModelVersion.id.desc()).first()
    assert serving.id == first["model_version"] and loser.id != serving.id
    assert not loser.serving and loser.served_at is None and loser.path is None and loser.scores_path is None
    assert loser.gate["passed"] is False and loser.gate["baseline_version"] == serving.id
    assert loser.gate["new_ap"] < loser.gate["old_ap"] and loser.gate["bound"] < 0
    line = (f"model {serving.id} kept: new model AP {loser.gate['new_ap']:.2f} vs {loser.gate['old_ap']:.2f} on "
            f"{loser.gate['holdout']} held-out labels")
    assert loser.gate["line"] == line
    done = Job.get_by_id(job.id)
    assert done.stage == line and done.payload["serving"] is False and done.payload["gate"]["passed"] is False
    assert [(entry.id, entry.item_id, entry.model_version_id) for entry in queue_of(quick)] == queue_before
    assert dataset_status(quick)["gate"] == line
    assert line in status_html(app)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_failing_retrain_job_is_recorded_and_the_previous_model_keeps_serving(app, config, quick, analyst,
                                                                                tmp_path, monkeypatch):
    label_truth(quick, analyst, frauds=20, genuine=200)
    first = retrain(quick, str(tmp_path))
    served = ModelVersion.get_by_id(first["model_version"])
    queue_before = [(entry.id, entry.item_id, entry.model_version_id) for entry in queue_of(quick)]
    _label(quick, analyst, 5, start=1000)  # new labels: the job has work to do

    def disk_full(scores, path):  # the new model passed the gate and scored the pool: its scores cannot be saved
        raise OSError("disk full")

    monkeypatch.setattr(retrain_module, "save_scores", disk_full)
    job, _ = jobs.request(quick, jobs.RETRAIN, "test")
    assert jobs.run(job.id, config) == "failed"
    failed = Job.get_by_id(job.id)
    assert (failed.state, failed.stage, failed.error) == ("failed", "failed", "OSError: disk full")
    assert ModelVersion.select().count() == 1
    assert ModelVersion.get(ModelVersion.serving == True).id == served.id  # noqa: E712
    assert serving_scores(quick).version.id == served.id and version_problem(served) is None
    assert [(entry.id, entry.item_id, entry.model_version_id) for entry in queue_of(quick)] == queue_before
    assert retrain_module.last_trained_watermark(quick) == 0  # its labels count as new for the next retrain
    assert dataset_status(quick)["job"].id == job.id and "idle (last retrain failed" in status_html(app)


def test_the_switch_and_the_queue_rewrite_are_one_transaction(app, quick, analyst, tmp_path, monkeypatch):
    label_truth(quick, analyst, frauds=20, genuine=200)
    first = retrain(quick, str(tmp_path))
    queue_before = [(entry.id, entry.model_version_id) for entry in queue_of(quick)]
    versions_before = ModelVersion.select().count()

    def broken_insert(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(QueueEntry, "insert_many", broken_insert)
    with pytest.raises(OSError, match="disk full"):
        retrain(quick, str(tmp_path))
    assert ModelVersion.select().count() == versions_before
    assert ModelVersion.get(ModelVersion.serving == True).id == first["model_version"]  # noqa: E712
    assert [(entry.id, entry.model_version_id) for entry in queue_of(quick)] == queue_before


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_unusable_files_fall_back_to_the_last_good_version_then_the_cold_start(app, quick, analyst, tmp_path):
    label_truth(quick, analyst, frauds=20, genuine=200)
    first = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    second = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    assert second.serving and serving_scores(quick).notice is None
    assert 'class="notice"' not in status_html(app)

    with open(second.scores_path, "r+b") as stream:  # flip bytes inside the array, the header stays valid
        stream.seek(-64, os.SEEK_END)
        stream.write(os.urandom(64))
    refresh_queue(quick)
    assert {entry.model_version_id for entry in queue_of(quick)} == {first.id}
    notice = (f"model {second.id}: scores file {os.path.basename(second.scores_path)} is corrupt; "
              f"serving model {first.id} instead")
    assert dataset_status(quick)["notice"] == notice
    assert notice in status_html(app)

    os.remove(first.scores_path)
    refresh_queue(quick)
    entries = queue_of(quick)
    assert entries and {entry.model_version_id for entry in entries} == {None}
    assert {entry.strategy for entry in entries} <= {"cold start", "diversity", "exploration"}
    assert dataset_status(quick)["notice"] == (
        f"model {second.id}: scores file {os.path.basename(second.scores_path)} is corrupt; "
        f"serving the cold start instead")

    # the next retrain is gated against what really serves (the cold start) and serves again
    third = retrain(quick, str(tmp_path))
    assert third["serving"] and third["gate"]["baseline"] == "cold start"
    assert dataset_status(quick)["notice"] is None
    assert {entry.model_version_id for entry in queue_of(quick)} == {third["model_version"]}


def test_a_missing_scores_file_is_named_on_the_status_line(app, quick, analyst, tmp_path):
    label_truth(quick, analyst, frauds=20, genuine=200)
    only = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    os.remove(only.scores_path)
    refresh_queue(quick)
    assert {entry.model_version_id for entry in queue_of(quick)} == {None}
    assert (f"model {only.id}: scores file {os.path.basename(only.scores_path)} is missing; serving the cold "
            f"start instead") in status_html(app)


def test_labels_posted_while_a_retrain_runs_are_kept_and_counted(app, config, quick, analyst, monkeypatch):
    quick.settings = {**quick.settings, "retrain_every": 5}
    quick.save()
    label_truth(quick, analyst, frauds=10, genuine=40)
    refresh_queue(quick)
    selecting, posted = threading.Event(), threading.Event()

    def train(dataset, folder, progress=None, seed=None):
        def report(stage, percent):
            progress(stage, percent)
            if stage == "selecting the model":  # the retrain has read its labels: post more now
                selecting.set()
                posted.wait(120)
        return retrain(dataset, folder, report, seed)

    monkeypatch.setattr(retrain_module, "retrain", train)
    job, _ = jobs.request(quick, jobs.RETRAIN, "test")
    states = {}

    def run():
        with database.connection_context():
            states["first"] = jobs.run(job.id, config)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert selecting.wait(120), "the retrain never started selecting"
        posted_ids = []
        for _ in range(12):
            posted_ids.append(decide_next(quick, analyst, "label:genuine").label.id)
    finally:
        posted.set()
        worker.join(300)
    assert states["first"] == "done"
    first = Job.get_by_id(job.id)
    assert first.payload["labels_used"] == 50 and first.payload["serving"]
    assert Label.select().where(Label.id.in_(posted_ids)).count() == 12
    assert Label.effective(quick).count() == 62
    assert all(label_id > first.payload["watermark"] for label_id in posted_ids)
    waiting = Job.get((Job.state == "queued") & (Job.kind == "retrain"))  # queued by the decisions meanwhile
    assert waiting.id != job.id
    assert jobs.run(waiting.id, config) == "done"
    assert Job.get_by_id(waiting.id).payload["labels_used"] == 62


def test_migration_3_adds_the_model_version_columns(tmp_path):
    assert 3 in [version for version, _ in migrations.MIGRATIONS]
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        migrations.upgrade()
        columns = ("scores_path", "holdout_path", "digests", "gate", "served_at")
        migrator = SqliteMigrator(database.obj)
        table = ModelVersion._meta.table_name
        migrate(*[migrator.drop_column(table, column) for column in columns])
        migrations._model_version_files(migrator)
        migrations._model_version_files(migrator)  # safe to run again
        assert set(columns) <= {column.name for column in database.get_columns(table)}
