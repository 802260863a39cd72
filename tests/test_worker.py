"""The real retrain path: Huey tasks running the engine, and a worker process killed with SIGKILL mid-retrain."""
import os
import signal
import subprocess
import sys
import time

import pytest

from labeler import retraining
from labeler.db import GroundTruth, Item, Job, Label, ModelVersion, QueueEntry, database, open_database
from labeler.importer import import_file
from labeler.migrations import upgrade
from labeler.users import create_user
from tests.conftest import PASSWORD, ROOT


def label_from_truth(dataset, user, frauds, genuine):
    """Human labels copied from ground truth: ``frauds`` positives and ``genuine`` negatives."""
    truth = {row.item_id: row.value for row in GroundTruth.select().join(Item).where(Item.dataset == dataset)}
    positives = [i for i, v in truth.items() if v == dataset.positive_label][:frauds]
    negatives = [i for i, v in truth.items() if v != dataset.positive_label][:genuine]
    for item_id in positives + negatives:
        Label.create(item=item_id, value=truth[item_id], annotator=user, source="human")
    return len(positives) + len(negatives)


@pytest.fixture
def immediate_huey(tmp_path, monkeypatch):
    from labeler.tasks import huey

    monkeypatch.setenv("LABELER_INSTANCE", str(tmp_path))
    huey.immediate = True
    yield huey
    huey.immediate = False


def test_retrain_task_trains_serves_and_requeues(dataset, analyst, immediate_huey):
    from labeler.tasks import enqueue_retrain

    label_from_truth(dataset, analyst, frauds=10, genuine=40)
    job, created = retraining.request_retrain(dataset, "test", enqueue_retrain)
    job = Job.get_by_id(job.id)
    assert created and job.state == "done", job.error
    version = ModelVersion.get((ModelVersion.dataset == dataset) & (ModelVersion.serving == True))  # noqa: E712
    assert version.labels_used == 50 and os.path.exists(version.path) and os.path.exists(version.scores_path)
    assert version.device == "cpu" and version.gate["passed"]
    assert job.payload["model_version"] == version.id
    queued = QueueEntry.select().where(QueueEntry.dataset == dataset)
    assert queued.count() > 0
    assert {entry.model_version_id for entry in queued} == {version.id}


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.connection_context():
            value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_mid_retrain_loses_nothing(tmp_path, small_csv):
    store = str(tmp_path / "labeler.sqlite3")
    env = {**os.environ, "LABELER_DATABASE": store, "LABELER_INSTANCE": str(tmp_path),
           "LABELER_QUEUE": str(tmp_path / "queue.sqlite3")}
    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = import_file(small_csv, "cc", label_column="Class").dataset
        analyst = create_user("ana", PASSWORD, "analyst")
        label_from_truth(dataset, analyst, frauds=10, genuine=40)

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)

    def start_worker():
        return subprocess.Popen([sys.executable, "manage.py", "worker"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    worker = start_worker()
    try:
        first = manage("retrain", "--dataset", "cc", "--wait", "--timeout", "240")
        assert first.returncode == 0, first.stdout + first.stderr
        # jobs the retrain queued in turn (the autoencoder of labeler.generative) finish before the next retrain
        _wait_for(lambda: not Job.select().where(Job.state.in_(("queued", "running"))).exists(), 240,
                  "the worker to be idle")
        with database.connection_context():
            serving = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
            label_from_truth(dataset, analyst, frauds=20, genuine=80)  # 50 items more, so the next retrain has work
            labels_before = Label.select().count()
            dataset.settings = {**dataset.settings, "cv_repeats": 20}  # a long model selection to kill into
            dataset.save()
        queued = manage("retrain", "--dataset", "cc")
        assert queued.returncode == 0, queued.stderr
        _wait_for(lambda: Job.get_or_none((Job.state == "running") & (Job.stage == "selecting the model")),
                  120, "the retrain to start selecting")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        with database.connection_context():
            assert Label.select().count() == labels_before
            still = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
            assert still.id == serving.id and os.path.exists(still.path)
            from labeler.engine import load_model
            from labeler.queue import serving_scores

            assert load_model(still.path) is not None
            assert serving_scores(dataset).notice is None  # its model and scores files are intact
            dataset.settings = {**dataset.settings, "cv_repeats": 1}
            dataset.save()
        worker = start_worker()
        _wait_for(lambda: ModelVersion.get_or_none((ModelVersion.serving == True)  # noqa: E712
                                                   & (ModelVersion.id != serving.id)), 240, "a new model to serve")
        with database.connection_context():
            retrains = list(Job.select().where(Job.kind == "retrain").order_by(Job.id))
            assert [job.state for job in retrains[:2]] == ["done", "failed"] and "interrupted" in retrains[1].stage
            new = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
            assert new.labels_used == 100
    finally:
        worker.terminate()
        worker.wait(timeout=30)
