"""The reviewer role, the standing-label rule, the review queue and screen, the export of every answer."""
import json

import pytest

from labeler.data import audit, exporter
from labeler.data.datasets import label_counts
from labeler.data.users import create_user
from labeler.labeling import review
from labeler.store.db import (ROLE_CHECK, AuditEntry, Item, Label, ReviewRequest, SchemaVersion, User, database,
                              open_database)
from labeler.store.migrations import upgrade
from labeler.store.pool import human_labels, load_pool
from labeler.store.settings import update_labeling_settings
from tests.conftest import PASSWORD, csrf_token_of, label_through_screen, login


def test_migration_11_widens_an_old_stores_role_check_and_keeps_every_reference(tmp_path):
    open_database(str(tmp_path / "old.db"))
    with database.connection_context():
        upgrade()
        ana = create_user("ana", PASSWORD, "analyst")
        # the store as schema 10 wrote it: the role CHECK without 'reviewer'
        database.execute_sql("PRAGMA foreign_keys = OFF")
        table_sql = database.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'user'").fetchone()[0]
        old_sql = table_sql.replace(ROLE_CHECK, "CHECK (role IN ('admin', 'analyst'))")
        assert old_sql != table_sql
        database.execute_sql(old_sql.replace('"user"', '"user_old"', 1))
        database.execute_sql('INSERT INTO "user_old" SELECT * FROM "user"')
        database.execute_sql('DROP TABLE "user"')
        database.execute_sql('ALTER TABLE "user_old" RENAME TO "user"')
        database.execute_sql('CREATE UNIQUE INDEX "user_name" ON "user" ("name")')
        database.execute_sql("PRAGMA foreign_keys = ON")
        SchemaVersion.delete().where(SchemaVersion.version >= 11).execute()
        assert upgrade() == [11, 12, 13, 14, 15, 16, 17, 18, 19]
        reviewer = create_user("rita", PASSWORD, "reviewer")
        assert User.get_by_id(ana.id).name == "ana" and reviewer.can_review
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        indexes = {row[1] for row in database.execute_sql("PRAGMA index_list('user')")}
        assert "user_name" in indexes
        assert upgrade() == []


# --- the standing-label rule and the review queue, on two analysts who disagree on 3 of 12 items ----------------



@pytest.fixture
def reviewer(app):
    return create_user("rita", PASSWORD, "reviewer")


def disputed_items(double_labeled):
    ana, bob = double_labeled["ana"], double_labeled["bob"]
    return sorted(item for item in ana if ana[item] != bob[item])


def test_a_disputed_item_has_no_standing_label_and_is_not_trained_on(dataset, double_labeled):
    ana, disputed = double_labeled["ana"], disputed_items(double_labeled)
    standing = {label.item_id: label.value for label in Label.effective(dataset)}
    assert set(standing) == set(ana) - set(disputed)  # never silently the latest (bob's) answer
    assert all(standing[item] == ana[item] for item in standing)
    ids, _ = load_pool(dataset)
    positions, _ = human_labels(dataset, ids)
    assert not set(ids[positions]) & set(disputed)
    assert sum(label_counts(dataset).values()) == 9
    assert [item for item, why in review.waiting(dataset)] == disputed
    assert review.waiting_count(dataset) == 3


def test_the_reviewers_decision_stands_is_audited_and_cannot_be_taken_twice(dataset, double_labeled, reviewer, admin):
    disputed = disputed_items(double_labeled)
    label, refused = review.adjudicate(dataset, reviewer, disputed[0], "fraud", note="chargeback confirmed")
    assert refused is None and label.source == "review"
    standing = {row.item_id: row for row in Label.effective(dataset)}
    assert standing[disputed[0]].id == label.id
    assert review.waiting_count(dataset) == 2 and disputed[0] not in dict(review.waiting(dataset))
    [entry] = AuditEntry.select().where(AuditEntry.action == audit.ADJUDICATED)
    assert entry.user_id == reviewer.id and entry.details["label"] == "fraud"
    assert sorted(answer["annotator"] for answer in entry.details["answers"]) == ["ana", "bob"]
    again, refused = review.adjudicate(dataset, admin, disputed[0], "genuine")
    assert again is None and "settled as fraud by rita already" in refused
    assert Label.select().where(Label.source == "review").count() == 1

    assert review.undo(dataset, reviewer) == disputed[0]
    assert disputed[0] in dict(review.waiting(dataset))
    assert disputed[0] not in {row.item_id for row in Label.effective(dataset)}


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_only_reviewers_review_and_bad_decisions_change_nothing(dataset, double_labeled, analyst):
    disputed = disputed_items(double_labeled)
    with pytest.raises(review.ReviewError, match="may not review"):
        review.adjudicate(dataset, analyst, disputed[0], "fraud")
    reviewer = create_user("rita", PASSWORD, "reviewer")
    with pytest.raises(review.ReviewError, match="'maybe' is not a label"):
        review.adjudicate(dataset, reviewer, disputed[0], "maybe")
    with pytest.raises(review.ReviewError, match="has no item"):
        review.adjudicate(dataset, reviewer, 10 ** 9, "fraud")
    assert Label.select().where(Label.source == "review").count() == 0
    assert AuditEntry.select().count() == 0


def test_a_share_of_fraud_labels_is_sampled_for_review_and_still_stands(queued, analyst, reviewer):
    dataset = queued
    update_labeling_settings(dataset, {"review_share": 1.0})
    items = label_through_screen(dataset, analyst, ["genuine", "fraud"])
    assert [(item, why) for item, why in review.waiting(dataset)] == [(items[1], review.SAMPLED)]
    assert ReviewRequest.get(ReviewRequest.item == items[1]).label.value == "fraud"
    assert {label.item_id for label in Label.effective(dataset)} == set(items)  # the agreeing answer stands
    review.adjudicate(dataset, reviewer, items[1], "genuine")
    assert review.waiting(dataset) == []
    assert {label.item_id: label.value for label in Label.effective(dataset)}[items[1]] == "genuine"


def test_export_shows_every_answer_the_standing_label_and_how_it_was_reached(dataset, double_labeled, reviewer,
                                                                             tmp_path):
    disputed = disputed_items(double_labeled)
    review.adjudicate(dataset, reviewer, disputed[0], "fraud")
    out = tmp_path / "labels.jsonl"
    assert exporter.export(dataset, str(out), "jsonl") == 12
    external = dict(Item.select(Item.id, Item.external_id).tuples())
    records = {record["id"]: record for record in map(json.loads, out.read_text().splitlines())}
    settled = records[external[disputed[0]]]
    assert (settled["label"], settled["standing"], settled["decided_by"], settled["answers"]) == (
        "fraud", "adjudicated", "rita", 3)
    assert sorted((d["annotator"], d["source"]) for d in settled["decisions"]) == [
        ("ana", "human"), ("bob", "human"), ("rita", "review")]
    for item in disputed[1:]:
        record = records[external[item]]
        assert (record["label"], record["standing"], record["decided_by"]) == (None, "disputed", "ana;bob")
        assert sorted(d["label"] for d in record["decisions"]) == ["fraud", "genuine"]
    agreed = next(r for i, r in ((i, records[external[i]]) for i in double_labeled["ana"]) if i not in disputed)
    assert (agreed["standing"], agreed["decided_by"], agreed["answers"]) == ("agreed", "ana;bob", 2)
    [entry] = AuditEntry.select().where(AuditEntry.action == audit.EXPORTED)
    assert entry.user_id is None and entry.details["items"] == 12


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_review_screen_shows_every_answer_and_records_the_decision(client, dataset, double_labeled, reviewer):
    disputed = disputed_items(double_labeled)
    login(client, "ana")
    assert client.get("/datasets/cc/review").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token_of(client.get("/").get_data(as_text=True))})
    login(client, "rita")
    first = client.get("/datasets/cc/review")
    assert first.status_code == 302 and first.headers["Location"].endswith(f"/datasets/cc/review/{disputed[0]}")
    page = client.get(first.headers["Location"]).get_data(as_text=True)
    assert 'data-answer="ana"' in page and 'data-answer="bob"' in page and review.DISPUTED in page
    token = csrf_token_of(page)
    assert client.post(f"/datasets/cc/review/{disputed[0]}", data={"decision": "label:fraud"}).status_code == 400
    bad = client.post(f"/datasets/cc/review/{disputed[0]}", data={"decision": "label:maybe", "csrf_token": token})
    assert bad.status_code == 400 and "&#39;maybe&#39; is not a label" in bad.get_data(as_text=True)
    done = client.post(f"/datasets/cc/review/{disputed[0]}",
                       data={"decision": "label:fraud", "note": "<b>confirmed</b>", "csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/review/{disputed[1]}")
    assert Label.get(Label.source == "review").note == "<b>confirmed</b>"
    settled = client.get(f"/datasets/cc/review/{disputed[0]}").get_data(as_text=True)
    assert "data-settled" in settled and "&lt;b&gt;confirmed&lt;/b&gt;" in settled



@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_agreement_page_links_each_disagreement_to_its_review(client, dataset, double_labeled, reviewer, admin):
    disputed = disputed_items(double_labeled)
    review.adjudicate(dataset, reviewer, disputed[0], "genuine")
    login(client, "root")
    page = client.get("/admin/datasets/cc/agreement").get_data(as_text=True)
    for item in disputed:
        assert f'href="/datasets/cc/review/{item}"' in page
    assert page.count("waiting for review") == 2 and "settled as <b>genuine</b> by rita" in page
    assert "Review (2 waiting)" in client.get("/datasets/cc").get_data(as_text=True)
    for item in disputed:
        row = Item.get_by_id(item)
        html = client.get(f"/datasets/cc?after={row.row_number - 1},0").get_data(as_text=True)  # its row first
        row = html.split(f">{row.external_id}</a></td>")[1].split("</tr>")[0]
        assert (">disputed</span>" in row) == (item != disputed[0]) and ("genuine" in row) == (item == disputed[0])
