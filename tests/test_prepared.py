"""Prepared queries (labeler.store.prepared): built once, they return what peewee's own execution of the same
query returns, on the real store (SQLite here; tests/test_postgres.py runs the same checks on PostgreSQL)."""
import datetime

import peewee
import pytest

from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.store.db import Item, Label, Lease, Standing, database
from labeler.store.prepared import Prepared, PreparedCreate, slot
from tests.conftest import SAMPLE


def check_prepared_queries_match_peewee(dataset, user):
    """Rows (models with JSON and date fields, joined tuples), counts and RETURNING rows of prepared queries
    equal those of the same peewee queries run directly; a value left out is named."""
    item_ids = [item_id for (item_id,) in dataset.items().select(Item.id).order_by(Item.id).limit(3).tuples()]
    now = datetime.datetime(2026, 12, 2, 12, 30, 15, 250000)
    for n, item_id in enumerate(item_ids):
        Lease.create(dataset=dataset, item=item_id, user=user, state="active", offered_at=now, strategy="uncertainty",
                     expires_at=now + datetime.timedelta(minutes=n), probabilities={"fraud": 0.25 * n},
                     rejected=["genuine"] if n else [])
        Label.create(item=item_id, kind="label", value="fraud", annotator=user, source="human", created_at=now)

    def leases_after(when):
        return Lease.select().where((Lease.dataset == dataset) & (Lease.expires_at > when)).order_by(Lease.id)

    prepared = Prepared(leases_after(slot("when")))
    for when in (now - datetime.timedelta(seconds=1), now, now + datetime.timedelta(seconds=90)):
        got = [(lease.id, lease.item_id, lease.expires_at, lease.probabilities, lease.rejected)
               for lease in prepared(when=when)]
        want = [(lease.id, lease.item_id, lease.expires_at, lease.probabilities, lease.rejected)
                for lease in leases_after(when)]
        assert got == want and got  # the datetimes and JSON come back converted, as peewee's do
    assert isinstance(got[-1][2], datetime.datetime) and got[-1][3] == {"fraud": 0.5}

    joined = Prepared(Label.select(Label.id, Item.external_id, Label.created_at).join(Item)
                      .where((Item.dataset == slot("dataset")) & (Label.annotator == slot("user")))
                      .order_by(Label.id.desc()).limit(1).tuples())
    newest = Label.select().order_by(Label.id.desc()).first()
    assert joined.first(dataset=dataset, user=user.id) == (newest.id, newest.item.external_id, now)  # a model: its id
    assert joined.first(dataset=dataset.id, user=user.id + 1) is None
    assert Prepared(Label.select(Label.id).where(Label.item == slot("item"))).scalar(item=item_ids[1]) == \
        Label.get(Label.item == item_ids[1]).id

    moved = Prepared(Lease.update(state="deferred").where(Lease.item == slot("item")))
    assert moved(item=item_ids[0]) == 1 and moved(item=-1) == 0
    dropped = Prepared(Lease.delete().where(Lease.item == slot("item")).returning(Lease.item, Lease.state).tuples())
    assert list(dropped(item=item_ids[0])) == [(item_ids[0], "deferred")]
    assert Lease.select().where(Lease.item == item_ids[0]).count() == 0
    with pytest.raises(TypeError, match="no value for slot 'item'"):
        dropped()
    assert Standing.select().count() == 0  # nothing above refreshed a standing row

    create = PreparedCreate(Lease, "dataset", "item", "user", "state", "expires_at", "strategy", "probabilities",
                            "rejected")
    made = create(dataset=dataset, item=item_ids[0], user=user, state="active", expires_at=now, strategy="diversity",
                  probabilities={"fraud": 0.75}, rejected=["fraud"])  # models for the keys: their ids are stored
    stored = Lease.get_by_id(made.id)
    assert (stored.item_id, stored.user_id, stored.expires_at, stored.probabilities, stored.rejected, stored.offered_at
            is not None) == (item_ids[0], user.id, now, {"fraud": 0.75}, ["fraud"], True)  # a default filled in
    assert (made.item_id, made.probabilities) == (item_ids[0], {"fraud": 0.75})
    with pytest.raises(peewee.IntegrityError):  # the item is held: the database's uniqueness holds
        create(dataset=dataset.id, item=item_ids[0], user=user.id, state="active", expires_at=now,
               strategy="diversity", probabilities={}, rejected=[])
    with pytest.raises(TypeError, match="give exactly"):
        create(dataset=dataset.id, item=item_ids[0])


def test_prepared_queries_return_what_peewee_returns(app, tmp_path):
    dataset = import_file(SAMPLE, "cc", label_column="Class").dataset
    check_prepared_queries_match_peewee(dataset, create_user("ana", "correct horse battery"))


def test_a_prepared_query_is_built_again_for_another_store(app, tmp_path):
    """Tests (and tools) open several stores in one process: the SQL text is per database."""
    query = Prepared(Item.select(Item.external_id).where(Item.id == slot("id")).tuples())
    dataset = import_file(SAMPLE, "cc", label_column="Class").dataset
    first = dataset.items().order_by(Item.id).first()
    assert query.first(id=first.id) == (first.external_id,)
    built_for = database.obj
    database.initialize(type(built_for)(str(tmp_path / "other.sqlite3")))
    try:
        database.create_tables([Item.dataset.rel_model, Item])
        assert query.first(id=first.id) is None  # the other (empty) store was asked
    finally:
        database.close()
        database.initialize(built_for)
    assert query.first(id=first.id) == (first.external_id,)
