"""The task queue (Huey): SQLite storage beside the store by default, Redis when LABELER_REDIS_URL is set.

Tasks take ids, open their own database connection, and import the ML code only when they run, so the
web process that enqueues them never loads TensorFlow.
"""
import os

from huey import RedisHuey, SqliteHuey

from labeler.db import database
from labeler import retraining


def _make_huey():
    redis_url = os.environ.get("LABELER_REDIS_URL")
    if redis_url:
        return RedisHuey("labeler", url=redis_url)
    path = os.environ.get("LABELER_QUEUE") or os.path.join(
        os.environ.get("LABELER_INSTANCE") or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "instance"),
        "queue.sqlite3",
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return SqliteHuey("labeler", filename=path)


huey = _make_huey()


@huey.task()
def retrain_task(job_id):
    """Run one retrain job in the worker."""
    from labeler.engine import retrain

    with database.connection_context():
        retraining.run_job(job_id, retrain)


def enqueue_retrain(job_id):
    """Hand job ``job_id`` to the worker."""
    retrain_task(job_id)
