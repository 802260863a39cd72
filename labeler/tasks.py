"""The task queue (Huey): SQLite storage beside the store by default, Redis when LABELER_REDIS_URL is set.

Tasks take ids, open their own database connection, and import the ML code only when they run, so the
web process that enqueues them never loads TensorFlow.
"""
import os

from huey import RedisHuey, SqliteHuey

from labeler.db import Dataset, Job, database
from labeler import generative, retraining


def _make_huey():
    redis_url = os.environ.get("LABELER_REDIS_URL")
    if redis_url:
        return RedisHuey("labeler", url=redis_url)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    instance = os.environ.get("LABELER_INSTANCE") or os.path.join(root, "instance")
    path = os.environ.get("LABELER_QUEUE") or os.path.join(instance, "queue.sqlite3")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return SqliteHuey("labeler", filename=path)


huey = _make_huey()


@huey.task()
def retrain_task(job_id):
    """Run one retrain job in the worker; afterwards queue the autoencoder job of its dataset when its stored
    outputs are missing or were computed on a pool of another size (labeler.generative.needs_refresh)."""
    from labeler.engine import retrain

    with database.connection_context():
        state = retraining.run_job(job_id, retrain)
        if state == "done":
            dataset = Dataset.get_by_id(Job.get_by_id(job_id).dataset_id)
            if generative.needs_refresh(dataset):
                generative.request_generative(dataset, "after a retrain", enqueue_generative)


def enqueue_retrain(job_id):
    """Hand job ``job_id`` to the worker."""
    retrain_task(job_id)


@huey.task()
def generative_task(dataset_id):
    """Run the waiting autoencoder job of dataset ``dataset_id`` in the worker (labeler.generative.run_job)."""
    with database.connection_context():
        generative.run_waiting(dataset_id)


def enqueue_generative(dataset_id):
    """Hand the waiting autoencoder job of dataset ``dataset_id`` to the worker."""
    generative_task(dataset_id)
