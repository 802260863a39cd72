"""Scale: how labeler's costs grow with the pool, from 100,000 to 10 million transactions, on SQLite and PostgreSQL.

The pools are not real transactions: they are the credit-card file's rows resampled with replacement (seeded) with
small Gaussian noise added to every numeric column (``--noise`` times the column's standard deviation; amounts
and times kept non-negative, the Class column unchanged), with an id column ``tx``, written once per size as
Parquet into a git-ignored cache folder (bench/results/scale_cache/). For each size and store, in a fresh
instance folder each, it measures through the product's public entry points:

- import: ``manage.py import`` (``--id-column tx --label-column Class --exclude Time``) as a child process: rows
  per second and its peak RSS (GNU time's maximum resident set size);
- the cold-start queue: the refill job the import queued, run by jobs.run in a child process (the worker's job
  lifecycle), its time and peak RSS;
- ``--labels`` decisions by an oracle user through the labeling service (labeler.labeling.leases.next_item and
  labeler.labeling.decisions.decide, the ground truth's value), which queue a retrain as the screen does; then
  that retrain job (train, gate, rescore every item, switch the serving model and rewrite the queue) run by
  jobs.run in a child process: its time and peak RSS;
- label-and-next with ``--analysts`` analysts over loopback HTTP against ``manage.py serve``
  (bench/label_latency.py's clients): server-side (Server-Timing) and client p50/p99, and every acknowledged
  label stored exactly once;
- the item table (labeler.data.item_table.table_page): page 1, a keyset page in the middle of the pool, a
  filtered count (amount 100-200) and a label-filtered page 1 (label fraud);
- ``manage.py export --format csv`` of every label as a child process: time, peak RSS and its row count against
  the items labeled.

Prints one table per store (rows: measurement, columns: sizes) with the machine and whether the issue's targets
are met, writes them to bench/results/scale.txt and scale.json (results of earlier runs for other sizes or
stores are kept: each run replaces only what it measured) and draws each cost against pool size, log-log, in
bench/results/scale.png.

    python bench/scale.py --sizes 100000 --skip-postgres          # one size, SQLite only
    python bench/scale.py --sizes 100000 1000000 --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python bench/scale.py --replot                                # the table and plot from scale.json again
"""
import argparse
import csv
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from label_latency import check_store, create_analysts, percentile, post_decisions  # noqa: E402

from labeler.cli.commands import SERVE_THREADS  # noqa: E402

FULL = os.path.join(ROOT, "..", "shared", "data", "creditcard.csv.gz")
SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")
RESULTS = os.path.join(ROOT, "bench", "results")
DATASET = "scale"
ID_COLUMN = "tx"
SECRET = "bench-secret-key-of-at-least-32-characters"
CHUNK_ROWS = 1_000_000
TIME = "/usr/bin/time"  # GNU time (Debian's time package): a child's peak RSS
TARGET_P99_MS = 30.0
TARGET_P99_GROWTH = 1.5
TARGET_RETRAIN_S = 60.0
TARGET_RSS_MB = 6 * 1024.0
# (key, row title, format) of the table, in order
ROWS = [
    ("items", "items imported", "{:,.0f}"),
    ("store_mb", "store on disk (MB)", "{:,.0f}"),
    ("import_s", "import: wall (s)", "{:.1f}"),
    ("import_rows_s", "import: rows/s", "{:,.0f}"),
    ("import_rss_mb", "import: peak RSS (MB)", "{:,.0f}"),
    ("refill_s", "cold-start refill job (s)", "{:.1f}"),
    ("refill_rss_mb", "cold-start refill job: peak RSS (MB)", "{:,.0f}"),
    ("oracle_decide_p50_ms", "oracle label+next in-process p50 (ms)", "{:.1f}"),
    ("oracle_decide_p99_ms", "oracle label+next in-process p99 (ms)", "{:.1f}"),
    ("label_frauds", "frauds among the oracle's labels", "{:,.0f}"),
    ("retrain_s", "retrain+rescore+switch job (s)", "{:.1f}"),
    ("retrain_process_s", "  its process incl. start-up (s)", "{:.1f}"),
    ("retrain_load_s", "  stage: load", "{:.2f}"),
    ("retrain_score_s", "  stage: score pool", "{:.2f}"),
    ("retrain_switch_s", "  stage: switch + queue", "{:.2f}"),
    ("retrain_pseudo_s", "  stage: pseudo-labels", "{:.2f}"),
    ("retrain_rss_mb", "retrain job: peak RSS (MB)", "{:,.0f}"),
    ("server_p50_ms", "label-and-next server p50 (ms)", "{:.1f}"),
    ("server_p99_ms", "label-and-next server p99 (ms)", "{:.1f}"),
    ("client_p50_ms", "label-and-next client p50 (ms)", "{:.1f}"),
    ("client_p99_ms", "label-and-next client p99 (ms)", "{:.1f}"),
    ("decisions_s", "label-and-next decisions/s", "{:.1f}"),
    ("load_at_latency", "  machine's load average at its start", "{:.2f}"),
    ("paced_server_p50_ms", "paced label-and-next server p50 (ms)", "{:.1f}"),
    ("paced_server_p99_ms", "paced label-and-next server p99 (ms)", "{:.1f}"),
    ("paced_client_p99_ms", "paced label-and-next client p99 (ms)", "{:.1f}"),
    ("paced_decisions_s", "paced label-and-next decisions/s", "{:.1f}"),
    ("server_rss_mb", "web server: peak RSS (MB)", "{:,.0f}"),
    ("page1_ms", "item table page 1 (ms)", "{:.1f}"),
    ("deep_page_ms", "item table keyset page mid-pool (ms)", "{:.1f}"),
    ("amount_count_ms", "filtered count amount 100-200 (ms)", "{:.1f}"),
    ("amount_matching", "  rows matching", "{:,.0f}"),
    ("fraud_count_ms", "label=fraud page 1 + count (ms)", "{:.1f}"),
    ("export_s", "export csv of all labels (s)", "{:.1f}"),
    ("export_rows", "  rows exported", "{:,.0f}"),
    ("export_rss_mb", "export: peak RSS (MB)", "{:,.0f}"),
    ("lost", "labels lost/dup/unacked/missing", "{}"),
    ("bench_rss_mb", "bench process (in-process services) RSS", "{:,.0f}"),
]
BATCH = [("import_s", "import"), ("refill_s", "cold-start refill job"), ("retrain_s", "retrain+rescore+switch"),
         ("export_s", "export csv")]
REQUESTS = [("server_p99_ms", "label-and-next p99, server"), ("paced_server_p99_ms", "paced label-and-next p99"), ("page1_ms", "item table page 1"),
            ("deep_page_ms", "keyset page mid-pool"), ("amount_count_ms", "filtered count (amount)"),
            ("fraud_count_ms", "label=fraud page 1 + count")]
MEMORY = [("import_rss_mb", "import"), ("refill_rss_mb", "refill job"), ("retrain_rss_mb", "retrain job"),
          ("server_rss_mb", "web server"), ("export_rss_mb", "export")]


def machine():
    """The machine in a dict: platform, cpus, RAM, python, date (UTC) and the load average now."""
    with open("/proc/meminfo") as stream:
        ram_kb = int(next(line for line in stream if line.startswith("MemTotal")).split()[1])
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "ram_gib": round(ram_kb / 2 ** 20, 1),
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average": round(os.getloadavg()[0], 2)}


def pool_file(args, size):
    """The cached Parquet file of ``size`` resampled rows, written first when missing (chunk by chunk, to a
    temporary name renamed at the end); returns its path."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(args.cache, exist_ok=True)
    path = os.path.join(args.cache, f"creditcard_resampled_{size}_seed{args.seed}_noise{args.noise:g}.parquet")
    if os.path.exists(path):
        return path
    started = time.perf_counter()
    base = pd.read_csv(args.data)
    numeric = [column for column in base.columns if column != "Class"]
    values = base[numeric].to_numpy(np.float64)
    scale = values.std(axis=0) * args.noise
    non_negative = [position for position, column in enumerate(numeric) if column in ("Time", "Amount")]
    truth = base["Class"].to_numpy(np.int64)
    rng = np.random.default_rng(args.seed)
    writer = None
    for start in range(0, size, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, size - start)
        picks = rng.integers(0, len(base), size=rows)
        chunk = values[picks] + rng.normal(0.0, 1.0, size=(rows, len(numeric))) * scale
        chunk[:, non_negative] = np.abs(chunk[:, non_negative])
        frame = pd.DataFrame(chunk, columns=numeric)
        frame.insert(0, ID_COLUMN, np.arange(start, start + rows, dtype=np.int64))
        frame["Class"] = truth[picks]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path + ".tmp", table.schema)
        writer.write_table(table, row_group_size=min(rows, 250_000))
    writer.close()
    os.replace(path + ".tmp", path)
    print(f"wrote {path} ({size:,} rows, {os.path.getsize(path) / 2 ** 20:,.0f} MB) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return path


def run_child(command, env, log_path):
    """Run ``command`` to the end with its output in ``log_path``; returns (exit code, wall seconds, peak RSS in
    MB of that process). The peak comes from GNU time (/usr/bin/time): a child's own rusage would also count the
    memory of this process, which it was forked from, before its exec."""
    peak_path = log_path + ".maxrss"
    with open(log_path, "w") as log:
        started = time.perf_counter()
        code = subprocess.run([TIME, "-f", "%M", "-o", peak_path, *command], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - started
    with open(peak_path) as stream:
        peak_kb = int(stream.read().strip().splitlines()[-1])
    return code, wall, peak_kb / 1024


def checked_child(command, env, log_path, what):
    """run_child; exits with the log's tail when the command failed."""
    code, wall, rss = run_child(command, env, log_path)
    if code:
        with open(log_path) as stream:
            raise SystemExit(f"{what} failed ({code}):\n{stream.read()[-3000:]}")
    return wall, rss


def run_job_here(job_id):
    """The child process of a timed job: run job ``job_id`` of the store the LABELER_* variables name with
    jobs.run (the worker's lifecycle) and print {"state", "seconds"} as JSON. Exits 1 when the job failed."""
    from labeler.config import Config
    from labeler.store.db import Job, database, open_database
    from labeler.worker import jobs

    config = Config.load()
    open_database(config.DATABASE)
    jobs.task_queue.open(config)  # a job may queue another (the retrain: the autoencoder's)
    with database.connection_context():
        started = time.perf_counter()
        state = jobs.run(job_id, config)
        seconds = time.perf_counter() - started
        job = Job.get_by_id(job_id)
    print(json.dumps({"state": state, "seconds": seconds, "stage": job.stage, "error": job.error}))
    sys.exit(0 if state == "done" else 1)


def timed_job(job_id, env, workdir, name):
    """Run job ``job_id`` in a child process (run_job_here); returns (the child's report, process wall seconds,
    peak RSS MB). Exits when the job failed."""
    log = os.path.join(workdir, f"{name}.log")
    wall, rss = checked_child([sys.executable, os.path.abspath(__file__), "--run-job", str(job_id)], env, log,
                              f"the {name} job")
    with open(log) as stream:
        report = json.loads(stream.read().strip().splitlines()[-1])
    return report, wall, rss


def instance(args, kind, size):
    """A fresh instance folder for one measurement, its environment for manage.py and the store's target (a path,
    or the URL of a new PostgreSQL database)."""
    workdir = tempfile.mkdtemp(prefix=f"scale-{kind}-{size}-", dir=args.work)
    env = {**os.environ, "LABELER_SECRET_KEY": SECRET, "LABELER_INSTANCE": workdir,
           "LABELER_QUEUE": os.path.join(workdir, "queue.sqlite3"), "LABELER_MODELS": os.path.join(workdir, "models")}
    env.pop("LABELER_REDIS_URL", None)
    if kind == "sqlite":
        target = os.path.join(workdir, "labeler.sqlite3")
    else:
        name = f"scale_{size}_{os.getpid()}"
        postgres_admin(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        target = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    env["LABELER_DATABASE"] = target
    return workdir, env, target


def postgres_admin(url, *statements):
    """Run ``statements`` on the PostgreSQL server of ``url`` outside a transaction; returns the last one's
    first row or None."""
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True
    row = None
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
            row = cursor.fetchone() if cursor.description else None
    connection.close()
    return row


def store_megabytes(args, kind, workdir, target):
    """The store's size on disk in MB (the SQLite files, or pg_database_size)."""
    if kind == "sqlite":
        return sum(os.path.getsize(os.path.join(workdir, name)) for name in os.listdir(workdir)
                   if name.startswith("labeler.sqlite3")) / 2 ** 20
    name = target.rsplit("/", 1)[1]
    return postgres_admin(args.postgres_url, f"SELECT pg_database_size('{name}')")[0] / 2 ** 20


def median_ms(call, repeat, budget_s=15.0):
    """(median milliseconds of ``repeat`` calls of ``call`` after one warm-up, the last result); stops early,
    after at least 3 calls, once the calls took ``budget_s`` seconds."""
    result = call()
    times = []
    while len(times) < repeat and (len(times) < 3 or sum(times) < budget_s * 1000):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def oracle_labels(dataset, count, config):
    """``count`` decisions by the user "oracle" through the labeling service: lease the next item, label it with
    its ground truth. Returns (milliseconds per decide call, frauds labeled)."""
    from labeler.data.users import create_user
    from labeler.labeling.decisions import decide
    from labeler.labeling.leases import next_item
    from labeler.store.db import GroundTruth

    user = create_user("oracle", "oracle password 1234", role="analyst")
    lease = next_item(dataset, user)
    times, frauds = [], 0
    while lease is not None and len(times) < count:
        value = GroundTruth.get(GroundTruth.item == lease.item_id).value
        frauds += value == dataset.positive_label
        started = time.perf_counter()
        outcome, lease = decide(dataset, user, lease.item_id, f"label:{value}")
        times.append((time.perf_counter() - started) * 1000)
        if outcome.kind != "recorded":
            raise SystemExit(f"oracle decision {len(times)}: {outcome.kind}: {outcome.message}")
    return times, frauds


def table_figures(dataset, repeat):
    """Milliseconds (median of ``repeat``) of the item table's page 1, a keyset page in the middle of the pool,
    the amount filter's page 1 with its count, the label=fraud page 1 with its count; and the amount count."""
    from labeler.data.item_table import TableQuery, table_page
    from labeler.store.db import Item

    middle = dataset.items().count() // 2
    item = Item.get((Item.dataset == dataset) & (Item.row_number >= middle))
    figures = {}
    figures["page1_ms"], _ = median_ms(lambda: table_page(dataset, TableQuery(), 50), repeat)
    figures["deep_page_ms"], page = median_ms(
        lambda: table_page(dataset, TableQuery(after=(item.row_number, item.id)), 50), repeat)
    assert len(page.items) == 50, "the mid-pool page is not full"
    figures["amount_count_ms"], page = median_ms(
        lambda: table_page(dataset, TableQuery(amount_min=100.0, amount_max=200.0), 50), repeat)
    figures["amount_matching"] = page.matching
    figures["fraud_count_ms"], page = median_ms(
        lambda: table_page(dataset, TableQuery(label=dataset.positive_label), 50), repeat)
    figures["fraud_matching"] = page.matching
    return figures


def measure(args, kind, size):
    """Every measurement of one pool size on one store; returns the figures as a dict."""
    from labeler.config import Config
    from labeler.store.db import Dataset, Item, Job, Label, database, open_database
    from labeler.store.migrations import upgrade
    from labeler.store.settings import update_labeling_settings
    from labeler.worker import jobs

    path = pool_file(args, size)
    workdir, env, target = instance(args, kind, size)
    manage = [sys.executable, os.path.join(ROOT, "manage.py")]
    figures = {"machine": machine(), "data": os.path.basename(path)}
    print(f"== {kind} {size:,}: instance {workdir}", flush=True)
    try:
        wall, rss = checked_child(manage + ["import", path, "--dataset", DATASET, "--id-column", ID_COLUMN,
                                            "--label-column", "Class", "--exclude", "Time"],
                                  env, os.path.join(workdir, "import.log"), "import")
        figures.update(import_s=wall, import_rss_mb=rss, import_rows_s=size / wall)
        figures["store_mb"] = store_megabytes(args, kind, workdir, target)
        print(f"import: {wall:.1f} s, {size / wall:,.0f} rows/s, peak RSS {rss:,.0f} MB; store "
              f"{figures['store_mb']:,.0f} MB", flush=True)

        config = Config.load(environ=env)
        open_database(target)
        jobs.task_queue.open(config)
        with database.connection_context():
            upgrade()
            dataset = Dataset.get(Dataset.name == DATASET)
            figures["items"] = dataset.items().count()
            dataset.settings = {**(dataset.settings or {}), "queue_size": args.queue_size,
                                "generative_candidates": []}
            dataset.save()
            update_labeling_settings(dataset, {"refill_below": 0})  # no refill job asked for while labeling
            refill = jobs.latest(dataset, jobs.REFILL, state="queued")
        report, process, rss = timed_job(refill.id, env, workdir, "refill")
        figures.update(refill_s=report["seconds"], refill_rss_mb=rss)
        print(f"cold-start refill job: {report['seconds']:.1f} s ({process:.1f} s with start-up), peak RSS "
              f"{rss:,.0f} MB; {report['stage']}", flush=True)

        with database.connection_context():
            dataset = Dataset.get(Dataset.name == DATASET)
            times, frauds = oracle_labels(dataset, args.labels, config)
            retrain = jobs.latest(dataset, jobs.RETRAIN, state="queued")
            if retrain is None:
                retrain, _ = jobs.request(dataset, jobs.RETRAIN, "benchmark", enqueue=False)
        figures.update(oracle_decide_p50_ms=percentile(times, .5), oracle_decide_p99_ms=percentile(times, .99),
                       label_frauds=frauds, oracle_labels=len(times))
        print(f"oracle: {len(times)} labels ({frauds} frauds) through decide, p50 "
              f"{figures['oracle_decide_p50_ms']:.1f} ms, p99 {figures['oracle_decide_p99_ms']:.1f} ms", flush=True)

        report, process, rss = timed_job(retrain.id, env, workdir, "retrain")
        with database.connection_context():
            payload = Job.get_by_id(retrain.id).payload or {}
        stages = payload.get("timings") or {}
        figures.update(retrain_s=report["seconds"], retrain_process_s=process, retrain_rss_mb=rss,
                       retrain_stage=report["stage"], retrain_timings=stages,
                       retrain_load_s=stages.get("load"), retrain_score_s=stages.get("score pool"),
                       retrain_switch_s=stages.get("switch + queue"), retrain_pseudo_s=stages.get("pseudo-labels"))
        print(f"retrain job: {report['seconds']:.1f} s ({process:.1f} s with start-up), peak RSS {rss:,.0f} MB; "
              f"{report['stage']}; stages {stages}", flush=True)

        names = create_analysts(manage, env, args.analysts)
        figures["load_at_latency"] = round(os.getloadavg()[0], 2)
        analysts, elapsed, server_rss = post_decisions(workdir, env, manage, DATASET, names, args.seconds,
                                                       args.threads, args.warmup, args.reject_share)
        server = [ms for analyst in analysts for ms in analyst.server_ms]
        client = [ms for analyst in analysts for ms in analyst.client_ms]
        check = check_store(target, analysts)
        figures.update(server_p50_ms=percentile(server, .5), server_p99_ms=percentile(server, .99),
                       client_p50_ms=percentile(client, .5), client_p99_ms=percentile(client, .99),
                       decisions=len(client), decisions_s=len(client) / elapsed, server_rss_mb=server_rss,
                       store_check=check)
        print(f"label-and-next, {args.analysts} analysts, {elapsed:.1f} s: {len(client):,} decisions; server p50 "
              f"{figures['server_p50_ms']:.1f} ms p99 {figures['server_p99_ms']:.1f} ms; client p50 "
              f"{figures['client_p50_ms']:.1f} ms p99 {figures['client_p99_ms']:.1f} ms; server peak RSS "
              f"{server_rss:,.0f} MB; store {check}", flush=True)
        if args.think:
            analysts, elapsed, _ = post_decisions(workdir, env, manage, DATASET, names, args.seconds, args.threads,
                                                  args.warmup, args.reject_share, args.think)
            server = [ms for analyst in analysts for ms in analyst.server_ms]
            client = [ms for analyst in analysts for ms in analyst.client_ms]
            figures.update(think_s=args.think, paced_server_p50_ms=percentile(server, .5),
                           paced_server_p99_ms=percentile(server, .99), paced_client_p99_ms=percentile(client, .99),
                           paced_decisions_s=len(client) / elapsed)
            print(f"paced label-and-next ({args.think:g} s between decisions), {elapsed:.1f} s: {len(client):,} "
                  f"decisions; server p50 {figures['paced_server_p50_ms']:.1f} ms p99 "
                  f"{figures['paced_server_p99_ms']:.1f} ms; client p99 {figures['paced_client_p99_ms']:.1f} ms",
                  flush=True)

        open_database(target)
        with database.connection_context():
            dataset = Dataset.get(Dataset.name == DATASET)
            figures.update(table_figures(dataset, args.repeat))
            labeled = (Label.select(Label.item).distinct().join(Item)
                       .where((Item.dataset == dataset) & (Label.source == "human")).count())
        print(f"item table: page 1 {figures['page1_ms']:.1f} ms, mid-pool keyset page {figures['deep_page_ms']:.1f} "
              f"ms, amount 100-200 page 1 + count {figures['amount_count_ms']:.1f} ms ({figures['amount_matching']:,} "
              f"rows), label fraud page 1 + count {figures['fraud_count_ms']:.1f} ms "
              f"({figures['fraud_matching']:,})", flush=True)

        out = os.path.join(workdir, "labels.csv")
        wall, rss = checked_child(manage + ["export", "--dataset", DATASET, "--format", "csv", "--out", out], env,
                                  os.path.join(workdir, "export.log"), "export")
        with open(out, newline="") as stream:
            exported = sum(1 for _ in csv.reader(stream)) - 1
        missing = labeled - exported
        figures.update(export_s=wall, export_rss_mb=rss, export_rows=exported, labeled_items=labeled,
                       lost=f"{check['lost']}/{check['duplicated']}/{check['unacknowledged']}/{missing}",
                       nothing_lost=not (check["lost"] or check["duplicated"] or check["unacknowledged"]
                                         or missing or check["errors"]))
        print(f"export: {wall:.1f} s, peak RSS {rss:,.0f} MB, {exported:,} rows for {labeled:,} labeled items",
              flush=True)
    finally:
        database.close_all()  # every pooled connection: PostgreSQL drops no database in use
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            if kind == "postgres":
                postgres_admin(args.postgres_url, f'DROP DATABASE IF EXISTS "{target.rsplit("/", 1)[1]}" WITH (FORCE)')
    figures["bench_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def targets(store):
    """[(target, verdict line)] of the issue's targets for one store's results ({size: figures})."""
    sizes = sorted(store, key=int)
    lines = []
    small, large = store[sizes[0]], store[sizes[-1]]
    p99 = large.get("server_p99_ms")
    if len(sizes) > 1 and p99 is not None:
        ratio = p99 / small["server_p99_ms"]
        loads = (small.get("load_at_latency"), large.get("load_at_latency"))
        note = ""
        if None not in loads and max(loads) > 1.5 * max(min(loads), 1.0):
            note = f" (load averages {loads[0]:.1f} and {loads[1]:.1f}: the machine was not equally busy)"
        lines.append((f"label-and-next p99 at {int(sizes[-1]):,} within {TARGET_P99_GROWTH}x its value at "
                      f"{int(sizes[0]):,}", ratio <= TARGET_P99_GROWTH,
                      f"{p99:.1f} ms vs {small['server_p99_ms']:.1f} ms = {ratio:.2f}x{note}"))
    for size in sizes:
        figures = store[size]
        if figures.get("server_p99_ms") is not None:
            lines.append((f"label-and-next p99 at {int(size):,} under {TARGET_P99_MS:.0f} ms server-side, analysts "
                          f"as fast as they can", figures["server_p99_ms"] < TARGET_P99_MS,
                          f"{figures['server_p99_ms']:.1f} ms"))
        if figures.get("paced_server_p99_ms") is not None:
            lines.append((f"label-and-next p99 at {int(size):,} under {TARGET_P99_MS:.0f} ms server-side, analysts "
                          f"{figures['think_s']:g} s between decisions", figures["paced_server_p99_ms"] < TARGET_P99_MS,
                          f"{figures['paced_server_p99_ms']:.1f} ms"))
        if figures.get("retrain_s") is not None:
            lines.append((f"retrain+rescore+switch at {int(size):,} under {TARGET_RETRAIN_S:.0f} s",
                          figures["retrain_s"] < TARGET_RETRAIN_S, f"{figures['retrain_s']:.1f} s"))
        peak = max((figures.get(key) or 0, name) for key, name in MEMORY)
        lines.append((f"peak memory of every process at {int(size):,} under {TARGET_RSS_MB / 1024:.0f} GB",
                      peak[0] < TARGET_RSS_MB, f"{peak[0]:,.0f} MB ({peak[1]})"))
        if "nothing_lost" in figures:
            lines.append((f"nothing lost at {int(size):,}", figures["nothing_lost"],
                          f"lost/duplicated/unacknowledged/missing from the export: {figures['lost']}"))
    return lines


def report(results):
    """The text of the tables: the data, the machine, one table per store and its targets."""
    lines = ["# python bench/scale.py (see 'command' per store); bench/results/scale.json holds every figure", "",
             "Pools: the credit-card file's rows (284,807) resampled with replacement with small Gaussian noise "
             "(1% of each column's standard deviation, seeded), an id column added: not real transactions.", ""]
    for kind in ("sqlite", "postgres"):
        store = results.get(kind) or {}
        if not store:
            continue
        sizes = sorted(store, key=int)
        lines.append(f"## {kind}")
        for size in sizes:
            info = store[size]["machine"]
            lines.append(f"{int(size):>12,}: {info['date']}; code {store[size].get('code', '?')}; "
                         f"{store[size].get('command', '')}; {info['cpus']} CPUs, "
                         f"{info['ram_gib']} GiB RAM, Python {info['python']}, {info['platform']}, load average "
                         f"{info['load_average']} at the start")
        lines.append("")
        lines.append(f"{'measurement':<42}" + "".join(f"{int(size):>14,}" for size in sizes))
        for key, title, fmt in ROWS:
            cells = []
            for size in sizes:
                value = store[size].get(key)
                cells.append(f"{'-' if value is None else fmt.format(value):>14}")
            lines.append(f"{title:<42}" + "".join(cells))
        lines.append("")
        for target, met, figure in targets(store):
            lines.append(f"{'MET    ' if met else 'NOT MET'} {target}: {figure}")
        lines.append("")
    return "\n".join(lines)


def plot(results, path):
    """Each cost against pool size, log-log: batch work (s), requests (ms) and peak memory (MB), with a dotted
    line that grows as the pool does for comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(18, 6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    titles = ("batch work (seconds)", "requests (milliseconds, median; p99 for label-and-next)", "peak RSS (MB)")
    every = sorted({int(size) for store in results.values() for size in store})
    for kind, style in (("sqlite", "-o"), ("postgres", "--s")):
        store = results.get(kind) or {}
        sizes = sorted(store, key=int)
        for axis, series in zip(axes, (BATCH, REQUESTS, MEMORY)):
            for colour, (key, name) in zip(colours, series):
                points = [(int(size), store[size][key]) for size in sizes if store[size].get(key)]
                if points:
                    axis.plot(*zip(*points), style, color=colour, label=f"{name}, {kind}")
    for axis, title in zip(axes, titles):
        if every and axis.lines:
            low = min(min(line.get_ydata()) for line in axis.lines)
            axis.plot(every, [low * size / every[0] for size in every], ":", color="grey",
                      label="grows as the pool (slope 1)")
        axis.set_title(title)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("transactions in the pool (resampled credit-card rows with noise)")
        axis.grid(True, which="both", linewidth=0.3)
    axes[2].axhline(TARGET_RSS_MB, color="red", linewidth=0.8, linestyle="-.", label="6 GB target")
    for axis in axes:
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def load_results(path):
    if os.path.exists(path):
        with open(path) as stream:
            return json.load(stream)
    return {}


def write(args, fresh):
    """Merge ``fresh`` ({store: {size: figures}}) into the JSON at ``args.out``.json (re-read now: another run
    may have written it meanwhile), then write the text and the plot; returns the text."""
    results = load_results(args.out + ".json")
    for kind, store in fresh.items():
        results.setdefault(kind, {}).update(store)
    with open(args.out + ".json", "w") as stream:
        json.dump(results, stream, indent=1, sort_keys=True)
    text = report(results)
    with open(args.out + ".txt", "w") as stream:
        stream.write(text + "\n")
    plot(results, args.out + ".png")
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default=FULL if os.path.exists(FULL) else SAMPLE,
                        help="credit-card CSV(.gz) to resample (default: the full file beside the repository when "
                             "present, else the bundled sample)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000],
                        help="pool sizes to measure")
    parser.add_argument("--postgres-url", default=None,
                        help="a PostgreSQL server's URL with the right to create databases: each size is also "
                             "measured on a new database there (dropped afterwards); default: "
                             "LABELER_TEST_POSTGRES_URL when set")
    parser.add_argument("--postgres-sizes", type=int, nargs="+", default=None,
                        help="the sizes measured on PostgreSQL (default: --sizes)")
    parser.add_argument("--skip-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--skip-sqlite", action="store_true", help="measure PostgreSQL only")
    parser.add_argument("--noise", type=float, default=0.01,
                        help="Gaussian noise added to each numeric column, as a share of its standard deviation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling and the noise")
    parser.add_argument("--cache", default=os.path.join(RESULTS, "scale_cache"),
                        help="folder of the generated Parquet pools (git-ignored; reused across runs)")
    parser.add_argument("--work", default=None,
                        help="folder for the temporary instance folders (default: the system's temporary folder)")
    parser.add_argument("--labels", type=int, default=500,
                        help="oracle decisions through the labeling service before the timed retrain")
    parser.add_argument("--queue-size", type=int, default=4000,
                        help="queue entries the refill and the retrain write: more than the analysts label")
    parser.add_argument("--analysts", type=int, default=8, help="concurrent analysts posting label-and-next")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed window of the label-and-next run")
    parser.add_argument("--think", type=float, default=0.5,
                        help="then a second label-and-next run of --seconds in which each analyst waits this many "
                             "seconds on average between a reply and the next decision; 0: no such run")
    parser.add_argument("--threads", type=int, default=SERVE_THREADS,
                        help="waitress threads of the server (serve's default)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed decisions per analyst first")
    parser.add_argument("--reject-share", type=float, default=0.1, help="share of the analysts' decisions that reject")
    parser.add_argument("--repeat", type=int, default=20,
                        help="timed calls per item-table case (median printed; fewer, at least 3, past 15 s)")
    parser.add_argument("--out", default=os.path.join(RESULTS, "scale"),
                        help="results path without extension: .txt, .json and .png are written")
    parser.add_argument("--code", default=None,
                        help="what code is measured, kept with the results (default: git describe of this checkout)")
    parser.add_argument("--keep", action="store_true", help="keep the instance folders (and PostgreSQL databases)")
    parser.add_argument("--replot", action="store_true",
                        help="measure nothing: rewrite the text and plot from the JSON")
    parser.add_argument("--run-job", type=int, default=None,
                        help="internal: run this job id of the store the LABELER_* variables name and exit")
    args = parser.parse_args()
    if args.run_job is not None:
        run_job_here(args.run_job)
    if not os.access(TIME, os.X_OK):
        parser.error(f"{TIME} (GNU time, Debian's time package) is needed to measure the children's peak memory")
    if args.postgres_url is None and not args.skip_postgres:
        args.postgres_url = os.environ.get("LABELER_TEST_POSTGRES_URL")
    if args.code is None:
        described = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                                   text=True)
        args.code = described.stdout.strip() or "unknown (not a git checkout)"
    command = "python bench/scale.py " + shlex.join(  # the server's URL left out
        "URL" if word == args.postgres_url else word for word in sys.argv[1:])
    fresh = {}
    if not args.replot:
        info = machine()
        print(f"machine: {info['platform']}, {info['cpus']} CPUs, {info['ram_gib']} GiB RAM, Python "
              f"{info['python']}, {info['date']}, load average {info['load_average']}")
        print("pools: the credit-card rows resampled with replacement with small Gaussian noise "
              f"({args.noise:g} × each column's standard deviation, seed {args.seed}), not real transactions",
              flush=True)
        plan = [] if args.skip_sqlite else [("sqlite", size) for size in args.sizes]
        if args.postgres_url and not args.skip_postgres:
            plan += [("postgres", size) for size in (args.postgres_sizes or args.sizes)]
        for kind, size in plan:
            figures = measure(args, kind, size)
            figures["command"] = command.strip()
            figures["code"] = args.code
            fresh.setdefault(kind, {})[str(size)] = figures
            write(args, fresh)  # after every size: a long run keeps what it measured
    print(write(args, fresh))


if __name__ == "__main__":
    main()
