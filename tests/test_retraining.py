"""Retrain triggers, debounce, job states and recovery (the train step isolated; the real one in test_worker)."""
from labeler import retraining
from labeler.db import Item, Job, Label


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
    from labeler import labeling
    from labeler.queue import refresh_queue

    dataset.settings = {**dataset.settings, "retrain_every": 3}
    dataset.save()
    refresh_queue(dataset)
    for _ in range(2):
        lease = labeling.next_item(dataset, analyst)
        labeling.decide(dataset, analyst, lease.item_id, "accept")
    assert Job.select().count() == 0
    lease = labeling.next_item(dataset, analyst)
    labeling.decide(dataset, analyst, lease.item_id, "accept")
    job = Job.get()
    assert (job.kind, job.state, job.payload["reason"]) == ("retrain", "queued", "3 new labels")
