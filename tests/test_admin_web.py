"""Web administration: the users page (create, disable, enable, password reset, role change; audited, CSRF
checked, admins only, the last admin kept), a disabled user's copied cookie refused, uploads imported by the worker
(good CSV, bad CSV with the store unchanged, Parquet, the size limit), export downloads, and the command line's
--instance reaching a demo's store."""
import csv
import io
import json
import os
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from labeler.config import Config
from labeler.data import audit, uploads
from labeler.data.users import UserError, authenticate, create_user, set_role
from labeler.store.db import AuditEntry, Dataset, GroundTruth, Item, Job, Label, User, database
from labeler.web import create_app
from labeler.worker import jobs
from tests.conftest import PASSWORD, csrf_token_of, label_through_screen, login
from tests.test_import import store_snapshot

NEW_PASSWORD = "another long passphrase"


@pytest.fixture
def root(client, admin):
    """The test client logged in as the admin 'root'."""
    assert login(client, "root").status_code == 302
    return client


def _token(client, url="/admin/users"):
    return csrf_token_of(client.get(url).get_data(as_text=True))


def _post(client, url, data, token_url="/admin/users", **kwargs):
    return client.post(url, data={"csrf_token": _token(client, token_url), **data}, **kwargs)


def _user_changes():
    return [(entry.user.name, entry.details) for entry in
            AuditEntry.select().where(AuditEntry.action == audit.USER_CHANGED).order_by(AuditEntry.id)]


# --- the users page -----------------------------------------------------------------------------------------

@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_users_page_lists_users_with_their_labels_given(root, queued, analyst):
    label_through_screen(queued, analyst, ["genuine", "fraud", "genuine"])
    create_user("<b>eve</b>", PASSWORD, "reviewer")
    html = root.get("/admin/users").get_data(as_text=True)
    row = re.search(r'<tr data-user="ana">(.*?)</tr>', html, re.S).group(1)
    assert "<td data-role>analyst</td>" in row and "<td data-state>active</td>" in row
    assert '<td class="num">3</td>' in row
    assert "&lt;b&gt;eve&lt;/b&gt;" in html and "<b>eve</b>" not in html  # escaped


def test_create_disable_enable_reset_and_role_each_audited(root, admin):
    response = _post(root, "/admin/users", {"name": "dave", "role": "analyst", "password": PASSWORD})
    assert response.status_code == 303
    assert "User &#39;dave&#39; created with role analyst." in root.get("/admin/users").get_data(as_text=True)
    dave = User.get(User.name == "dave")
    assert authenticate("dave", PASSWORD).id == dave.id

    assert _post(root, f"/admin/users/{dave.id}/disable", {}).status_code == 303
    assert User.get_by_id(dave.id).disabled and authenticate("dave", PASSWORD) is None
    assert _post(root, f"/admin/users/{dave.id}/enable", {}).status_code == 303
    assert not User.get_by_id(dave.id).disabled
    assert _post(root, f"/admin/users/{dave.id}/password", {"password": NEW_PASSWORD}).status_code == 303
    assert authenticate("dave", NEW_PASSWORD).id == dave.id
    assert _post(root, f"/admin/users/{dave.id}/role", {"role": "reviewer"}).status_code == 303
    assert User.get_by_id(dave.id).role == "reviewer"

    assert _user_changes() == [
        ("root", {"name": "dave", "change": "created", "role": "analyst"}),
        ("root", {"name": "dave", "change": "disabled"}),
        ("root", {"name": "dave", "change": "enabled"}),
        ("root", {"name": "dave", "change": "password reset"}),
        ("root", {"name": "dave", "change": "role changed", "changes": {"role": ["analyst", "reviewer"]}}),
    ]
    stored = json.dumps([entry.details for entry in AuditEntry.select()])
    assert PASSWORD not in stored and NEW_PASSWORD not in stored  # never a password
    audit_page = root.get("/admin/audit").get_data(as_text=True)
    assert "role: analyst → reviewer" in audit_page and "change: password reset" in audit_page


@pytest.mark.parametrize("password, message", [
    ("short", "password must have at least 12 characters"),
    ("123456789012345", "password must not be only digits"),
    ("dave", "password must have at least 12 characters"),
])
def test_a_weak_password_is_one_line_and_keeps_the_form(root, password, message):
    response = _post(root, "/admin/users", {"name": "dave", "role": "reviewer", "password": password})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'<p class="error" role="alert" data-error>(.*?)</p>', html).group(1) == message
    assert 'name="name" value="dave"' in html and '<option value="reviewer" selected>' in html
    assert not re.search(r'type="password"[^>]*value=', html)  # the password is never sent back
    assert User.get_or_none(User.name == "dave") is None and not _user_changes()


def test_a_taken_name_and_a_bad_role_are_refused(root, analyst):
    response = _post(root, "/admin/users", {"name": "ana", "role": "analyst", "password": PASSWORD})
    assert response.status_code == 400 and "user &#39;ana&#39; already exists" in response.get_data(as_text=True)
    response = _post(root, f"/admin/users/{analyst.id}/role", {"role": "owner"})
    assert response.status_code == 400 and "unknown role &#39;owner&#39;" in response.get_data(as_text=True)
    assert User.get_by_id(analyst.id).role == "analyst" and not _user_changes()


def test_the_last_admin_cannot_be_disabled_or_demoted(root, admin):
    before = User.get_by_id(admin.id)
    for url, data in ((f"/admin/users/{admin.id}/disable", {}), (f"/admin/users/{admin.id}/role", {"role": "analyst"})):
        response = _post(root, url, data)
        assert response.status_code == 400
        assert re.search(r'data-error>(.*?)</p>', response.get_data(as_text=True)).group(1) == (
            "&#39;root&#39; is the last admin: make another user admin first")
    after = User.get_by_id(admin.id)
    assert (after.role, after.disabled, after.session_version) == ("admin", False, before.session_version)
    assert root.get("/admin/users").status_code == 200  # still logged in
    with pytest.raises(UserError, match="last admin"):
        set_role("root", "reviewer")
    # with a second admin, the first may step down (and its session ends)
    create_user("second", PASSWORD, "admin")
    assert _post(root, f"/admin/users/{admin.id}/role", {"role": "reviewer"}).status_code == 303
    assert User.get_by_id(admin.id).role == "reviewer"
    assert root.get("/admin/users").status_code == 302  # to the login page


def test_non_admins_get_403_and_forms_need_the_csrf_token(client, analyst, admin):
    login(client, "ana")
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/import").status_code == 403
    token = csrf_token_of(client.get("/").get_data(as_text=True))
    for url in ("/admin/users", f"/admin/users/{admin.id}/disable", f"/admin/users/{admin.id}/role", "/admin/import"):
        assert client.post(url, data={"csrf_token": token, "name": "x", "role": "admin",
                                      "password": PASSWORD}).status_code == 403
    client.post("/logout", data={"csrf_token": token})
    login(client, "root")
    response = client.post("/admin/users", data={"name": "mallory", "role": "admin", "password": PASSWORD})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    response = client.post(f"/admin/users/{analyst.id}/disable")
    assert response.status_code == 400
    assert User.get_or_none(User.name == "mallory") is None and not User.get_by_id(analyst.id).disabled
    assert not _user_changes()


def test_a_disabled_users_copied_cookie_no_longer_works(app, root, analyst):
    other = app.test_client()
    login(other, "ana")
    cookie = other.get_cookie("session").value
    assert other.get("/").status_code == 200
    _post(root, f"/admin/users/{analyst.id}/disable", {})
    replay = app.test_client()
    replay.set_cookie("session", cookie)
    assert replay.get("/").status_code == 302 and other.get("/").status_code == 302
    _post(root, f"/admin/users/{analyst.id}/enable", {})  # enabling does not bring the old session back
    assert replay.get("/").status_code == 302


# --- uploads run by the worker ------------------------------------------------------------------------------

def _upload(client, data, filename, **fields):
    """POST the import form with ``data`` (bytes) as the file ``filename``."""
    form = {"csrf_token": _token(client, "/admin/import"), "dataset": "uploaded", **fields,
            "file": (io.BytesIO(data), filename)}
    return client.post("/admin/import", data=form, content_type="multipart/form-data")


def _job_of(response):
    assert response.status_code == 303, response.get_data(as_text=True)
    return Job.get_by_id(int(response.headers["Location"].rsplit("/", 1)[1]))


def _uploads(app):
    folder = os.path.join(app.instance_path, "uploads")
    return os.listdir(folder) if os.path.isdir(folder) else []


def test_a_good_csv_is_imported_by_the_worker_with_progress(app, config, root, small_csv):
    with open(small_csv, "rb") as stream:
        response = _upload(root, stream.read(), "small sample.csv", label_column="Class", exclude="Time")
    job = _job_of(response)
    assert (job.kind, job.state, job.dataset_id) == (jobs.IMPORT, "queued", None)
    assert len(_uploads(app)) == 1
    waiting = root.get(f"/admin/import/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert waiting.startswith('<section id="import-job"') and 'hx-trigger="every 1s"' in waiting
    assert "small_sample.csv waits for the worker" in waiting
    assert Dataset.select().count() == 0  # the web only saved the file and queued the job

    assert jobs.run(job.id, config) == "done"
    done = root.get(f"/admin/import/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-get" not in done  # finished: the component stops polling
    assert ('Dataset <a href="/datasets/uploaded">uploaded</a> created from small_sample.csv: 2,041 rows read, '
            '2,041 added, 0 already present.') in done
    dataset = Dataset.get(Dataset.name == "uploaded")
    assert Item.select().where(Item.dataset == dataset).count() == 2041
    assert "Time" not in dataset.feature_columns and GroundTruth.select().count() == 2041
    assert _uploads(app) == []  # the upload is removed after the job
    [entry] = AuditEntry.select().where(AuditEntry.action == audit.IMPORTED)
    assert (entry.user.name, entry.dataset_id) == ("root", dataset.id)
    assert entry.details == {"file": "small_sample.csv", "created": True, "rows_read": 2041, "rows_added": 2041,
                             "rows_skipped": 0}
    queued = Job.select().where((Job.dataset == dataset) & (Job.state == "queued"))
    assert sorted(job.kind for job in queued) == [jobs.AUTOENCODER, jobs.REFILL]  # as after the import command

    # the same file twice more into the existing dataset: two jobs of that dataset (each upload its own), and
    # nothing added
    with open(small_csv, "rb") as stream:
        data = stream.read()
    again = [_job_of(_upload(root, data, "small sample.csv")) for _ in range(2)]
    assert again[0].id != again[1].id and {job.dataset_id for job in again} == {dataset.id}
    for job in again:
        assert jobs.run(job.id, config) == "done"
        assert "2,041 already present" in root.get(f"/admin/import/{job.id}").get_data(as_text=True)


def test_progress_shows_while_the_import_runs(app, config, root, small_csv, monkeypatch):
    with open(small_csv, "rb") as stream:
        job = _job_of(_upload(root, stream.read(), "small.csv", label_column="Class"))
    payload = job.payload
    payload["options"]["chunk_rows"] = 500  # several chunks, so several steps
    Job.update(payload=payload).where(Job.id == job.id).execute()
    write, seen = uploads._write_progress, []

    def polled(folder, percent):  # what a poll shows at each step of the import
        write(folder, percent)
        seen.append(root.get(f"/admin/import/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True))

    monkeypatch.setattr(uploads, "_write_progress", polled)
    assert jobs.run(job.id, config) == "done"
    assert len(seen) == 5
    assert all('hx-trigger="every 1s"' in html and "The worker is importing small.csv into dataset <b>uploaded</b>"
               in html for html in seen)
    percents = [int(re.search(r'<progress max="100" value="(\d+)">', html).group(1)) for html in seen]
    assert percents == sorted(percents) and percents[-1] == 100


def test_a_bad_csv_shows_the_importers_line_and_changes_nothing(app, config, root, queued):
    before = store_snapshot()
    text = "Time,V1,Amount,Class\n0,1.5,10,0\n1,oops,12,1\n"
    job = _job_of(_upload(root, text.encode(), "bad.csv", label_column="Class"))
    jobs_before = Job.select().count()
    assert jobs.run(job.id, config) == "failed"
    html = root.get(f"/admin/import/{job.id}").get_data(as_text=True)
    failed = re.search(r'<p class="error" role="alert" data-failed>(.*?)</p>', html).group(1)
    assert failed == ("bad.csv was not imported (nothing was changed): bad.csv: line 3, column &#39;V1&#39;: "
                      "&#39;oops&#39; is not a number")
    assert "ImportFailed" not in failed and "\n" not in failed
    after = store_snapshot()
    assert {table: value for table, value in after.items() if table != "job"} == \
        {table: value for table, value in before.items() if table != "job"}
    assert Job.select().count() == jobs_before and _uploads(app) == []  # no job queued after; upload removed
    assert not AuditEntry.select().where(AuditEntry.action == audit.IMPORTED).exists()


@pytest.mark.parametrize("filename, fields, message", [
    ("", {}, "choose a file to upload"),
    ("notes.txt", {}, "&#39;notes.txt&#39; is not a CSV, CSV.gz or Parquet file (.csv, .csv.gz or .parquet)"),
    ("rows.csv", {"dataset": ""}, "the dataset name is empty"),
    ("rows.csv", {"dataset": "a/b"}, "dataset name &#39;a/b&#39; contains &#39;/&#39; or &#39;\\&#39;"),
])
def test_a_refused_upload_saves_nothing_and_keeps_the_form(app, root, filename, fields, message):
    before = store_snapshot()
    response = _upload(root, b"a,b\n1,2\n", filename, label_column="Class", **fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'data-error>(.*?)</p>', html).group(1) == message
    assert 'name="label_column" value="Class"' in html
    assert store_snapshot() == before and _uploads(app) == []


def test_a_parquet_upload_with_transaction_roles(app, config, root, sample_lines):
    frame = pd.read_csv(io.StringIO("\n".join(sample_lines[:801])), dtype={"transaction_id": str})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    job = _job_of(_upload(root, buffer.getvalue(), "raw.parquet", label_column="is_fraud",
                          id_column="transaction_id", time_column="timestamp", entity_columns="card_id, merchant_id",
                          ignore="scenario"))
    assert jobs.run(job.id, config) == "done"
    dataset = Dataset.get(Dataset.name == "uploaded")
    assert Item.select().where(Item.dataset == dataset).count() == 800
    assert dataset.roles["time"] == "timestamp" and dataset.roles["entities"] == ["card_id", "merchant_id"]
    kinds = {job.kind for job in Job.select().where((Job.dataset == dataset) & (Job.state == "queued"))}
    assert kinds == {jobs.REFILL, jobs.AUTOENCODER, jobs.SEQUENCES}


def test_an_upload_over_the_limit_is_413_with_one_line(app, root):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    response = _upload(root, b"x" * 20_000, "big.csv")
    assert response.status_code == 413
    assert ("The file is larger than the upload limit of 0 MiB; nothing was saved. Import it on the server with "
            "python manage.py import.") in response.get_data(as_text=True)
    assert _uploads(app) == [] and not Job.select().exists()


# --- export downloads ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_downloads(app, root, queued, analyst, fmt):
    label_through_screen(queued, analyst, ["genuine", "fraud", "genuine"])
    Label.create(item=Item.select().where(Item.dataset == queued).order_by(Item.id.desc()).first(), value="fraud",
                 source="pseudo")
    token = _token(root, "/datasets/cc")
    html = root.get("/datasets/cc").get_data(as_text=True)
    assert 'action="/admin/datasets/cc/export"' in html
    response = root.post("/admin/datasets/cc/export", data={"csrf_token": token, "format": fmt})
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(rf"attachment; filename=cc-\d{{4}}-\d\d-\d\d\.{fmt}", disposition)
    body = response.get_data(as_text=True)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(body)))
    else:
        rows = [json.loads(line) for line in body.splitlines()]
    assert sorted(row["label"] for row in rows) == ["fraud", "genuine", "genuine"]
    assert all(row["decided_by"] == "ana" for row in rows)
    with_pseudo = root.post("/admin/datasets/cc/export", data={"csrf_token": token, "format": fmt,
                                                              "include_pseudo": "1"}).get_data(as_text=True)
    assert len(with_pseudo.strip().splitlines()) == len(body.strip().splitlines()) + 1
    entries = list(AuditEntry.select().where(AuditEntry.action == audit.EXPORTED).order_by(AuditEntry.id))
    assert [(entry.user.name, entry.details["format"], entry.details["include_pseudo"]) for entry in entries] == [
        ("root", fmt, False), ("root", fmt, True)]
    assert [name for name in os.listdir(app.instance_path) if name.startswith("export-")] == []  # temp file gone


def test_export_refuses_another_format_and_non_admins(client, queued, analyst, admin):
    login(client, "ana")
    token = csrf_token_of(client.get("/datasets/cc").get_data(as_text=True))
    assert client.post("/admin/datasets/cc/export", data={"csrf_token": token}).status_code == 403
    client.post("/logout", data={"csrf_token": token})
    login(client, "root")
    token = csrf_token_of(client.get("/datasets/cc").get_data(as_text=True))
    response = client.post("/admin/datasets/cc/export", data={"csrf_token": token, "format": "xml"})
    assert response.status_code == 400 and "Unknown export format &#39;xml&#39;" in response.get_data(as_text=True)
    assert client.post("/admin/datasets/nope/export", data={"csrf_token": token}).status_code == 404
    assert not AuditEntry.select().where(AuditEntry.action == audit.EXPORTED).exists()


# --- commands reach the demo's store ------------------------------------------------------------------------

def test_the_instance_option_reaches_a_demo_like_store(tmp_path, small_csv, monkeypatch):
    from labeler.cli.commands import _store_hint
    from labeler.data.importer import import_file
    from manage import cli

    demo = tmp_path / "demo"
    demo.mkdir()
    config = Config.load({"INSTANCE_PATH": str(demo), "DATABASE": str(demo / "labeler.sqlite3"),
                          "TASK_QUEUE": str(demo / "queue.sqlite3"), "MODEL_FOLDER": str(demo / "models")})
    create_app(config.as_dict())  # as the demo command builds its store
    with database.connection_context():
        import_file(small_csv, "creditcard-sample", label_column="Class")
    hint = _store_hint(config)
    assert f"python manage.py --instance {demo} create-user NAME --role analyst" in hint
    assert f"export LABELER_INSTANCE={demo}" in hint.splitlines() and "SECRET_KEY" not in hint
    assert f"export LABELER_DATABASE={demo / 'labeler.sqlite3'}" in hint.splitlines()

    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("LABELER_INSTANCE", str(elsewhere))  # the environment points elsewhere; the option wins
    monkeypatch.setenv("LABELER_DATABASE", str(elsewhere / "labeler.sqlite3"))
    runner = CliRunner()
    result = runner.invoke(cli, ["--instance", str(demo), "stats", "--dataset", "creditcard-sample"])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.startswith("Dataset creditcard-sample: 2,041 rows")
    result = runner.invoke(cli, ["--instance", str(demo), "create-user", "eve", "--role", "analyst",
                                 "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    with database.connection_context():
        assert authenticate("eve", PASSWORD) is not None and database.database == str(demo / "labeler.sqlite3")

    result = runner.invoke(cli, ["stats", "--dataset", "creditcard-sample"])  # without it: the environment's store
    assert result.exit_code == 1
    assert result.stderr == (f"Error: no dataset named 'creditcard-sample' (known: none) in the store "
                             f"{elsewhere / 'labeler.sqlite3'} (another store: python manage.py --instance DIR ..., "
                             f"or LABELER_INSTANCE)\n")
