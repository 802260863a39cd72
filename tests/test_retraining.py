"""Retrain triggers, debounce, job states and recovery (the train step isolated), then the real engine on the
real sample: the gate, stored scores, the atomic switch, unusable files, labels posted during a retrain."""
import os
import pickle
import threading

import numpy as np
import pytest
from playhouse.migrate import SqliteMigrator, migrate

from labeler import engine, labeling, migrations, retraining
from labeler.db import GroundTruth, Item, Job, Label, ModelVersion, QueueEntry, database, open_database
from labeler.pool import load_pool
from labeler.queue import refresh_queue, serving_scores
from models import gate
from tests.conftest import login

HX = {"HX-Request": "true"}


def _label(dataset, user, n, start=0):
    items = list(Item.select().where(Item.dataset == dataset).order_by(Item.id).offset(start).limit(n))
    for item in items:
        Label.create(item=item, value="genuine", annotator=user, source="human")


def test_labels_trigger_one_debounced_retrain(dataset, analyst):
    dataset.settings = {**dataset.settings, "retrain_every": 3}
    dataset.save()
    queued = []
    _label(dataset, analyst, 2)
    assert retraining.note_new_labels(dataset, queued.append) is None
    _label(dataset, analyst, 1, start=2)
    job = retraining.note_new_labels(dataset, queued.append)
    assert job is not None and job.state == "queued"
    _label(dataset, analyst, 5, start=3)
    assert retraining.note_new_labels(dataset, queued.append).id == job.id
    assert queued == [job.id]
    assert Job.select().where(Job.kind == "retrain").count() == 1


def test_run_job_records_progress_and_skips_when_nothing_is_new(dataset, analyst):
    _label(dataset, analyst, 4)
    calls = []

    def train(ds, progress):
        progress("training", 50)
        calls.append(Job.get(Job.state == "running").stage)
        return {"stage": "model 1 serving", "model_version": 1}

    job, created = retraining.request_retrain(dataset, "test", lambda job_id: None)
    assert created
    assert retraining.run_job(job.id, train) == "done"
    done = Job.get_by_id(job.id)
    assert calls == ["training"]
    assert (done.stage, done.percent, done.payload["model_version"]) == ("model 1 serving", 100.0, 1)
    assert done.payload["watermark"] == retraining.human_label_watermark(dataset)

    again, _ = retraining.request_retrain(dataset, "cron", lambda job_id: None)
    assert retraining.run_job(again.id, train) == "done"
    assert calls == ["training"]
    assert Job.get_by_id(again.id).stage.startswith("no new labels")


def test_failed_training_is_recorded(dataset, analyst):
    _label(dataset, analyst, 2)

    def train(ds, progress):
        raise ValueError("only one class labeled")

    job, _ = retraining.request_retrain(dataset, "test", lambda job_id: None)
    assert retraining.run_job(job.id, train) == "failed"
    failed = Job.get_by_id(job.id)
    assert failed.state == "failed" and "only one class labeled" in failed.error
    assert retraining.last_trained_watermark(dataset) == 0


def test_interrupted_job_is_failed_and_queued_again(dataset, analyst):
    _label(dataset, analyst, 2)
    job, _ = retraining.request_retrain(dataset, "test", lambda job_id: None)
    Job.update(state="running").where(Job.id == job.id).execute()
    queued = []
    assert retraining.recover_interrupted(queued.append) == 1
    assert Job.get_by_id(job.id).state == "failed"
    fresh = Job.get(Job.state == "queued")
    assert queued == [fresh.id]


def test_labeling_screen_decisions_queue_a_retrain(dataset, analyst):
    dataset.settings = {**dataset.settings, "retrain_every": 3}
    dataset.save()
    refresh_queue(dataset)
    for _ in range(2):
        lease = labeling.next_item(dataset, analyst)
        labeling.decide(dataset, analyst, lease.item_id, "accept")
    labeling.retrain_watch.wait(timeout=60)  # the check runs beside the request, not in it
    assert Job.select().count() == 0
    lease = labeling.next_item(dataset, analyst)
    labeling.decide(dataset, analyst, lease.item_id, "accept")
    labeling.retrain_watch.wait(timeout=60)
    job = Job.get()
    assert (job.kind, job.state, job.payload["reason"]) == ("retrain", "queued", "3 new labels")


# ---------------------------------------------------------------------------------------------------------------
# The real engine


@pytest.fixture
def quick(dataset):
    """The sample dataset with a quick model selection (one repeat of the cross-validation)."""
    dataset.settings = {**dataset.settings, "cv_repeats": 1}
    dataset.save()
    return dataset


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
    return chosen


def queue_of(dataset):
    return list(QueueEntry.select().where(QueueEntry.dataset == dataset).order_by(QueueEntry.priority))


def status_html(app):
    client = app.test_client()
    login(client, "ana")
    return client.get("/datasets/cc/label/status", headers=HX).get_data(as_text=True)


def test_first_model_is_gated_against_the_cold_start_and_its_scores_are_stored(app, quick, analyst, tmp_path,
                                                                                monkeypatch):
    labeled = label_truth(quick, analyst, frauds=20, genuine=200)
    summary = engine.retrain(quick, folder=str(tmp_path))
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
    assert engine.version_problem(version) is None

    # the web's refresh uses the stored scores and never unpickles a model
    def refuse(*args, **kwargs):
        raise AssertionError("the queue refresh loaded a model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(engine, "load_model", refuse)
    assert refresh_queue(quick) == 500
    entries = queue_of(quick)
    assert {entry.model_version_id for entry in entries} == {version.id}
    position = {item: index for index, item in enumerate(ids.tolist())}
    stored = [float(scores[position[entry.item_id]]) for entry in entries]
    assert np.allclose([entry.probabilities["fraud"] for entry in entries], stored, atol=1e-6)
    assert not set(labeled) & {entry.item_id for entry in entries}


def test_a_worse_model_loses_the_gate_and_the_serving_model_stays(app, quick, analyst, tmp_path):
    labeled = label_truth(quick, analyst, frauds=30, genuine=300)
    first = engine.retrain(quick, folder=str(tmp_path))
    assert first["serving"], first
    queue_before = [(entry.id, entry.item_id, entry.model_version_id) for entry in queue_of(quick)]
    # an analyst inverts every label outside the holdout: the new model learns the opposite of the truth
    truth = truth_of(quick)
    outside = [item for item in labeled if not gate.holdout_mask([item])[0]]
    for item in outside:
        flipped = "genuine" if truth[item] == quick.positive_label else quick.positive_label
        Label.create(item=item, value=flipped, annotator=analyst, source="human")
    job, _ = retraining.request_retrain(quick, "test", lambda job_id: None)
    assert retraining.run_job(job.id, lambda ds, progress: engine.retrain(ds, progress, folder=str(tmp_path))) == "done"

    serving = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
    loser = ModelVersion.select().order_by(ModelVersion.id.desc()).first()
    assert serving.id == first["model_version"] and loser.id != serving.id
    assert not loser.serving and loser.served_at is None and loser.path is None
    assert loser.gate["passed"] is False and loser.gate["baseline_version"] == serving.id
    assert loser.gate["new_ap"] < loser.gate["old_ap"] and loser.gate["bound"] < 0
    line = (f"model {serving.id} kept: new model AP {loser.gate['new_ap']:.2f} vs {loser.gate['old_ap']:.2f} on "
            f"{loser.gate['holdout']} held-out labels")
    assert loser.gate["line"] == line
    done = Job.get_by_id(job.id)
    assert done.stage == line and done.payload["serving"] is False and done.payload["gate"]["passed"] is False
    assert [(entry.id, entry.item_id, entry.model_version_id) for entry in queue_of(quick)] == queue_before
    assert labeling.dataset_status(quick)["gate"] == line
    assert line in status_html(app)


def test_the_switch_and_the_queue_rewrite_are_one_transaction(app, quick, analyst, tmp_path, monkeypatch):
    label_truth(quick, analyst, frauds=20, genuine=200)
    first = engine.retrain(quick, folder=str(tmp_path))
    queue_before = [(entry.id, entry.model_version_id) for entry in queue_of(quick)]
    versions_before = ModelVersion.select().count()

    def broken_insert(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(QueueEntry, "insert_many", broken_insert)
    with pytest.raises(OSError, match="disk full"):
        engine.retrain(quick, folder=str(tmp_path))
    assert ModelVersion.select().count() == versions_before
    assert ModelVersion.get(ModelVersion.serving == True).id == first["model_version"]  # noqa: E712
    assert [(entry.id, entry.model_version_id) for entry in queue_of(quick)] == queue_before


def test_unusable_files_fall_back_to_the_last_good_version_then_the_cold_start(app, quick, analyst, tmp_path):
    label_truth(quick, analyst, frauds=20, genuine=200)
    first = ModelVersion.get_by_id(engine.retrain(quick, folder=str(tmp_path))["model_version"])
    second = ModelVersion.get_by_id(engine.retrain(quick, folder=str(tmp_path))["model_version"])
    assert second.serving and serving_scores(quick).notice is None
    assert 'class="notice"' not in status_html(app)

    with open(second.scores_path, "r+b") as stream:  # flip bytes inside the array, the header stays valid
        stream.seek(-64, os.SEEK_END)
        stream.write(os.urandom(64))
    refresh_queue(quick)
    assert {entry.model_version_id for entry in queue_of(quick)} == {first.id}
    notice = (f"model {second.id}: scores file {os.path.basename(second.scores_path)} is corrupt; "
              f"serving model {first.id} instead")
    assert labeling.dataset_status(quick)["notice"] == notice
    assert notice in status_html(app)

    os.remove(first.path)
    refresh_queue(quick)
    entries = queue_of(quick)
    assert entries and {entry.model_version_id for entry in entries} == {None}
    assert {entry.strategy for entry in entries} <= {"cold start", "exploration"}
    assert labeling.dataset_status(quick)["notice"] == (
        f"model {second.id}: scores file {os.path.basename(second.scores_path)} is corrupt; "
        f"serving the cold start instead")

    # the next retrain is gated against what really serves (the cold start) and serves again
    third = engine.retrain(quick, folder=str(tmp_path))
    assert third["serving"] and third["gate"]["baseline"] == "cold start"
    assert labeling.dataset_status(quick)["notice"] is None
    assert {entry.model_version_id for entry in queue_of(quick)} == {third["model_version"]}


def test_a_missing_model_file_is_named_on_the_status_line(app, quick, analyst, tmp_path):
    label_truth(quick, analyst, frauds=20, genuine=200)
    only = ModelVersion.get_by_id(engine.retrain(quick, folder=str(tmp_path))["model_version"])
    os.remove(only.path)
    refresh_queue(quick)
    assert {entry.model_version_id for entry in queue_of(quick)} == {None}
    assert (f"model {only.id}: model file {os.path.basename(only.path)} is missing; serving the cold start "
            f"instead") in status_html(app)


def test_labels_posted_while_a_retrain_runs_are_kept_and_counted(app, quick, analyst, tmp_path):
    quick.settings = {**quick.settings, "retrain_every": 5}
    quick.save()
    label_truth(quick, analyst, frauds=10, genuine=40)
    refresh_queue(quick)
    selecting, posted = threading.Event(), threading.Event()

    def train(dataset, progress):
        def report(stage, percent):
            progress(stage, percent)
            if stage == "selecting the model":  # the retrain has read its labels: post more now
                selecting.set()
                posted.wait(120)
        return engine.retrain(dataset, report, folder=str(tmp_path))

    job, _ = retraining.request_retrain(quick, "test", lambda job_id: None)
    states = {}

    def run():
        with database.connection_context():
            states["first"] = retraining.run_job(job.id, train)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert selecting.wait(120), "the retrain never started selecting"
        posted_ids = []
        for _ in range(12):
            lease = labeling.next_item(quick, analyst)
            outcome, _ = labeling.decide(quick, analyst, lease.item_id, "label:genuine")
            assert outcome.kind == "recorded"
            posted_ids.append(outcome.label.id)
    finally:
        posted.set()
        worker.join(300)
    assert states["first"] == "done"
    first = Job.get_by_id(job.id)
    assert first.payload["labels_used"] == 50 and first.payload["serving"]
    assert Label.select().where(Label.id.in_(posted_ids)).count() == 12
    assert Label.effective(quick).count() == 62
    assert all(label_id > first.payload["watermark"] for label_id in posted_ids)
    labeling.retrain_watch.wait(timeout=60)
    waiting = Job.get((Job.state == "queued") & (Job.kind == "retrain"))  # queued by the decisions meanwhile
    assert retraining.run_job(waiting.id, lambda ds, progress: engine.retrain(ds, progress,
                                                                              folder=str(tmp_path))) == "done"
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
