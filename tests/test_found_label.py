"""Labeling an item found in the table, outside the queue (a fraud the team knows already): the item page's form,
what it records, what it refuses, and the retrain that lets a model take over from the cold start at once; on a
real SQLite file with the real credit-card sample."""
import datetime

import pytest

from labeler.data.users import create_user
from labeler.labeling import decisions, leases
from labeler.store.db import Item, Job, Label, Lease, ModelVersion, PrequentialScore, utcnow
from labeler.worker import jobs
from tests.conftest import PASSWORD, csrf_token_of, login


@pytest.fixture
def ana_client(app, queued, analyst):
    client = app.test_client()
    login(client, "ana")
    return client


def _free_item(dataset):
    """An item nobody holds and nobody labeled."""
    held = Lease.select(Lease.item)
    labeled = Label.select(Label.item)
    return (Item.select().where((Item.dataset == dataset) & Item.id.not_in(held) & Item.id.not_in(labeled))
            .order_by(Item.id.desc()).first())


def _post_found(client, item, **form):
    page = client.get(f"/datasets/cc/items/{item.external_id}")
    return client.post(f"/datasets/cc/items/{item.id}/label",
                       data={"csrf_token": csrf_token_of(page.get_data(as_text=True)), **form})


def _human_labels(item):
    return list(Label.select().where((Label.item == item.id) & (Label.source == "human") & (Label.kind == "label")))


def _retrains(dataset):
    return list(Job.select().where((Job.dataset == dataset) & (Job.kind == jobs.RETRAIN)).order_by(Job.id))


def test_a_known_fraud_labeled_on_its_page_ends_the_cold_start_at_once(queued, analyst, ana_client, config):
    dataset = queued
    for _ in range(3):  # the cold start's picks, all genuine so far
        lease = leases.next_item(dataset, analyst)
        outcome, _ = decisions.decide(dataset, analyst, lease.item_id, "label:genuine")
        assert outcome.kind == "recorded"
    assert _retrains(dataset) == []  # retrain_every (50) is far off
    item = _free_item(dataset)
    page = ana_client.get(f"/datasets/cc/items/{item.external_id}").get_data(as_text=True)
    assert "data-found-label" in page and 'name="value" value="fraud"' in page

    response = _post_found(ana_client, item, value="fraud", reason="card testing", note="chargeback <3>")
    assert response.status_code == 303 and response.location.endswith(f"/datasets/cc/items/{item.external_id}")
    page = ana_client.get(response.location).get_data(as_text=True)
    assert f"Labeled transaction {item.external_id} as fraud." in page
    assert "data-found-label" not in page  # an analyst's answer stands: changes go through edit or review
    assert "chargeback &lt;3&gt;" in page and decisions.FOUND in page
    [label] = _human_labels(item)
    assert (label.value, label.reason, label.annotator_id, label.strategy) == (
        "fraud", "card testing", analyst.id, decisions.FOUND)
    assert (label.suggested, label.model_version, label.seconds_on_screen) == (None, None, None)

    [job] = _retrains(dataset)
    assert (job.state, job.payload["reason"]) == ("queued", "the first fraud label")
    assert jobs.run(job.id, config) == "done"
    version = ModelVersion.get((ModelVersion.dataset == dataset) & ModelVersion.serving)
    assert version.labels_used == 4  # the model took over from the cold start after 4 labels, not 50
    # the record judges the queue's picks: the found label has no version whose scores it could carry
    assert not PrequentialScore.select().where(PrequentialScore.item == item.id).exists()


def test_the_form_refuses_bad_input_with_one_line_and_records_nothing(queued, ana_client):
    item = _free_item(queued)
    for form, line in (({"value": "maybe"}, "value: &#39;maybe&#39; is not a label of this dataset"),
                       ({"value": "genuine", "reason": "card testing"},
                        "reason: a reason code goes with &#39;fraud&#39; only, not &#39;genuine&#39;"),
                       ({"value": "fraud", "reason": "bored"}, "reason: &#39;bored&#39; is not one of"),
                       ({"value": "fraud", "note": "x" * 2001}, "note: at most 2000 characters, got 2001")):
        response = _post_found(ana_client, item, **form)
        assert response.status_code == 400 and line in response.get_data(as_text=True)
    assert _human_labels(item) == [] and _retrains(queued) == []
    assert ana_client.post(f"/datasets/cc/items/{item.id}/label", data={"value": "fraud"}).status_code == 400  # CSRF
    assert _post_found(ana_client, item, value="fraud").status_code == 303
    missing = ana_client.post("/datasets/cc/items/99999999/label",
                              data={"csrf_token": csrf_token_of(ana_client.get("/datasets/cc").get_data(
                                  as_text=True)), "value": "fraud"})
    assert missing.status_code == 404 and "has no item 99999999" in missing.get_data(as_text=True)


def test_an_item_answered_or_on_another_screen_is_not_labeled_twice(app, queued, analyst, ana_client):
    dataset = queued
    bob = create_user("bob", PASSWORD, "analyst")
    on_bobs_screen = leases.next_item(dataset, bob)
    item = Item.get_by_id(on_bobs_screen.item_id)
    response = _post_found(ana_client, item, value="fraud")
    assert response.status_code == 409 and "is on another analyst&#39;s screen" in response.get_data(as_text=True)
    assert _human_labels(item) == []

    decisions.decide(dataset, bob, item.id, "label:genuine")
    response = _post_found(ana_client, item, value="fraud")
    assert response.status_code == 409 and "has an analyst&#39;s label already" in response.get_data(as_text=True)
    assert [label.value for label in _human_labels(item)] == ["genuine"]


def test_a_skipped_item_or_one_on_the_analysts_own_screen_takes_the_label(queued, analyst, ana_client):
    dataset = queued
    bob = create_user("bob", PASSWORD, "analyst")
    skipped = leases.next_item(dataset, bob)
    assert decisions.skip(dataset, bob, skipped.item_id)[0].kind == "skipped"
    assert _post_found(ana_client, Item.get_by_id(skipped.item_id), value="genuine").status_code == 303
    assert Lease.get_or_none(Lease.item == skipped.item_id) is None  # the skip's hold ends with the label
    assert [label.strategy for label in _human_labels(skipped.item)] == [decisions.FOUND]

    mine = leases.next_item(dataset, analyst)
    assert _post_found(ana_client, Item.get_by_id(mine.item_id), value="genuine").status_code == 303
    [label] = _human_labels(mine.item)
    assert (label.strategy, label.model_version) == (mine.strategy, mine.model_version_id)  # as on the screen
    assert Lease.get_or_none(Lease.item == mine.item_id) is None


def test_a_lapsed_lease_of_another_analyst_does_not_stop_the_label_and_undo_takes_it_back(queued, analyst):
    dataset = queued
    bob = create_user("bob", PASSWORD, "analyst")
    lapsed = leases.next_item(dataset, bob)
    later = utcnow() + datetime.timedelta(hours=3)
    outcome = decisions.label_found(dataset, analyst, lapsed.item_id, "genuine", now=later)
    assert outcome.kind == "recorded" and outcome.label.created_at == later
    outcome, on_screen = decisions.undo(dataset, analyst, now=later)
    assert outcome.kind == "undone" and on_screen.item_id == lapsed.item_id
    assert on_screen.strategy == lapsed.strategy  # its queue entry's, as for any undone label
    assert [label.value for label in _human_labels(lapsed.item)] == ["genuine"]  # kept in the log, retracted
