"""The Standing table (the human label that stands per item, kept with every label write) against the rule's own
queries (Label.effective, Label.disputed), on a real SQLite store: random answers, edits, undos, card runs,
reviews and review undos by several analysts, checked after every step; and migration 15's fill from the log."""
import collections
import random

import numpy as np
import pytest

from labeler.data.datasets import label_counts
from labeler.data.users import create_user
from labeler.labeling import decisions, leases, review
from labeler.store.db import Dataset, Item, Label, QueueEntry, SchemaVersion, Standing, StandingCount, database
from labeler.store.migrations import upgrade
from labeler.store.settings import update_labeling_settings
from tests.conftest import PASSWORD

LABELS = ["genuine", "fraud", "scam"]
ITEMS = 60
CARDS = 6


@pytest.fixture
def small(app):
    """A dataset of ITEMS transactions on CARDS cards (one every second), every item queued in row order."""
    dataset = Dataset.create(name="small", columns=["amount"], feature_columns=["amount"], labels=LABELS,
                             positive_label="fraud", settings={"positive_labels": ["fraud", "scam"]})
    Item.insert_many([{"dataset": dataset.id, "external_id": f"T{n}", "row_number": n, "entity": f"C{n % CARDS}",
                       "event_time": float(n), "numbers": np.array([n], dtype=np.float64).tobytes(),
                       "features": np.array([n], dtype=np.float32).tobytes()} for n in range(ITEMS)]).execute()
    QueueEntry.insert_many([{"dataset": dataset.id, "item": item_id, "priority": float(n), "strategy": "test",
                             "suggested": "genuine", "probability": 0.5, "probabilities": {}}
                            for n, (item_id,) in enumerate(dataset.items().select(Item.id).order_by(Item.id)
                                                           .tuples())]).execute()
    update_labeling_settings(dataset, {"overlap_share": 0.6, "review_share": 0.3})
    return Dataset.get_by_id(dataset.id)


def by_the_rule(dataset):
    """{item id: (state, value, label id, answered)} as Label.effective, Label.disputed and Label.answers (an
    analyst's answer stands) give them."""
    answered = {item_id for (item_id,) in Label.select(Label.item).where(Label.id.in_(Label.answers(dataset)))
                .tuples()}
    expected = {label.item_id: ("adjudicated" if label.source == "review" else "agreed", label.value, label.id,
                                label.item_id in answered) for label in Label.effective(dataset)}
    for (item_id,) in Label.disputed(dataset).tuples():
        assert item_id not in expected
        expected[item_id] = ("disputed", None, None, True)
    return expected


def kept(dataset):
    """{item id: (state, value, label id, answered)} from Standing; asserts that StandingCount counts its rows."""
    rows = {item_id: tuple(row) for item_id, *row in
            Standing.select(Standing.item, Standing.state, Standing.value, Standing.label, Standing.answered)
            .where(Standing.dataset == dataset).tuples()}
    counted = {(state, value): items for state, value, items in
               StandingCount.select(StandingCount.state, StandingCount.value, StandingCount.items)
               .where((StandingCount.dataset == dataset) & (StandingCount.items != 0)).tuples()}
    assert counted == collections.Counter((state, value or "") for state, value, *_ in rows.values())
    return rows


def _label_or_run(dataset, user, pick):
    """``user`` answers the item on their screen, now and then with the later transactions of its card."""
    lease = leases.next_item(dataset, user)
    if lease is None:
        return "nothing to label"
    value = pick.choice(LABELS)
    item = Item.get_by_id(lease.item_id)
    later = list(Item.select(Item.id).where((Item.dataset == dataset) & (Item.entity == item.entity)
                                            & (Item.event_time > item.event_time))
                 .order_by(Item.event_time).limit(3).tuples())
    if later and pick.random() < 0.2:
        outcome, _ = decisions.decide_run(dataset, user, item.id, f"label:{value}", pick.choice(later)[0])
    else:
        outcome, _ = decisions.decide(dataset, user, item.id, f"label:{value}")
    return outcome.kind


def _edit(dataset, user, pick):
    mine = decisions.recent_decisions(dataset, user)
    if not mine:
        return "nothing to edit"
    label = pick.choice(mine)
    return decisions.edit(dataset, user, label.item_id, pick.choice(LABELS))[0].kind


def _adjudicate(dataset, reviewer, pick):
    answered = [item_id for (item_id,) in Label.select(Label.item).distinct().join(Item)
                .where((Item.dataset == dataset) & (Label.source == "human")).order_by(Label.item).tuples()]
    if not answered:
        return "nothing to review"
    label, refused = review.adjudicate(dataset, reviewer, pick.choice(answered), pick.choice(LABELS))
    return "refused" if refused else "adjudicated"


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_standing_table_equals_the_rule_after_every_step_of_a_random_session(small, admin):
    """Three analysts (blind second looks on 60% of the answers, so they disagree) and a reviewer, 220 random
    steps with a fixed seed; after each, every Standing row equals what the rule's queries say, and so do the
    header's counts and the review queue."""
    dataset = small
    analysts = [create_user(name, PASSWORD, "analyst") for name in ("ana", "bob", "cy")]
    reviewer = create_user("rita", PASSWORD, "reviewer")
    pick = random.Random(19)
    random.seed(19)  # the second looks and the review sampling of labeler.labeling.decisions
    steps = collections.Counter()
    for _ in range(220):
        user = pick.choice(analysts)
        roll = pick.random()
        if roll < 0.5:
            what = _label_or_run(dataset, user, pick)
        elif roll < 0.65:
            what = "analyst " + decisions.undo(dataset, user)[0].kind
        elif roll < 0.75:
            what = "edit " + _edit(dataset, user, pick)
        elif roll < 0.9:
            what = _adjudicate(dataset, reviewer, pick)
        else:
            what = "review undone" if review.undo(dataset, reviewer) is not None else "no review to undo"
        steps[what] += 1
        expected = by_the_rule(dataset)
        assert kept(dataset) == expected, steps
        counts = collections.Counter(value for state, value, _, _ in expected.values() if state != "disputed")
        assert label_counts(dataset) == dict(counts)
        disputed = sorted(item_id for item_id, (state, *_) in expected.items() if state == "disputed")
        assert [item_id for item_id, why in review.waiting(dataset, limit=None) if why == review.DISPUTED] == disputed
        assert review.waiting_count(dataset) == len(review.waiting(dataset, limit=None))
    # the session went through every kind of step and every state, runs included
    assert {"recorded", "analyst undone", "edit edited", "adjudicated", "review undone"} <= set(steps), steps
    assert {state for state, *_ in kept(dataset).values()} == set(Standing.STATES)
    assert Label.select().where(Label.bulk_of.is_null(False)).count() > 0


def test_migration_15_fills_the_standing_table_from_the_log(small, admin):
    """A version-14 store had no Standing table: the upgrade makes it and fills it from the label log (agreed,
    disputed, adjudicated, and an item whose only answer was undone has no row), and swaps Label's indexes."""
    dataset = small
    ana, bob = create_user("ana", PASSWORD, "analyst"), create_user("bob", PASSWORD, "analyst")
    reviewer = create_user("rita", PASSWORD, "reviewer")
    items = [item_id for (item_id,) in dataset.items().select(Item.id).order_by(Item.id).limit(5).tuples()]
    for item_id, first, second in ((items[0], "fraud", "fraud"), (items[1], "fraud", "genuine"),
                                   (items[2], "genuine", "scam")):
        Label.create(item=item_id, value=first, annotator=ana)
        Label.create(item=item_id, value=second, annotator=bob)
    undone = Label.create(item=items[3], value="fraud", annotator=ana)
    Label.create(item=items[3], kind="undo", retracts=undone, annotator=ana)
    Label.create(item=items[4], value="genuine", source="pseudo")
    assert review.adjudicate(dataset, reviewer, items[2], "scam")[0] is not None
    database.drop_tables([Standing, StandingCount])  # and Label's indexes as schema 14 had them
    for column in ("item_id", "annotator_id"):
        database.execute_sql(f'DROP INDEX "label_{column}_source_kind_id"')
        database.execute_sql(f'CREATE INDEX "label_{column}" ON "label" ("{column}")')
    SchemaVersion.delete().where(SchemaVersion.version >= 15).execute()

    assert upgrade() == [15, 16, 17, 18, 19]
    indexes = {index.name for index in database.get_indexes("label")}
    assert {"label_item_id_source_kind_id", "label_annotator_id_source_kind_id"} <= indexes
    assert not {"label_item_id", "label_annotator_id"} & indexes
    assert kept(dataset) == by_the_rule(dataset)
    assert {item_id: state for item_id, (state, *_) in kept(dataset).items()} == {
        items[0]: "agreed", items[1]: "disputed", items[2]: "adjudicated"}
    assert label_counts(dataset) == {"fraud": 1, "scam": 1} and upgrade() == []
