"""Benchmark: "post a label and get the next item" with several analysts at once over loopback HTTP.

Imports a transaction file into a temporary store, starts the real server (``manage.py serve``, waitress), logs in
N analysts (threads, each with its own keep-alive connection and session cookie) and lets them post decisions as
fast as they can for a while. Prints client and server-side (Server-Timing) latency percentiles, requests per
second, and then counts the Label rows in the store: every acknowledged label must be there exactly once, and no
item may carry two labels (no overlap is configured).

    python bench/label_latency.py                      # the full credit-card file, 8 analysts, 30 s
    python bench/label_latency.py --data data/creditcard_sample.csv.gz --seconds 5
"""
import argparse
import http.client
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labeler.cli.commands import SERVE_THREADS  # noqa: E402  (after the path is set)

PASSWORD = "benchmark password"
ITEM = re.compile(r'data-item-id="(\d+)"')
OUTCOME = re.compile(r'data-outcome="(\w+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TIMING = re.compile(r"app;dur=([\d.]+)")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, log_path, timeout=60):
    """Return once something listens on ``port``; exits naming ``log_path`` when ``process`` ended or the time
    ran out first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"server did not start; see {log_path}")
            time.sleep(0.05)


def percentile(values, share):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


class Analyst:
    """One analyst: a keep-alive HTTP connection, a session cookie, the item on screen."""

    def __init__(self, name, port, dataset, reject_share, seed, think=0.0):
        self.name, self.dataset = name, dataset
        self.think = think  # mean seconds between a reply and the next decision (0: none)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        self.rng = random.Random(seed)
        self.reject_share = reject_share
        self.item = None
        self.token = None
        self.recorded = []  # item ids whose label the server acknowledged
        self.outcomes = {}
        self.client_ms, self.server_ms = [], []
        self.errors = []

    def request(self, method, path, form=None, htmx=False):
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if htmx:
            headers["HX-Request"] = "true"
        started = time.perf_counter()
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode()
        elapsed = (time.perf_counter() - started) * 1000
        for header, value in response.getheaders():
            if header.lower() == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        return response, text, elapsed

    def log_in(self):
        _, page, _ = self.request("GET", "/login")
        self.request("POST", "/login", {"name": self.name, "password": PASSWORD, "csrf_token": CSRF.search(page)[1]})
        self.open_screen()

    def open_screen(self):
        _, page, _ = self.request("GET", f"/datasets/{self.dataset}/label")
        self.token = CSRF.search(page)[1]
        found = ITEM.search(page)
        self.item = found[1] if found else None

    def decide(self, timed):
        if self.item is None:
            time.sleep(0.05)
            self.open_screen()
            return
        decision = "reject" if self.rng.random() < self.reject_share else "accept"
        response, text, elapsed = self.request(
            "POST", f"/datasets/{self.dataset}/label/{self.item}",
            {"decision": decision, "csrf_token": self.token}, htmx=True)
        outcome = OUTCOME.search(text)
        outcome = outcome[1] if outcome else f"http {response.status}"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome == "recorded":
            self.recorded.append(int(self.item))
        elif response.status >= 500:
            self.errors.append(text[:200])
        if timed:
            self.client_ms.append(elapsed)
            server = TIMING.search(response.getheader("Server-Timing") or "")
            if server:
                self.server_ms.append(float(server[1]))
        found = ITEM.search(text)
        self.item = found[1] if found else None
        if self.think:
            time.sleep(self.rng.uniform(0.5, 1.5) * self.think)


def temporary_instance(prefix):
    """A fresh instance folder for a benchmark's server: (folder, its SQLite store, the environment that points
    ``manage.py`` at it, its Config, the ``manage.py`` command line); prints the machine."""
    from labeler.config import Config

    workdir = tempfile.mkdtemp(prefix=prefix)
    store = os.path.join(workdir, "labeler.sqlite3")
    env = {**os.environ, "LABELER_DATABASE": store, "LABELER_SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
           "LABELER_INSTANCE": workdir, "LABELER_QUEUE": os.path.join(workdir, "queue.sqlite3"),
           "LABELER_MODELS": os.path.join(workdir, "models")}
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    return workdir, store, env, Config.load(environ=env), [sys.executable, os.path.join(ROOT, "manage.py")]


def peak_rss_mb(pid):
    """The peak resident memory in MB of the running process ``pid`` since its exec (VmHWM; Linux)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def create_analysts(manage, env, count):
    """``count`` analyst logins (analyst0, analyst1, ...) made with ``manage.py create-user``; returns their
    names."""
    names = [f"analyst{n}" for n in range(count)]
    for name in names:
        subprocess.run(manage + ["create-user", name, "--password-stdin"], input=PASSWORD + "\n", text=True,
                       env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return names


def post_decisions(workdir, env, manage, dataset, names, seconds, threads, warmup, reject_share, think=0.0):
    """Serve the store of ``env`` with ``manage.py serve`` and let the analysts ``names`` post decisions on
    ``dataset``: ``warmup`` untimed each, then ``seconds`` timed; as fast as they can, or with ``think``
    seconds on average (uniform from half to one and a half times it) between a reply and the next decision.
    Returns (the Analyst objects, seconds timed, the server's peak RSS in MB at the end). Exits when the server
    does not start."""
    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "w")
    server = subprocess.Popen(manage + ["serve", "--port", str(port), "--threads", str(threads)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for_port(port, server, log.name)
        analysts = [Analyst(name, port, dataset, reject_share, seed, think) for seed, name in enumerate(names)]
        for analyst in analysts:
            analyst.log_in()
        ready = threading.Barrier(len(analysts) + 1)
        stop = threading.Event()

        def work(analyst):
            for _ in range(warmup):
                analyst.decide(timed=False)
            ready.wait()
            while not stop.is_set():
                analyst.decide(timed=True)

        workers = [threading.Thread(target=work, args=(a,)) for a in analysts]
        for thread in workers:
            thread.start()
        ready.wait()
        started = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for thread in workers:
            thread.join()
        elapsed = time.perf_counter() - started
        peak_mb = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    return analysts, elapsed, peak_mb


def check_store(target, analysts):
    """Compare the analysts' human label rows in the store at ``target`` (path or URL) with what the ``analysts``
    were told was recorded: {"stored", "items", "acknowledged", "lost", "unacknowledged", "duplicated", "errors"}."""
    from labeler.store.db import Label, User, database, open_database

    open_database(target)
    with database.connection_context():
        rows = list(Label.select(Label.item, Label.annotator).where((Label.kind == "label") & (Label.source == "human"))
                    .tuples())
        user_names = dict(User.select(User.id, User.name).tuples())
    acknowledged = [(item, analyst.name) for analyst in analysts for item in analyst.recorded]
    theirs = {analyst.name for analyst in analysts}
    stored = [(item, user_names[user]) for item, user in rows if user_names[user] in theirs]
    per_item = {}
    for item, _ in stored:
        per_item[item] = per_item.get(item, 0) + 1
    return {"stored": len(stored), "items": len(per_item), "acknowledged": len(acknowledged),
            "lost": len(set(acknowledged) - set(stored)), "unacknowledged": len(set(stored) - set(acknowledged)),
            "duplicated": sum(count - 1 for count in per_item.values() if count > 1),
            "errors": sum(len(a.errors) for a in analysts)}


def run(args):
    from labeler.store.db import Dataset, database, open_database
    from labeler.store.migrations import upgrade
    from labeler.store.settings import update_labeling_settings
    from labeler.worker import jobs

    workdir, store, env, config, manage = temporary_instance("label-bench-")
    started = time.perf_counter()
    subprocess.run(manage + ["import", args.data, "--dataset", "cc", "--label-column", "Class", "--exclude", "Time"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    print(f"import of {os.path.basename(args.data)}: {time.perf_counter() - started:.1f} s")
    names = create_analysts(manage, env, args.analysts)

    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = Dataset.get(Dataset.name == "cc")
        rows = dataset.items().count()
        update_labeling_settings(dataset, {"refill_below": args.refill_below})
        dataset.settings = {**dataset.settings, "queue_size": args.queue_size}
        dataset.save()
        started = time.perf_counter()
        refill = jobs.latest(dataset, jobs.REFILL)  # the import queued it; the worker's job, run here
        jobs.run(refill.id, config)
        queued = jobs.latest(dataset, jobs.REFILL).payload["queued"]
        print(f"{rows:,} items; queue of {queued:,} entries and feature statistics prepared ahead by the refill job "
              f"in {time.perf_counter() - started:.1f} s; refill_below={args.refill_below}")
    database.close()

    analysts, elapsed, _ = post_decisions(workdir, env, manage, "cc", names, args.seconds, args.threads, args.warmup,
                                          args.reject_share, args.think)
    client = [ms for a in analysts for ms in a.client_ms]
    server_side = [ms for a in analysts for ms in a.server_ms]
    outcomes = {}
    for analyst in analysts:
        for kind, count in analyst.outcomes.items():
            outcomes[kind] = outcomes.get(kind, 0) + count
    pace = f"{args.think:g} s between a reply and the next decision" if args.think else "as fast as they can"
    print(f"{len(analysts)} analysts ({pace}), {args.threads} server threads, {elapsed:.1f} s timed "
          f"(+{args.warmup} untimed warm-up decisions each); reject share {args.reject_share}")
    print(f"decisions posted in the timed window: {len(client):,} = {len(client) / elapsed:.1f} requests/s; "
          f"outcomes (all): {outcomes}")
    for label, values in (("client (loopback HTTP, incl. queueing)", client), ("server (Server-Timing)", server_side)):
        print(f"{label:40s} p50 {percentile(values, .5):6.1f} ms   p90 {percentile(values, .9):6.1f} ms   "
              f"p99 {percentile(values, .99):6.1f} ms   max {max(values, default=float('nan')):6.1f} ms")

    check = check_store(store, analysts)
    print(f"store: {check['stored']:,} label rows for {check['items']:,} items; acknowledged "
          f"{check['acknowledged']:,}; lost {check['lost']}; stored but not acknowledged {check['unacknowledged']}; "
          f"duplicated {check['duplicated']}; server errors {check['errors']}")
    if args.keep:
        print(f"store kept at {store}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if check["lost"] or check["duplicated"] or check["unacknowledged"] else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/creditcard.csv.gz", help="transactions to import")
    parser.add_argument("--analysts", type=int, default=8, help="concurrent analysts (client threads)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the timed window")
    parser.add_argument("--threads", type=int, default=SERVE_THREADS, help="waitress threads (serve's default)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed decisions per analyst first")
    parser.add_argument("--reject-share", type=float, default=0.1, help="share of decisions that reject")
    parser.add_argument("--queue-size", type=int, default=4000,
                        help="queue entries prepared before the run: more than the run labels")
    parser.add_argument("--refill-below", type=int, default=0,
                        help="the dataset's refill threshold; 0: no refill job requested during the run (no worker "
                             "runs here: the figures are the web process's alone)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds each analyst waits between a reply and the next decision (uniform from "
                             "half to one and a half times it); 0: as fast as they can")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
