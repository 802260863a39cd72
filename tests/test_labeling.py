"""The labeling screen: every key's effect on the store, leases between analysts, undo, skip, edits, stale forms,
CSRF and escaping, on a real SQLite file with the real credit-card sample."""
import datetime
import logging
import multiprocessing
import re
import threading

import numpy as np
import pytest
from peewee import IntegrityError, fn
from playhouse.migrate import SqliteMigrator, migrate

from labeler.config import Config
from labeler.data.datasets import label_counts
from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.labeling import decisions, leases
from labeler.labeling.similar import LabeledIndex, similar_labeled
from labeler.store.artifacts import feature_stats
from labeler.store.db import (
    Dataset,
    FeatureStats,
    Item,
    Job,
    Label,
    Lease,
    ModelVersion,
    QueueEntry,
    SchemaVersion,
    StandingCount,
    database,
    in_write_transaction,
    open_database,
    utcnow,
)
from labeler.store import db as db_module
from labeler.store.migrations import MIGRATIONS, upgrade
from labeler.store.pool import load_pool
from labeler.store.settings import DEFAULTS, SettingsError, labeling_settings, update_labeling_settings
from labeler.web import screen as screen_view
from labeler.worker import jobs
from models.names import STRATEGY_WHY, WIDEN_AFTER
from tests.conftest import PASSWORD, csrf_token_of, login

HX = {"HX-Request": "true"}


def item_on_screen(html):
    found = re.search(r'data-item-id="(\d+)"', html)
    return int(found[1]) if found else None


def outcome_of(html):
    found = re.search(r'data-outcome="(\w+)"', html)
    return found[1] if found else None


class Screen:
    """One analyst's browser: a logged-in test client, the CSRF token and the item on screen."""

    def __init__(self, app, name):
        self.client = app.test_client()
        login(self.client, name)
        page = self.client.get("/datasets/cc/label")
        assert page.status_code == 200
        self.html = page.get_data(as_text=True)
        self.token = csrf_token_of(self.html)
        self.item = item_on_screen(self.html)

    def post(self, path, **form):
        response = self.client.post(path, data={"csrf_token": self.token, **form}, headers=HX)
        self.html = response.get_data(as_text=True)
        self.item = item_on_screen(self.html)
        return response

    def decide(self, decision, item=None, **form):
        return self.post(f"/datasets/cc/label/{item or self.item}", decision=decision, **form)

    def skip(self, item=None):
        return self.post(f"/datasets/cc/label/{item or self.item}/skip")

    def undo(self):
        return self.post("/datasets/cc/label/undo")


def human_labels(**where):
    query = Label.select().where((Label.source == "human") & (Label.kind == "label"))
    for field, value in where.items():
        query = query.where(getattr(Label, field) == value)
    return list(query.order_by(Label.id))


@pytest.fixture
def ana(app, queued, analyst):
    return Screen(app, "ana")


@pytest.fixture
def bob_user(app):
    return create_user("bob", PASSWORD, "analyst")


def set_settings(dataset, **changes):
    update_labeling_settings(dataset, changes)


def prepare_queue(dataset, run_jobs):
    """What the worker does after an import: a refill job writes the queue and the feature statistics."""
    job, created = jobs.request(dataset, jobs.REFILL, "test")
    assert created and run_jobs(dataset) == {job.id: "done"}


def refill_finished_long_ago(dataset):
    """Move the end of the dataset's last refill out of the cooldown (the clock is not waited on)."""
    long_ago = utcnow() - datetime.timedelta(seconds=leases.REFILL_COOLDOWN_SECONDS + 60)
    last = jobs.latest(dataset, jobs.REFILL)
    Job.update(finished_at=long_ago).where(Job.id == last.id).execute()


# ---------------------------------------------------------------------------------------------------------------
# The screen


def test_screen_shows_item_features_suggestion_and_keys(ana, dataset):
    html = ana.html
    lease = Lease.get(Lease.item == ana.item)
    item = Item.get_by_id(ana.item)
    assert QueueEntry.select().where(QueueEntry.dataset == dataset).count() > 0  # filled before labeling
    assert lease.user.name == "ana" and lease.state == "active"
    assert f"<dd>{item.external_id}</dd>" in html
    values = dict(zip(dataset.columns, item.display_values(dataset)))
    assert f"<dt>Amount</dt><dd>{float(values['Amount']):,.2f}</dd>" in html  # readable: two decimals
    assert f"<dt>Time</dt><dd>{values['Time']}</dd>" in html
    assert html.count('<g class="bar') == len(dataset.feature_columns)
    assert "★" in html  # the most unusual features are marked
    assert "Suggested <strong" in html and lease.suggested in html and lease.strategy in html
    for key in ("a", "x", "1", "2", "space", "?"):
        assert f'data-key="{key}"' in html
    assert 'data-key="backspace z"' not in html  # nothing to undo yet
    assert "no model yet — cold start" in html and "retrain:" in html and "idle" in html


def test_the_screen_says_why_the_strategy_picked_the_item(ana):
    lease = Lease.get(Lease.item == ana.item)
    assert f"picked as <b>{lease.strategy}</b>: {STRATEGY_WHY[lease.strategy]}" in ana.html


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_status_line_says_when_no_fraud_came_and_the_search_widens(ana, dataset, run_jobs):
    for _ in range(WIDEN_AFTER - 1):
        ana.decide("label:genuine")
    assert screen_view.dataset_status(dataset)["search"] is None
    ana.decide("label:genuine")
    line = (f"no item labeled fraud among the first {WIDEN_AFTER} labels: the search widens beyond the anomaly score"
            " (picks marked “wider search”)")
    status = ana.client.get("/datasets/cc/label/status").get_data(as_text=True)
    assert line in status and 'Know one already? Find it in <a href="/datasets/cc">the table</a>' in status
    jobs.request(dataset, jobs.REFILL, "test")  # the worker's next refill widens the cold start's search
    assert set(run_jobs(dataset).values()) == {"done"}  # (so do the cold start's retrains, at 10 and 20 labels)
    strategies = {entry.strategy for entry in QueueEntry.select().where(QueueEntry.dataset == dataset)}
    assert strategies == {"wider search", "exploration"}
    ana.decide("label:fraud", reason="card testing")
    assert screen_view.dataset_status(Dataset.get_by_id(dataset.id))["search"] is None


def test_label_page_needs_login_and_a_known_dataset(client, dataset, analyst):
    assert client.get("/datasets/cc/label").status_code == 302
    login(client, "ana")
    assert client.get("/datasets/nope/label").status_code == 404


def test_accept_records_the_suggestion_and_returns_the_next_item_in_one_reply(ana, dataset):
    first = ana.item
    lease = Lease.get(Lease.item == first)
    response = ana.decide("accept")
    assert response.status_code == 200
    assert outcome_of(ana.html) == "recorded"
    [label] = human_labels()
    assert (label.item_id, label.value, label.accepted, label.annotator.name) == (first, lease.suggested, True, "ana")
    assert label.suggested == lease.suggested and label.suggested_probability == pytest.approx(lease.probability)
    assert label.suggestion_shown is True and label.seconds_on_screen >= 0
    assert Lease.get_or_none(Lease.item == first) is None
    assert ana.item is not None and ana.item != first
    assert Lease.get(Lease.item == ana.item).user.name == "ana"
    assert 'id="session-stats" class="stats" hx-swap-oob="true"' in ana.html
    assert "<b>1</b> labels this session" in ana.html
    assert 'data-key="backspace z"' in ana.html  # the side list offers undo now


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_reject_with_two_labels_records_the_other_label(ana, dataset):
    suggested = Lease.get(Lease.item == ana.item).suggested
    first = ana.item
    ana.decide("reject")
    [label] = human_labels()
    other = next(v for v in dataset.labels if v != suggested)
    assert (label.item_id, label.value, label.accepted) == (first, other, False)


def test_digit_keys_label_directly_and_fraud_takes_a_reason_code(ana, dataset):
    first = ana.item
    ana.decide("label:fraud", reason="card testing", note="three small charges")
    second = ana.item
    ana.decide("label:genuine")
    labels = human_labels()
    assert [(l.item_id, l.value, l.reason, l.note) for l in labels] == [
        (first, "fraud", "card testing", "three small charges"), (second, "genuine", None, None)]


def test_bad_input_is_refused_with_one_line_and_the_store_unchanged(ana, dataset):
    current = ana.item
    for form, message in (
        ({"decision": "label:genuine", "reason": "card testing"}, "reason: a reason code goes with"),
        ({"decision": "label:fraud", "reason": "aliens"}, "reason: &#39;aliens&#39; is not one of"),
        ({"decision": "label:maybe"}, "decision: &#39;maybe&#39; is not a label"),
        ({"decision": "launch"}, "decision: &#39;launch&#39; is not one of"),
        ({"decision": "accept", "note": "x" * 2001}, "note: at most 2000 characters"),
    ):
        response = ana.decide(form.pop("decision"), item=current, **form)
        assert response.status_code == 400
        assert message in ana.html
        assert ana.item == current  # the same item stays on screen
    assert human_labels() == []
    assert ana.decide("accept", item=999999).status_code == 400 and "has no item 999999" in ana.html


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_skip_holds_the_item_back_and_it_comes_back_later(app, ana, dataset, bob_user):
    skipped = ana.item
    response = ana.skip()
    assert response.status_code == 200 and outcome_of(ana.html) == "skipped"
    assert ana.item not in (None, skipped)
    lease = Lease.get(Lease.item == skipped)
    assert lease.state == "deferred" and lease.expires_at > utcnow()
    assert human_labels() == []
    bob = Screen(app, "bob")
    assert bob.item != skipped
    # once the skip time is over, the item is offered again (it is near the front of the queue)
    Lease.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(Lease.id == lease.id).execute()
    offered = []
    for _ in range(3):
        offered.append(bob.item)
        bob.decide("label:genuine")
    assert skipped in offered + [bob.item]


def test_a_skipped_item_comes_back_when_nothing_else_is_free(app, queued, analyst):
    dataset = queued
    kept = QueueEntry.select().where(QueueEntry.dataset == dataset).order_by(QueueEntry.priority).limit(2)
    keep = [e.id for e in kept]
    QueueEntry.delete().where(QueueEntry.id.not_in(keep)).execute()
    set_settings(dataset, refill_below=0)
    screen = Screen(app, "ana")
    first = screen.item
    screen.skip()
    second = screen.item
    assert second not in (None, first)
    screen.skip()
    assert screen.item == first  # nothing else free: the item skipped longest ago returns early


def test_undo_retracts_the_last_label_and_puts_the_item_back_in_front(ana, dataset):
    first = ana.item
    ana.decide("label:genuine")
    second = ana.item
    ana.decide("label:fraud")
    third = ana.item
    response = ana.undo()
    assert response.status_code == 200 and outcome_of(ana.html) == "undone"
    assert ana.item == second
    undo_row = Label.get(Label.kind == "undo")
    assert undo_row.retracts.item_id == second and undo_row.annotator.name == "ana"
    assert {l.item_id: l.value for l in Label.effective(dataset)} == {first: "genuine"}
    ana.decide("label:genuine")
    assert ana.item == third  # the item that was on screen before the undo
    assert {l.item_id: l.value for l in Label.effective(dataset)} == {first: "genuine", second: "genuine"}
    assert Label.select().count() == 4  # nothing deleted: three labels and one undo


def test_undo_twice_walks_back_and_with_nothing_left_says_so(ana, dataset):
    first = ana.item
    ana.decide("label:genuine")
    ana.undo()
    assert ana.item == first
    ana.undo()
    assert outcome_of(ana.html) == "nothing" and "Nothing to undo." in ana.html
    assert ana.item == first
    assert list(Label.effective(dataset)) == []


def test_recent_decisions_list_the_last_ten_and_edit_supersedes(ana, dataset):
    labeled = []
    for _ in range(12):
        labeled.append(ana.item)
        ana.decide("label:genuine")
    listed = re.findall(r'<span class="id">([^<]+)</span>', ana.html)
    external = dict(Item.select(Item.id, Item.external_id).where(Item.id.in_(labeled)).tuples())
    assert listed == [external[i] for i in reversed(labeled)][:10]
    target = labeled[-3]
    on_screen = ana.item
    response = ana.post(f"/datasets/cc/label/{target}/edit", value="fraud")
    assert response.status_code == 200 and outcome_of(ana.html) == "edited"
    assert ana.item == on_screen
    standing = {l.item_id: l.value for l in Label.effective(dataset)}
    assert standing[target] == "fraud" and len(standing) == 12
    rows = list(Label.select().where(Label.item == target).order_by(Label.id))
    assert [(r.kind, r.value) for r in rows] == [("label", "genuine"), ("undo", None), ("label", "fraud")]
    assert rows[1].retracts_id == rows[0].id
    assert ana.post(f"/datasets/cc/label/{on_screen}/edit", value="fraud").status_code == 409


def test_without_htmx_a_decision_returns_the_whole_page(ana, dataset):
    first = ana.item
    response = ana.client.post(f"/datasets/cc/label/{first}", data={"csrf_token": ana.token, "decision": "accept"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.startswith("<!doctype html>")
    assert item_on_screen(html) not in (None, first) and 'hx-swap-oob' not in html
    assert [label.item_id for label in human_labels()] == [first]


def test_double_submit_records_once(ana, dataset):
    first = ana.item
    ana.decide("accept")
    response = ana.decide("accept", item=first)
    assert response.status_code == 409 and outcome_of(ana.html) == "duplicate"
    assert "nothing was recorded twice" in ana.html
    assert len(human_labels(item=first)) == 1
    assert ana.item is not None and ana.item != first


def test_csrf_is_required_and_a_refused_post_changes_nothing(ana, dataset):
    response = ana.client.post(f"/datasets/cc/label/{ana.item}", data={"decision": "accept"}, headers=HX)
    assert response.status_code == 400 and "form has expired" in response.get_data(as_text=True)
    response = ana.client.post("/datasets/cc/label/undo", data={}, headers=HX)
    assert response.status_code == 400
    assert human_labels() == [] and Label.select().count() == 0
    assert Lease.get(Lease.item == ana.item).state == "active"


def test_fields_holding_markup_are_escaped(app, tmp_path, analyst, run_jobs):
    path = tmp_path / "shop.csv"
    rows = ["merchant,Amount,V1,V2"] + [f"shop {n},{n}.5,{n % 7}.25,{n % 3}.5" for n in range(1, 20)]
    rows.insert(1, '"<script>alert(1)</script>",99999.5,40.0,-30.0')
    path.write_text("\n".join(rows) + "\n")
    dataset = import_file(str(path), "cc").dataset
    prepare_queue(dataset, run_jobs)
    set_settings(dataset, refill_below=0)
    screen = Screen(app, "ana")
    for _ in range(25):
        if "alert(1)" in screen.html:
            break
        screen.decide("label:genuine")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in screen.html
    assert "<script>alert" not in screen.html
    screen.decide("label:genuine", note="<script>alert(2)</script>")
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in screen.html  # the note, in the recent decisions
    assert "<script>alert" not in screen.html


def test_feature_bars_are_z_scores_against_the_whole_pool(ana, dataset):
    _, features = load_pool(dataset)
    mean, std = features.mean(axis=0, dtype=np.float64), features.std(axis=0, dtype=np.float64)
    item = Item.get_by_id(ana.item)
    stored_mean, stored_std, rows = feature_stats(dataset)  # written by the refill job, read by the screen
    bars = screen_view.feature_bars(item.feature_vector, (stored_mean, stored_std), dataset.feature_columns)
    z = (item.feature_vector - mean) / std
    assert [b["z"] for b in bars] == pytest.approx(z.tolist(), rel=1e-5)
    top = set(np.argsort(-np.abs(z))[:3].tolist())
    assert {i for i, b in enumerate(bars) if b["marked"]} == {i for i in top if abs(z[i]) >= 2}
    assert rows == len(features) == FeatureStats.get(FeatureStats.dataset == dataset).rows
    assert "feature_stats" not in Dataset.get_by_id(dataset.id).settings  # statistics live apart, not in settings


def _dataset_writes(records):
    """The SQL statements among peewee's logged queries that write the dataset table."""
    statements = [record.msg[0] for record in records if isinstance(record.msg, tuple) and record.msg]
    return [sql for sql in statements if re.match(r'\s*(UPDATE|INSERT INTO|DELETE FROM)\s+"dataset"', sql)]


def test_the_screen_reads_the_pool_statistics_again_once_they_may_have_changed(queued):
    screen_view._statistics.clear()
    mean, std = screen_view.pool_statistics(queued, now=100.0)
    FeatureStats.update(mean=[value + 1 for value in mean]).execute()  # the worker stored new ones
    assert list(screen_view.pool_statistics(queued, now=100.0 + screen_view.STATS_CHECK_SECONDS)[0]) == list(mean)
    newer = screen_view.pool_statistics(queued, now=100.1 + screen_view.STATS_CHECK_SECONDS)[0]
    assert list(newer) == [value + 1 for value in mean]
    FeatureStats.delete().execute()
    assert screen_view.pool_statistics(queued, now=200.0) is None
    assert screen_view.pool_statistics(queued, now=200.0) is None  # still none: absence is not cached


def test_the_labeling_screen_never_writes_the_dataset_settings(client, queued, analyst, caplog):
    dataset_row = lambda: Dataset.select().where(Dataset.id == queued.id).tuples().get()  # noqa: E731
    before = dataset_row()
    login(client, "ana")
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        html = client.get("/datasets/cc/label").get_data(as_text=True)
        assert item_on_screen(html) is not None and html.count('<g class="bar') == len(queued.feature_columns)
        FeatureStats.delete().execute()  # statistics not (yet) stored: the screen shows no bars, computes none
        screen_view._statistics.clear()  # as in a fresh process (a running one reads them again every 10 s)
        partial = client.get("/datasets/cc/label", headers=HX).get_data(as_text=True)
        assert item_on_screen(partial) == item_on_screen(html)
        assert '<g class="bar' not in partial and "Feature bars appear once the worker" in partial
        client.get("/datasets/cc/label/status", headers=HX)
    assert any(isinstance(record.msg, tuple) for record in caplog.records)  # the query log was captured
    assert _dataset_writes(caplog.records) == []
    assert dataset_row() == before
    assert FeatureStats.select().count() == 0 and feature_stats(queued) is None


def test_similar_labeled_are_the_nearest_labeled_items_and_follow_undo(ana, dataset):
    labeled = []
    for _ in range(8):
        labeled.append(ana.item)
        ana.decide("label:genuine")
    ids, features = load_pool(dataset)
    mean, std = features.mean(axis=0, dtype=np.float64), features.std(axis=0, dtype=np.float64)
    standardized = dict(zip(ids.tolist(), (features - mean) / std))
    current = Item.get_by_id(ana.item)

    def expected(candidates):
        return sorted(candidates, key=lambda i: np.sqrt(((standardized[i] - standardized[current.id]) ** 2).mean()))

    stats = feature_stats(dataset)[:2]
    found = similar_labeled(dataset, current.id, current.feature_vector, stats, k=5)
    assert [f["item_id"] for f in found] == expected(labeled)[:5]
    external = dict(Item.select(Item.id, Item.external_id).tuples())
    assert [f["external_id"] for f in found] == [external[i] for i in expected(labeled)[:5]]
    for row in found:
        assert f'<tr><td><a href="/datasets/cc/items/{row["external_id"]}">{row["external_id"]}</a></td>' in ana.html
    ana.undo()
    found = similar_labeled(dataset, current.id, current.feature_vector, stats, k=10)
    assert [f["item_id"] for f in found] == expected(labeled[:-1])
    found = similar_labeled(dataset, labeled[0], Item.get_by_id(labeled[0]).feature_vector, stats)
    assert labeled[0] not in [f["item_id"] for f in found]  # never the item itself


def test_the_nearest_labeled_items_match_a_plain_search_with_near_duplicates_and_masked_rows():
    """The matrix-vector shortcut of LabeledIndex.nearest ranks and measures as subtracting the vector from every
    row would, near-duplicates of the query (where the shortcut's sum cancels) and undone rows included."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(3000, 29)).astype(np.float32) * 5
    query = vectors[17].astype(np.float64)
    vectors[100:140] = vectors[17] + rng.normal(scale=1e-4, size=(40, 29)).astype(np.float32)
    index = LabeledIndex(1, 29)
    index.ids, index.matrix, index.size = np.arange(1, 3001), vectors, 3000
    index.squares = (vectors.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
    index.active = rng.random(3000) > 0.1
    index.external_ids = [f"T{n}" for n in range(1, 3001)]
    index.standing = {n: (n, "genuine") for n in range(1, 3001)}
    found = index.nearest(18, query, np.zeros(29), np.ones(29), 10)  # item 18 (row 17) itself is left out
    plain = np.sqrt(((vectors - query.astype(np.float32)) ** 2).mean(axis=1))
    plain[~index.active | (index.ids == 18)] = np.inf
    best = np.argsort(plain, kind="stable")[:10]
    assert [row["item_id"] for row in found] == (best + 1).tolist()
    assert np.allclose([row["distance"] for row in found], plain[best], rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Several analysts


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_two_analysts_never_hold_the_same_item(app, ana, dataset, bob_user):
    bob = Screen(app, "bob")
    seen_ana, seen_bob = [ana.item], [bob.item]
    for step in range(15):
        ana.decide("accept")
        bob.decide("reject" if step % 3 else "accept")
        seen_ana.append(ana.item)
        seen_bob.append(bob.item)
    assert not set(seen_ana) & set(seen_bob)
    per_item = {}
    for label in human_labels():
        per_item[label.item_id] = per_item.get(label.item_id, 0) + 1
    assert len(per_item) == 30 and set(per_item.values()) == {1}


def test_an_expired_lease_goes_to_another_analyst_and_the_old_form_is_refused(app, ana, dataset, bob_user):
    held = ana.item
    Lease.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(Lease.item == held).execute()
    bob = Screen(app, "bob")
    assert bob.item == held
    response = ana.decide("accept", item=held)
    assert response.status_code == 409 and outcome_of(ana.html) == "stale"
    assert "went to another analyst after your lease ran out" in ana.html
    assert ana.item not in (None, held)  # and ana gets a next item at once
    bob.decide("label:genuine")
    assert [(l.item_id, l.annotator.name) for l in human_labels()] == [(held, "bob")]
    ana.decide("accept", item=held)
    assert outcome_of(ana.html) == "stale" and "labeled by another analyst" in ana.html
    assert len(human_labels()) == 1


def test_a_decision_on_an_item_never_leased_says_it_was_never_assigned(app, ana, dataset, bob_user):
    leased = {lease.item_id for lease in Lease.select()}
    never = Item.select(Item.id).where((Item.dataset == dataset) & Item.id.not_in(leased)).first().id
    for post in (lambda: ana.decide("accept", item=never), lambda: ana.skip(item=never)):
        response = post()
        assert response.status_code == 409 and outcome_of(ana.html) == "stale"
        assert "was never assigned to you" in ana.html and "lease ran out" not in ana.html
    bob = Screen(app, "bob")  # on bob's screen, never on ana's: the store cannot tell it from a lost lease
    ana.decide("accept", item=bob.item)
    assert "or was never assigned to you" in ana.html
    assert human_labels() == []


@pytest.mark.parametrize("item", [2 ** 63, 2 ** 64, 10 ** 30])
@pytest.mark.slow  # seconds of work: the full tier runs it
def test_item_ids_beyond_64_bits_are_not_found(ana, dataset, item):
    for path in (f"/datasets/cc/label/{item}", f"/datasets/cc/label/{item}/skip", f"/datasets/cc/label/{item}/edit"):
        response = ana.client.post(path, data={"csrf_token": ana.token, "decision": "accept", "value": "fraud"},
                                   headers=HX)
        assert response.status_code == 404, path
        assert "Not found." in response.get_data(as_text=True)
    largest = 2 ** 63 - 1  # still an id the store can hold: refused as an unknown item, not by the router
    assert ana.decide("accept", item=largest).status_code == 400 and f"has no item {largest}" in ana.html
    assert human_labels() == []


def _label_in_thread(user_name, count, results, errors, start):
    from labeler.store.db import Dataset, User

    try:
        with database.connection_context():
            user = User.get(User.name == user_name)
            dataset = Dataset.get(Dataset.name == "cc")
            done = []
            start.wait(timeout=120)  # all workers begin together, so that their requests really overlap
            lease = leases.next_item(dataset, user)
            while len(done) < count and lease is not None:
                outcome, following = decisions.decide(dataset, user, lease.item_id, "accept")
                assert outcome.kind == "recorded", outcome.message
                done.append(lease.item_id)
                lease = following
            results[user_name] = done
    except Exception as error:  # reported to the test thread
        errors.append(repr(error))


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_concurrent_threads_lease_distinct_items(app, queued):
    names = [f"t{n}" for n in range(4)]
    for name in names:
        create_user(name, PASSWORD)
    results, errors = {}, []
    start = threading.Barrier(len(names))
    threads = [threading.Thread(target=_label_in_thread, args=(name, 15, results, errors, start)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = [item for done in results.values() for item in done]
    assert len(everything) == 60 and len(set(everything)) == 60
    assert len(human_labels()) == 60


def _label_in_process(settings, user_name, count, queue, start):
    """A process of its own, as a web process is: the store and the task queue (a decision may queue a retrain)."""
    open_database(settings["DATABASE"])
    jobs.task_queue.open(Config.load(settings))
    results, errors = {}, []
    _label_in_thread(user_name, count, results, errors, start)
    queue.put((user_name, results.get(user_name), errors))


@pytest.mark.slow  # two spawned interpreters
def test_concurrent_processes_lease_distinct_items(app, queued):
    settings = {key: app.config[key] for key in ("DATABASE", "TASK_QUEUE", "MODEL_FOLDER", "SECRET_KEY")}
    names = ("p0", "p1")
    for name in names:
        create_user(name, PASSWORD)
    context = multiprocessing.get_context("spawn")
    queue, start = context.Queue(), context.Barrier(len(names))
    processes = [context.Process(target=_label_in_process, args=(settings, name, 20, queue, start)) for name in names]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [errors for _, _, errors in reports] == [[], []]
    everything = [item for _, done, _ in reports for item in done]
    assert len(everything) == 40 and len(set(everything)) == 40
    assert len(human_labels()) == 40


def test_the_database_refuses_a_second_lease_on_one_item(ana, dataset, bob_user):
    lease = Lease.get(Lease.item == ana.item)
    with pytest.raises(IntegrityError):
        with database.atomic():
            Lease.create(dataset=dataset, item=lease.item_id, user=bob_user, expires_at=utcnow(), strategy="test")


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_overlap_gives_a_labeled_item_to_a_second_analyst_blind(app, queued, analyst, bob_user):
    dataset = queued
    set_settings(dataset, overlap_share=1.0)
    create_user("cy", PASSWORD)
    ana = Screen(app, "ana")
    first = ana.item
    ana.decide("label:fraud", reason="other", note="ana thinks fraud")
    pending = Lease.get(Lease.item == first)
    assert (pending.state, pending.user.name, pending.second_look) == ("second", "ana", True)
    assert ana.item != first  # never to the first analyst again
    bob = Screen(app, "bob")
    assert bob.item == first
    assert "ana thinks fraud" not in bob.html and "second look" in bob.html
    bob.decide("label:genuine")
    assert Lease.get_or_none(Lease.item == first) is None
    looks = sorted((label.annotator.name, label.value) for label in human_labels(item=first))
    assert looks == [("ana", "fraud"), ("bob", "genuine")]
    cy = Screen(app, "cy")
    assert cy.item != first  # two looks are enough


def test_hidden_suggestion_records_that_it_was_hidden(app, queued, analyst):
    dataset = queued
    set_settings(dataset, hide_suggestion_share=1.0)
    screen = Screen(app, "ana")
    lease = Lease.get(Lease.item == screen.item)
    assert not lease.show_suggestion
    assert 'data-key="a"' not in screen.html and "Suggested <strong" not in screen.html
    assert lease.strategy not in screen.html.split('id="labeling"')[1]  # not even why it was picked
    assert screen.decide("accept").status_code == 400 and human_labels() == []
    screen.decide("label:genuine")
    [label] = human_labels()
    assert (label.suggestion_shown, label.accepted, label.suggested) == (False, None, lease.suggested)


# ---------------------------------------------------------------------------------------------------------------
# More than two labels


@pytest.fixture
def three_labels(app, small_csv, analyst, run_jobs):
    dataset = import_file(small_csv, "cc", labels=["genuine", "fraud", "unsure"]).dataset
    prepare_queue(dataset, run_jobs)
    probabilities = {"genuine": 0.2, "fraud": 0.5, "unsure": 0.3}
    QueueEntry.update(suggested="fraud", probability=0.5, probabilities=probabilities).execute()
    return dataset


def test_multi_class_reject_offers_the_alternatives_by_probability(app, three_labels):
    screen = Screen(app, "ana")
    alternatives = re.findall(r'value="reject:(\w+)"', screen.html)
    assert alternatives == ["unsure", "genuine"]
    assert 'data-opens="alternatives"' in screen.html
    first = screen.item
    assert screen.decide("reject").status_code == 400 and "choose which label" in screen.html
    screen.decide("reject:unsure", item=first)
    [label] = human_labels()
    assert (label.item_id, label.value, label.accepted, label.suggested) == (first, "unsure", False, "fraud")


def test_multi_class_reject_in_requeue_mode_brings_the_item_back_with_the_next_guess(app, three_labels):
    set_settings(three_labels, reject_mode="requeue", refill_below=0)
    screen = Screen(app, "ana")
    first = screen.item
    screen.decide("reject")
    assert outcome_of(screen.html) == "deferred" and human_labels() == []
    lease = Lease.get(Lease.item == first)
    assert (lease.state, lease.rejected) == ("deferred", ["fraud"])
    Lease.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(Lease.id == lease.id).execute()
    screen.decide("label:genuine")  # the item on screen now; the deferred one is at the front of the queue next
    assert screen.item == first
    again = Lease.get(Lease.item == first)
    assert (again.suggested, again.probability, again.rejected) == ("unsure", 0.3, ["fraud"])
    screen.decide("accept")
    assert human_labels(item=first)[0].value == "unsure"


# ---------------------------------------------------------------------------------------------------------------
# Header, queue refills, schema


def test_status_partial_shows_model_quality_and_the_last_job(ana, dataset):
    response = ana.client.get("/datasets/cc/label/status", headers=HX)
    html = response.get_data(as_text=True)
    assert jobs.latest(dataset, jobs.REFILL).state == "done"  # a refill is brief: the status line leaves it out
    assert 'hx-trigger="every 5s"' in html and "no model yet — cold start" in html and "idle" in html
    ModelVersion.create(dataset=dataset, kind="mlp", metrics={"auprc": 0.8123}, labels_used=120, serving=True,
                        gate={"new_ap": 0.8123, "holdout": 30, "positives": 6, "interval": [0.6, 0.9], "level": 0.95})
    Job.create(dataset=dataset, kind=jobs.RETRAIN, state="running", stage="fitting", percent=40.0)
    html = ana.client.get("/datasets/cc/label/status", headers=HX).get_data(as_text=True)
    assert "holdout AP 0.81 (95% interval 0.60–0.90; 30 held-out labels, 6 fraud)" in html
    assert "120 labels" in html and "retrain running, fitting 40%" in html and "auprc" not in html
    ana.decide("label:fraud")
    html = ana.client.get("/datasets/cc/label/status", headers=HX).get_data(as_text=True)
    assert "<b>1</b> labeled in total" in html and "<b>1</b> fraud in total" in html


def _refill_jobs(dataset, state=None):
    query = Job.select().where((Job.dataset == dataset) & (Job.kind == jobs.REFILL))
    return list(query.where(Job.state == state) if state else query)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_an_empty_queue_shows_preparing_until_the_worker_has_filled_it(client, dataset, analyst, run_jobs):
    login(client, "ana")
    assert not leases.has_queue(dataset) and _refill_jobs(dataset) == []
    html = client.get("/datasets/cc/label").get_data(as_text=True)
    assert item_on_screen(html) is None
    [job] = _refill_jobs(dataset)  # the page asked the worker for the first queue
    assert job.state == "queued" and leases.preparing(dataset).id == job.id
    [component] = re.findall(r"<[^>]*\bdata-preparing\b[^>]*>", html)
    assert 'hx-get="/datasets/cc/label"' in component and 'hx-trigger="every ' in component
    assert "about to choose" in html
    for _ in range(3):  # the component polls: every poll finds the same waiting job, none is added
        polled = client.get("/datasets/cc/label", headers=HX).get_data(as_text=True)
        assert "data-preparing" in polled and item_on_screen(polled) is None
    Job.update(state="running", stage="choosing the queue", percent=50.0).where(Job.id == job.id).execute()
    polled = client.get("/datasets/cc/label", headers=HX).get_data(as_text=True)
    assert "data-preparing" in polled and "choosing the queue, 50%" in polled
    assert [j.id for j in _refill_jobs(dataset)] == [job.id]  # a running refill counts as requested too
    Job.update(state="queued", stage="queued", percent=0.0).where(Job.id == job.id).execute()
    assert QueueEntry.select().count() == 0  # the web computed nothing meanwhile

    assert run_jobs() == {job.id: "done"}
    polled = client.get("/datasets/cc/label", headers=HX).get_data(as_text=True)
    shown = item_on_screen(polled)
    assert shown is not None and "data-preparing" not in polled
    assert Lease.get(Lease.item == shown).user.name == "ana"
    assert QueueEntry.select().where(QueueEntry.item == shown).exists()
    html = client.get("/datasets/cc/label").get_data(as_text=True)  # and the whole page, reloaded
    assert item_on_screen(html) == shown and "data-preparing" not in html
    assert [j.id for j in _refill_jobs(dataset)] == [job.id]


def test_a_low_queue_asks_the_worker_for_one_refill_which_rewrites_it(ana, dataset, run_jobs, monkeypatch):
    monkeypatch.setattr(leases, "REFILL_CHECK_SECONDS", 0.0)  # count free entries on every decision
    refill_finished_long_ago(dataset)
    [first] = _refill_jobs(dataset)
    written_before = QueueEntry.select(fn.MAX(QueueEntry.created_at)).where(QueueEntry.dataset == dataset).scalar()
    set_settings(dataset, refill_below=10000)  # more than the queue holds: low at once
    labeled = ana.item
    ana.decide("label:genuine")
    [requested] = _refill_jobs(dataset, "queued")
    assert requested.id != first.id and "free entries left" in requested.payload["reason"]
    ana.decide("label:genuine")  # still low: the waiting request is the only one
    ana.skip()
    assert [j.id for j in _refill_jobs(dataset, "queued")] == [requested.id]
    assert ana.item is not None and outcome_of(ana.html) == "skipped"  # the old queue serves meanwhile
    assert QueueEntry.select(fn.MAX(QueueEntry.created_at)).scalar() == written_before  # the web wrote none

    assert run_jobs(dataset) == {requested.id: "done"}
    after = QueueEntry.select().where(QueueEntry.dataset == dataset)
    assert after.count() > 0
    assert min(entry.created_at for entry in after) > written_before  # rewritten by the refill job
    assert labeled not in {entry.item_id for entry in after}


def test_a_refill_is_not_asked_for_again_within_the_cooldown(queued):
    [done] = _refill_jobs(queued)
    assert done.state == "done" and leases.preparing(queued) is None
    cooldown = datetime.timedelta(seconds=leases.REFILL_COOLDOWN_SECONDS)
    for after in (datetime.timedelta(0), cooldown / 2, cooldown - datetime.timedelta(milliseconds=1)):
        assert leases.ask_for_queue(queued, "low", now=done.finished_at + after) is None
    assert [j.id for j in _refill_jobs(queued)] == [done.id]

    job = leases.ask_for_queue(queued, "low", now=done.finished_at + cooldown)
    assert job is not None and job.id != done.id and job.state == "queued"
    assert job.payload["reason"] == "low" and leases.preparing(queued).id == job.id
    later = done.finished_at + 100 * cooldown
    assert leases.ask_for_queue(queued, "again", now=later).id == job.id  # single-flight while it waits
    Job.update(state="running").where(Job.id == job.id).execute()
    assert leases.ask_for_queue(queued, "again", now=later).id == job.id  # ... and while it runs
    Job.update(state="failed", finished_at=later).where(Job.id == job.id).execute()
    assert leases.ask_for_queue(queued, "again", now=later + cooldown / 2) is None  # a failed one cools down too
    assert leases.ask_for_queue(queued, "again", now=later + cooldown).state == "queued"
    assert len(_refill_jobs(queued)) == 3


def test_refill_if_low_asks_only_below_the_setting(queued):
    refill_finished_long_ago(queued)
    set_settings(queued, refill_below=50)
    for available in (None, 50, 400):  # None: not counted this time
        leases.refill_if_low(queued, available)
    assert _refill_jobs(queued, "queued") == []
    leases.refill_if_low(queued, 49)
    [job] = _refill_jobs(queued, "queued")
    assert job.payload["reason"] == "49 free entries left"


def test_a_dataset_without_a_queue_asks_for_one_even_with_refill_below_zero(dataset, analyst, client):
    set_settings(dataset, refill_below=0)
    assert leases.next_item(dataset, analyst) is None
    [job] = _refill_jobs(dataset, "queued")
    assert job.payload["reason"] == "no queue yet"
    login(client, "ana")
    page = client.get("/datasets/cc/label").get_data(as_text=True)
    assert "data-preparing" in page
    assert len(_refill_jobs(dataset, "queued")) == 1


def test_a_failed_refill_is_shown_with_its_error_instead_of_an_empty_screen(dataset, analyst, client, run_jobs,
                                                                            monkeypatch):
    from labeler.worker import refill

    def broken(dataset, progress, config):
        raise OSError("disk full")

    monkeypatch.setattr(refill, "run_refill", broken)
    login(client, "ana")
    assert "data-preparing" in client.get("/datasets/cc/label").get_data(as_text=True)
    assert set(run_jobs(dataset).values()) == {"failed"}
    page = client.get("/datasets/cc/label").get_data(as_text=True)
    assert "data-refill-failed" in page and "The worker could not prepare the queue: OSError: disk full" in page
    assert "data-preparing" not in page  # within the cooldown: no new request, no endless polling


def set_retrain_every(dataset, every):
    settings = {**(dataset.settings or {}), "retrain_every": every}
    Dataset.update(settings=settings).where(Dataset.id == dataset.id).execute()
    dataset.settings = settings


def _retrain_jobs(dataset):
    return list(Job.select().where((Job.dataset == dataset) & (Job.kind == jobs.RETRAIN)).order_by(Job.id))


def test_a_retrain_is_queued_as_soon_as_retrain_every_labels_are_committed(queued, analyst):
    dataset = queued
    set_retrain_every(dataset, 3)
    lease = leases.next_item(dataset, analyst)
    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    outcome, lease = decisions.skip(dataset, analyst, lease.item_id)  # a skip is no label
    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    assert outcome.kind == "recorded" and _retrain_jobs(dataset) == []
    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:fraud")
    [job] = _retrain_jobs(dataset)  # right after decide() returned: nothing runs in the background
    assert (job.state, job.payload["reason"]) == ("queued", "3 new labels")
    assert jobs.latest(dataset, jobs.RETRAIN).id == job.id and jobs.is_pending(dataset, jobs.RETRAIN)

    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    assert [j.id for j in _retrain_jobs(dataset)] == [job.id]  # single-flight while it waits

    # the worker finishes it with every label so far: counting starts again after its watermark
    watermark = Label.select(fn.MAX(Label.id)).scalar()
    Job.update(state="done", finished_at=utcnow(), payload={**job.payload, "watermark": watermark}).where(
        Job.id == job.id).execute()
    for value in ("genuine", "genuine"):
        outcome, lease = decisions.decide(dataset, analyst, lease.item_id, f"label:{value}")
    assert [j.id for j in _retrain_jobs(dataset)] == [job.id]
    edited = outcome.label.item_id
    outcome, _ = decisions.edit(dataset, analyst, edited, "fraud")  # an edit writes a new label too
    assert outcome.kind == "edited"
    first, second = _retrain_jobs(dataset)
    assert first.id == job.id and (second.state, second.payload["reason"]) == ("queued", "3 new labels")


def test_a_label_posted_through_the_screen_queues_the_retrain(ana, dataset):
    set_retrain_every(dataset, 2)
    ana.decide("label:genuine")
    assert _retrain_jobs(dataset) == []
    ana.decide("accept")
    [job] = _retrain_jobs(dataset)
    assert job.state == "queued"
    html = ana.client.get("/datasets/cc/label/status", headers=HX).get_data(as_text=True)
    assert "retrain queued" in html


def test_settings_are_validated(dataset):
    for changes, message in (({"overlap_share": "1.5"}, "between 0 and 1"), ({"reject_mode": "guess"}, "reject_mode"),
                             ({"lease_minutes": "soon"}, "must be a number"), ({"colour": "red"}, "unknown"),
                             ({"refill_below": "-1"}, "at least 0")):
        with pytest.raises(SettingsError, match=message):
            update_labeling_settings(dataset, changes)
    assert labeling_settings(dataset) == DEFAULTS["labeling"]
    assert labeling_settings(Dataset.get_by_id(dataset.id)) == DEFAULTS["labeling"]  # nothing was stored


def test_migration_2_upgrades_a_version_1_store(tmp_path):
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        database.drop_tables([Lease])
        migrate(SqliteMigrator(database.obj).drop_column("label", "suggestion_shown"))
        SchemaVersion.delete().where(SchemaVersion.version >= 2).execute()
        assert upgrade() == [version for version, _ in MIGRATIONS]
        assert Lease.table_exists()
        assert "suggestion_shown" in {c.name for c in database.get_columns("label")}
        assert upgrade() == []


@pytest.mark.parametrize("action", ["decide", "skip_then_undo"])
def test_label_counts_are_written_last_in_a_decision_transaction(queued, analyst, monkeypatch, action):
    """The count rows every decision updates are written at the end of its transaction, after the next lease is
    taken (labeler.store.db.standing_counts_last: on PostgreSQL a decision once held a count row while waiting
    for a lease, half of a deadlock), and the counts stay right."""
    events = []
    shipped_count, shipped_next = db_module._count_standing, decisions.next_lease

    def count(**fields):
        events.append(("count", fields["value"], fields["items"]))
        return shipped_count(**fields)

    def next_lease(*args):
        events.append(("next lease",))
        return shipped_next(*args)

    monkeypatch.setattr(db_module, "_count_standing", count)
    monkeypatch.setattr(decisions, "next_lease", next_lease)
    lease = leases.next_item(queued, analyst)
    outcome, following = decisions.decide(queued, analyst, lease.item_id, "label:genuine")
    assert outcome.kind == "recorded"
    assert events == [("next lease",), ("count", "genuine", 1)]
    if action == "skip_then_undo":
        events.clear()
        decisions.skip(queued, analyst, following.item_id)
        assert events == [("next lease",)]  # no label changed: no count written
        outcome, _ = decisions.undo(queued, analyst)
        assert outcome.kind == "undone" and events[-1] == ("count", "genuine", -1)
        assert ("next lease",) not in events[events.index(("count", "genuine", -1)):]
    assert label_counts(queued) == ({"genuine": 1} if action == "decide" else {})


def test_counts_held_back_are_dropped_when_the_transaction_fails(queued, analyst):
    """A transaction that raises after refreshing a label writes no count: its changes go with the rollback."""
    lease = leases.next_item(queued, analyst)

    def work():
        decisions._record(queued, analyst, labeling_settings(queued), lease, Item.get_by_id(lease.item_id),
                          "genuine", None, None, None, lease.offered_at)
        raise RuntimeError("after the label")

    with pytest.raises(RuntimeError):
        in_write_transaction(work)
    assert label_counts(queued) == {} and StandingCount.select().count() == 0
    assert decisions.decide(queued, analyst, lease.item_id, "label:genuine")[0].kind == "recorded"
    assert label_counts(queued) == {"genuine": 1}


def test_the_first_label_of_a_class_queues_a_retrain_at_once_when_another_class_has_labels(queued, analyst):
    dataset = queued  # retrain_every stays at its default (50): the cold start would wait for 50 labels
    lease = leases.next_item(dataset, analyst)
    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:fraud")
    assert outcome.kind == "recorded" and _retrain_jobs(dataset) == []  # one class alone: no model to train
    outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    [job] = _retrain_jobs(dataset)  # the first genuine label beside a fraud: a model takes over
    assert (job.state, job.payload["reason"]) == ("queued", "the first genuine label")

    watermark = Label.select(fn.MAX(Label.id)).scalar()
    Job.update(state="done", finished_at=utcnow(), payload={**job.payload, "watermark": watermark}).where(
        Job.id == job.id).execute()
    for value in ("genuine", "fraud", "genuine"):  # neither class is new any more
        outcome, lease = decisions.decide(dataset, analyst, lease.item_id, f"label:{value}")
        assert outcome.kind == "recorded"
    assert [j.id for j in _retrain_jobs(dataset)] == [job.id]


def test_a_young_model_is_retrained_every_tenth_of_its_labels_at_least_10_and_at_most_retrain_every(queued, analyst):
    from labeler.store.settings import retrain_step

    assert [retrain_step(labels, 50) for labels in (0, 10, 99, 100, 150, 499, 500, 5000)] == [
        10, 10, 10, 10, 15, 49, 50, 50]
    assert retrain_step(40, 3) == 3  # retrain_every below 10 is kept
    dataset = queued  # retrain_every stays at its default (50)
    lease = leases.next_item(dataset, analyst)
    for _ in range(10):
        assert _retrain_jobs(dataset) == []
        outcome, lease = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
    [job] = _retrain_jobs(dataset)  # 10 labels, not 50: the cold start's retrain too (it rewrites the queue)
    assert job.payload["reason"] == "10 new labels"


def test_five_new_frauds_among_ten_labels_queue_a_retrain_before_a_tenth_of_the_labels_came(queued, analyst):
    from labeler.store.settings import retrain_due

    assert not retrain_due(300, 29, 4, 50) and retrain_due(300, 30, 0, 50) and retrain_due(300, 10, 5, 50)
    assert not retrain_due(300, 9, 9, 50)  # never sooner than the benchmarks' 10 labels
    dataset = queued
    items = [item_id for (item_id,) in Item.select(Item.id).where(Item.dataset == dataset).order_by(Item.id.desc())
             .limit(300).tuples()]
    Label.insert_many([{"item": item_id, "kind": "label", "value": "fraud" if n % 30 == 0 else "genuine",
                        "annotator": analyst.id, "source": "human", "created_at": utcnow()}
                       for n, item_id in enumerate(items)]).execute()
    db_module.Standing.refresh(items)
    Job.create(dataset=dataset, kind=jobs.RETRAIN, state="done", stage="done", finished_at=utcnow(),
               payload={"watermark": Label.select(fn.MAX(Label.id)).scalar()})
    lease = leases.next_item(dataset, analyst)  # 300 labels: the next retrain after 30 more, or 5 more frauds
    for value in ["fraud", "genuine"] * 4 + ["genuine", "fraud"]:
        assert len(_retrain_jobs(dataset)) == 1
        outcome, lease = decisions.decide(dataset, analyst, lease.item_id, f"label:{value}")
        assert outcome.kind == "recorded"
    newest = _retrain_jobs(dataset)[-1]
    assert (newest.state, newest.payload["reason"]) == ("queued", "5 new positive labels")
