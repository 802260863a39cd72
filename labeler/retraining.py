"""When to retrain, and the retrain job's life: queued, running, done or failed, with progress.

A retrain is debounced per dataset: at most one runs and at most one more waits. The job row holds the
human-label watermark (the highest label id it trained on), so a retrain that finds no new labels does nothing.
No Flask here; the worker runs ``run_job`` and the web process only calls ``request_retrain``/``note_new_labels``.
"""
from peewee import fn

from labeler.db import Dataset, Item, Job, JSONField, Label, database, utcnow, write_transaction

DEFAULT_RETRAIN_EVERY = 50
RETRAIN = "retrain"


def human_label_watermark(dataset):
    """The id of the newest human label row (labels and undos) of ``dataset``, 0 when none."""
    return (
        Label.select(fn.MAX(Label.id)).join(Item)
        .where((Item.dataset == dataset) & (Label.source == "human")).scalar() or 0
    )


def last_trained_watermark(dataset):
    """The watermark of the newest finished retrain of ``dataset``, 0 when none finished."""
    job = (Job.select().where((Job.dataset == dataset) & (Job.kind == RETRAIN) & (Job.state == "done"))
           .order_by(Job.id.desc()).first())
    return (job.payload or {}).get("watermark", 0) if job else 0


def latest_job(dataset):
    """The newest retrain job of ``dataset``, or None."""
    return (Job.select().where((Job.dataset == dataset) & (Job.kind == RETRAIN))
            .order_by(Job.id.desc()).first())


def request_retrain(dataset, reason, enqueue):
    """Queue a retrain of ``dataset`` unless one is already waiting; returns (job, created).

    ``enqueue(job_id)`` hands the job to the task queue once the job row is committed.
    """
    is_waiting = (Job.dataset == dataset) & (Job.kind == RETRAIN) & (Job.state == "queued")
    waiting = Job.get_or_none(is_waiting)
    if waiting is not None:
        return waiting, False
    with write_transaction():
        waiting = Job.get_or_none(is_waiting)
        if waiting is not None:
            return waiting, False
        job = Job.create(dataset=dataset, kind=RETRAIN, state="queued", stage="queued", payload={"reason": reason})
    enqueue(job.id)
    return job, True


def note_new_labels(dataset, enqueue):
    """After a human label: queue a retrain once ``retrain_every`` labels arrived since the last one.

    Returns the queued job, or None when no retrain is due. Runs after every decision, so it is two indexed
    queries written as SQL (peewee's query building cost more than the queries themselves).
    """
    every = int((dataset.settings or {}).get("retrain_every", DEFAULT_RETRAIN_EVERY))
    param = database.param
    row = database.execute_sql(
        f'SELECT "payload" FROM "job" WHERE "dataset_id" = {param} AND "kind" = {param} AND "state" = {param} '
        f'ORDER BY "id" DESC LIMIT 1', (dataset.id, RETRAIN, "done")).fetchone()
    watermark = (JSONField().python_value(row[0]) or {}).get("watermark", 0) if row else 0
    new = database.execute_sql(
        f'SELECT COUNT(*) FROM "label" JOIN "item" ON "item"."id" = "label"."item_id" '
        f'WHERE "label"."id" > {param} AND "item"."dataset_id" = {param} AND "label"."source" = {param} '
        f'AND "label"."kind" = {param}', (watermark, dataset.id, "human", "label")).fetchone()[0]
    if new < every:
        return None
    job, _ = request_retrain(dataset, f"{new} new labels", enqueue)
    return job


def _update(job_id, **fields):
    with write_transaction():
        Job.update(**fields).where(Job.id == job_id).execute()


def run_job(job_id, train):
    """Run the retrain job ``job_id`` with ``train(dataset, progress)``; returns the job's final state.

    ``progress(stage, percent)`` is given to ``train`` to record where it is. Exceptions from ``train`` mark
    the job failed with the error (the serving model is left as it was) and are not raised further.
    """
    job = Job.get_by_id(job_id)
    if job.state != "queued":
        return job.state
    dataset = Dataset.get_by_id(job.dataset_id)
    watermark = human_label_watermark(dataset)
    payload = {**(job.payload or {}), "watermark": watermark}
    _update(job_id, state="running", stage="starting", percent=0.0, started_at=utcnow(), payload=payload)
    if watermark <= last_trained_watermark(dataset):
        _update(job_id, state="done", stage="no new labels: nothing to do", percent=100.0, finished_at=utcnow())
        return "done"

    def progress(stage, percent):
        _update(job_id, stage=stage, percent=float(percent))

    try:
        summary = train(dataset, progress) or {}
    except Exception as error:  # the job records any failure; the previous model keeps serving
        _update(job_id, state="failed", stage="failed", error=f"{type(error).__name__}: {error}",
                finished_at=utcnow())
        return "failed"
    _update(job_id, state="done", stage=summary.get("stage", "done"), percent=100.0, finished_at=utcnow(),
            payload={**payload, **{k: v for k, v in summary.items() if k != "stage"}})
    return "done"


def recover_interrupted(enqueue):
    """Mark jobs left 'running' by a dead worker as failed, queue a fresh retrain for their datasets, and
    hand every waiting job to the queue again (a message lost with the worker is harmless twice).

    Returns the number of interrupted jobs. Call only when no worker is running (at worker start).
    """
    waiting = list(Job.select().where((Job.kind == RETRAIN) & (Job.state == "queued")))
    for job in waiting:
        enqueue(job.id)
    stale = list(Job.select().where((Job.kind == RETRAIN) & (Job.state == "running")))
    for job in stale:
        _update(job.id, state="failed", stage="interrupted",
                error="the worker stopped during this retrain; a new one was queued", finished_at=utcnow())
        request_retrain(Dataset.get_by_id(job.dataset_id), "retry after an interrupted retrain", enqueue)
    return len(stale)
