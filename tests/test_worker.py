"""The real retrain path: the task queue's message running the retrain job, and a worker process killed with
SIGKILL mid-retrain."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.store.db import GroundTruth, Item, Job, Label, ModelVersion, QueueEntry, Standing, database, open_database
from labeler.store.files import load_scores
from labeler.store.migrations import upgrade
from labeler.store.pool import pool_size
from labeler.store.serving import serving_scores
from labeler.worker import jobs
from labeler.worker.jobs import task_queue
from tests.conftest import PASSWORD, ROOT


def label_from_truth(dataset, user, frauds, genuine):
    """Human labels copied from ground truth: ``frauds`` positives and ``genuine`` negatives."""
    truth = {row.item_id: row.value for row in GroundTruth.select().join(Item).where(Item.dataset == dataset)}
    positives = [i for i, v in truth.items() if v == dataset.positive_label][:frauds]
    negatives = [i for i, v in truth.items() if v != dataset.positive_label][:genuine]
    for item_id in positives + negatives:
        Label.create(item=item_id, value=truth[item_id], annotator=user, source="human")
    Standing.refresh(positives + negatives)
    return len(positives) + len(negatives)


def test_the_queued_message_trains_serves_and_requeues(dataset, analyst, config):
    label_from_truth(dataset, analyst, frauds=10, genuine=40)
    job, created = jobs.request(dataset, jobs.RETRAIN, "test")
    huey = task_queue.huey
    assert created and [task.args for task in huey.pending()] == [(job.id,)]
    huey.execute(huey.dequeue())  # what the worker's consumer does with the message
    job = Job.get_by_id(job.id)
    assert job.state == "done", job.error
    version = ModelVersion.get((ModelVersion.dataset == dataset) & (ModelVersion.serving == True))  # noqa: E712
    assert version.labels_used == 50 and version.path is None
    assert os.path.dirname(version.scores_path) == config.MODEL_FOLDER
    assert os.path.exists(version.scores_path) and os.path.exists(version.holdout_path)
    assert version.device == "cpu" and version.gate["passed"]
    assert job.payload["model_version"] == version.id
    queued = QueueEntry.select().where(QueueEntry.dataset == dataset)
    assert queued.count() > 0
    assert {entry.model_version_id for entry in queued} == {version.id}
    # the retrain asked for the autoencoder's outputs, which the dataset lacks: one more message waits
    autoencoder = jobs.latest(dataset, jobs.AUTOENCODER)
    assert (autoencoder.state, autoencoder.payload["reason"]) == ("queued", "after a retrain")
    assert [task.args for task in huey.pending()] == [(autoencoder.id,)]


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.connection_context():
            value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_worker_killed_mid_retrain_loses_nothing(tmp_path, small_csv):
    store = str(tmp_path / "labeler.sqlite3")
    env = {**os.environ, "LABELER_DATABASE": store, "LABELER_INSTANCE": str(tmp_path),
           "LABELER_QUEUE": str(tmp_path / "queue.sqlite3"), "LABELER_MODELS": str(tmp_path / "models"),
           "LABELER_SECRET_KEY": "test-secret", "PYTHONUNBUFFERED": "1"}
    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = import_file(small_csv, "cc", label_column="Class").dataset
        analyst = create_user("ana", PASSWORD, "analyst")
        label_from_truth(dataset, analyst, frauds=10, genuine=40)

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)

    def start_worker(log):
        with open(log, "w") as out:
            return subprocess.Popen([sys.executable, "manage.py", "worker"], cwd=ROOT, env=env,
                                    stdout=out, stderr=subprocess.DEVNULL)

    worker = start_worker(tmp_path / "first-worker.log")
    try:
        first = manage("retrain", "--dataset", "cc", "--wait", "--timeout", "240")
        assert first.returncode == 0, first.stdout + first.stderr
        # jobs the retrain queued in turn (the autoencoder job) finish before the next retrain
        _wait_for(lambda: not Job.select().where(Job.state.in_(("queued", "running"))).exists(), 240,
                  "the worker to be idle")
        with database.connection_context():
            serving = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
            assert serving.scores_path.startswith(str(tmp_path / "models"))
            served_scores = load_scores(serving.scores_path, serving.digests["scores"])
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
            assert still.id == serving.id
            # its scores file is intact and still serves the queue, as written
            serving_now = serving_scores(dataset, pool_size=pool_size(dataset))
            assert serving_now.notice is None and serving_now.version.id == serving.id
            assert np.array_equal(serving_now.scores, served_scores)
            dataset.settings = {**dataset.settings, "cv_repeats": 1}
            dataset.save()
        worker = start_worker(tmp_path / "second-worker.log")
        _wait_for(lambda: ModelVersion.get_or_none((ModelVersion.serving == True)  # noqa: E712
                                                   & (ModelVersion.id != serving.id)), 240, "a new model to serve")
        with database.connection_context():
            retrains = list(Job.select().where(Job.kind == "retrain").order_by(Job.id))
            assert [job.state for job in retrains[:2]] == ["done", "failed"] and retrains[1].stage == "interrupted"
            assert retrains[2].payload["reason"] == "retry after an interrupted retrain job"
            new = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
            assert new.labels_used == 100
        assert "1 interrupted retrain job(s) marked failed and queued again." in \
            (tmp_path / "second-worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
