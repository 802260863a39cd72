"""The bad-input probe (issue 13): every bad input found so far, tried again against the real command line (one
process per case) and the web app, printed as one table: case, exit code (the HTTP status for the web), the
message, and whether the store is unchanged.

    python -m tests.probe              the fast cases (tests/test_probe.py runs them in CI)
    python -m tests.probe --all        also the slow ones: 256 MB and 1 GB of NUL bytes, with peak memory
    python -m tests.probe --jobs 4     cases in parallel (default: the number of CPUs)

A case passes when the exit code is the expected one, the message is one line holding the expected words, and
the store (every table's rows, compared by digest) is unchanged. The disk-full cases run in a mount namespace
with a small tmpfs (``unshare``); where the system allows none they are reported as not run. Exits 1 when a case
fails.
"""
import argparse
import contextlib
import hashlib
import html
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from tests.bad_inputs import BAD_INPUTS, HEADER, csv_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")
STORE = "labeler.sqlite3"
PASSWORD = "correct horse battery"
SECRET_KEY = "probe-" + "k" * 40
HEADER_LIMIT = 1 << 20  # labeler.data.importer.HEADER_LIMIT (not imported: the probe only runs the product)
LINE_LIMIT = 16 << 20  # labeler.data.importer.LINE_LIMIT
MB = 1 << 20


@dataclass
class Outcome:
    """What one case did: its exit code (or HTTP status), message, number of message lines, whether the store
    is unchanged, and the peak memory (MiB) of its process when measured."""
    code: object
    message: str
    lines: int = 1
    unchanged: object = None
    peak_mb: object = None


@dataclass
class Case:
    """One bad input: ``run(folder)`` tries it on a copy of the baseline store in ``folder``."""
    name: str
    run: Callable
    code: object
    expect: tuple = ()
    slow: bool = False
    outcome: Outcome = field(default=None, repr=False)

    def passed(self):
        """True when it failed the way it should: the expected code, one line with the expected words, the
        store unchanged. None when it could not run here."""
        outcome = self.outcome
        if outcome is None or outcome.code == "not run":
            return None
        return (outcome.code == self.code and outcome.lines == 1 and outcome.unchanged is True
                and all(fragment in outcome.message for fragment in self.expect))


# ---- the store --------------------------------------------------------------------------------------------

def store_digest(path, skip=()):
    """sha256 over the schema and every row of every table (but those in ``skip``) of the SQLite store at
    ``path``: its content, not its bytes, which a checkpoint or a rolled-back transaction may change."""
    digest = hashlib.sha256()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        schema = connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        digest.update(repr(schema).encode())
        for _, table, _ in (row for row in schema if row[0] == "table" and row[1] not in skip):
            for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                digest.update(repr(row).encode())
    return digest.hexdigest()


def environment(folder, store=None, **extra):
    """The environment of a labeler process on the store copy in ``folder`` (no LABELER_* variable of the
    caller's leaks in)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LABELER_")}
    env.update(LABELER_INSTANCE=folder, LABELER_DATABASE=store or os.path.join(folder, STORE),
               LABELER_QUEUE=os.path.join(folder, "queue.sqlite3"), LABELER_MODELS=os.path.join(folder, "models"),
               LABELER_SECRET_KEY=SECRET_KEY, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    env.update(extra)
    return env


def make_baseline(folder):
    """A store in ``folder`` holding what the bad inputs meet: dataset 'base' (ids in column tx, ground truth,
    its queue computed), dataset 'rows' (ids are row numbers), analyst 'ana' and admin 'boss'."""
    from labeler.data.importer import import_file
    from labeler.data.users import create_user
    from labeler.store.db import database
    from labeler.web import create_app
    from labeler.worker import jobs

    app = create_app({"INSTANCE_PATH": folder, "DATABASE": os.path.join(folder, STORE),
                      "TASK_QUEUE": os.path.join(folder, "queue.sqlite3"),
                      "MODEL_FOLDER": os.path.join(folder, "models"), "SECRET_KEY": SECRET_KEY})
    with open(os.path.join(folder, "base.csv"), "w", encoding="utf-8") as stream:
        stream.write(HEADER + csv_rows(40))
    with open(os.path.join(folder, "rows.csv"), "w", encoding="utf-8") as stream:
        stream.write("v,w\n" + "".join(f"{i},{i * 2}\n" for i in range(100)))
    with database.connection_context():
        base = import_file(os.path.join(folder, "base.csv"), "base", label_column="Class", id_column="tx").dataset
        import_file(os.path.join(folder, "rows.csv"), "rows")
        create_user("ana", PASSWORD, "analyst")
        create_user("boss", PASSWORD, "admin")
        jobs.request(base, jobs.REFILL, "probe", enqueue=False)
        jobs.run_queued(app.extensions["labeler.config"], base)
    database.obj.close_all()
    return app


def copy_baseline(baseline, folder):
    """A fresh copy of the baseline store (and its queue) in ``folder``."""
    for name in (STORE, "queue.sqlite3"):
        shutil.copyfile(os.path.join(baseline, name), os.path.join(folder, name))


# ---- command-line cases --------------------------------------------------------------------------------------

def run_command(argv, folder, env=None):
    """Run ``manage.py argv`` in ``folder``; returns (exit code, stdout, stderr, peak memory in MiB)."""
    out_path, err_path = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen([sys.executable, os.path.join(ROOT, "manage.py"), *argv], cwd=folder,
                                   env=env or environment(folder), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, encoding="utf-8", errors="replace") as out, open(err_path, encoding="utf-8",
                                                                          errors="replace") as err:
        return process.returncode, out.read(), err.read(), usage.ru_maxrss / 1024


def cli(argv, make=None, env=None, stdin_text=None):
    """A case run as ``manage.py argv`` (``argv`` may use {folder}) after ``make(folder)`` wrote its files."""
    def run(folder):
        if make:
            make(folder)
        arguments = [part.format(folder=folder) for part in argv]
        before = store_digest(os.path.join(folder, STORE))
        if stdin_text is None:
            code, _, err, peak = run_command(arguments, folder, env(folder) if env else None)
        else:
            done = subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), *arguments], cwd=folder,
                                  env=env(folder) if env else environment(folder), input=stdin_text, text=True,
                                  capture_output=True)
            code, err, peak = done.returncode, done.stderr, None
        lines = [line for line in err.splitlines() if line.strip()]
        return Outcome(code, lines[-1] if lines else "", len(lines),
                       store_digest(os.path.join(folder, STORE)) == before, peak)
    return run


def write_text(name, text):
    def make(folder):
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
    return make


def write_bytes(name, size_or_bytes, fill=b"\x00"):
    """A file of ``size`` fill bytes, written in 16 MiB blocks (or the given bytes)."""
    def make(folder):
        with open(os.path.join(folder, name), "wb") as stream:
            if isinstance(size_or_bytes, bytes):
                stream.write(size_or_bytes)
                return
            block = fill * (16 * MB)
            left = size_or_bytes
            while left > 0:
                stream.write(block[:left])
                left -= len(block)
    return make


def write_parquet(name, columns, names=None):
    def make(folder):
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.Table.from_arrays([pa.array(values) for values in columns.values()],
                                     names=names or list(columns))
        pq.write_table(table, os.path.join(folder, name))
    return make


def import_cases():
    """Every file of tests/bad_inputs.py, then the issue's and the other tests' bad imports."""
    cases = []
    for name, (text, options, fragments) in BAD_INPUTS.items():
        argv = ["import", "{folder}/" + ("nosuch.csv" if text is None else "bad.csv"),
                "--dataset", options.get("dataset", "new")]
        for option, flag in (("label_column", "--label-column"), ("id_column", "--id-column")):
            if option in options:
                argv += [flag, options[option]]
        if "labels" in options:
            argv += ["--labels", ",".join(options["labels"])]
        cases.append(Case(name, cli(argv, None if text is None else write_text("bad.csv", text)), 1,
                          (*fragments, "(nothing was imported)")))
    different = "v,w\n" + "".join(f"{i},{-i}\n" for i in range(1000, 1100))
    latin = (HEADER + csv_rows(3000)).encode() + b'T3000,1,2,"caf\xe9"\n' + csv_rows(5, 3001).encode()
    cases += [
        Case("append a different file without an id column (1)",
             cli(["import", "{folder}/second.csv", "--dataset", "rows"], write_text("second.csv", different)), 1,
             ("line 2 differs from row 0", "--id-column")),
        Case("1 MiB of NUL bytes into an existing dataset (2)",
             cli(["import", "{folder}/zeros.csv", "--dataset", "base"], write_bytes("zeros.csv", MB)), 1,
             ("zeros.csv: line 1 holds NUL bytes",)),
        Case("256 MiB of NUL bytes into an existing dataset (2)",
             cli(["import", "{folder}/zeros.csv", "--dataset", "base"], write_bytes("zeros.csv", 256 * MB)), 1,
             ("zeros.csv: line 1 holds NUL bytes",), slow=True),
        Case("1 GiB of NUL bytes into an existing dataset (2)",
             cli(["import", "{folder}/zeros.csv", "--dataset", "base"], write_bytes("zeros.csv", 1024 * MB)), 1,
             ("zeros.csv: line 1 holds NUL bytes",), slow=True),
        Case("the header, then 1 GiB of NUL bytes (2)",
             cli(["import", "{folder}/zeros.csv", "--dataset", "base"], _header_then_zeros), 1,
             ("zeros.csv: line 2 holds NUL bytes",), slow=True),
        Case("duplicate CSV header when appending (8)",
             cli(["import", "{folder}/dup.csv", "--dataset", "base"],
                 write_text("dup.csv", '"tx","V1","V2","Class","V2"\nT90,1,2,"0",3\n')), 1,
             ("line 1: column 'V2' appears more than once",)),
        Case("duplicate Parquet columns (8)",
             cli(["import", "{folder}/dup.parquet", "--dataset", "new"],
                 write_parquet("dup.parquet", {"a": [1.0, 2.0], "b": [3.0, 4.0]}, names=["V1", "V1"])), 1,
             ("column 'V1' appears more than once",)),
        Case("Latin-1 byte on line 3002 (11)",
             cli(["import", "{folder}/latin.csv", "--dataset", "new"], write_bytes("latin.csv", latin)), 1,
             ("latin.csv: line 3002: byte 0xe9 is not UTF-8",)),
        Case("Latin-1 byte in a gzip file (11)",
             cli(["import", "{folder}/latin.csv.gz", "--dataset", "new"],
                 write_bytes("latin.csv.gz", __import__("gzip").compress(latin))), 1,
             ("line 3002: byte 0xe9 is not UTF-8",)),
        Case("header only into an existing dataset",
             cli(["import", "{folder}/head.csv", "--dataset", "base"], write_text("head.csv", HEADER)), 1,
             ("header but no data rows",)),
        Case("header line over the limit",
             cli(["import", "{folder}/wide.csv", "--dataset", "new"],
                 write_text("wide.csv", "a" * (HEADER_LIMIT + 10) + "\n1\n")), 1, ("is longer than",)),
        Case("a line over the limit (17 MiB)",
             cli(["import", "{folder}/long.csv", "--dataset", "base"],
                 write_text("long.csv", HEADER + csv_rows(3) + "T3," + "7" * (LINE_LIMIT + MB) + ',1,"0"\n')), 1,
             ("line 5 is longer than",)),
        Case("not a Parquet file",
             cli(["import", "{folder}/broken.parquet", "--dataset", "new"],
                 write_text("broken.parquet", HEADER + csv_rows(3))), 1, ("not a readable Parquet file",)),
        Case("random bytes named .csv",
             cli(["import", "{folder}/random.csv", "--dataset", "new"],
                 write_bytes("random.csv", bytes(range(256)) * 4096)), 1, ("random.csv",)),
        Case("a truncated gzip file",
             cli(["import", "{folder}/cut.csv.gz", "--dataset", "new"], _truncated_gzip), 1, ("cut.csv.gz",)),
        Case("a directory",
             cli(["import", "{folder}", "--dataset", "new"]), 1, ("is a directory",)),
        Case("another id column for an existing dataset",
             cli(["import", "{folder}/other.csv", "--dataset", "base", "--id-column", "V1"],
                 write_text("other.csv", HEADER + csv_rows(2, start=50))), 1, ("uses id column 'tx', not 'V1'",)),
        Case("an append missing a column",
             cli(["import", "{folder}/narrow.csv", "--dataset", "base"],
                 write_text("narrow.csv", '"tx","V1","Class"\nT90,1,"0"\n')), 1, ("missing column", "'V2'")),
        Case("a time that is not a time (14)",
             cli(["import", "{folder}/tx.csv", "--dataset", "new", *RAW_ROLES],
                 write_text("tx.csv", RAW_HEADER + "T9,yesterday,C1,S1,5.0,pos\n")), 1,
             ("tx.csv: line 4, column 'time': 'yesterday' is not a time",)),
        Case("an empty card id (14)",
             cli(["import", "{folder}/tx.csv", "--dataset", "new", *RAW_ROLES],
                 write_text("tx.csv", RAW_HEADER + "T9,2024-05-01T10:00:00Z,,S1,5.0,pos\n")), 1,
             ("tx.csv: line 4, column 'card': the id is missing",)),
        Case("a categorical column of 5,000 values (14)",
             cli(["import", "{folder}/many.csv", "--dataset", "new", "--categorical", "device"],
                 write_text("many.csv", "amount,device\n" + "".join(f"{n},d{n}\n" for n in range(5000)))), 1,
             ("column 'device': 5,000 distinct values", "too many for a categorical feature")),
        Case("entity columns without a time column (14)",
             cli(["import", "{folder}/tx.csv", "--dataset", "new", "--entity-column", "card"],
                 write_text("tx.csv", RAW_HEADER)), 1, ("entity columns need a time column",)),
        Case("disk full during an import (7)", full_disk_import, 1,
             ("the disk is full", "nothing was changed")),
    ]
    return cases


def _header_then_zeros(folder):
    write_text("zeros.csv", HEADER)(folder)
    with open(os.path.join(folder, "zeros.csv"), "ab") as stream:
        for _ in range(64):
            stream.write(b"\0" * (16 * MB))


RAW_HEADER = ("tx,time,card,shop,amount,channel\nT1,2024-05-01T09:00:00Z,C1,S1,1.0,pos\n"
              "T2,1714554000,C2,S2,2.0,web\n")
RAW_ROLES = ["--id-column", "tx", "--time-column", "time", "--entity-column", "card", "--entity-column", "shop"]


def _truncated_gzip(folder):
    with open(SAMPLE, "rb") as stream:
        data = stream.read(400_000)
    with open(os.path.join(folder, "cut.csv.gz"), "wb") as stream:
        stream.write(data)


def other_cli_cases():
    """Users, secrets and exports."""
    weak = "Error: password must"
    return [
        Case("password 12345678 (9)", cli(["create-user", "eve", "--password-stdin"], stdin_text="12345678\n"), 1,
             (weak,)),
        Case("password of eight spaces (9)", cli(["create-user", "eve", "--password-stdin"],
                                                  stdin_text=" " * 8 + "\n"), 1, (weak,)),
        Case("password equal to the name (9)",
             cli(["create-user", "evelyn-fraud", "--password-stdin"], stdin_text="evelyn-fraud\n"), 1, (weak,)),
        Case("a user name taken", cli(["create-user", "ana", "--password-stdin"], stdin_text=PASSWORD + "\n"), 1,
             ("already exists",)),
        Case("a new password for an unknown user", cli(["set-password", "nobody", "--password-stdin"],
                                                       stdin_text=PASSWORD + "\n"), 1, ("nobody",)),
        Case("a secret key of one character (9)",
             cli(["serve", "--port", "9"], env=lambda folder: environment(folder, LABELER_SECRET_KEY="k")), 1,
             ("shorter than 32 characters",)),
        Case("no secret key",
             cli(["serve", "--port", "9"], env=lambda folder: environment(folder, LABELER_SECRET_KEY="")), 1,
             ("LABELER_SECRET_KEY is not set",)),
        Case("export of an unknown dataset", cli(["export", "--dataset", "nope", "--out", "{folder}/x.csv"]), 1,
             ("nope",)),
        Case("export into a missing folder",
             cli(["export", "--dataset", "base", "--out", "{folder}/no/such/folder/x.csv"]), 1,
             ("cannot write", "x.csv: No such file or directory")),
    ]


# ---- the full disk -------------------------------------------------------------------------------------------

def can_mount_tmpfs():
    """True when this system lets an unprivileged process mount a tmpfs in its own user and mount namespace."""
    if not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                               f"mount -t tmpfs -o size=64k tmpfs {folder}"], capture_output=True)
    return done.returncode == 0


def in_small_disk(folder, script, size_kb):
    """Run shell ``script`` with a tmpfs of ``size_kb`` KiB mounted at {folder}/disk, in a namespace of its own
    (the mount is gone when it ends). Returns the CompletedProcess, or None when no tmpfs can be mounted."""
    if not can_mount_tmpfs():
        return None
    disk = os.path.join(folder, "disk")
    os.makedirs(disk, exist_ok=True)
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           f"mount -t tmpfs -o size={size_kb}k tmpfs {disk} && {script}"],
                          capture_output=True, text=True, cwd=folder, env=environment(disk))


def full_disk_import(folder):
    """Import the bundled sample into a store on a disk with 512 KiB free, then free space and import again."""
    disk = os.path.join(folder, "disk")
    store = os.path.join(disk, STORE)
    size_kb = os.path.getsize(os.path.join(folder, STORE)) // 1024 + 512
    python, manage = sys.executable, os.path.join(ROOT, "manage.py")
    env = " ".join(f"{key}='{value}'" for key, value in environment(disk, store).items()
                   if key.startswith("LABELER_"))
    script = (f"cp {folder}/{STORE} {store} && {python} -m tests.probe digest {store} > before; "
              f"env {env} {python} {manage} import {SAMPLE} --dataset more 2> err; echo $? > code; "
              f"{python} -m tests.probe digest {store} > after; "
              f"mount -o remount,size=200m {disk} && env {env} {python} {manage} import {SAMPLE} --dataset more "
              f"> retry 2>&1; echo $? > retry_code")
    done = in_small_disk(folder, script, size_kb)
    if done is None:
        return Outcome("not run", "no tmpfs can be mounted here (unshare --user --mount)")

    def read(name):
        with open(os.path.join(folder, name), encoding="utf-8") as stream:
            return stream.read().strip()
    lines = read("err").splitlines()
    if read("retry_code") != "0":
        lines.append(f"but the import after freeing space failed: {read('retry')[-300:]}")
    digests = read("before"), read("after")
    if not all(re.fullmatch("[0-9a-f]{64}", digest) for digest in digests):
        return Outcome("crashed", f"no store digest: {done.stderr.strip()[-300:]}")
    return Outcome(int(read("code")), lines[-1] if lines else done.stderr[-300:], len(lines),
                   digests[0] == digests[1])


def full_disk_labeling(folder):
    """Lease an item, fill the disk, post a decision (507, nothing stored), free space, post it again (stored)."""
    disk = os.path.join(folder, "disk")
    script = (f"cp {folder}/{STORE} {folder}/queue.sqlite3 {disk}/ && "
              f"{sys.executable} -m tests.probe label-on-full-disk {disk} > {folder}/result.json")
    done = in_small_disk(folder, script, os.path.getsize(os.path.join(folder, STORE)) // 1024 + 2048)
    if done is None:
        return Outcome("not run", "no tmpfs can be mounted here (unshare --user --mount)")
    if done.returncode:
        return Outcome("crashed", done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
    with open(os.path.join(folder, "result.json"), encoding="utf-8") as stream:
        result = json.load(stream)
    message = result["message"]
    if result["retry_status"] != 200 or result["labels_after_retry"] != result["labels_before"] + 1:
        message += f" (but the retry after freeing space gave {result['retry_status']})"
    return Outcome(result["status"], message, len(message.splitlines()), result["unchanged"])


def label_on_full_disk(disk):
    """Inside the namespace: the web app on the store in ``disk``; prints a JSON result."""
    from labeler.store.db import Label, database
    app = web_app(disk)
    client = app.test_client()
    web_login(client, "ana")
    page = client.get("/datasets/base/label").get_data(as_text=True)
    action, token = _form_action(page), csrf_token_of(page)
    with database.connection_context():
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the next write must grow the WAL file
        labels_before = Label.select().count()
    filler = os.path.join(disk, "filler")
    with open(filler, "wb", buffering=0) as stream, contextlib.suppress(OSError):
        while True:
            stream.write(b"\0" * 4096)
    before = store_digest(os.path.join(disk, STORE))
    reply = client.post(action, data={"decision": "label:genuine", "csrf_token": token},
                        headers={"HX-Request": "true"})
    unchanged = store_digest(os.path.join(disk, STORE)) == before
    os.remove(filler)
    retry = client.post(action, data={"decision": "label:genuine", "csrf_token": token},
                        headers={"HX-Request": "true"})
    with database.connection_context():
        labels_after = Label.select().count()
    print(json.dumps({"status": reply.status_code, "message": reply.get_data(as_text=True).strip(),
                      "unchanged": unchanged, "retry_status": retry.status_code, "labels_before": labels_before,
                      "labels_after_retry": labels_after}))


# ---- web cases -----------------------------------------------------------------------------------------------

def web_app(folder):
    from labeler.web import create_app
    return create_app({"INSTANCE_PATH": folder, "DATABASE": os.path.join(folder, STORE),
                       "TASK_QUEUE": os.path.join(folder, "queue.sqlite3"),
                       "MODEL_FOLDER": os.path.join(folder, "models"), "SECRET_KEY": SECRET_KEY})


def csrf_token_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _form_action(page):
    return html.unescape(re.search(r'<form[^>]+action="(/datasets/base/label/\d+)"', page).group(1))


def web_login(client, name, password=PASSWORD):
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def page_message(response):
    """The one line a page or a partial says: its alert or the labeling screen's outcome, else its text (a
    redirect: where it goes)."""
    if 300 <= response.status_code < 400:
        return f"redirect to {response.headers['Location']}"
    text = response.get_data(as_text=True)
    alert = re.search(r'<[^>]+(?:role="alert"|class="error"|data-outcome=)[^>]*>(.*?)</', text, re.S)
    body = alert.group(1) if alert else re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(body).split())[:240]


# A screen shown renews the analyst's lease on its item: for web cases, "unchanged" means every other table.
WEB_TRANSIENT = ("lease",)


def web(step, prepare=None):
    """A web case: after the analyst logged in and leased an item, ``prepare(client, page)`` (``page``: the
    labeling screen) readies what the case needs, and ``step(client, page)`` sends the bad request; the store
    is compared across that one request."""
    def run(folder):
        app = web_app(folder)
        client = app.test_client()
        web_login(client, "ana")
        page = client.get("/datasets/base/label").get_data(as_text=True)
        if prepare:
            prepare(client, page)
        before = store_digest(os.path.join(folder, STORE), skip=WEB_TRANSIENT)
        response = step(client, page)
        return Outcome(response.status_code, page_message(response), 1,
                       store_digest(os.path.join(folder, STORE), skip=WEB_TRANSIENT) == before)
    return run


def _post_item(suffix, item_id, data=None):
    def step(client, page):
        return client.post(f"/datasets/base/label/{item_id}{suffix}",
                           data={"decision": "label:genuine", "value": "x", "csrf_token": csrf_token_of(page),
                                 **(data or {})})
    return step


def _never_leased(client, page):
    leased = int(_form_action(page).rsplit("/", 1)[1])
    from labeler.store.db import Dataset, Item, database
    with database.connection_context():
        other = (Item.select(Item.id).join(Dataset).where(Dataset.name == "base", Item.id != leased)
                 .order_by(Item.id.desc()).first().id)
    return client.post(f"/datasets/base/label/{other}", data={"decision": "label:genuine",
                                                              "csrf_token": csrf_token_of(page)})


def _log_out_keeping_the_cookie(client, page):
    cookie = client.get_cookie("session").value
    client.post("/logout", data={"csrf_token": csrf_token_of(page)})
    client.set_cookie("session", cookie)


def _guess_five_times(client, page):
    client.post("/logout", data={"csrf_token": csrf_token_of(page)})
    for _ in range(5):
        web_login(client, "ana", "wrong password")


def web_cases():
    return [
        Case("decide on item 2^63 (6)", web(_post_item("", 2 ** 63)), 404, ("Not found",)),
        Case("skip item 2^64 (6)", web(_post_item("/skip", 2 ** 64)), 404, ("Not found",)),
        Case("edit item 2^63 (6)", web(_post_item("/edit", 2 ** 63)), 404, ("Not found",)),
        Case("decide on an item never leased (11)", web(_never_leased), 409, ("never assigned",)),
        Case("a decision without a CSRF token",
             web(lambda client, page: client.post(_form_action(page), data={"decision": "label:genuine"})), 400,
             ("was not sent by this page",)),
        Case("an analyst changes labeling settings",
             web(lambda client, page: client.post("/admin/datasets/base/labeling-settings",
                                                  data={"csrf_token": csrf_token_of(page)})), 403,
             ("role does not allow",)),
        Case("a session cookie replayed after logout (4)",
             web(lambda client, page: client.get("/datasets/base/label"), _log_out_keeping_the_cookie), 302,
             ("/login",)),
        Case("the right password after 5 wrong ones (3)", web(lambda client, page: web_login(client, "ana"),
                                                              _guess_five_times), 429, ("Too many failed logins",)),
        Case("disk full while labeling (7)", full_disk_labeling, 507, ("disk is full", "not saved")),
    ]


# ---- the table -----------------------------------------------------------------------------------------------

def all_cases():
    return import_cases() + other_cli_cases() + web_cases()


def run_cases(cases, jobs=None, workdir=None):
    """Run ``cases`` (each on a fresh copy of one baseline store) and return them with their outcomes; command
    cases run ``jobs`` at a time, web cases one at a time (they share this process's database object)."""
    with tempfile.TemporaryDirectory(prefix="labeler-probe-", dir=workdir) as root:
        baseline = os.path.join(root, "baseline")
        os.makedirs(baseline)
        # in a process of its own: this one stays small, since a child's peak memory counts the memory of
        # the process that started it (exec keeps the high-water mark)
        subprocess.run([sys.executable, "-m", "tests.probe", "baseline", baseline], check=True, cwd=ROOT,
                       env=environment(baseline), stdout=subprocess.DEVNULL)

        def run(index_case):
            index, case = index_case
            folder = os.path.join(root, f"case{index}")
            os.makedirs(folder)
            copy_baseline(baseline, folder)
            started = time.perf_counter()
            try:
                case.outcome = case.run(folder)
            except Exception as error:  # a case that crashes is reported as such, not hidden
                case.outcome = Outcome("crashed", f"{type(error).__name__}: {error}")
            case.seconds = time.perf_counter() - started
            shutil.rmtree(folder, ignore_errors=True)
            return case

        numbered = list(enumerate(cases))
        serial = [pair for pair in numbered if pair[1].run.__qualname__.startswith("web.")]
        parallel = [pair for pair in numbered if pair not in serial]
        with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
            list(pool.map(run, parallel))
        for pair in serial:
            run(pair)
    return cases


def table(cases):
    """The probe's table as text."""
    def verdict(case):
        return {True: "ok", False: "FAIL", None: "not run"}[case.passed()]
    rows = [("case", "exit", "unchanged", "peak MiB", "verdict", "message")]
    for case in cases:
        outcome = case.outcome
        peak = f"{outcome.peak_mb:,.0f}" if outcome.peak_mb else ""
        unchanged = {True: "yes", False: "NO", None: "-"}[outcome.unchanged]
        rows.append((case.name, str(outcome.code), unchanged, peak, verdict(case), outcome.message))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row[:5], widths)) + "  " + row[5]
                     for row in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="Also run the slow cases (GiB-size files).")
    parser.add_argument("--jobs", type=int, default=None, help="Command cases run at once (default: CPUs).")
    parser.add_argument("--only", default=None, help="Run only the cases whose name holds this text.")
    arguments = parser.parse_args(argv)
    cases = [case for case in all_cases() if (arguments.all or not case.slow)
             and (arguments.only is None or arguments.only in case.name)]
    started = time.perf_counter()
    run_cases(cases, arguments.jobs)
    print(f"# bad-input probe, {time.strftime('%Y-%m-%d')}, {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {len(cases)} cases in "
          f"{time.perf_counter() - started:.0f} s")
    print(table(cases))
    failed = [case.name for case in cases if case.passed() is False]
    print(f"# {sum(case.passed() is True for case in cases)} ok, {len(failed)} failed, "
          f"{sum(case.passed() is None for case in cases)} not run")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["digest"]:
        print(store_digest(sys.argv[2]))
    elif sys.argv[1:2] == ["baseline"]:
        make_baseline(sys.argv[2])
    elif sys.argv[1:2] == ["label-on-full-disk"]:
        label_on_full_disk(sys.argv[2])
    else:
        sys.exit(main())
