"""Benchmark: eight analysts label while the worker and the server are killed with SIGKILL mid-run (issue 13).

Imports a transaction file into a temporary store, starts the real worker (``manage.py worker``) and server
(``manage.py serve``), and lets N analysts (threads over loopback HTTP, each with its own session) decide as fast
as they can. Every ``--every`` seconds one process is killed with SIGKILL, worker and server in turn, and started
again ``--down`` seconds later; analysts whose request got no reply reconnect and carry on with the item on their
screen (their lease outlives the server). The worker retrains every ``--retrain-every`` labels, so it is usually
in the middle of a job when it dies.

At the end it counts, against the store: decisions acknowledged (the server answered "recorded"), label rows
stored, lost (acknowledged, not stored), duplicated (a second human label on one item: no overlap is set),
stored without an acknowledgement (the reply was lost with the server; at most one per analyst per server kill),
the jobs left running, and SQLite's integrity check. Exits 1 when a label was lost or duplicated.

    python bench/load_kill.py                          # the full credit-card file when ../shared has it
    python bench/load_kill.py --data data/creditcard_sample.csv.gz --seconds 40
"""
import argparse
import http.client
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.label_latency import PASSWORD, Analyst, free_port, wait_for_port  # noqa: E402  (after the path)

SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "creditcard.csv.gz")
SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")
NO_REPLY = (OSError, http.client.HTTPException)  # refused, reset, remote closed: the server is gone


class KilledAnalyst(Analyst):
    """An analyst who keeps working through server restarts: a request with no reply is counted, and the
    analyst reconnects, reopens the screen and goes on."""

    def __init__(self, *args, port, **kwargs):
        super().__init__(*args, **kwargs)
        self.port = port
        self.no_reply = 0  # decisions sent whose reply never came (stored or not: the store says)

    def reconnect(self, stop):
        while not stop.is_set():
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.open_screen()
                return
            except NO_REPLY:
                time.sleep(0.1)

    def work(self, stop):
        while not stop.is_set():
            try:
                self.decide(timed=True)
            except NO_REPLY:
                self.no_reply += 1
                self.reconnect(stop)


class Processes:
    """The server and the worker, started, killed with SIGKILL and started again; restart times recorded."""

    def __init__(self, env, port, workdir, threads):
        self.env, self.port, self.workdir, self.threads = env, port, workdir, threads
        self.manage = [sys.executable, os.path.join(ROOT, "manage.py")]
        self.children = {}
        self.kills = []  # (which, seconds into the run, seconds until it answered again)

    def start(self, which):
        log = open(os.path.join(self.workdir, f"{which}.log"), "a")
        argv = ["serve", "--port", str(self.port), "--threads", str(self.threads)] if which == "server" else ["worker"]
        self.children[which] = subprocess.Popen(self.manage + argv, env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        if which == "server":
            wait_for_port(self.port, self.children[which], os.path.join(self.workdir, "server.log"))

    def kill_and_restart(self, which, down, at):
        self.children[which].send_signal(signal.SIGKILL)
        self.children[which].wait()
        time.sleep(down)
        started = time.perf_counter()
        self.start(which)
        self.kills.append((which, at, time.perf_counter() - started))

    def stop(self):
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()


def prepare(args, workdir, env):
    """Import the data, create the analysts, set the retrain interval, compute the first queue; returns the
    number of items."""
    from labeler.config import Config
    from labeler.store.db import Dataset, database, open_database
    from labeler.store.migrations import upgrade
    from labeler.worker import jobs

    manage = [sys.executable, os.path.join(ROOT, "manage.py")]
    started = time.perf_counter()
    subprocess.run(manage + ["import", args.data, "--dataset", "cc", "--label-column", "Class", "--exclude", "Time"],
                   env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    print(f"import of {os.path.basename(args.data)}: {time.perf_counter() - started:.1f} s")
    for n in range(args.analysts):
        subprocess.run(manage + ["create-user", f"analyst{n}", "--password-stdin"], input=PASSWORD + "\n",
                       text=True, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    open_database(env["LABELER_DATABASE"])
    with database.connection_context():
        upgrade()
        dataset = Dataset.get(Dataset.name == "cc")
        dataset.settings = {**dataset.settings, "retrain_every": args.retrain_every}
        dataset.save()
        jobs.run(jobs.latest(dataset, jobs.REFILL).id, Config.load(environ=env))
        rows = dataset.items().count()
    database.close()
    return rows


def count(store, analysts):
    """The store against what the analysts were told."""
    with sqlite3.connect(store) as connection:
        stored = connection.execute(
            "SELECT label.item_id, user.name FROM label JOIN user ON user.id = label.annotator_id "
            "WHERE label.kind = 'label' AND label.source = 'human'").fetchall()
        running = connection.execute("SELECT kind, COUNT(*) FROM job WHERE state = 'running' GROUP BY kind").fetchall()
        job_states = connection.execute(
            "SELECT kind, state, stage, COUNT(*) FROM job GROUP BY kind, state, stage ORDER BY kind, state").fetchall()
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        foreign = connection.execute("PRAGMA foreign_key_check").fetchall()
    acknowledged = [(item, analyst.name) for analyst in analysts for item in analyst.recorded]
    per_item = {}
    for item, _ in stored:
        per_item[item] = per_item.get(item, 0) + 1
    return {
        "acknowledged": len(acknowledged),
        "acknowledged twice": len(acknowledged) - len(set(acknowledged)),
        "stored": len(stored),
        "lost": len(set(acknowledged) - set(stored)),
        "duplicated": sum(n - 1 for n in per_item.values() if n > 1),
        "stored, reply lost": len(set(stored) - set(acknowledged)),
        "requests without a reply": sum(analyst.no_reply for analyst in analysts),
        "server errors (5xx)": sum(len(analyst.errors) for analyst in analysts),
        "jobs running at the end": sum(n for _, n in running),
        "job states": [f"{kind} {state} ({stage}): {n}" for kind, state, stage, n in job_states],
        "integrity_check": integrity,
        "foreign key violations": len(foreign),
    }


def run(args):
    workdir = tempfile.mkdtemp(prefix="load-kill-")
    store = os.path.join(workdir, "labeler.sqlite3")
    env = {**os.environ, "LABELER_DATABASE": store, "LABELER_SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
           "LABELER_INSTANCE": workdir, "LABELER_QUEUE": os.path.join(workdir, "queue.sqlite3"),
           "LABELER_MODELS": os.path.join(workdir, "models"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"# load and kill, {time.strftime('%Y-%m-%d')}; machine: {platform.platform()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    rows = prepare(args, workdir, env)
    processes = Processes(env, free_port(), workdir, args.threads)
    stop = threading.Event()
    try:
        processes.start("worker")
        processes.start("server")
        analysts = [KilledAnalyst(f"analyst{n}", processes.port, "cc", args.reject_share, n, port=processes.port)
                    for n in range(args.analysts)]
        for analyst in analysts:
            analyst.log_in()
        threads = [threading.Thread(target=analyst.work, args=(stop,)) for analyst in analysts]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        victims = ["worker", "server"]
        while time.perf_counter() - started + args.every < args.seconds:
            time.sleep(args.every)
            processes.kill_and_restart(victims[len(processes.kills) % 2], args.down,
                                       time.perf_counter() - started)
        time.sleep(max(0.0, args.seconds - (time.perf_counter() - started)))
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        time.sleep(args.settle)  # the worker finishes or records what the last labels asked for
        figures = count(store, analysts)  # while the worker runs: a stopped one would leave its job running
    finally:
        stop.set()
        processes.stop()

    print(f"{rows:,} items, {args.analysts} analysts, {args.threads} server threads, {elapsed:.0f} s, "
          f"retrain every {args.retrain_every} labels, one SIGKILL every {args.every:.0f} s "
          f"(worker and server in turn, down {args.down:.0f} s)")
    for which, at, back in processes.kills:
        again = f"listening again {back:.1f} s after its restart" if which == "server" else "started again"
        print(f"  SIGKILL {which} at {at:5.1f} s, down {args.down:.0f} s, {again}")
    for name, value in figures.items():
        if isinstance(value, list):
            print(f"{name}:")
            for line in value:
                print(f"  {line}")
        else:
            print(f"{name}: {value:,}" if isinstance(value, int) else f"{name}: {value}")
    if args.keep:
        print(f"store kept at {store}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    bad = figures["lost"] or figures["duplicated"] or figures["integrity_check"] != "ok"
    return 1 if bad else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHARED_DATA if os.path.exists(SHARED_DATA) else SAMPLE,
                        help="transactions to import (default: the full credit-card file when ../shared has it, "
                             "else the bundled sample)")
    parser.add_argument("--analysts", type=int, default=8, help="concurrent analysts (client threads)")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the run")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between two kills")
    parser.add_argument("--down", type=float, default=2.0, help="seconds a killed process stays down")
    parser.add_argument("--threads", type=int, default=2, help="waitress threads of the server")
    parser.add_argument("--retrain-every", type=int, default=50, help="the dataset's retrain interval (labels)")
    parser.add_argument("--reject-share", type=float, default=0.1, help="share of decisions that reject")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds the worker runs on after the analysts")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
