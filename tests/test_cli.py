"""The command line through click's runner, and as real subprocesses: import, serve and demo."""
import csv
import dataclasses
import gc
import http.cookiejar
import json
import os
import queue
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pandas as pd
import psutil
import pytest
from werkzeug.security import check_password_hash

from labeler.data import exporter
from labeler.data.users import authenticate
from labeler.store.db import Item, Job, Label, Standing, User
from tests.conftest import PASSWORD, ROOT, csrf_token_of


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(tmp_path, **extra):
    """The environment of a manage.py subprocess on a store in ``tmp_path``, without a secret key."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LABELER_")}
    env.update(LABELER_DATABASE=str(tmp_path / "store.sqlite3"), LABELER_INSTANCE=str(tmp_path),
               PYTHONUNBUFFERED="1", **extra)
    return env


def test_init_db_on_a_current_store(runner, app):
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert result.output == f"Store at {app.config['DATABASE']} is up to date.\n"


def test_import_then_reimport(runner, small_csv):
    result = runner.invoke(args=["import", small_csv, "--dataset", "cc", "--label-column", "Class",
                                 "--exclude", "Time"])
    assert result.exit_code == 0, result.output
    created, queued = result.output.splitlines()
    assert created == "Dataset 'cc' created: 2,041 rows read, 2,041 added, 0 already present."
    refill, autoencoder = Job.get(Job.kind == "refill"), Job.get(Job.kind == "autoencoder")
    assert {(job.state, job.payload["reason"]) for job in (refill, autoencoder)} == {("queued", "after an import")}
    assert queued == (f"Jobs queued for the worker: queue refill {refill.id} (queue and feature statistics), "
                      f"autoencoder {autoencoder.id} (screen bars, latent map, cold-start score).")
    again = runner.invoke(args=["import", small_csv, "--dataset", "cc"])
    assert again.exit_code == 0, again.output
    assert again.output == "Dataset 'cc' updated: 2,041 rows read, 0 added, 2,041 already present.\n"
    assert Job.select().count() == 2  # nothing new to compute
    assert Item.select().count() == 2041


def test_import_of_a_missing_file_through_the_cli(runner, tmp_path):
    result = runner.invoke(args=["import", str(tmp_path / "gone.csv"), "--dataset", "cc"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path / 'gone.csv'}: no such file (nothing was imported)\n"


def test_create_user_reads_the_password_from_stdin(runner, app):
    result = runner.invoke(args=["create-user", "carol", "--role", "admin", "--password-stdin"],
                           input="a long passphrase\n")
    assert result.exit_code == 0, result.output
    assert result.output == "User 'carol' created with role admin.\n"
    carol = User.get(User.name == "carol")
    assert carol.role == "admin"
    assert carol.password_hash != "a long passphrase" and check_password_hash(carol.password_hash, "a long passphrase")
    assert authenticate("carol", "a long passphrase").id == carol.id


@pytest.mark.parametrize("args, password, exit_code, message", [
    (["create-user", "ana", "--password-stdin"], "another long one\n", 1, "Error: user 'ana' already exists"),
    (["create-user", "dave", "--password-stdin"], "short\n", 1, "Error: password must have at least 12 characters"),
    (["create-user", "dave", "--password-stdin"], "12345678\n", 1, "Error: password must have at least 12 characters"),
    (["create-user", "dave", "--password-stdin"], " " * 8 + "\n", 1, "Error: password must have at least 12 characters"),
    (["create-user", "dave", "--password-stdin"], " " * 12 + "\n", 1, "Error: password must not be only spaces"),
    (["create-user", "dave", "--password-stdin"], "123456789012\n", 1, "Error: password must not be only digits"),
    (["create-user", "davedavedave", "--password-stdin"], "DaveDaveDave\n", 1,
     "Error: password must not be the user name"),
    (["create-user", "erin", "--role", "boss", "--password-stdin"], "a long passphrase\n", 2,
     "Invalid value for '--role'"),
    (["create-user", "f" * 81, "--password-stdin"], "a long passphrase\n", 1,
     "Error: user name is longer than 80 characters"),
])
def test_create_user_errors(runner, analyst, args, password, exit_code, message):
    result = runner.invoke(args=args, input=password)
    assert result.exit_code == exit_code
    assert message in result.stderr
    assert result.stdout == "" and (exit_code == 2 or len(result.stderr.splitlines()) == 1)
    assert [u.name for u in User.select()] == ["ana"]
    assert authenticate("ana", PASSWORD) is not None


def test_set_password_revokes_sessions_and_checks_the_policy(runner, analyst):
    result = runner.invoke(args=["set-password", "ana", "--password-stdin"], input="12345678\n")
    assert (result.exit_code, result.stderr) == (1, "Error: password must have at least 12 characters\n")
    assert User.get_by_id(analyst.id).session_version == analyst.session_version  # nothing changed
    result = runner.invoke(args=["set-password", "ana", "--password-stdin"], input="a new long passphrase\n")
    assert result.exit_code == 0, result.output
    assert result.output == "Password of user 'ana' changed; its sessions were revoked.\n"
    assert User.get_by_id(analyst.id).session_version == analyst.session_version + 1
    assert authenticate("ana", PASSWORD) is None and authenticate("ana", "a new long passphrase").id == analyst.id
    result = runner.invoke(args=["set-password", "nobody", "--password-stdin"], input="a new long passphrase\n")
    assert (result.exit_code, result.stderr) == (1, "Error: no user 'nobody'\n")


def test_disable_and_enable_user(runner, analyst):
    result = runner.invoke(args=["disable-user", "ana"])
    assert (result.exit_code, result.output) == (0, "User 'ana' disabled; its sessions were revoked.\n")
    user = User.get_by_id(analyst.id)
    assert user.disabled and not user.is_active and user.session_version == analyst.session_version + 1
    assert authenticate("ana", PASSWORD) is None
    result = runner.invoke(args=["enable-user", "ana"])
    assert (result.exit_code, result.output) == (0, "User 'ana' enabled.\n")
    assert authenticate("ana", PASSWORD).id == analyst.id
    result = runner.invoke(args=["disable-user", "nobody"])
    assert (result.exit_code, result.stderr) == (1, "Error: no user 'nobody'\n")


@pytest.mark.parametrize("command", ["create-user", "set-password", "disable-user", "enable-user", "serve"])
def test_user_commands_have_help_on_every_option(runner, command):
    result = runner.invoke(args=[command, "--help"])
    assert result.exit_code == 0
    options = re.findall(r"^  (--[a-z-]+)(.*)$", result.output, re.MULTILINE)
    assert options and all(rest.strip() for _, rest in options), result.output


def test_serve_refuses_a_short_secret_key(runner, app, config, monkeypatch):
    served = []
    monkeypatch.setattr("labeler.cli.commands._serve", lambda *args: served.append(args))
    monkeypatch.setitem(app.extensions, "labeler.config", dataclasses.replace(config, SECRET_KEY="x" * 31))
    result = runner.invoke(args=["serve"])
    assert result.exit_code == 1 and served == []
    assert result.stderr.startswith("Error: LABELER_SECRET_KEY is shorter than 32 characters")
    assert len(result.stderr.splitlines()) == 1
    monkeypatch.setitem(app.extensions, "labeler.config", dataclasses.replace(config, SECRET_KEY="x" * 32))
    assert runner.invoke(args=["serve"]).exit_code == 0 and len(served) == 1


def test_the_server_compiles_its_templates_keeps_blas_to_one_thread_and_freezes_its_start_up_objects(app):
    from threadpoolctl import threadpool_info, threadpool_limits

    from labeler.cli.commands import _prepare_to_serve
    app.jinja_env.cache.clear()
    try:
        with threadpool_limits(limits=None):  # puts the test process's limits back afterwards
            _prepare_to_serve(app)
            assert threadpool_info() and all(pool["num_threads"] == 1 for pool in threadpool_info())
        assert gc.get_freeze_count() > 10_000
        assert app.jinja_env.cache and len(app.jinja_env.cache) == len(app.jinja_env.list_templates())
    finally:
        gc.unfreeze()


def _set_up_labels(dataset, analyst, admin):
    """Labels written directly to the log; returns the items by role."""
    items = list(dataset.items().order_by(Item.row_number).limit(8))
    Label.create(item=items[0], value="genuine", annotator=analyst)
    undone = Label.create(item=items[1], value="fraud", annotator=analyst)
    Label.create(item=items[1], kind="undo", retracts=undone, annotator=analyst)
    Label.create(item=items[2], value="fraud", source="pseudo")
    Label.create(item=items[3], value="fraud", annotator=admin)
    Label.create(item=items[3], value="genuine", source="pseudo")  # a later pseudo label does not beat a human one
    Label.create(item=items[4], value="genuine", annotator=analyst)
    changed = Label.create(item=items[4], value="fraud", annotator=admin)
    Label.create(item=items[4], kind="undo", retracts=changed, annotator=admin)
    dropped = Label.create(item=items[5], value="fraud", source="pseudo")
    Label.create(item=items[5], kind="undo", retracts=dropped, source="pseudo")
    Label.create(item=items[6], value="fraud", source="model")
    Standing.refresh(item.id for item in items)  # what the labeling code does in the transaction of each write
    return items


def test_stats_text_and_json(runner, dataset, analyst, admin):
    _set_up_labels(dataset, analyst, admin)
    result = runner.invoke(args=["stats", "--dataset", "cc", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["rows"] == 2041 and figures["features"] == 30
    assert figures["labels"] == ["genuine", "fraud"]
    assert figures["human_labels"] == {"genuine": 2, "fraud": 1} and figures["human_labeled"] == 3
    assert figures["pseudo_labels"] == {"fraud": 1, "genuine": 1}
    assert figures["ground_truth"] == {"genuine": 1992, "fraud": 49}

    text = runner.invoke(args=["stats", "--dataset", "cc"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == "Dataset cc: 2,041 rows, 30 features"
    assert lines[1] == "Label set: genuine, fraud; counted as fraud: fraud"
    assert lines[2].startswith("Human labels: 3 ")
    assert lines[3] == "Pseudo labels: 2"

    missing = runner.invoke(args=["stats", "--dataset", "nope"])
    assert missing.exit_code == 1 and missing.stderr == (
        f"Error: no dataset named 'nope' (known: cc) in the store {runner.app.config['DATABASE']} (another store: "
        f"python manage.py --instance DIR ..., or LABELER_INSTANCE)\n")


def _read_export(path, fmt):
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        return rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return list(records[0]), records


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_human_labels_by_default_and_pseudo_on_request(runner, dataset, analyst, admin, small_csv,
                                                              tmp_path, fmt):
    _set_up_labels(dataset, analyst, admin)
    original = pd.read_csv(small_csv, dtype={"Class": str})
    (tmp_path / "out").mkdir()
    out = str(tmp_path / "out" / f"labels.{fmt}")

    result = runner.invoke(args=["export", "--dataset", "cc", "--format", fmt, "--out", out])
    assert result.exit_code == 0, result.output
    assert result.output == f"Exported 3 labeled items to {out}; {exporter.RULE}.\n"
    header, rows = _read_export(out, fmt)
    assert header[:31] == ["id", "Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
    assert header[31:] == exporter.PROVENANCE + (["decisions"] if fmt == "jsonl" else [])
    assert [(r["id"], r["label"], r["decided_by"], r["source"], r["standing"]) for r in rows] == [
        ("0", "genuine", "ana", "human", "single"), ("3", "fraud", "root", "human", "single"),
        ("4", "genuine", "ana", "human", "single")]
    for row in rows:
        source_row = original.iloc[int(row["id"])]
        assert [float(row[c]) for c in dataset.columns] == [float(source_row[c]) for c in dataset.columns]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["decided_at"])
        if fmt == "jsonl":  # numbers as numbers, the same values as the file's
            assert all(isinstance(row[c], (int, float)) for c in dataset.columns) and isinstance(row["Time"], int)

    result = runner.invoke(args=["export", "--dataset", "cc", "--format", fmt, "--out", out, "--include-pseudo"])
    assert result.exit_code == 0, result.output
    _, rows = _read_export(out, fmt)
    assert [(r["id"], r["label"], r["decided_by"] or "", r["source"]) for r in rows] == [
        ("0", "genuine", "ana", "human"), ("2", "fraud", "", "pseudo"), ("3", "fraud", "root", "human"),
        ("4", "genuine", "ana", "human"), ("6", "fraud", "", "model")]
    assert os.listdir(tmp_path / "out") == [f"labels.{fmt}"]  # no temporary file left behind


def test_export_refuses_an_unknown_format(dataset, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        exporter.export(dataset, str(tmp_path / "x.xml"), "xml")
    assert not os.path.exists(tmp_path / "x.xml") and not os.path.exists(tmp_path / "x.xml.part")


def test_export_of_an_unknown_dataset(runner, app, tmp_path):
    result = runner.invoke(args=["export", "--dataset", "nope", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no dataset named 'nope' (known: none) in the store {app.config['DATABASE']} "
                             f"(another store: python manage.py --instance DIR ..., or LABELER_INSTANCE)\n")
    assert not os.path.exists(tmp_path / "x.csv")


def _manage(tmp_path, *args, **extra_env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_env(tmp_path, **extra_env),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_import_as_a_real_subprocess(tmp_path, small_csv):
    result = _manage(tmp_path, "import", small_csv, "--dataset", "cc", "--label-column", "Class")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Dataset 'cc' created: 2,041 rows read, 2,041 added, 0 already present.",
        "Jobs queued for the worker: queue refill 1 (queue and feature statistics), autoencoder 2 (screen bars, "
        "latent map, cold-start score)."]
    assert result.stderr == ""
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    failed = _manage(tmp_path, "import", str(bad), "--dataset", "other")
    assert failed.returncode == 1
    assert failed.stderr == "Error: bad.csv: line 3, column 'b': 'x' is not a number (nothing was imported)\n"
    with sqlite3.connect(tmp_path / "store.sqlite3") as store:
        assert store.execute("SELECT COUNT(*) FROM item").fetchone()[0] == 2041
        assert store.execute("SELECT name FROM dataset").fetchall() == [("cc",)]
        assert store.execute("SELECT value, COUNT(*) FROM ground_truth GROUP BY value ORDER BY value").fetchall() \
            == [("fraud", 49), ("genuine", 1992)]


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_serve_refuses_to_start_without_a_secret_key(tmp_path):
    result = _manage(tmp_path, "serve", "--port", str(_free_port()))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: LABELER_SECRET_KEY is not set")
    assert "Serving" not in result.stdout


def _lines_of(stream):
    """A queue that receives the stream's lines from a reader thread (None at the end)."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines, pattern, seen, deadline):
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def _http_client():
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _get(opener, url, deadline):
    while True:
        try:
            with opener.open(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
def test_demo_serves_the_sample_and_its_printed_login_works(tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port), "--dir", str(tmp_path / "demo")],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 300
        lines, seen = _lines_of(process.stdout), []
        login_line = _wait_for(lines, r"Log in at (http://127\.0\.0\.1:(\d+)/) as user: (\S+)  password: (\S+)",
                               seen, deadline)
        url, printed_port, user, password = login_line.groups()
        assert (int(printed_port), user) == (port, "demo")
        _wait_for(lines, rf"Serving labeler on http://127\.0\.0\.1:{port}/", seen, deadline)

        opener = _http_client()
        form = _get(opener, url + "login", deadline)
        body = urllib.parse.urlencode({"name": user, "password": password,
                                       "csrf_token": csrf_token_of(form)}).encode()
        with opener.open(url + "login", data=body, timeout=10) as response:
            assert response.status == 200 and response.url == url  # redirected to the datasets list
            page = response.read().decode()
        assert "creditcard-sample" in page and "28,481" in page and "demo (admin)" in page
        labeling = _get(opener, url + "datasets/creditcard-sample/label", deadline)
        assert 'data-item-id="' in labeling and "data-preparing" not in labeling  # the demo computed its queue
        assert "transactions-sample" in page and "64,827" in page
        raw = _get(opener, url + "datasets/transactions-sample/label", deadline)
        assert 'data-item-id="' in raw and "data-history" in raw and "This card_id&#39;s transactions" not in raw
        assert "This card_id's transactions" in raw
        assert "digits" in page and "1,797" in page
        digits = _get(opener, url + "datasets/digits/label", deadline)
        assert 'data-item-id="' in digits and "data-item-image" in digits

        children = psutil.Process(process.pid).children(recursive=True)
        roles = {role: child for child in children for role in ("worker", "serve") if role in child.cmdline()}
        assert set(roles) == {"worker", "serve"}
        shared = ("LABELER_DATABASE", "LABELER_QUEUE", "LABELER_MODELS")  # the web's job requests reach this worker
        assert ({name: roles["worker"].environ()[name] for name in shared}
                == {name: roles["serve"].environ()[name] for name in shared})
        # the worker alone runs the autoencoder jobs the demo queued: one a dataset, done, none marked interrupted
        store = sqlite3.connect(str(tmp_path / "demo" / "labeler.sqlite3"))
        while True:
            states = [row[0] for row in store.execute("SELECT state FROM job WHERE kind = 'autoencoder'")]
            if not {"queued", "running"} & set(states) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        store.close()
        assert states == ["done", "done", "done"]
    finally:
        process.terminate()
        process.wait(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []  # the demo stops its worker too
    assert "Imported 28,481 transactions into dataset 'creditcard-sample'." in "".join(seen)
