"""Several processes against one store: jobs single-flight across runners, a dead runner's jobs recovered and a
live one's left alone, connections not shared across fork, and the deployment itself: the web under gunicorn
(2 processes of 4 threads) and two task-queue workers on Redis-backed Huey, all on one PostgreSQL database.

The PostgreSQL and Redis tests run when LABELER_TEST_POSTGRES_URL (a server whose role may create databases) and
LABELER_TEST_REDIS_URL name servers (scripts/test.sh starts throwaway ones); each works in a scratch database of
its own, dropped afterwards, and empties the Redis database it is given.
"""
import datetime
import gc
import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.store.db import (Dataset, GroundTruth, Item, Job, Label, ModelVersion, QueueEntry, User, database,
                              open_database)
from labeler.store.migrations import upgrade
from labeler.store.pool import pool_size
from labeler.web import create_app
from labeler.worker import jobs, refill
from labeler.worker.jobs import task_queue
from tests.conftest import PASSWORD, ROOT, csrf_token_of

SECRET = "deployment-test-secret-of-at-least-32-characters"
ITEM = re.compile(r'data-item-id="(\d+)"')
OUTCOME = re.compile(r'data-outcome="(\w+)"')
MODEL = re.compile(r"model v(\d+) \(")


def drain(huey):
    """Run every message waiting in ``huey``, as a worker's consumer would; returns how many ran."""
    ran = 0
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
        ran += 1
    return ran


def test_a_job_whose_twin_runs_waits_and_runs_after_it(queued, config, monkeypatch):
    real = refill.run_refill
    seen = {}

    def refill_meanwhile_asked_again(dataset, progress, config):
        # while this refill runs, the screen asks for another, and a second worker takes its message at once
        twin, seen["created"] = jobs.request(dataset, jobs.REFILL, "asked while the first runs")
        seen["twin"], seen["state"] = twin.id, jobs.run(twin.id, config)
        return real(dataset, progress, config)

    monkeypatch.setattr(refill, "run_refill", refill_meanwhile_asked_again)
    drain(task_queue.huey)
    first, _ = jobs.request(queued, jobs.REFILL, "first")
    assert jobs.run(first.id, config) == "done"
    assert seen["created"] and seen["state"] == "queued"  # it did not run beside its twin
    twin = Job.get_by_id(seen["twin"])
    assert twin.state == "queued" and twin.started_at is None
    # the finished runner handed the twin to the task queue again, beside its own first message
    assert sorted(task.args for task in task_queue.huey.pending()) == sorted([(first.id,), (twin.id,), (twin.id,)])
    monkeypatch.setattr(refill, "run_refill", real)
    drain(task_queue.huey)
    first, twin = Job.get_by_id(first.id), Job.get_by_id(twin.id)
    assert (first.state, twin.state) == ("done", "done")
    assert twin.started_at >= first.finished_at
    assert twin.payload["runner"] == first.payload["runner"] == jobs.runner_id()


def dead_runner():
    """The runner id of a process of this host that has ended."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}:{int(gone.stdout)}:0"


def test_a_job_takes_over_from_a_twin_whose_runner_died(queued, config):
    stuck = Job.create(dataset=queued, kind=jobs.REFILL, state="running", stage="choosing the queue",
                       payload={"reason": "test", "runner": dead_runner()}, started_at=datetime.datetime.now())
    fresh, created = jobs.request(queued, jobs.REFILL, "asked after its worker died")
    assert created and jobs.run(fresh.id, config) == "done"
    stuck = Job.get_by_id(stuck.id)
    assert (stuck.state, stuck.stage) == ("failed", "interrupted")


def test_a_worker_starting_recovers_the_jobs_of_dead_runners_only(queued, config):
    dead = dead_runner()
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = f"{socket.gethostname()}:{living.pid}:0"
        owners = ((dead, jobs.RETRAIN), (alive, jobs.REFILL), (jobs.runner_id(), jobs.AUTOENCODER))
        running = {runner: Job.create(dataset=queued, kind=kind, state="running", stage="training",
                                      payload={"reason": "test", "runner": runner}, started_at=datetime.datetime.now())
                   for runner, kind in owners}
        assert jobs.recover_interrupted() == {jobs.RETRAIN: 1}
        states = {runner: Job.get_by_id(job.id).state for runner, job in running.items()}
        assert states == {dead: "failed", alive: "running", jobs.runner_id(): "running"}
        fresh = jobs.latest(queued, jobs.RETRAIN)
        assert fresh.state == "queued" and fresh.payload["reason"] == "retry after an interrupted retrain job"
    finally:
        living.kill()
        living.wait()


def test_a_forked_process_opens_its_own_store_connection(app):
    parent = database.connection()  # open in this thread while it forks
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            with database.connection_context():
                fresh = database.connection() is not parent and database.execute_sql("SELECT 1").fetchone() == (1,)
            os.write(writer, b"own" if fresh else b"shared")
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    assert os.read(reader, 10) == b"own"
    assert database.connection() is parent and database.execute_sql("SELECT 1").fetchone() == (1,)


@pytest.fixture
def redis_url():
    """LABELER_TEST_REDIS_URL, its database emptied before and after."""
    url = os.environ.get("LABELER_TEST_REDIS_URL")
    if not url:
        pytest.skip("LABELER_TEST_REDIS_URL is not set (scripts/test.sh starts a throwaway Redis server)")
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def runner_ends(runner, timeout=10):
    """Whether ``runner``'s lock is free within ``timeout`` seconds (the server ends a session whose process is
    gone as soon as it reads the closed connection)."""
    deadline = time.monotonic() + timeout
    while jobs.runner_alive(runner):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_forked_process_opens_its_own_postgresql_session(postgres_url):
    open_database(postgres_url)
    backend = "SELECT pg_backend_pid()"
    with database.connection_context():
        upgrade()
        database.execute_sql("SELECT 1")  # an idle connection in the pool when the process forks
    database.connect()
    parent = database.execute_sql(backend).fetchone()[0]  # and one in use
    runner = jobs.runner_id()  # and the runner's session lock, on a connection outside the pool
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            with database.connection_context():
                own = database.execute_sql(backend).fetchone()[0]
                mine = jobs.runner_id()  # a lock of its own; the inherited connection is dropped here
                gc.collect()
                os.write(writer, f"{own} {mine}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    own, mine = os.read(reader, 200).decode().split()
    assert int(own) != parent and mine != runner
    # what the child dropped ended neither of the parent's sessions
    assert database.execute_sql(backend).fetchone()[0] == parent
    assert jobs.runner_alive(runner)
    assert runner_ends(mine)
    database.close()


def test_a_runner_is_alive_while_its_process_holds_its_lock(postgres_url):
    open_database(postgres_url)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from labeler.store.db import open_database; "
         "from labeler.worker import jobs; open_database(sys.argv[1]); print(jobs.runner_id(), flush=True); "
         "sys.stdin.read()", postgres_url],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        runner = holder.stdout.readline().strip()
        with database.connection_context():
            assert jobs.runner_alive(runner)
            holder.kill()
            holder.wait()
            assert runner_ends(runner)
    finally:
        holder.kill()
        holder.wait()


def who_labeled(items):
    """{item id: [(annotator id, time), ...]} of the human labels on ``items``, for a failure's message."""
    with database.connection_context():
        rows = Label.select(Label.item, Label.annotator, Label.created_at).where(Label.item.in_(list(items)))
        found = {}
        for item, annotator, at in rows.tuples():
            found.setdefault(item, []).append((annotator, str(at)))
    return found


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    """One analyst's browser: the session cookie, the CSRF token, the item on screen; every reply's status is
    kept. A connection per request (gunicorn closes idle keep-alive connections after 2 s)."""

    def __init__(self, port, name):
        self.port, self.name, self.cookie, self.token, self.item = port, name, "", None, None
        self.statuses, self.recorded = [], []

    def request(self, method, path, form=None, htmx=False):
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if htmx:
            headers["HX-Request"] = "true"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        self.statuses.append(response.status)
        for header, value in response.getheaders():
            if header.lower() == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        return response.status, text

    def log_in(self):
        _, page = self.request("GET", "/login")
        status, _ = self.request("POST", "/login", {"name": self.name, "password": PASSWORD,
                                                     "csrf_token": csrf_token_of(page)})
        assert status == 302, f"{self.name} could not log in"

    def screen(self):
        """The full labeling page: (status, the serving model's id it shows or None, the item id or None)."""
        status, page = self.request("GET", "/datasets/cc/label")
        self.token = csrf_token_of(page)
        item, model = ITEM.search(page), MODEL.search(page)
        self.item = item and int(item[1])
        return status, model and int(model[1]), self.item

    def label(self, value):
        """Answer the item on screen with ``value``; returns the outcome and takes the next item."""
        status, text = self.request("POST", f"/datasets/cc/label/{self.item}",
                                    {"decision": f"label:{value}", "csrf_token": self.token}, htmx=True)
        outcome = OUTCOME.search(text)
        outcome = outcome[1] if outcome else f"http {status}"
        if outcome == "recorded":
            self.recorded.append(self.item)
        item = ITEM.search(text)
        self.item = item and int(item[1])
        return outcome


def wait_until(predicate, timeout, what, processes=()):
    """Poll ``predicate()`` (in a store connection) until true; fails naming ``what`` on time-out or when one of
    ``processes`` (name, Popen, log path) ended."""
    deadline = time.monotonic() + timeout
    while True:
        with database.connection_context():
            if predicate():
                return
        for name, process, log in processes:
            assert process.poll() is None, f"{name} ended: {open(log).read()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def snapshot_switch(dataset_id):
    """One consistent look at the store (one REPEATABLE READ transaction): (running retrains, serving versions,
    the model versions of the queue's entries)."""
    with database.atomic():
        database.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        running = Job.select().where((Job.dataset == dataset_id) & (Job.kind == jobs.RETRAIN)
                                     & (Job.state == "running")).count()
        serving = [v for (v,) in ModelVersion.select(ModelVersion.id).where(
            (ModelVersion.dataset == dataset_id) & ModelVersion.serving).tuples()]
        queue = {v for (v,) in QueueEntry.select(QueueEntry.model_version).where(QueueEntry.dataset == dataset_id)
                 .distinct().tuples()}
    return running, serving, queue


def ask_for_a_retrain(dataset_id):
    """jobs.request a retrain in a connection of this thread."""
    with database.connection_context():
        jobs.request(Dataset.get_by_id(dataset_id), jobs.RETRAIN, "asked by a test thread")


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_gunicorn_processes_and_two_workers_share_one_postgresql(tmp_path, postgres_url, redis_url, small_csv):
    settings = {"DATABASE": postgres_url, "REDIS_URL": redis_url, "INSTANCE_PATH": str(tmp_path),
                "TASK_QUEUE": str(tmp_path / "queue.sqlite3"), "MODEL_FOLDER": str(tmp_path / "models"),
                "SECRET_KEY": SECRET}
    config = create_app(settings).extensions["labeler.config"]  # the schema, before the other processes start
    env = {**os.environ, **config.environment(), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    port = free_port()
    manage = [sys.executable, os.path.join(ROOT, "manage.py")]
    processes = []

    def start(name, *args):
        log = str(tmp_path / f"{name}.log")
        with open(log, "w") as out:
            processes.append((name, subprocess.Popen(manage + list(args), cwd=ROOT, env=env, stdout=out,
                                                     stderr=subprocess.STDOUT), log))

    start("web", "serve", "--port", str(port), "--processes", "2", "--threads", "4")
    start("worker1", "worker", "--nice", "0")
    start("worker2", "worker", "--nice", "0")
    analysts, readers = [f"analyst{n}" for n in range(8)], ["reader0", "reader1"]
    try:
        with database.connection_context():  # while they start
            dataset = import_file(small_csv, "cc", label_column="Class").dataset
            dataset.settings = {**dataset.settings, "retrain_every": 10, "cv_repeats": 1}
            dataset.save()
            truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
                         .where(Item.dataset == dataset).tuples())
            for name in analysts + readers:
                create_user(name, PASSWORD, "analyst")
            # the autoencoder is another test's subject: a failed one on this pool keeps retrains from asking for it
            Job.create(dataset=dataset, kind=jobs.AUTOENCODER, state="failed", stage="failed",
                       error="not tested here", payload={"pool_rows": pool_size(dataset)})
            first_refill, _ = jobs.request(dataset, jobs.REFILL, "after the import")  # through Redis
        wait_until(lambda: all("Worker started" in open(log).read() for _, _, log in processes[1:]), 60,
                   "both workers", processes)
        wait_until(lambda: Job.get_by_id(first_refill.id).state == "done", 60, "the first queue", processes)
        wait_until(lambda: len(re.findall(r"Booting worker with pid", open(processes[0][2]).read())) == 2, 30,
                   "gunicorn's two processes", processes)
        browsers = [Browser(port, name) for name in analysts]
        viewers = [Browser(port, name) for name in readers]
        for browser in browsers + viewers:
            browser.log_in()

        stop, seen, violations = threading.Event(), [], []

        def analyst_labels(browser):  # labels 15 items with ground truth, as fast as the server answers
            browser.screen()
            while len(browser.recorded) < 15 and not stop.is_set():
                if browser.item is None:
                    time.sleep(0.05)
                    browser.screen()
                    continue
                browser.label(truth[browser.item])

        def reader_reads(browser):  # the labeling screen, again and again, while models switch
            while not stop.is_set():
                status, model, _ = browser.screen()
                seen.append((browser.name, status, model))
                time.sleep(0.1)

        def watch_the_store():  # single flight and the atomic switch, as any reader of the store sees them
            with database.connection_context():
                while not stop.is_set():
                    running, serving, queue = snapshot_switch(dataset.id)
                    if running > 1 or len(serving) > 1 or (serving and queue - set(serving)) or \
                            (not serving and queue - {None}):
                        violations.append((running, serving, queue))
                    time.sleep(0.02)

        def ask_for_retrains(commands=0):  # several at once: from the command line and this process's threads
            commands = [subprocess.Popen(manage + ["retrain", "--dataset", "cc"], cwd=ROOT, env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                        for _ in range(commands)]
            askers = [threading.Thread(target=ask_for_a_retrain, args=(dataset.id,)) for _ in range(4)]
            for thread in askers:
                thread.start()
            for thread in askers:
                thread.join()
            for command in commands:
                output, _ = command.communicate(timeout=60)
                assert command.returncode == 0, output

        threads = ([threading.Thread(target=analyst_labels, args=(b,)) for b in browsers]
                   + [threading.Thread(target=reader_reads, args=(v,)) for v in viewers]
                   + [threading.Thread(target=watch_the_store)])
        for thread in threads:
            thread.start()
        ask_for_retrains(commands=2)
        for thread in threads[:len(browsers)]:
            thread.join(timeout=120)
        ask_for_retrains()  # and once more after the last labels, so the last retrain sees them all
        wait_until(lambda: not Job.select().where(Job.state.in_(("queued", "running"))).exists(), 120,
                   "the workers to finish every job", processes)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

        # leases across processes: no item labeled twice, none lost, every acknowledged label stored once
        with database.connection_context():
            rows = list(Label.select(Label.item, Label.annotator).where(
                (Label.source == "human") & (Label.kind == "label")).tuples())
            names = dict(User.select(User.id, User.name).tuples())
            retrains = list(Job.select().where((Job.dataset == dataset) & (Job.kind == jobs.RETRAIN))
                            .order_by(Job.started_at))
            served = list(ModelVersion.select().where((ModelVersion.dataset == dataset)
                                                      & ModelVersion.served_at.is_null(False)))
            running, serving, queue = snapshot_switch(dataset.id)
        acknowledged = sorted((item, browser.name) for browser in browsers for item in browser.recorded)
        assert len(acknowledged) == 8 * 15
        assert sorted((item, names[user]) for item, user in rows) == acknowledged
        twice = {item for item, _ in rows if sum(other == item for other, _ in rows) > 1}
        assert not twice, who_labeled(twice)  # single coverage: one analyst per item

        # single flight across the two workers: retrains ran one after another, every one to its end
        assert len(retrains) >= 3 and all(job.state == "done" for job in retrains), \
            [(job.id, job.state, job.error) for job in retrains]
        for earlier, later in zip(retrains, retrains[1:]):
            assert later.started_at >= earlier.finished_at, (earlier.id, later.id)
        assert {job.payload["runner"].rsplit(":", 2)[1] for job in retrains} <= {
            str(process.pid) for _, process, _ in processes[1:]}

        # the atomic switch: never two models serving, the queue always the serving model's (or the cold start's)
        assert served and not violations, violations[:5]
        newest = max(version.id for version in served)
        assert (running, serving, queue) == (0, [newest], {newest})
        statuses = [status for browser in browsers + viewers for status in browser.statuses]
        assert statuses and all(status < 500 for status in statuses)
        assert len(seen) > 20 and all(status == 200 for _, status, _ in seen)
        shown = {model for _, _, model in seen}
        assert None in shown and shown - {None} and shown - {None} <= {version.id for version in served}
        for reader in readers:  # a screen never shows an older model (or the cold start) after a newer one
            mine = [model or 0 for name, _, model in seen if name == reader]
            assert mine == sorted(mine)
    finally:
        for _, process, _ in processes:
            process.terminate()
        for _, process, _ in processes:
            process.wait(timeout=30)
