"""The query plans of the hot request paths, on a real SQLite store: the SQL each real function sends (captured
from the database's execute_sql) goes through EXPLAIN QUERY PLAN, and no statement may walk the item, label,
queue_entry or standing table whole ("SCAN t", "SCAN t USING [COVERING] INDEX i", or a search on a few-valued
column alone): every read of them is a search of an index or primary key. A search bounded by the dataset alone
("SEARCH ... (dataset_id=?)") is allowed where it walks in index order (a page, up to its LIMIT; a filtered first
page's count of the matching rows), not in a plan that then sorts what it read. tests/test_postgres.py runs the
same paths through PostgreSQL's EXPLAIN."""
import random
import re

import numpy as np
import pytest

from labeler.data import item_table, tokens
from labeler.data.datasets import label_counts
from labeler.labeling import decisions, leases, review
from labeler.store.db import Dataset, Item, Label, QueueEntry, User, database
from labeler.store.migrations import fill_standing
from labeler.store.settings import update_labeling_settings
from labeler.web import create_app
from labeler.web.screen import dataset_status

HOT = {"item", "label", "queue_entry", "standing"}
LOW_CARDINALITY = {"source", "kind", "state"}  # a search on these alone reads a large share of the table
ITEMS = 3000
HISTORY = 2000
_ALIAS = re.compile(r'"(\w+)" AS "(\w+)"')


def capture(run):
    """(what ``run()`` returned, [(sql, params)] of the statements it sent that read tables)."""
    statements = []
    execute = database.obj.execute_sql

    def recording(sql, params=None, *args, **kwargs):
        if re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT .* SELECT)", sql, re.IGNORECASE | re.DOTALL):
            statements.append((sql, tuple(params or ())))
        return execute(sql, params, *args, **kwargs)

    database.obj.execute_sql = recording
    try:
        result = run()
    finally:
        del database.obj.execute_sql
    return result, statements


def tables_of(sql):
    """{name as the plan shows it: table} of a statement (peewee's aliases, t1, t2 and named ones, resolved)."""
    names = {table: table for table in re.findall(r'(?:FROM|JOIN|UPDATE|INTO) "(\w+)"', sql)}
    names.update({alias: table for table, alias in _ALIAS.findall(sql)})
    return names


def sqlite_plan(sql, params):
    return [row[-1] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]


def full_scans(statements):
    """[(hot table, plan line, sql)] of every step of the statements' plans that walks a hot table whole: a SCAN;
    a SEARCH constrained by LOW_CARDINALITY columns only (label's (source=? AND kind=?) is every human label of
    every dataset); or one constrained by the dataset alone in a plan that sorts (it reads all the dataset's
    rows before the first one comes out; in index order, up to a LIMIT, it is a page)."""
    found = []
    for sql, params in statements:
        names, plan = tables_of(sql), sqlite_plan(sql, params)
        sorts = any(line.startswith("USE TEMP B-TREE") for line in plan)
        for line in plan:
            match = re.match(r"(SCAN|SEARCH) (\w+)(?: USING .*?)?(?: \((.*)\))?$", line)
            if not match or names.get(match.group(2)) not in HOT:
                continue
            columns = set(re.findall(r"(\w+)[=<>]", match.group(3) or ""))
            if match.group(1) == "SCAN" or columns <= LOW_CARDINALITY or (sorts and columns == {"dataset_id"}):
                found.append((names[match.group(2)], line, sql))
    return found


def indexes_used(statements):
    """Every index (or the primary key) the statements' plans search."""
    used = set()
    for sql, params in statements:
        for line in sqlite_plan(sql, params):
            match = re.match(r"SEARCH \w+ USING (?:COVERING )?(INDEX (\w+)|INTEGER PRIMARY KEY)", line)
            if match:
                used.add(match.group(2) or "primary key")
    return used


@pytest.fixture(scope="module")
def plans_app(tmp_path_factory):
    """One app and store for the module (conftest's ``app``, built once: the tests only read, but for one label
    and its undo)."""
    folder = tmp_path_factory.mktemp("plans")
    app = create_app({"TESTING": True, "DATABASE": str(folder / "labeler.sqlite3"),
                      "TASK_QUEUE": str(folder / "queue.sqlite3"), "MODEL_FOLDER": str(folder / "models"),
                      "SECRET_KEY": "test-secret"})
    with database.connection_context():
        yield app


@pytest.fixture(scope="module")
def busy(plans_app):
    return busy_store()


def busy_store():
    """A dataset of ITEMS items (an amount column), all queued, with a pseudo label on every other one (as a
    retrain writes them) and earlier answers on the last HISTORY (ana's, a tenth of them fraud, and bob's on every
    third, disagreeing on every ninth, a twelfth of them undone; the Standing rows filled from the log as
    migration 15 does); then three analysts answered 40 items through the screen, with a blind second look at half
    the answers (some disputed), one answer undone, one dispute adjudicated. Returns {"dataset", "analysts",
    "reviewer"}."""
    dataset = Dataset.create(name="busy", columns=["amount"], feature_columns=["amount"],
                             labels=["genuine", "fraud"], positive_label="fraud")
    amounts = np.random.default_rng(19).gamma(2.0, 40.0, ITEMS)
    Item.insert_many([{"dataset": dataset.id, "external_id": f"T{n}", "row_number": n, "amount": float(amounts[n]),
                       "numbers": amounts[n:n + 1].tobytes(), "features": amounts[n:n + 1].astype(np.float32).tobytes()}
                      for n in range(ITEMS)]).execute()
    ids = [item_id for (item_id,) in dataset.items().select(Item.id).order_by(Item.id).tuples()]
    QueueEntry.insert_many([{"dataset": dataset.id, "item": item_id, "priority": float(n), "strategy": "test",
                             "suggested": "genuine", "probability": 0.5, "probabilities": {}}
                            for n, item_id in enumerate(ids)]).execute()
    Label.insert_many([{"item": item_id, "kind": "label", "value": "genuine", "source": "pseudo"}
                       for item_id in ids[::2]]).execute()
    analysts = [User.create(name=name, password_hash="-", role="analyst") for name in ("ana", "bob", "cy")]
    earlier = [{"item": item_id, "kind": "label", "value": "fraud" if n % 10 == 0 else "genuine", "source": "human",
                "annotator": analysts[0].id} for n, item_id in enumerate(ids[-HISTORY:])]
    flip = {"fraud": "genuine", "genuine": "fraud"}
    earlier += [{**row, "annotator": analysts[1].id, "value": flip[row["value"]] if n % 9 == 0 else row["value"]}
                for n, row in enumerate(earlier) if n % 3 == 0]
    for start in range(0, len(earlier), 500):
        Label.insert_many(earlier[start:start + 500]).execute()
    undone = Label.select(Label.id, Label.item, Label.annotator).where(Label.source == "human").order_by(Label.id)
    Label.insert_many([{"item": item_id, "kind": "undo", "retracts": label_id, "source": "human", "annotator": user}
                       for label_id, item_id, user in undone.tuples()[::12]]).execute()
    fill_standing(dataset)
    update_labeling_settings(dataset, {"overlap_share": 0.5})
    pick = random.Random(19)
    random.seed(19)  # the second looks of labeler.labeling.decisions
    for step in range(40):
        user = analysts[step % 3]
        lease = leases.next_item(dataset, user)
        decisions.decide(dataset, user, lease.item_id, "label:" + pick.choice(["fraud", "genuine"]))
    decisions.undo(dataset, analysts[0])
    reviewer = User.create(name="rita", password_hash="-", role="reviewer")  # no login: no password to hash
    disputed = review.waiting(dataset)[0][0]
    review.adjudicate(dataset, reviewer, disputed, "fraud")
    return {"dataset": Dataset.get_by_id(dataset.id), "analysts": analysts, "reviewer": reviewer}


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_header_counts_read_a_few_rows_of_standing_count(busy):
    """The polled header reads neither the label log nor Standing: its counts are StandingCount's rows."""
    dataset = busy["dataset"]
    status, statements = capture(lambda: dataset_status(dataset))
    assert status["labeled"] == sum(label_counts(dataset).values()) > 0
    assert full_scans(statements) == []
    assert not {"label", "standing"} & {table for sql, _ in statements for table in tables_of(sql).values()}
    assert "sqlite_autoindex_standing_count_1" in indexes_used(statements)  # its primary key


def test_leasing_the_next_item_and_recording_a_label_search_indexes(busy):
    """Three labels in a row by one analyst, each with the next item leased in its transaction (a blind second
    look or the queue's next free entry), then an undo."""
    dataset, ana = busy["dataset"], busy["analysts"][0]

    def label_three():
        outcomes, lease = [], leases.next_item(dataset, ana)
        for _ in range(3):
            outcome, lease = decisions.decide(dataset, ana, lease.item_id, "label:fraud")
            outcomes.append(outcome.kind)
        return outcomes

    outcomes, statements = capture(label_three)
    assert outcomes == ["recorded"] * 3 and full_scans(statements) == []
    used = indexes_used(statements)
    assert {"queue_entry_dataset_id_priority", "lease_item_id", "primary key"} <= used, used
    assert used & {"label_item_id", "label_item_id_id"}, used  # a label write's refresh reads its item's rows
    (outcome, _), statements = capture(lambda: decisions.undo(dataset, ana))
    assert outcome.kind == "undone" and full_scans(statements) == []


@pytest.mark.parametrize("filters", [{}, {"label": "fraud"}, {"label": "disputed"}, {"label": "unlabeled"},
                                     {"source": "review"}, {"sort": "amount", "order": "desc"},
                                     {"sort": "amount", "amount_min": "50"}])
def test_the_item_tables_first_and_deep_pages_search_indexes(busy, filters):
    dataset = busy["dataset"]
    query = item_table.parse_query(dataset, filters)
    first, statements = capture(lambda: item_table.table_page(dataset, query, 20))
    assert first.items and full_scans(statements) == []
    if not query.filtered:  # the dataset's size, from the (dataset, row_number) index
        assert first.matching == ITEMS
    pages, after = 1, first.next_after
    while after is not None and pages < 8:  # a deep page: from the key of the row before it
        page, statements = capture(lambda: item_table.table_page(
            dataset, item_table.parse_query(dataset, {**filters, "after": _after(after)}), 20))
        assert full_scans(statements) == [] and page.matching is None
        pages, after = pages + 1, page.next_after
    if not filters:
        assert pages == 8


def _every_page(dataset, filters, per_page=200):
    """(ids of every page of the item table for ``filters``, in order; the plan lines of its row queries)."""
    rows, plans, after = [], [], None
    while True:
        query = item_table.parse_query(dataset, {**filters, **({"after": _after(after)} if after else {})})
        page, statements = capture(lambda: item_table.table_page(dataset, query, per_page))
        rows += [item.id for item in page.items]
        plans += [line for sql, params in statements if 'ORDER BY +"t1"."row_number"' in sql
                  or 'ORDER BY "t1"."row_number"' in sql for line in sqlite_plan(sql, params)]
        if page.next_after is None:
            return rows, plans
        after = page.next_after


@pytest.mark.parametrize("filters", [{"amount_min": "20", "amount_max": "200"}, {"label": "fraud"}])
def test_a_filter_in_row_order_reads_few_matches_from_its_index_and_walks_the_rows_for_many(busy, monkeypatch,
                                                                                           filters):
    """Up to COUNT_LIMIT matches are read through the filter's own index and sorted; beyond, the pages walk row
    order and test each row (an amount index read a million matches and sorted them at 10 million rows; the
    row walk went through two million rows for 20 frauds): the same rows either way."""
    dataset = busy["dataset"]
    few, few_plans = _every_page(dataset, filters)
    monkeypatch.setattr(item_table, "COUNT_LIMIT", 50)
    many, many_plans = _every_page(dataset, filters)
    assert len(few) > 200 and many == few
    assert any("USE TEMP B-TREE FOR ORDER BY" in line for line in few_plans)
    assert not any("item_dataset_id_row_number" in line for line in few_plans)
    assert not any("USE TEMP B-TREE" in line for line in many_plans)
    assert any("item_dataset_id_row_number" in line for line in many_plans)


def _after(key):
    return f"{'' if key[0] is None else repr(key[0])},{key[1]}"


def test_the_apis_labels_pull_after_a_cursor_searches_indexes(busy, plans_app):
    dataset, client = busy["dataset"], plans_app.test_client()
    token = tokens.create_token(busy["analysts"][0], "plans", ["read"])[1]
    cursor = Label.select(Label.id).order_by(Label.id).limit(1).offset(40).scalar()
    reply, statements = capture(lambda: client.get(f"/api/v1/datasets/{dataset.name}/labels?after={cursor}&limit=10",
                                                   headers={"Authorization": f"Bearer {token}"}))
    assert reply.status_code == 200 and len(reply.get_json()["labels"]) == 10
    assert full_scans(statements) == []


def test_the_review_queue_and_its_count_search_indexes(busy):
    dataset = busy["dataset"]
    count, statements = capture(lambda: review.waiting_count(dataset))
    assert count == len(review.waiting(dataset, limit=None)) > 0
    assert full_scans(statements) == []
    assert "sqlite_autoindex_standing_count_1" in indexes_used(statements)
    (item_id, _), = review.waiting(dataset, limit=1)
    view, statements = capture(lambda: review.item_review(dataset, item_id))
    assert view["why"] == review.DISPUTED and full_scans(statements) == []


def request_paths(busy, client):
    """(name, function) of every request path above, for tests/test_postgres.py: the header, three labels with
    the next item leased, an undo, the item table's first and a deep page (unfiltered, by label, by amount), the
    API's labels pull after a cursor, the review queue's count and an item's review."""
    dataset, ana = busy["dataset"], busy["analysts"][0]
    token = tokens.create_token(ana, "plans", ["read"])[1]
    cursor = Label.select(Label.id).order_by(Label.id).limit(1).offset(40).scalar()

    def label_three():
        lease = leases.next_item(dataset, ana)
        for _ in range(3):
            lease = decisions.decide(dataset, ana, lease.item_id, "label:fraud")[1]

    def deep_page(filters):
        after = item_table.table_page(dataset, item_table.parse_query(dataset, filters), 20).next_after
        return item_table.table_page(dataset, item_table.parse_query(dataset, {**filters, "after": _after(after)}), 20)

    paths = [("header", lambda: dataset_status(dataset)), ("label and lease", label_three),
             ("undo", lambda: decisions.undo(dataset, ana))]
    for filters in ({}, {"label": "fraud"}, {"sort": "amount", "order": "desc"}):
        paths += [(f"first page {filters}", lambda f=filters: item_table.table_page(
                      dataset, item_table.parse_query(dataset, f), 20)),
                  (f"deep page {filters}", lambda f=filters: deep_page(f))]
    return paths + [
        ("labels pull", lambda: client.get(f"/api/v1/datasets/{dataset.name}/labels?after={cursor}&limit=10",
                                           headers={"Authorization": f"Bearer {token}"})),
        ("review count", lambda: review.waiting_count(dataset)),
        ("review item", lambda: review.item_review(dataset, review.waiting(dataset, limit=1)[0][0]))]
