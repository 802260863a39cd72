"""The JSON API (labeler.web.api) and its tokens (labeler.data.tokens): the tokens' lifecycle from the command
line and the web page; every route with a good token, a revoked one, none, a login cookie only and the wrong
scope; pushes (JSON, NDJSON, bad JSON, a bad row in the middle of a batch writing nothing, idempotent re-pushes,
pushed rows scored and queued by the jobs they request); labels pulled by cursor; the OpenAPI document against
the routes."""
import datetime
import json
import re

import numpy as np
import pandas as pd
import pytest

from labeler.data import audit, tokens
from labeler.data.importer import import_file
from labeler.data.users import create_user, set_disabled
from labeler.labeling import decisions, review
from labeler.store.db import ApiToken, AuditEntry, Dataset, GroundTruth, Item, Job, Label, QueueEntry, Standing
from labeler.store.files import load_scores
from labeler.store.pool import pool_size
from labeler.store.serving import serving_scores
from labeler.web import api
from labeler.worker import jobs
from labeler.worker.retrain import scores_fall_short
from tests.conftest import PASSWORD, csrf_token_of, label_through_screen, login
from tests.test_import import store_snapshot

ID = "tx"


@pytest.fixture
def frame(small_csv):
    """The small sample with an id column ``tx`` ("t0", "t1", ...)."""
    frame = pd.read_csv(small_csv, dtype={"Class": str})
    frame.insert(0, ID, [f"t{i}" for i in range(len(frame))])
    return frame


@pytest.fixture
def cc(app, frame, tmp_path):
    """Dataset "cc" of the small sample imported with the id column and ground truth."""
    path = tmp_path / "with_ids.csv"
    frame.to_csv(path, index=False)
    return import_file(str(path), "cc", label_column="Class", id_column=ID).dataset


def new_rows(frame, count, start=0, prefix="new"):
    """``count`` rows of the sample as API objects (no ground truth) with new ids ``prefix0``, ..."""
    rows = frame.drop(columns=["Class"]).iloc[start:start + count].to_dict("records")
    return [{**row, ID: f"{prefix}{i}"} for i, row in enumerate(rows)]


def token_for(user, *scopes):
    return tokens.create_token(user, "test", scopes)[1]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def push(client, token, rows, name="cc"):
    return client.post(f"/api/v1/datasets/{name}/transactions", json=rows, headers=bearer(token))


# tokens


def test_a_token_is_shown_once_stored_hashed_and_audited(admin, analyst):
    token, clear = tokens.create_token(analyst, " case system ", ["write", "read", "read"], actor=admin)
    assert clear.startswith("lbl_") and len(clear) == 4 + 43
    stored = ApiToken.get_by_id(token.id)
    assert stored.token_hash == tokens.digest(clear) and clear not in str(stored.__data__)
    assert (stored.name, stored.prefix, stored.scopes) == ("case system", clear[:12], ["read", "write"])
    entry = AuditEntry.get(AuditEntry.action == audit.TOKEN_CREATED)
    assert entry.user_id == admin.id and entry.details == {"token": clear[:12], "name": "case system",
                                                           "owner": "ana", "scopes": ["read", "write"]}
    assert tokens.authenticate(clear).id == token.id
    assert tokens.authenticate(clear + "x") is None and tokens.authenticate("lbl_nothing") is None
    assert tokens.authenticate(clear.removeprefix("lbl_")) is None


@pytest.mark.parametrize("name, scopes, message", [
    ("", ["read"], "the token's name is empty"),
    ("x" * 81, ["read"], "longer than 80 characters"),
    ("ci", [], "a token needs at least one scope"),
    ("ci", ["read", "delete"], "unknown scope(s) delete: use read, write, admin"),
    ("ci", ["admin"], "only admins can hold the admin scope; 'ana' has role analyst"),
])
def test_bad_tokens_are_refused_with_one_line(analyst, name, scopes, message):
    with pytest.raises(tokens.TokenError) as refused:
        tokens.create_token(analyst, name, scopes)
    assert message in str(refused.value)
    assert ApiToken.select().count() == 0 and AuditEntry.select().count() == 0


def test_revoked_tokens_and_disabled_users_stop_working_and_last_use_is_written_once_a_minute(analyst, monkeypatch):
    token, clear = tokens.create_token(analyst, "ci", ["read"])
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    moments = iter([start, start + datetime.timedelta(seconds=30), start + datetime.timedelta(seconds=61)])
    monkeypatch.setattr(tokens, "utcnow", lambda: next(moments))
    for expected in (start, start, start + datetime.timedelta(seconds=61)):
        tokens.authenticate(clear)
        assert ApiToken.get_by_id(token.id).last_used_at == expected
    monkeypatch.undo()
    set_disabled("ana", True)
    assert tokens.authenticate(clear) is None
    set_disabled("ana", False)
    assert tokens.authenticate(clear) is not None
    revoked = tokens.revoke_token(clear[:12])
    assert revoked.revoked_at is not None and tokens.authenticate(clear) is None
    with pytest.raises(tokens.TokenError, match="was already revoked"):
        tokens.revoke_token(str(token.id))
    with pytest.raises(tokens.TokenError, match="names no token"):
        tokens.revoke_token("ci")
    assert [entry.action for entry in AuditEntry.select().order_by(AuditEntry.id)] == [
        audit.TOKEN_CREATED, audit.TOKEN_REVOKED]


def test_token_commands(runner, analyst):
    created = runner.invoke(args=["create-token", "case system", "--user", "ana", "--scope", "read",
                                  "--scope", "write"])
    assert created.exit_code == 0, created.output
    clear = created.stdout.strip()
    assert clear.startswith("lbl_") and "\n" not in clear
    assert "shown only now" in created.stderr and clear not in created.stderr
    assert tokens.authenticate(clear).user.name == "ana"
    listed = runner.invoke(args=["tokens", "--user", "ana"])
    assert listed.exit_code == 0
    assert f"{clear[:12]}...\tcase system\tread,write\tcreated " in listed.output and "last used " in listed.output
    assert listed.output.rstrip().endswith("active") and clear not in listed.output
    refused = runner.invoke(args=["create-token", "ops", "--user", "ana", "--scope", "admin"])
    assert (refused.exit_code, refused.output) == (1, "Error: only admins can hold the admin scope; 'ana' has "
                                                      "role analyst\n")
    unknown = runner.invoke(args=["create-token", "ops", "--user", "nobody"])
    assert (unknown.exit_code, unknown.output) == (1, "Error: no user 'nobody'\n")
    revoked = runner.invoke(args=["revoke-token", clear[:12], "--user", "ana"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert tokens.authenticate(clear) is None
    assert runner.invoke(args=["tokens", "--user", "ana"]).output.rstrip().split("\t")[-1].startswith("revoked ")
    again = runner.invoke(args=["revoke-token", clear[:12]])
    assert again.exit_code == 1 and "already revoked" in again.output
    for command in ("create-token", "revoke-token", "tokens"):
        helped = runner.invoke(args=[command, "--help"])
        options = re.findall(r"^  (--[a-z-]+)(.*)$", helped.output, re.MULTILINE)
        assert helped.exit_code == 0 and "--user" in dict(options), helped.output
        assert all(rest.strip() for _, rest in options), helped.output


def test_the_tokens_page_creates_shows_once_and_revokes(client, analyst):
    login(client, "ana")
    page = client.get("/tokens")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "No tokens yet." in html
    assert 'value="write"' in html and 'value="admin"' not in html  # the admin scope is for admins
    csrf = csrf_token_of(html)
    assert client.post("/tokens", data={"name": "x", "scope": "read"}).status_code == 400  # no CSRF token
    refused = client.post("/tokens", data={"name": "x", "scope": "admin", "csrf_token": csrf})
    assert refused.status_code == 400 and "only admins can hold the admin scope" in refused.get_data(as_text=True)
    created = client.post("/tokens", data={"name": "case system", "scope": ["read", "write"], "csrf_token": csrf})
    assert created.status_code == 201
    token = ApiToken.get()
    clear = created.get_data(as_text=True).split('id="new-token">')[1].split("<")[0]
    assert tokens.digest(clear) == token.token_hash and token.scopes == ["read", "write"]
    listed = client.get("/tokens").get_data(as_text=True)
    assert clear not in listed and token.prefix in listed and "case system" in listed
    revoked = client.post(f"/tokens/{token.id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 200 and "revoked" in revoked.get_data(as_text=True)
    assert tokens.authenticate(clear) is None
    other = tokens.create_token(create_user("bob", PASSWORD, "analyst"), "bob's", ["read"])[0]
    assert client.post(f"/tokens/{other.id}/revoke", data={"csrf_token": csrf}).status_code == 400
    assert ApiToken.get_by_id(other.id).revoked_at is None


# every route: the token matrix


def _routes(cc, job_id):
    return [("POST", "/api/v1/datasets/cc/transactions", "write"),
            ("GET", "/api/v1/datasets/cc/labels", "read"),
            ("GET", "/api/v1/datasets/cc/items/t1", "read"),
            ("GET", "/api/v1/datasets/cc/stats", "read"),
            ("GET", f"/api/v1/jobs/{job_id}", "read")]


def test_every_route_wants_a_working_token_with_its_scope(app, client, cc, frame, admin, analyst):
    job, _ = jobs.request(cc, jobs.REFILL, "test")
    reader, writer = token_for(analyst, "read"), token_for(analyst, "write")
    revoked = token_for(analyst, "read", "write")
    tokens.revoke_token(revoked[:12])
    everything = token_for(admin, "admin")
    for method, url, scope in _routes(cc, job.id):
        body = {"json": new_rows(frame, 1, prefix=f"{method}{scope}")} if method == "POST" else {}
        good = reader if scope == "read" else writer
        wrong = writer if scope == "read" else reader
        for token, status in ((good, 200), (everything, 200), (wrong, 403), (revoked, 401), (None, 401),
                              ("lbl_forged", 401)):
            headers = bearer(token) if token else {}
            response = client.open(url, method=method, headers=headers, **body)
            assert response.status_code == status, (url, token, response.get_data(as_text=True))
            assert response.is_json
            if status != 200:
                assert list(response.get_json()) == ["error"]
            if status == 401:
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # a login cookie is no way in (so the exemption from CSRF cannot be abused)
    login(client, "root")
    assert client.get("/tokens").status_code == 200
    for method, url, _ in _routes(cc, job.id):
        response = client.open(url, method=method, json=new_rows(frame, 1, prefix="cookie"))
        assert response.status_code == 401 and "a login cookie does not work here" in response.get_json()["error"]
    assert not Item.select().where(Item.external_id == "cookie0").exists()


def test_unknown_things_are_json_errors(client, cc, analyst):
    token = token_for(analyst, "read", "write")
    cases = [("GET", "/api/v1/datasets/nope/stats", 404, "no dataset named 'nope' (known: cc)"),
             ("GET", "/api/v1/datasets/cc/items/nope", 404, "no item 'nope' in dataset 'cc'"),
             ("GET", "/api/v1/jobs/999", 404, "no job 999"),
             ("GET", "/api/v1/nothing", 404, "not found"),
             ("DELETE", "/api/v1/datasets/cc/stats", 405, "DELETE is not allowed here"),
             ("GET", "/api/v1/datasets/cc/labels?after=-1", 400,
              "after must be a whole number from 0 to 9223372036854775807, not '-1'"),
             ("GET", "/api/v1/datasets/cc/labels?limit=0", 400, "limit must be a whole number from 1 to 5000, not '0'")]
    for method, url, status, message in cases:
        response = client.open(url, method=method, headers=bearer(token))
        assert (response.status_code, response.get_json()) == (status, {"error": message}), url


# pushing transactions


def test_a_push_appends_counts_audits_and_is_idempotent(client, cc, frame, analyst):
    token = token_for(analyst, "write")
    before = pool_size(cc)
    rows = new_rows(frame, 30)
    reply = push(client, token, rows)
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    assert {key: body[key] for key in ("received", "added", "already_present")} == {
        "received": 30, "added": 30, "already_present": 0}
    retrain, refill = Job.get_by_id(body["jobs"]["retrain"]), Job.get_by_id(body["jobs"]["refill"])
    assert (retrain.state, retrain.payload["reason"], refill.kind) == ("queued", "30 rows pushed", "refill")
    assert pool_size(cc) == before + 30
    stored = Item.get((Item.dataset == cc) & (Item.external_id == "new3"))
    assert stored.typed_values(cc) == [rows[3][column] for column in cc.columns]  # exact numbers
    assert not GroundTruth.select().where(GroundTruth.item == stored).exists()
    entry = AuditEntry.get(AuditEntry.action == audit.IMPORTED)
    assert (entry.user_id, entry.dataset_id, entry.details) == (analyst.id, cc.id, {
        "via": "api", "rows_read": 30, "rows_added": 30})

    snapshot = store_snapshot()
    again = push(client, token, rows[:10])
    assert again.get_json() == {"dataset": "cc", "received": 10, "added": 0, "already_present": 10, "jobs": {}}
    mixed = push(client, token, rows[20:] + new_rows(frame, 5, start=100, prefix="more"))
    assert (mixed.get_json()["added"], mixed.get_json()["already_present"]) == (5, 10)
    assert pool_size(cc) == before + 35 and snapshot != store_snapshot()


def test_ndjson_is_pushed_as_json_is(client, cc, frame, analyst):
    rows = new_rows(frame, 4, prefix="nd")
    body = "\n".join(json.dumps(row) for row in rows) + "\n\n"
    reply = client.post("/api/v1/datasets/cc/transactions", data=body,
                        headers={**bearer(token_for(analyst, "write")), "Content-Type": "application/x-ndjson"})
    assert (reply.status_code, reply.get_json()["added"]) == (200, 4)
    assert Item.get(Item.external_id == "nd2").typed_values(cc)[5] == rows[2][cc.columns[5]]


def test_a_bad_row_in_the_middle_writes_nothing(client, cc, frame, analyst):
    token = token_for(analyst, "write")
    rows = new_rows(frame, 50)
    assert push(client, token, []).status_code == 400  # the token's first use is written now, not below
    snapshot = store_snapshot()
    cases = [
        (25, {"V3": "abc"}, "row 26, field 'V3': 'abc' is not a number"),
        (25, {"V3": None}, "row 26, field 'V3': value is missing"),
        (25, {"Amount": [1]}, "row 26, field 'Amount': a JSON array, not a number or text"),
        (25, {"colour": "red"}, "row 26: unknown field 'colour' (the fields of dataset 'cc': tx, Time, V1,"),
        (25, {ID: "new3"}, "row 26, field 'tx': duplicate id 'new3' in the batch"),
        (25, {ID: " "}, "row 26, field 'tx': id is missing"),
        (25, {"Class": "maybe"}, "row 26, field 'Class': label 'maybe' is not in the dataset's label set (0, 1)"),
        (25, {"V3": 1e39}, "row 26, field 'V3': 1e+39 is too large for a 32-bit float"),
    ]
    for position, change, message in cases:
        bad = [dict(row) for row in rows]
        bad[position].update(change)
        reply = push(client, token, bad)
        assert reply.status_code == 400 and reply.get_json()["error"].startswith(message), reply.get_json()
        assert store_snapshot() == snapshot
    for body, message in [(b"[{\"tx\": 1,}]", "the body: bad JSON (Expecting property name enclosed in double "
                                              "quotes: line 1 column 11 (char 10))"),
                          (b"{\"tx\": \"a\"}", "the body is a JSON object, not an array of objects"),
                          (b"[]", "the body holds no rows"),
                          (b"", "the body: bad JSON"),
                          (b"[{\"V1\": NaN}]", "the body: bad JSON (NaN is not JSON)"),
                          (b"[{\"tx\": \"a\"}, 3]", "row 2: a JSON number, not an object"),
                          (b"\xff[]", "the body is not UTF-8 text (byte 0)")]:
        reply = client.post("/api/v1/datasets/cc/transactions", data=body,
                            headers={**bearer(token), "Content-Type": "application/json"})
        assert reply.status_code == 400 and reply.get_json()["error"].startswith(message), reply.get_json()
    ndjson = client.post("/api/v1/datasets/cc/transactions", data=b'{"tx": "a"}\n{"tx": \n',
                         headers={**bearer(token), "Content-Type": "application/x-ndjson"})
    assert ndjson.get_json()["error"].startswith("row 2: bad JSON")
    other = client.post("/api/v1/datasets/cc/transactions", data=b"tx\na\n",
                        headers={**bearer(token), "Content-Type": "text/csv"})
    assert other.status_code == 415
    assert store_snapshot() == snapshot


def test_a_body_too_large_is_413_and_a_dataset_of_row_numbers_is_refused(client, cc, frame, analyst, small_csv,
                                                                         monkeypatch):
    token = token_for(analyst, "write")
    monkeypatch.setattr(api, "BODY_LIMIT", 1000)
    reply = push(client, token, new_rows(frame, 10))
    assert reply.status_code == 413 and "more than 1,000" in reply.get_json()["error"]
    monkeypatch.undo()
    import_file(small_csv, "rows", label_column="Class")
    refused = push(client, token, new_rows(frame, 1), name="rows")
    assert refused.status_code == 400 and refused.get_json()["error"].startswith("dataset 'rows' has no id column")


def _serve_a_model(cc, analyst, config):
    """Human labels from ground truth on 60 items (frauds among them), then the retrain: a model serves."""
    truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
                 .where(Item.dataset == cc).tuples())
    frauds = [item for item, value in truth.items() if value == "fraud"][:20]
    genuine = [item for item, value in truth.items() if value == "genuine"][:40]
    for item in frauds + genuine:
        Label.create(item=item, value=truth[item], annotator=analyst, source="human")
    job, _ = jobs.request(cc, jobs.RETRAIN, "test")
    assert jobs.run(job.id, config) == "done"
    assert serving_scores(cc).version is not None


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_pushed_rows_are_scored_and_queued_by_the_jobs_the_push_requests(client, cc, frame, analyst, config):
    """The retrain and the refill the push requests (the autoencoder job a retrain asks for is left waiting: it
    trains Keras, not for this tier)."""
    Dataset.update(settings={**cc.settings, "queue_size": 5000}).where(Dataset.id == cc.id).execute()
    cc = Dataset.get_by_id(cc.id)
    _serve_a_model(cc, analyst, config)
    assert not scores_fall_short(cc)
    again, _ = jobs.request(cc, jobs.RETRAIN, "cron")  # nothing new: nothing to do
    assert jobs.run(again.id, config) == "done"
    assert Job.get_by_id(again.id).stage == "no new labels: nothing to do"

    reply = push(client, token_for(analyst, "write"), new_rows(frame, 40, start=500, prefix="pushed"))
    assert reply.get_json()["added"] == 40
    pushed = {item_id for (item_id,) in Item.select(Item.id).where(Item.external_id.startswith("pushed")).tuples()}
    queued = {entry.item_id for entry in QueueEntry.select().where(QueueEntry.dataset == cc)}
    assert scores_fall_short(cc) and not pushed & queued  # not scored yet: not queued
    requested = reply.get_json()["jobs"]
    assert set(requested) == {"retrain", "refill"}
    assert [jobs.run(requested[kind], config) for kind in ("refill", "retrain")] == ["done", "done"]
    retrain = Job.get_by_id(requested["retrain"])
    assert retrain.stage.startswith("model ") and "serving" in retrain.stage, retrain.stage
    source = serving_scores(cc, pool_size=pool_size(cc))
    assert len(source.scores) == pool_size(cc) and not scores_fall_short(cc)
    scores = load_scores(source.version.scores_path, source.version.digests["scores"])
    assert np.isfinite(scores[-40:]).all()
    queued = {entry.item_id for entry in QueueEntry.select().where(QueueEntry.dataset == cc)}
    assert pushed <= queued


# pulling labels


def test_labels_pull_by_cursor_returns_every_decision_once_in_order(client, cc, analyst, admin, run_jobs):
    jobs.request(cc, jobs.REFILL, "test")
    run_jobs(cc)
    bob = create_user("bob", PASSWORD, "analyst")
    ana_items = label_through_screen(cc, analyst, ["genuine", "fraud", "genuine", "fraud"])
    assert decisions.undo(cc, analyst)[0].kind == "undone"  # ana's answer on the fourth item is taken back
    Label.create(item=ana_items[2], value="genuine", annotator=bob, source="human")  # agreement
    Label.create(item=ana_items[1], value="genuine", annotator=bob, source="human")  # a disagreement,
    Standing.refresh(ana_items[1:3])  # what the labeling code does in the transaction of each write
    assert review.adjudicate(cc, admin, ana_items[1], "fraud")[0] is not None  # settled by a reviewer
    token = token_for(analyst, "read")
    expected = [label.id for label in Label.select().join(Item).where(
        (Item.dataset == cc) & Label.source.in_(("human", "review"))).order_by(Label.id)]
    assert len(expected) == 8
    seen, cursor, pages = [], 0, 0
    while True:
        page = client.get(f"/api/v1/datasets/cc/labels?after={cursor}&limit=2", headers=bearer(token)).get_json()
        seen += [entry["cursor"] for entry in page["labels"]]
        pages += 1
        assert page["next"] == (page["labels"][-1]["cursor"] if page["labels"] else cursor)
        cursor = page["next"]
        if not page["more"]:
            break
    assert seen == expected and pages == -(-len(expected) // 2)
    everything = client.get("/api/v1/datasets/cc/labels", headers=bearer(token)).get_json()
    by_cursor = {entry["cursor"]: entry for entry in everything["labels"]}
    first = by_cursor[expected[0]]
    external = Item.get_by_id(ana_items[0]).external_id
    assert (first["item"], first["annotator"], first["label"], first["source"]) == (external, "ana", "genuine",
                                                                                    "human")
    assert first["now"]["label"] == "genuine" and first["now"]["standing"] == "single"
    now = {entry["item"]: entry["now"] for entry in everything["labels"]}  # the newest entry per item
    items = [Item.get_by_id(item_id).external_id for item_id in ana_items]
    assert [(now[item]["label"], now[item]["standing"], now[item]["answers"]) for item in items] == [
        ("genuine", "single", 1), ("fraud", "adjudicated", 3), ("genuine", "agreed", 2), (None, None, 0)]
    undo = everything["labels"][4]
    assert (undo["item"], undo["undoes"], undo["label"]) == (items[3], expected[3], None)
    assert by_cursor[expected[3]]["retracted"] and not first["retracted"]
    assert set(first) >= {"annotator", "at", "label", "source", "retracted", "card_run", "reason", "note",
                          "suggested", "suggested_probability", "suggestion_shown", "accepted", "strategy",
                          "seconds_on_screen", "model_version", "item", "undoes", "now"}
    # nothing new after the last cursor; a new decision comes after it
    assert client.get(f"/api/v1/datasets/cc/labels?after={cursor}", headers=bearer(token)).get_json()["labels"] == []
    newer = label_through_screen(cc, analyst, ["fraud"])[0]
    latest = client.get(f"/api/v1/datasets/cc/labels?after={cursor}", headers=bearer(token)).get_json()
    assert [entry["item"] for entry in latest["labels"]] == [Item.get_by_id(newer).external_id]


def test_one_item_with_its_values_standing_label_and_history(client, cc, frame, analyst, run_jobs):
    jobs.request(cc, jobs.REFILL, "test")
    run_jobs(cc)
    item_id = label_through_screen(cc, analyst, ["fraud"])[0]
    item = Item.get_by_id(item_id)
    Label.create(item=item, value="genuine", source="pseudo")
    reply = client.get(f"/api/v1/datasets/cc/items/{item.external_id}", headers=bearer(token_for(analyst, "read")))
    body = reply.get_json()
    row = frame[frame[ID] == item.external_id].iloc[0]
    assert body["id"] == item.external_id and set(body["values"]) == set(cc.columns)
    assert body["values"]["V1"] == row["V1"] and isinstance(body["values"]["Amount"], (int, float))
    assert (body["now"]["label"], body["now"]["standing"], body["now"]["decided_by"]) == ("fraud", "single", "ana")
    assert [(d["label"], d["source"], d["retracted"]) for d in body["decisions"]] == [
        ("fraud", "human", False), ("genuine", "pseudo", False)]
    assert "Class" not in body["values"] and "ground" not in json.dumps(body)


def test_stats_and_jobs(client, cc, analyst, admin):
    figures = client.get("/api/v1/datasets/cc/stats", headers=bearer(token_for(analyst, "read"))).get_json()
    assert figures["rows"] == pool_size(cc) and figures["labels"] == ["genuine", "fraud"]
    assert "ground_truth" not in figures
    assert "ground_truth" in client.get("/api/v1/datasets/cc/stats",
                                        headers=bearer(token_for(admin, "admin"))).get_json()
    job, _ = jobs.request(cc, jobs.REFILL, "test")
    reply = client.get(f"/api/v1/jobs/{job.id}", headers=bearer(token_for(analyst, "read"))).get_json()
    assert {key: reply[key] for key in ("id", "kind", "dataset", "state", "stage", "percent", "error")} == {
        "id": job.id, "kind": "refill", "dataset": "cc", "state": "queued", "stage": "queued", "percent": 0.0,
        "error": None}


# the OpenAPI document


def test_the_openapi_document_names_every_route_and_nothing_else(app, client):
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200 and document.get_json()["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, operations in document.get_json()["paths"].items()
                 for method in operations}
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(api.PREFIX + "/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len(api.PREFIX):])
            routes |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes and described == routes
    for path, operations in document.get_json()["paths"].items():
        for method, operation in operations.items():
            parameters = {parameter["name"] for parameter in operation.get("parameters", [])
                          if parameter["in"] == "path"}
            assert parameters == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path
            assert operation["responses"]
