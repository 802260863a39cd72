"""Benchmark: a retrain on the full credit-card file, by stage, and the labeling screen's latency while one runs.

    python bench/retrain.py                                # the full file, 1,000 labels
    python bench/retrain.py --data data/creditcard_sample.csv.gz --seconds 5 --skip-generative

1. Imports the file into a temporary store as ``manage.py demo`` does (``--exclude Time --label-column Class``).
2. Gives it 1,000 human labels taken from the ground truth in the loop's own order: the first 500 items of the
   cold-start queue, a retrain, then the 500 items of the queue that model wrote (so the labels hold the frauds
   and near-frauds the loop would show an analyst, not a random 0.17% of frauds).
3. Times ``labeler.worker.retrain.retrain`` (what the worker's retrain job runs: select, gate, refit, rescore
   all items, save the scores, switch + queue, pseudo-labels) by stage, then
   ``labeler.worker.refill.refresh_queue`` (what the worker's refill job runs to rewrite the queue from the
   stored scores), with the weak models alone; then with every generative candidate.
4. Starts the real server and worker, lets analysts (bench/label_latency.py's client, with a think time) post
   decisions while idle, then queues a retrain with ``manage.py retrain`` and compares the latency of the
   decisions posted while it runs with the idle ones.
Prints the figures and the machine and writes bench/results/retrain.md and retrain.json. Not a timed test.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from label_latency import PASSWORD, Analyst, free_port, percentile, wait_for_port  # noqa: E402

from labeler.config import Config  # noqa: E402
from labeler.store.db import Dataset, GroundTruth, Item, Job, Label, QueueEntry, User, database, open_database  # noqa: E402
from labeler.store.migrations import upgrade  # noqa: E402
from labeler.store.settings import update_labeling_settings  # noqa: E402
from labeler.worker import jobs  # noqa: E402
from labeler.worker.refill import refresh_queue  # noqa: E402
from labeler.worker.retrain import retrain  # noqa: E402

GENERATIVE = ["latent", "vae_balance", "sgan"]


def machine():
    load = os.getloadavg()
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average": [round(value, 2) for value in load]}


def print_machine(when):
    info = machine()
    print(f"machine ({when}): {info['platform']}, {info['processor']}, {info['cpus']} CPUs, Python "
          f"{info['python']}, load average {' / '.join(f'{v:.2f}' for v in info['load_average'])} (1/5/15 min)")
    return info


def set_settings(dataset, **changes):
    dataset.settings = {**(dataset.settings or {}), **changes}
    dataset.save()


def label_queue(dataset, user, truth, count):
    """Label the first ``count`` queue entries from the ground truth; returns the number labeled."""
    entries = list(QueueEntry.select(QueueEntry.item).where(QueueEntry.dataset == dataset)
                   .order_by(QueueEntry.priority).limit(count).tuples())
    rows = [{"item": item, "value": truth[item], "annotator": user.id, "source": "human"} for (item,) in entries]
    with database.atomic():
        for start in range(0, len(rows), 500):
            Label.insert_many(rows[start:start + 500]).execute()
    return len(rows)


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def measure_retrain(dataset, folder, name):
    """One retrain and one queue refill from the stored scores, timed; returns a result dict and prints it."""
    summary, wall = timed(lambda: retrain(dataset, folder))
    queued, refresh = timed(lambda: refresh_queue(dataset))
    result = {"name": name, "retrain_seconds": round(wall, 2), "stages": summary.get("timings", {}),
              "refresh_queue_seconds": round(refresh, 2), "queued": queued, "kind": summary.get("kind"),
              "serving": summary.get("serving"), "device": summary.get("device"),
              "labels_used": summary.get("labels_used"), "gate": (summary.get("gate") or {}).get("reason"),
              "stage_line": summary.get("stage")}
    stages = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in result["stages"].items())
    print(f"{name}: retrain {wall:.2f} s ({stages}); queue refill from stored scores {refresh:.2f} s; "
          f"kind {result['kind']}, device {result['device']}; gate: {result['gate']}")
    return result


def latency_during_retrain(args, workdir, env, manage):
    """Analysts post decisions idle for ``args.seconds``, then while a retrain runs in the real worker.

    Returns {"idle": {...}, "retrain": {...}, "retrain_seconds": ...}.
    """
    names = [f"analyst{n}" for n in range(args.analysts)]
    for name in names:
        subprocess.run(manage + ["create-user", name, "--password-stdin"], input=PASSWORD + "\n", text=True,
                       env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "cc")
        set_settings(dataset, generative_candidates=[], retrain_every=10 ** 9,  # retrains only when asked
                     queue_size=args.queue_size)
        update_labeling_settings(dataset, {"refill_below": 0})  # no refill job: both phases run the same path
        # the refill job the import queued, run here (as the demo does), so the worker starts with the
        # autoencoder job alone and the analysts' queue is the one prepared
        refill, _ = jobs.request(dataset, jobs.REFILL, "benchmark", enqueue=False)
        jobs.run(refill.id, Config.load(environ=env))
    port = free_port()
    server_log = open(os.path.join(workdir, "server.log"), "w")
    worker_log = open(os.path.join(workdir, "worker.log"), "w")
    server = subprocess.Popen(manage + ["serve", "--port", str(port), "--threads", str(args.threads)], env=env,
                              stdout=server_log, stderr=subprocess.STDOUT, cwd=ROOT)
    worker = subprocess.Popen(manage + ["worker", "--nice", str(args.worker_nice)], env=env, stdout=worker_log,
                              stderr=subprocess.STDOUT, cwd=ROOT)
    samples = []  # (phase, client ms, server ms or None)
    phase = {"now": "warm-up"}
    stop = threading.Event()
    try:
        wait_for_port(port, server, server_log.name)
        analysts = [Analyst(name, port, "cc", 0.1, seed) for seed, name in enumerate(names)]
        for analyst in analysts:
            analyst.log_in()
        time.sleep(args.settle)  # the worker's start-up (imports) is over before anything is timed
        lock = threading.Lock()

        def work(analyst):
            while not stop.is_set():
                current = phase["now"]
                client_before, server_before = len(analyst.client_ms), len(analyst.server_ms)
                analyst.decide(timed=True)
                if len(analyst.client_ms) > client_before:
                    server = analyst.server_ms[-1] if len(analyst.server_ms) > server_before else None
                    with lock:
                        samples.append((current, analyst.client_ms[-1], server))
                time.sleep(args.think)

        threads = [threading.Thread(target=work, args=(analyst,)) for analyst in analysts]
        for thread in threads:
            thread.start()
        time.sleep(2)
        phase["now"] = "idle"
        time.sleep(args.seconds)
        phase["now"] = "queued"
        queued = subprocess.run(manage + ["retrain", "--dataset", "cc"], env=env, cwd=ROOT, capture_output=True,
                                text=True)
        if queued.returncode != 0:
            raise SystemExit(queued.stderr)
        started = finished = None
        deadline = time.monotonic() + args.retrain_timeout
        while time.monotonic() < deadline:
            with database.connection_context():
                job = Job.select().where(Job.kind == "retrain").order_by(Job.id.desc()).first()
            if job.state == "running" and started is None:
                phase["now"], started = "retrain", time.perf_counter()
            if job.state in ("done", "failed"):
                finished = time.perf_counter()
                break
            time.sleep(0.05)
        phase["now"] = "after"
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        worker.terminate()  # before the autoencoder job a retrain may queue in turn starts training
        server.terminate()
        worker.wait(timeout=60)
        server.wait(timeout=60)
        server_log.close()
        worker_log.close()
    if finished is None:
        raise SystemExit(f"the retrain did not finish within {args.retrain_timeout} s; see {worker_log.name}")
    with database.connection_context():
        job = Job.get_by_id(job.id)
    result = {"analysts": args.analysts, "think_seconds": args.think, "server_threads": args.threads,
              "worker_nice": args.worker_nice,
              "retrain_job": {"state": job.state, "stage": job.stage, "error": job.error,
                              "seconds_running": round(finished - (started or finished), 2),
                              "stages": (job.payload or {}).get("timings")}}
    for name in ("idle", "retrain"):
        client = [ms for kind, ms, _ in samples if kind == name]
        server = [ms for kind, _, ms in samples if kind == name and ms is not None]
        result[name] = {"decisions": len(client),
                        "client_ms": {f"p{int(q * 100)}": round(percentile(client, q), 1) for q in (.5, .9, .99)},
                        "server_ms": {f"p{int(q * 100)}": round(percentile(server, q), 1) for q in (.5, .9, .99)}}
        print(f"{name:8s} {len(client):5d} decisions   client p50 {percentile(client, .5):6.1f} ms  "
              f"p90 {percentile(client, .9):6.1f}  p99 {percentile(client, .99):6.1f}   server p50 "
              f"{percentile(server, .5):6.1f}  p99 {percentile(server, .99):6.1f} ms")
    print(f"retrain in the worker: {job.state}, {result['retrain_job']['seconds_running']:.1f} s running; "
          f"{job.stage}")
    return result


def write_results(results, path):
    with open(path + ".json", "w") as stream:
        json.dump(results, stream, indent=2)
    lines = ["# Retrain benchmark (bench/retrain.py)", "",
             f"Command: `{results['command']}`", "",
             f"Machine: {results['machine']['platform']}, {results['machine']['cpus']} CPUs, Python "
             f"{results['machine']['python']}; load average (1/5/15 min) at the start "
             f"{results['machine']['load_average']}, at the end {results['machine_after']['load_average']} "
             "(the 2 cores are shared with other sessions: figures are under that contention).", "",
             f"Data: {results['data']} ({results['items']:,} items), {results['labels']:,} human labels "
             f"({results['positives']} frauds) from the ground truth in the loop's own order (500 from the "
             "cold-start queue, a retrain, the 500 its queue held).", "",
             "## Retrain + rescore of every item + queue, by stage (seconds)", ""]
    for run in results["retrains"]:
        lines.append(f"### {run['name']}: {run['retrain_seconds']:.2f} s "
                     f"(+ queue refill from the stored scores {run['refresh_queue_seconds']:.2f} s)")
        lines.append("")
        lines.append("| stage | seconds |")
        lines.append("|---|---:|")
        lines += [f"| {stage} | {seconds:.2f} |" for stage, seconds in run["stages"].items()]
        lines.append("")
        lines.append(f"Model: {run['kind']} on {run['device']}, serving: {run['serving']}; gate: {run['gate']}")
        lines.append("")
    if results.get("generative_note"):
        lines += [results["generative_note"], ""]
    latency = results.get("latency")
    if latency:
        lines += ["## Labeling screen latency while a retrain runs", "",
                  f"{latency['analysts']} analysts over loopback HTTP, {latency['think_seconds']} s think time "
                  f"between decisions, {latency['server_threads']} server threads; the retrain ran in the real "
                  f"worker (`--nice {latency['worker_nice']}`) for {latency['retrain_job']['seconds_running']:.1f} s "
                  f"({latency['retrain_job']['stage']}).", "",
                  "| phase | decisions | client p50 | client p90 | client p99 | server p50 | server p99 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name in ("idle", "retrain"):
            row = latency[name]
            lines.append(f"| {name} | {row['decisions']} | {row['client_ms']['p50']} | {row['client_ms']['p90']} | "
                         f"{row['client_ms']['p99']} | {row['server_ms']['p50']} | {row['server_ms']['p99']} |")
        lines.append("")
    with open(path + ".md", "w") as stream:
        stream.write("\n".join(lines))


def run(args):
    results = {"command": " ".join(["python bench/retrain.py", *sys.argv[1:]]), "machine": print_machine("start"),
               "data": os.path.basename(args.data), "retrains": []}
    workdir = tempfile.mkdtemp(prefix="retrain-bench-")
    store = os.path.join(workdir, "labeler.sqlite3")
    env = {**os.environ, "LABELER_DATABASE": store, "LABELER_SECRET_KEY": "bench-secret-key-of-at-least-32-characters",
           "LABELER_INSTANCE": workdir, "LABELER_QUEUE": os.path.join(workdir, "queue.sqlite3"),
           "LABELER_MODELS": os.path.join(workdir, "models")}
    manage = [sys.executable, os.path.join(ROOT, "manage.py")]
    try:
        _, seconds = timed(lambda: subprocess.run(
            manage + ["import", args.data, "--dataset", "cc", "--label-column", "Class", "--exclude", "Time"],
            env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT))
        print(f"import of {os.path.basename(args.data)}: {seconds:.1f} s")
        folder = env["LABELER_MODELS"]
        open_database(store)
        with database.connection_context():
            upgrade()
            dataset = Dataset.get(Dataset.name == "cc")
            set_settings(dataset, generative_candidates=[])  # the weak models alone first
            user = User.create(name="oracle", password_hash="-", role="analyst")
            truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
                         .where(Item.dataset == dataset).tuples())
            results["items"] = len(truth)
            _, seconds = timed(lambda: refresh_queue(dataset))
            first = label_queue(dataset, user, truth, args.labels // 2)
            print(f"cold-start queue {seconds:.1f} s; {first} labeled from it")
            summary, seconds = timed(lambda: retrain(dataset, folder))
            second = label_queue(dataset, user, truth, args.labels - first)
            print(f"retrain at {first} labels {seconds:.1f} s ({summary['stage']}); {second} more labeled from its "
                  f"queue")
            results["labels"] = first + second
            results["positives"] = Label.select().where(Label.value == dataset.positive_label).count()
            print(f"{results['labels']} human labels, {results['positives']} frauds")
            for repeat in range(args.repeats):
                results["retrains"].append(measure_retrain(dataset, folder, f"weak models, run {repeat + 1}"))
            if args.skip_generative:
                results["generative_note"] = "Generative candidates: skipped (--skip-generative)."
            else:
                set_settings(dataset, generative_candidates=GENERATIVE)
                results["retrains"].append(measure_retrain(dataset, folder, f"weak + {', '.join(GENERATIVE)}"))
            if results.get("generative_note"):
                print(results["generative_note"])
        database.close()
        if args.seconds > 0:
            results["latency"] = latency_during_retrain(args, workdir, env, manage)
    finally:
        results["machine_after"] = print_machine("end")
        if args.keep:
            print(f"store kept at {store}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        write_results(results, args.out)
        print(f"written: {args.out}.md, {args.out}.json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/creditcard.csv.gz", help="transactions to import")
    parser.add_argument("--labels", type=int, default=1000, help="human labels before the timed retrain")
    parser.add_argument("--repeats", type=int, default=2, help="timed weak-model retrains")
    parser.add_argument("--skip-generative", action="store_true", help="do not time the generative candidates")
    parser.add_argument("--analysts", type=int, default=4)
    parser.add_argument("--think", type=float, default=0.25, help="seconds between an analyst's decisions")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--seconds", type=float, default=20.0, help="idle labeling before the retrain; 0: skip")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds for the worker to start before timing")
    parser.add_argument("--queue-size", type=int, default=3000, help="queue prepared before the latency run")
    parser.add_argument("--worker-nice", type=int, default=10, help="the worker's --nice (its default is 10)")
    parser.add_argument("--retrain-timeout", type=float, default=600.0)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "retrain"),
                        help="results path without extension ('' to write nothing)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
