"""Benchmark: push transactions through the JSON API while analysts label over HTTP.

Imports the credit-card file (with an id column added: pushed rows need ids of their own) into a temporary store,
starts the real server (``manage.py serve``, waitress), creates a write token with ``manage.py create-token`` and
lets N analysts label (as bench/label_latency.py does) first alone for a baseline window, then while one client
pushes ``--rows`` transactions resampled from the file with new ids, in batches of ``--batch`` (a JSON array per
request). Prints rows per second, each push's latency, label-and-next latency alone and during the push, then
checks that nothing was lost: every pushed id is stored exactly once, the dataset grew by the rows pushed, a
re-pushed batch adds nothing, and every acknowledged label is stored once. No worker runs: the jobs the pushes
request (retrain, refill) wait in the store, so the figures are the web process's alone.

    python bench/api_push.py                                   # 100,000 rows into the bundled sample
    python bench/api_push.py --data /work/shared/data/creditcard.csv.gz
"""
import argparse
import datetime
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from label_latency import PASSWORD, Analyst, free_port, percentile, temporary_instance, wait_for_port  # noqa: E402
from labeler.cli.commands import SERVE_THREADS  # noqa: E402

ID_COLUMN = "tx_id"


def figures(label, values):
    return (f"{label:44s} p50 {percentile(values, .5):7.1f} ms   p90 {percentile(values, .9):7.1f} ms   "
            f"p99 {percentile(values, .99):7.1f} ms   max {max(values, default=float('nan')):7.1f} ms   "
            f"(n={len(values):,})")


def batches_of(frame, rows, batch, seed):
    """``rows`` rows resampled from ``frame`` (with replacement, seeded) with new ids, as JSON array bodies of
    ``batch`` rows each."""
    picks = np.random.default_rng(seed).integers(0, len(frame), rows)
    records = frame.drop(columns=["Class"]).iloc[picks].to_dict("records")
    for number, record in enumerate(records):
        record[ID_COLUMN] = f"push{number}"
    return [json.dumps(records[start:start + batch]).encode() for start in range(0, rows, batch)]


def run(args):
    from labeler.store.db import Dataset, Item, Label, User, database, open_database
    from labeler.store.migrations import upgrade
    from labeler.store.settings import update_labeling_settings
    from labeler.worker import jobs

    workdir, store, env, config, manage = temporary_instance("api-push-bench-")
    frame = pd.read_csv(args.data, dtype={"Class": str})
    frame.insert(0, ID_COLUMN, [f"base{i}" for i in range(len(frame))])
    base = os.path.join(workdir, "base.csv")
    frame.to_csv(base, index=False)
    started = time.perf_counter()
    subprocess.run(manage + ["import", base, "--dataset", "cc", "--label-column", "Class", "--id-column", ID_COLUMN,
                             "--exclude", "Time"], env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    print(f"import of {os.path.basename(args.data)} ({len(frame):,} rows, id column added): "
          f"{time.perf_counter() - started:.1f} s")
    names = [f"analyst{n}" for n in range(args.analysts)]
    for name in [*names, "pusher"]:
        subprocess.run(manage + ["create-user", name, "--password-stdin", "--role", "admin" if name == "pusher"
                                 else "analyst"], input=PASSWORD + "\n", text=True, env=env, check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT)
    token = subprocess.run(manage + ["create-token", "bench", "--user", "pusher", "--scope", "write"], env=env,
                           check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()

    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = Dataset.get(Dataset.name == "cc")
        rows_before = dataset.items().count()
        update_labeling_settings(dataset, {"refill_below": 0})
        dataset.settings = {**dataset.settings, "queue_size": args.queue_size}
        dataset.save()
        jobs.run(jobs.latest(dataset, jobs.REFILL).id, config)  # the import queued it; the worker's job, run here
    database.close()
    bodies = batches_of(frame, args.rows, args.batch, args.seed)

    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "w")
    server = subprocess.Popen(manage + ["serve", "--port", str(port), "--threads", str(args.threads)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    pushes, push_ms, push_errors = [], [], []
    try:
        wait_for_port(port, server, log.name)
        analysts = [Analyst(name, port, "cc", 0.1, seed) for seed, name in enumerate(names)]
        for analyst in analysts:
            analyst.log_in()
        stop = threading.Event()

        def work(analyst):
            for _ in range(5):
                analyst.decide(timed=False)
            while not stop.is_set():
                analyst.decide(timed=True)

        threads = [threading.Thread(target=work, args=(analyst,)) for analyst in analysts]
        for thread in threads:
            thread.start()
        time.sleep(args.baseline_seconds)
        alone = [ms for analyst in analysts for ms in analyst.client_ms]
        alone_server = [ms for analyst in analysts for ms in analyst.server_ms]
        marks = [(len(analyst.client_ms), len(analyst.server_ms)) for analyst in analysts]

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        push_started = time.perf_counter()
        for body in bodies:
            began = time.perf_counter()
            connection.request("POST", "/api/v1/datasets/cc/transactions", body=body, headers=headers)
            response = connection.getresponse()
            reply = json.loads(response.read())
            push_ms.append((time.perf_counter() - began) * 1000)
            (pushes if response.status == 200 else push_errors).append(reply)
        push_seconds = time.perf_counter() - push_started
        during = [ms for analyst, (mark, _) in zip(analysts, marks) for ms in analyst.client_ms[mark:]]
        during_server = [ms for analyst, (_, mark) in zip(analysts, marks) for ms in analyst.server_ms[mark:]]
        stop.set()
        for thread in threads:
            thread.join()
        connection.request("POST", "/api/v1/datasets/cc/transactions", body=bodies[0], headers=headers)
        again = json.loads(connection.getresponse().read())
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    added = sum(reply["added"] for reply in pushes)
    received = sum(reply["received"] for reply in pushes)
    print(f"{args.analysts} analysts labeling through HTTP, {args.threads} server threads; {args.rows:,} rows pushed "
          f"in {len(bodies)} batches of {args.batch:,} (JSON arrays) by one client")
    print(f"push: {push_seconds:.1f} s = {args.rows / push_seconds:,.0f} rows/s; received {received:,}, added "
          f"{added:,}, errors {len(push_errors)}{' ' + str(push_errors[:1]) if push_errors else ''}")
    print(figures("push of one batch (client)", push_ms))
    print(figures("label-and-next alone (client)", alone))
    print(figures("label-and-next alone (server)", alone_server))
    print(figures("label-and-next during the push (client)", during))
    print(figures("label-and-next during the push (server)", during_server))

    open_database(store)
    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "cc")
        rows_after = dataset.items().count()
        pushed_ids = [external_id for (external_id,) in Item.select(Item.external_id).where(
            (Item.dataset == dataset) & Item.external_id.startswith("push")).tuples()]
        stored = list(Label.select(Label.item, Label.annotator)
                      .where((Label.kind == "label") & (Label.source == "human")).tuples())
        user_names = dict(User.select(User.id, User.name).tuples())
        pending = {kind: jobs.latest(dataset, kind).state for kind in (jobs.RETRAIN, jobs.REFILL)}
    acknowledged = {(item, analyst.name) for analyst in analysts for item in analyst.recorded}
    stored_labels = [(item, user_names[user]) for item, user in stored]
    expected_ids = {f"push{n}" for n in range(args.rows)}
    lost_rows = len(expected_ids - set(pushed_ids))
    duplicated_rows = len(pushed_ids) - len(set(pushed_ids))
    lost_labels = len(acknowledged - set(stored_labels))
    print(f"store: {rows_before:,} items before, {rows_after:,} after (+{rows_after - rows_before:,}); pushed ids "
          f"stored {len(set(pushed_ids)):,}, lost {lost_rows}, duplicated {duplicated_rows}; re-push of the first "
          f"batch: added {again.get('added')}, already present {again.get('already_present')}")
    print(f"labels: {len(stored_labels):,} stored, {len(acknowledged):,} acknowledged, lost {lost_labels}, "
          f"stored twice {len(stored_labels) - len(set(stored_labels))}, server errors "
          f"{sum(len(analyst.errors) for analyst in analysts)}; jobs left for the worker: {pending}")
    if args.keep:
        print(f"store kept at {store}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = (not push_errors and added == args.rows and rows_after - rows_before == args.rows and not lost_rows
          and not duplicated_rows and again.get("added") == 0 and not lost_labels)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "creditcard_sample.csv.gz"),
                        help="the credit-card file: imported first, and the rows pushed are resampled from it")
    parser.add_argument("--rows", type=int, default=100_000, help="transactions to push")
    parser.add_argument("--batch", type=int, default=1000, help="transactions per request")
    parser.add_argument("--analysts", type=int, default=4, help="concurrent analysts (client threads)")
    parser.add_argument("--baseline-seconds", type=float, default=10.0,
                        help="seconds the analysts label alone first (the latency to compare with)")
    parser.add_argument("--threads", type=int, default=SERVE_THREADS, help="waitress threads (serve's default)")
    parser.add_argument("--queue-size", type=int, default=20000,
                        help="queue entries prepared before the run: more than the run labels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"# python bench/api_push.py {' '.join(sys.argv[1:])}  ({started:%Y-%m-%d %H:%M} UTC)")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
