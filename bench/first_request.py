"""Benchmark: the first labeling request after the server starts, as the demo leaves a store.

For each start: a fresh store with the file imported (``manage.py import --label-column Class --exclude Time``),
the queue prepared ahead as that checkout's demo prepares it, one analyst; then the real server
(``manage.py serve``) starts, the analyst logs in, and the first and the second GET of the labeling screen are
timed (client over loopback HTTP, and the server's own Server-Timing). ``--compare DIR`` runs the same against
another checkout (e.g. ``git worktree add /tmp/before HEAD~1``) in the same run, so both face the same machine.

    python bench/first_request.py                              # the bundled sample, 3 starts
    python bench/first_request.py --compare /tmp/before        # and an earlier checkout beside it

Prints the figures and the machine. Not a timed test.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from label_latency import PASSWORD, Analyst, free_port, percentile, wait_for_port  # noqa: E402

# How each layout's demo prepares the queue before the server starts (run with the checkout first on sys.path).
PREPARE = {
    "worker jobs": (
        "from labeler.web import create_app\n"
        "from labeler.store.db import database\n"
        "from labeler.worker import jobs\n"
        "app = create_app()\n"
        "with database.connection_context():\n"
        "    for job in jobs.run_queued(app.extensions['labeler.config']).items(): print(job)\n"),
    "web refresh (before issue 12)": (
        "from labeler import create_app\n"
        "from labeler.db import Dataset, database\n"
        "from labeler.queue import refresh_queue\n"
        "create_app()\n"
        "with database.connection_context():\n"
        "    print(refresh_queue(Dataset.get(Dataset.name == 'cc')))\n"),
}


def layout(checkout):
    """Which of PREPARE fits ``checkout``."""
    if os.path.exists(os.path.join(checkout, "labeler", "worker", "jobs.py")):
        return "worker jobs"
    return "web refresh (before issue 12)"


def one_start(checkout, data, workdir):
    """(first GET client ms, its Server-Timing ms, second GET client ms, its Server-Timing ms) on a fresh store."""
    store = os.path.join(workdir, "labeler.sqlite3")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LABELER_")},
           "LABELER_DATABASE": store, "LABELER_SECRET_KEY": "bench-secret-key-of-at-least-32-characters", "LABELER_INSTANCE": workdir,
           "LABELER_QUEUE": os.path.join(workdir, "queue.sqlite3"), "LABELER_MODELS": os.path.join(workdir, "models"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    manage = [sys.executable, os.path.join(checkout, "manage.py")]
    quiet = {"env": env, "cwd": checkout, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(manage + ["import", data, "--dataset", "cc", "--label-column", "Class", "--exclude", "Time"], **quiet)
    if layout(checkout) == "worker jobs":  # the import queued an autoencoder job too; the demo leaves it to the worker
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                        "c.execute(\"DELETE FROM job WHERE kind = 'autoencoder'\"); c.commit()", store], **quiet)
    subprocess.run([sys.executable, "-c", PREPARE[layout(checkout)]], **quiet)
    subprocess.run(manage + ["create-user", "analyst0", "--password-stdin"], input=PASSWORD + "\n", text=True,
                   env=env, cwd=checkout, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "w")
    server = subprocess.Popen(manage + ["serve", "--port", str(port)], env=env, cwd=checkout, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server, log.name)
        analyst = Analyst("analyst0", port, "cc", 0.0, 0)
        _, page, _ = analyst.request("GET", "/login")
        analyst.request("POST", "/login", {"name": "analyst0", "password": PASSWORD,
                                           "csrf_token": page.split('name="csrf_token" value="')[1].split('"')[0]})
        figures = []
        for _ in range(2):
            response, text, client_ms = analyst.request("GET", "/datasets/cc/label")
            if response.status != 200 or 'data-item-id="' not in text:
                raise SystemExit(f"the labeling screen showed no item (HTTP {response.status}); see {log.name}")
            timing = response.getheader("Server-Timing") or ""
            figures += [client_ms, float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")]
        return tuple(figures)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "creditcard_sample.csv.gz"),
                        help="transactions to import (default: the bundled sample)")
    parser.add_argument("--starts", type=int, default=3, help="fresh stores and server starts per checkout")
    parser.add_argument("--compare", action="append", default=[], metavar="DIR",
                        help="another checkout to measure in the same run (repeatable)")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}; "
          f"data {os.path.basename(args.data)}; {time.strftime('%Y-%m-%d')}")
    for checkout in [ROOT, *args.compare]:
        rows = []
        for start in range(args.starts):
            workdir = tempfile.mkdtemp(prefix="first-request-")
            try:
                rows.append(one_start(os.path.abspath(checkout), args.data, workdir))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        first, first_server, second, second_server = zip(*rows)
        print(f"{checkout} ({layout(checkout)}): first GET of the labeling screen after a start: client "
              f"{', '.join(f'{ms:.0f}' for ms in first)} ms (median {percentile(first, .5):.0f}), server "
              f"{', '.join(f'{ms:.0f}' for ms in first_server)} ms; second GET: client median "
              f"{percentile(second, .5):.0f} ms, server median {percentile(second_server, .5):.0f} ms")


if __name__ == "__main__":
    main()
