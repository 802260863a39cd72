"""One job lifecycle for everything the worker computes, and the task queue that carries jobs to it.

A job is a Job row: queued -> running -> done or failed, with a stage and a percentage while it runs. Jobs are
single-flight per dataset and kind, across every thread and process sharing the store: asking again while one
waits returns the waiting one, and one runs at a time (a job whose twin runs stays queued, and the runner hands
it to the task queue again when it finishes). The request is committed first, then its id goes to the task
queue (Huey: SQLite storage beside the store by default, Redis when the configuration names one); a worker that
starts hands every waiting job to the queue again and marks the jobs a dead runner left running as interrupted,
queueing a fresh one of each. Each job records its runner (``runner_id``), whose liveness other processes can
check (``runner_alive``): on PostgreSQL a session lock that the server releases when the runner's process dies,
on SQLite (one machine) the process id.

This module is the worker's one door for the web and the command line: it loads no model code. What each kind
of job does lives in its own worker module (an upload's import: the data layer's importer), named in HANDLERS and
imported only when a job of that kind runs, so the web process that requests jobs never loads scikit-learn or
TensorFlow.
"""
import importlib
import logging
import os
import socket
import threading
import uuid

from huey import RedisHuey, SqliteHuey

from labeler.store.db import (Dataset, Job, advisory_lock, database, full_disk_error, hold_session_lock,
                              session_lock_held, utcnow, write_transaction)

RETRAIN = "retrain"
REFILL = "refill"
AUTOENCODER = "autoencoder"
SEQUENCES = "sequences"
GENERATED = "generated"
IMPORT = "import"
HANDLERS = {  # kind -> "module:function" taking (dataset, progress, config, **options), returning a summary dict
    RETRAIN: "labeler.worker.retrain:run_retrain",
    REFILL: "labeler.worker.refill:run_refill",
    AUTOENCODER: "labeler.worker.autoencoder:run_autoencoder",
    SEQUENCES: "labeler.worker.sequences:run_sequences",
    GENERATED: "labeler.worker.generated:run_generated",
    # the web's uploads: the importer lives in the data layer, above this one, so it is named, not imported
    IMPORT: "labeler.data.uploads:run_import",
}
EVERY_REQUEST = (IMPORT,)  # kinds without single flight: each request carries its own work (an uploaded file)
FINISHED = ("done", "failed")
RUNNER_LOCK = "labeler job runner {}"  # the session lock a runner holds on PostgreSQL

log = logging.getLogger(__name__)


class TaskQueueClosed(RuntimeError):
    """A job was requested before the task queue was opened with a configuration."""


class TaskQueue:
    """The one task queue object of a process (like the store's one database object): ``open(config)`` builds
    Huey from the configuration; ``enqueue(job_id)`` hands a committed job to the worker."""

    def __init__(self):
        self.huey = None
        self.config = None
        self._task = None

    def open(self, config):
        """Build the queue named by ``config`` (labeler.config.Config): Redis when it names one, else SQLite."""
        if config.REDIS_URL:
            huey = RedisHuey("labeler", url=config.REDIS_URL)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(config.TASK_QUEUE)), exist_ok=True)
            huey = SqliteHuey("labeler", filename=config.TASK_QUEUE)
        self._task = huey.task(name="run_job")(self._run)
        self.huey, self.config = huey, config

    def _run(self, job_id):
        if not database.is_closed():  # a caller's connection (Huey's immediate mode) stays open for it
            return run(job_id, self.config)
        with database.connection_context():
            return run(job_id, self.config)

    def enqueue(self, job_id):
        """Send job ``job_id`` to the worker. Raises TaskQueueClosed before ``open``."""
        if self._task is None:
            raise TaskQueueClosed("the task queue is not open (create_app or the command line opens it)")
        self._task(job_id)

    def consumer(self, workers):
        """A Huey consumer running ``workers`` threads (the ``worker`` command runs it)."""
        return self.huey.create_consumer(workers=workers, periodic=False)


task_queue = TaskQueue()


def request(dataset, kind, reason, enqueue=True, options=None):
    """Queue a job of ``kind`` for ``dataset`` (None: a job of no dataset yet, an import into a new one) unless
    one of that kind already waits (kinds in EVERY_REQUEST always queue one); returns (job, created).

    ``options`` (a dict) are passed to the handler as keyword arguments. The row is committed before the job
    goes to the task queue; with ``enqueue`` False it only waits in the store (a worker that starts, or
    run_queued, picks it up). Raises ValueError for an unknown kind, TaskQueueClosed.
    """
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r} (known: {', '.join(HANDLERS)})")
    is_waiting = (Job.dataset == dataset) & (Job.kind == kind) & (Job.state == "queued")
    single = kind not in EVERY_REQUEST
    waiting = Job.get_or_none(is_waiting) if single else None
    if waiting is not None:
        return waiting, False
    with write_transaction():
        if single:  # one request at a time per dataset and kind: two processes must not both add one
            advisory_lock("job", getattr(dataset, "id", None), kind)
        waiting = Job.get_or_none(is_waiting) if single else None
        if waiting is not None:
            return waiting, False
        payload = {"reason": reason, **({"options": options} if options else {})}
        job = Job.create(dataset=dataset, kind=kind, state="queued", stage="queued", payload=payload)
    if enqueue:
        task_queue.enqueue(job.id)
    return job, True


def is_pending(dataset, kind):
    """Whether a job of ``kind`` for ``dataset`` waits or runs."""
    return Job.select().where((Job.dataset == dataset) & (Job.kind == kind)
                              & Job.state.in_(("queued", "running"))).exists()


def latest(dataset, kind, state=None):
    """The newest job of ``kind`` for ``dataset`` (in ``state`` when given), or None."""
    condition = (Job.dataset == dataset) & (Job.kind == kind)
    if state is not None:
        condition &= Job.state == state
    return Job.select().where(condition).order_by(Job.id.desc()).first()


def _update(job_id, **fields):
    with write_transaction():
        Job.update(**fields).where(Job.id == job_id).execute()


class Progress:
    """Given to a job's handler: ``progress(stage, percent)`` records where it is; ``record(**fields)`` adds
    fields to the job's payload at once (kept when the job fails)."""

    def __init__(self, job):
        self.job_id = job.id
        self.payload = dict(job.payload or {})

    def __call__(self, stage, percent):
        _update(self.job_id, stage=stage[:120], percent=float(percent))

    def record(self, **fields):
        self.payload.update(fields)
        _update(self.job_id, payload=self.payload)


def handler_of(kind):
    """The function that runs jobs of ``kind`` (imported now, in the worker). Raises KeyError, ImportError."""
    module, function = HANDLERS[kind].split(":")
    return getattr(importlib.import_module(module), function)


_runner = {"key": None, "id": None, "connection": None}  # the connection holds the runner's lock open
_runner_lock = threading.Lock()  # the worker's threads take the runner's lock once


def runner_id():
    """This process as a job runner of the open store: "host:pid:token", recorded on the jobs it claims. On
    PostgreSQL the first call in a process (per store) also takes the runner's session lock
    (labeler.store.db.hold_session_lock), held until the process ends. Raises peewee's OperationalError when
    the server cannot be reached."""
    key = (os.getpid(), id(database.obj))
    with _runner_lock:
        if _runner["key"] != key:  # the first call in this process (a forked one included) on this store
            ident = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            _runner.update(connection=hold_session_lock(RUNNER_LOCK.format(ident)), id=ident, key=key)
        return _runner["id"]


def runner_alive(runner):
    """Whether the runner ``runner`` (runner_id's value, or None) may still run its jobs: on PostgreSQL while
    its session lock is held, on SQLite while its process lives on this host (the store is on one machine)."""
    if runner is None:
        return False
    if runner == _runner["id"] and _runner["key"] == (os.getpid(), id(database.obj)):
        return True
    held = session_lock_held(RUNNER_LOCK.format(runner))
    if held is not None:
        return held
    host, pid, _ = runner.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def run(job_id, config):
    """Run the waiting job ``job_id`` with ``config``; returns its final state.

    A job no longer waiting (another worker took it) is left alone and its state returned; so is one whose twin
    (same dataset and kind, single-flight) runs now: it stays queued, and the twin's runner hands it to the task
    queue again when done (a twin whose runner is dead is marked interrupted, and this job runs). Exceptions
    from the handler mark the job failed with the error (what served before keeps serving) and are logged, not
    raised.
    """
    job = Job.get_by_id(job_id)
    single = job.kind not in EVERY_REQUEST
    runner = runner_id()  # before the claim: a running job's runner is always findable alive
    with write_transaction():
        twin = None
        if single:  # the claim and the check that no twin runs are one step for every process
            advisory_lock("job", job.dataset_id, job.kind)
            twin = Job.get_or_none((Job.dataset == job.dataset_id) & (Job.kind == job.kind)
                                   & (Job.state == "running") & (Job.id != job_id))
            if twin is not None and not runner_alive((twin.payload or {}).get("runner")):
                _interrupt(twin.id)
                twin = None
        claimed = twin is None and (
            Job.update(state="running", stage="starting", percent=0.0, started_at=utcnow(),
                       payload={**(job.payload or {}), "runner": runner})
            .where((Job.id == job_id) & (Job.state == "queued")).execute())
    job = Job.get_by_id(job_id)
    if not claimed:
        return job.state
    try:
        return _run_claimed(job, config)
    finally:
        if single:
            _hand_on_waiting(job)


def _interrupt(job_id):
    """Mark the running job ``job_id``, whose runner is dead, failed as interrupted; returns 1, or 0 when it no
    longer runs."""
    return (Job.update(state="failed", stage="interrupted", finished_at=utcnow(),
                       error="the worker stopped during this job; a new one was queued")
            .where((Job.id == job_id) & (Job.state == "running")).execute())


def _hand_on_waiting(job):
    """After a single-flight ``job`` finished: hand its waiting twin (if one waits) to the task queue again,
    since a runner that found ``job`` running left it queued."""
    waiting = Job.get_or_none((Job.dataset == job.dataset_id) & (Job.kind == job.kind) & (Job.state == "queued"))
    if waiting is not None and task_queue.huey is not None:  # without a queue (a benchmark's own run) the
        task_queue.enqueue(waiting.id)  # twin waits for run_queued or the next worker's start


def _run_claimed(job, config):
    """Run ``job``, claimed by this runner; returns its final state."""
    job_id = job.id
    progress = Progress(job)
    try:
        handler = handler_of(job.kind)
        dataset = None if job.dataset_id is None else Dataset.get_by_id(job.dataset_id)
        summary = handler(dataset, progress, config, **progress.payload.get("options", {}))
    except Exception as error:  # the job records any failure
        log.exception("%s job %s failed", job.kind, job_id)
        full = full_disk_error(error)
        message = f"the disk is full ({full})" if full is not None else f"{type(error).__name__}: {error}"
        # on a full disk this write may fail too: the job then stays "running" until the worker's restart
        # marks it interrupted and queues it again (recover_interrupted)
        _update(job_id, state="failed", stage="failed", error=message, finished_at=utcnow())
        return "failed"
    _update(job_id, state="done", stage=str(summary.get("stage", "done"))[:120], percent=100.0,
            finished_at=utcnow(),
            payload={**progress.payload, **{key: value for key, value in summary.items() if key != "stage"}})
    return "done"


def run_queued(config, dataset=None, limit=100):
    """Run waiting jobs (of ``dataset`` when given) in this process, oldest first, including the jobs they
    queue, until none waits or ``limit`` ran; returns {job id: final state}. For the command line (the demo's
    cold start, the ``autoencoder`` command) and tests; the worker runs jobs from the task queue."""
    states = {}
    while len(states) < limit:
        condition = (Job.state == "queued") & Job.id.not_in(list(states) or [0])
        if dataset is not None:
            condition &= Job.dataset == dataset
        job = Job.select().where(condition).order_by(Job.id).first()
        if job is None:
            break
        states[job.id] = run(job.id, config)
    return states


def recover_interrupted():
    """At worker start: mark the jobs left 'running' by a dead runner (runner_alive; the jobs of workers still
    running elsewhere are theirs) failed, queue a fresh job of each, and hand every waiting job to the task queue
    again (a message lost with the worker is harmless twice). The fresh job has the interrupted one's options.
    Returns {kind: number interrupted}."""
    for job in Job.select().where(Job.state == "queued").order_by(Job.id):
        task_queue.enqueue(job.id)
    interrupted = {}
    for job in list(Job.select().where(Job.state == "running")):
        if runner_alive((job.payload or {}).get("runner")):
            continue
        with write_transaction():  # a worker starting beside this one may recover it first
            if not _interrupt(job.id):
                continue
        if job.kind in HANDLERS:
            dataset = None if job.dataset_id is None else Dataset.get_by_id(job.dataset_id)
            request(dataset, job.kind, f"retry after an interrupted {job.kind} job",
                    options=(job.payload or {}).get("options"))
        interrupted[job.kind] = interrupted.get(job.kind, 0) + 1
    return interrupted
