"""The store on a real PostgreSQL server: import (the COPY path), labels, undo, export, pages, and a
failed import that must leave nothing behind.

Runs when LABELER_TEST_POSTGRES_URL names a server whose role may create databases (scripts/test.sh starts a
throwaway one); every test works in a scratch database of its own, dropped afterwards.
"""
import csv
import re
import threading

import numpy as np
import pytest
from peewee import IntegrityError, PostgresqlDatabase, fn

from labeler.cli import register_commands
from labeler.data import importer, push as push_module
from labeler.data.datasets import label_counts
from labeler.data.importer import ImportFailed, import_file
from labeler.data.push import push_rows
from labeler.data.users import create_user
from labeler.labeling import decisions, leases
from labeler.store.artifacts import feature_stats
from labeler.store.db import (Dataset, GroundTruth, Item, Job, Label, ModelVersion, PrequentialScore, QueueEntry,
                              Standing, StandingCount, database, in_write_transaction)
from labeler.web import create_app
from labeler.worker import jobs
from labeler.worker.retrain import retrain
from tests.conftest import PASSWORD, login
from tests.test_append_outside_lock import as_objects
from tests.test_import import store_snapshot
from tests.test_prepared import check_prepared_queries_match_peewee
from tests.test_retraining import label_truth, truth_of
from tests.test_transactions import ROLES, card_c0_first, vectors, write

HEADER = '"tx","merchant","V1","V2","Class"\n'


def _rows(n, start=0):
    return "".join(f'T{i},"shop {i % 3}",{i}.5,{-i * 2},"{int(i % 7 == 0)}"\n' for i in range(start, start + n))


@pytest.fixture
def pg_app(tmp_path, postgres_url):
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE": postgres_url,
                      "TASK_QUEUE": str(tmp_path / "queue.sqlite3"), "MODEL_FOLDER": str(tmp_path / "models")})
    register_commands(app)
    database.connect(reuse_if_open=True)
    yield app


def test_the_store_is_postgresql(pg_app):
    assert isinstance(database.obj, PostgresqlDatabase)
    assert database.param == "%s"


def test_import_label_undo_and_export(pg_app, tmp_path, monkeypatch):
    monkeypatch.setattr("labeler.data.importer.PG_ROWS_PER_COPY", 4)  # several COPY statements per chunk
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + _rows(30), encoding="utf-8")
    result = import_file(str(path), "cc", label_column="Class", id_column="tx", chunk_rows=7)
    dataset = result.dataset
    assert (result.created, result.rows_added) == (True, 30)
    shops = ["merchant = shop 0", "merchant = shop 1", "merchant = shop 2", "merchant = (other)"]
    assert (dataset.columns, dataset.text_columns, dataset.feature_columns) == (
        ["merchant", "V1", "V2"], ["merchant"], ["V1", "V2", *shops])  # a repeating text column is categorical
    items = list(dataset.items().order_by(Item.row_number))
    assert [i.external_id for i in items] == [f"T{n}" for n in range(30)]
    assert np.array_equal(np.stack([i.feature_vector for i in items]),
                          np.array([[n + 0.5, -2 * n, n % 3 == 0, n % 3 == 1, n % 3 == 2, 0] for n in range(30)],
                                   dtype=np.float32))
    assert items[4].display_values(dataset) == ["shop 1", "4.5", "-8"]
    truth = dict(GroundTruth.select(Item.external_id, GroundTruth.value).join(Item).tuples())
    assert len(truth) == 30 and sorted(k for k, v in truth.items() if v == "fraud") == ["T0", "T14", "T21", "T28", "T7"]
    estimates = dict(database.execute_sql("SELECT relname, reltuples FROM pg_class WHERE relname IN "
                                          "('item', 'ground_truth')").fetchall())
    assert estimates == {"item": 30, "ground_truth": 30}  # analyzed after the import: the planner knows the sizes

    assert import_file(str(path), "cc").rows_added == 0
    path.write_text(HEADER + _rows(35), encoding="utf-8")
    assert import_file(str(path), "cc", chunk_rows=7).rows_added == 5
    assert [i.row_number for i in dataset.items().order_by(Item.row_number)] == list(range(35))

    with pytest.raises(IntegrityError):
        with database.atomic():
            Item.create(dataset=dataset, external_id="T1", row_number=99, numbers=b"", features=b"")

    ana = create_user("ana", PASSWORD, "analyst")
    Label.create(item=items[1], value="fraud", annotator=ana)
    mistake = Label.create(item=items[2], value="fraud", annotator=ana)
    Label.create(item=items[2], kind="undo", retracts=mistake, annotator=ana)
    Label.create(item=items[3], value="genuine", source="pseudo")

    runner = pg_app.test_cli_runner()
    out = tmp_path / "labels.csv"
    exported = runner.invoke(args=["export", "--dataset", "cc", "--out", str(out), "--include-pseudo"])
    assert exported.exit_code == 0, exported.output
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["merchant"], r["V1"], r["label"], r["decided_by"], r["source"]) for r in rows] == [
        ("T1", "shop 1", "1.5", "fraud", "ana", "human"), ("T3", "shop 0", "3.5", "genuine", "", "pseudo")]

    client = pg_app.test_client()
    login(client, "ana")
    html = client.get("/datasets/cc").get_data(as_text=True)
    assert "shop 2" in html and "Class" not in html


def test_failed_import_leaves_postgres_unchanged(pg_app, tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + _rows(10), encoding="utf-8")
    import_file(str(path), "cc", label_column="Class", id_column="tx")
    before = store_snapshot()
    path.write_text(HEADER + _rows(20, start=10) + 'T30,"x",1,oops,"0"\n', encoding="utf-8")
    with pytest.raises(ImportFailed, match="line 22, column 'V2': 'oops' is not a number"):
        import_file(str(path), "cc", chunk_rows=5)
    assert store_snapshot() == before
    assert Dataset.select().count() == 1 and Item.select().count() == 10


def test_prepared_queries_return_what_peewee_returns_on_postgresql(pg_app, tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + _rows(10), encoding="utf-8")
    dataset = import_file(str(path), "cc", label_column="Class", id_column="tx").dataset
    check_prepared_queries_match_peewee(dataset, create_user("ana", PASSWORD))


def test_an_id_repeated_in_a_later_chunk_fails_the_copy_and_is_named(pg_app, tmp_path):
    """The (dataset, external_id) index refuses a COPY holding an id of an earlier chunk; the import names its line
    and the store keeps nothing of it."""
    before = store_snapshot()
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + _rows(12) + _rows(1, start=3), encoding="utf-8")
    with pytest.raises(ImportFailed, match="line 14, column 'tx': duplicate id 'T3' in the file"):
        import_file(str(path), "cc", label_column="Class", id_column="tx", chunk_rows=5)
    assert store_snapshot() == before


def test_refill_labeling_and_the_retrain_trigger(pg_app, small_csv):
    """The queue refill job, leases and decisions, and the retrain trigger's hand-written SQL on PostgreSQL."""
    dataset = import_file(small_csv, "cc", label_column="Class").dataset
    ana = create_user("ana", PASSWORD, "analyst")
    assert leases.next_item(dataset, ana) is None  # no queue yet: the worker is asked for one
    job = leases.preparing(dataset)
    assert job is not None and job.kind == jobs.REFILL
    assert jobs.run_queued(pg_app.extensions["labeler.config"], dataset) == {job.id: "done"}
    queued = QueueEntry.select().where(QueueEntry.dataset == dataset).count()
    assert queued > 0  # and the planner counts them (the refill analyzed the table), not the empty table's rows
    assert database.execute_sql("SELECT reltuples FROM pg_class WHERE relname = 'queue_entry'").fetchone()[0] == queued
    assert feature_stats(dataset)[2] == Item.select().where(Item.dataset == dataset).count()

    dataset.settings = {**(dataset.settings or {}), "retrain_every": 3}
    Dataset.update(settings=dataset.settings).where(Dataset.id == dataset.id).execute()
    lease = leases.next_item(dataset, ana)
    labeled = []
    for value in ("genuine", "genuine", "fraud"):  # the fraud comes with the third: "3 new labels", no sooner
        assert jobs.latest(dataset, jobs.RETRAIN) is None
        labeled.append(lease.item_id)
        outcome, lease = decisions.decide(dataset, ana, lease.item_id, f"label:{value}")
        assert outcome.kind == "recorded"
    retrain = jobs.latest(dataset, jobs.RETRAIN)
    assert (retrain.state, retrain.payload["reason"]) == ("queued", "3 new labels")
    outcome, following = decisions.undo(dataset, ana)
    assert outcome.kind == "undone" and following.item_id == labeled[-1]
    assert {label.item_id: label.value for label in Label.effective(dataset)} == {
        labeled[0]: "genuine", labeled[1]: "genuine"}
    assert Job.select().where(Job.kind == jobs.RETRAIN).count() == 1

    client = pg_app.test_client()
    login(client, "ana")
    html = client.get("/datasets/cc/label").get_data(as_text=True)
    assert f'data-item-id="{labeled[-1]}"' in html and "retrain queued" in html

    # the retrain done: a fraud found in the table is the first that stands, and a retrain is queued at once
    Job.update(state="done", payload={**retrain.payload, "watermark": Label.select(fn.MAX(Label.id)).scalar()}).where(
        Job.id == retrain.id).execute()
    found = (Item.select().where((Item.dataset == dataset) & Item.id.not_in(labeled)).order_by(Item.id.desc()).first())
    outcome = decisions.label_found(dataset, ana, found.id, "fraud", reason="card testing")
    assert (outcome.kind, outcome.label.strategy) == ("recorded", decisions.FOUND)
    assert jobs.latest(dataset, jobs.RETRAIN).payload["reason"] == "the first fraud label"


def test_raw_transactions_with_their_roles_and_a_run_decision(pg_app, tmp_path):
    """Schema 8 on PostgreSQL: times, cards and the history features stored, the card's history read through
    its index, the merchants' codes, and one decision for a run of the card, undone at once."""
    import gzip

    from labeler.labeling import decisions, leases
    from labeler.labeling.history import card_history
    from labeler.store.pool import groups_of, load_pool
    from labeler.worker import jobs
    from tests.conftest import ROOT
    with gzip.open(f"{ROOT}/data/transactions_sample.csv.gz", "rt", encoding="utf-8") as stream:
        lines = stream.read().splitlines()[:1501]
    path = tmp_path / "tx.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = import_file(str(path), "tx", label_column="is_fraud", id_column="transaction_id",
                          time_column="timestamp", entity_columns=["card_id", "merchant_id"],
                          ignore=["scenario"]).dataset
    assert "card_id: transactions in 7d" in dataset.feature_columns
    ids, X = load_pool(dataset)
    assert X.shape == (1500, dataset.n_features) and len(set(groups_of(dataset, ids)[0].tolist())) > 100
    jobs.request(dataset, jobs.REFILL, "test")
    assert set(jobs.run_queued(pg_app.extensions["labeler.config"], dataset).values()) == {"done"}
    ana = create_user("ana", PASSWORD, "analyst")
    lease = leases.next_item(dataset, ana)
    item = Item.get_by_id(lease.item_id)
    history = card_history(dataset, item)
    assert history["rows"] and sum(row["current"] for row in history["rows"]) == 1
    later = (Item.select().where((Item.dataset == dataset) & (Item.entity == item.entity)
                                 & (Item.event_time > item.event_time)).order_by(Item.event_time).first())
    assert later is not None  # (the seeded queue's first item is not its card's last transaction)
    outcome, _ = decisions.decide_run(dataset, ana, item.id, "label:fraud", later.id)
    assert outcome.kind == "recorded"
    assert Label.select().where(Label.bulk_of == outcome.label.id).count() == 1
    undone, _ = decisions.undo(dataset, ana)
    assert undone.kind == "undone" and Label.effective(dataset).count() == 0


def test_two_analysts_racing_for_one_card_never_hold_it_both(pg_app, tmp_path):
    """Ana leases a transaction of card C0 and her transaction stays open; Bob asks meanwhile. Without the lock
    on the card, Bob's check would not see Ana's uncommitted lease and he would get C0's next transaction; with
    it he waits for her commit and gets card C1's."""
    import threading

    from labeler.store.db import write_transaction
    from labeler.store.settings import labeling_settings
    dataset, card = card_c0_first(tmp_path, lambda dataset: jobs.run_queued(pg_app.extensions["labeler.config"],
                                                                            dataset))
    ana, bob = create_user("ana", PASSWORD, "analyst"), create_user("bob", PASSWORD, "analyst")
    settings = labeling_settings(dataset)
    ana_leased, bob_asked = threading.Event(), threading.Event()
    got = {}

    def ana_holds_her_transaction_open():
        with database.connection_context(), write_transaction():
            got["ana"], _ = leases.next_lease(dataset, ana, settings, leases.utcnow())
            ana_leased.set()
            bob_asked.wait(10)
            threading.Event().wait(1.0)  # Bob is now inside his own lease, waiting or (without the lock) done

    def bob_asks():
        ana_leased.wait(10)
        with database.connection_context():
            bob_asked.set()
            got["bob"] = leases.next_item(dataset, bob)

    threads = [threading.Thread(target=ana_holds_her_transaction_open), threading.Thread(target=bob_asks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert card[got["ana"].item_id] == "C0"
    assert got["bob"] is not None and card[got["bob"].item_id] == "C1"


def test_the_standing_label_rule_review_and_the_role_migration(pg_app, tmp_path):
    from labeler.data import exporter
    from labeler.labeling import review
    from labeler.store.db import ROLE_CHECK, SchemaVersion, User
    from labeler.store.migrations import upgrade

    path = tmp_path / "tx.csv"
    path.write_text(HEADER + _rows(10), encoding="utf-8")
    dataset = import_file(str(path), "cc", label_column="Class", id_column="tx").dataset
    items = list(dataset.items().order_by(Item.row_number))
    ana, bob = create_user("ana", PASSWORD, "analyst"), create_user("bob", PASSWORD, "analyst")
    for item, first, second in ((items[0], "fraud", "genuine"), (items[1], "fraud", "fraud")):
        Label.create(item=item, value=first, annotator=ana)
        Label.create(item=item, value=second, annotator=bob)
    Standing.refresh([items[0].id, items[1].id])  # what the labeling code does in the transaction of each write
    assert {label.item_id: label.value for label in Label.effective(dataset)} == {items[1].id: "fraud"}
    assert review.waiting(dataset) == [(items[0].id, review.DISPUTED)]

    # a store from before schema 11: the role CHECK without 'reviewer'
    database.execute_sql('ALTER TABLE "user" DROP CONSTRAINT "user_role_check"')
    database.execute_sql('''ALTER TABLE "user" ADD CONSTRAINT "user_role_check" CHECK (role IN ('admin', 'analyst'))''')
    with pytest.raises(IntegrityError, match="user_role_check"):
        with database.atomic():
            User.create(name="rita", password_hash="x", role="reviewer")
    SchemaVersion.delete().where(SchemaVersion.version >= 11).execute()
    assert upgrade() == [11, 12, 13, 14, 15, 16, 17, 18, 19] and "reviewer" in ROLE_CHECK
    rita = create_user("rita", PASSWORD, "reviewer")

    label, refused = review.adjudicate(dataset, rita, items[0].id, "genuine")
    assert refused is None
    assert {row.item_id: row.value for row in Label.effective(dataset)} == {items[0].id: "genuine", items[1].id: "fraud"}
    out = tmp_path / "labels.csv"
    assert exporter.export(dataset, str(out)) == 2
    with open(out, newline="", encoding="utf-8") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert (rows["T0"]["label"], rows["T0"]["standing"], rows["T0"]["decided_by"]) == ("genuine", "adjudicated", "rita")
    assert (rows["T1"]["standing"], rows["T1"]["decided_by"], rows["T1"]["answers"]) == ("agreed", "ana;bob", "2")


def test_the_pool_copy_on_postgresql(pg_app, tmp_path):
    from labeler.store.db import PoolCopy
    from labeler.store.pool import load_pool

    path = tmp_path / "tx.csv"
    path.write_text(HEADER + _rows(20), encoding="utf-8")
    dataset = import_file(str(path), "cc", label_column="Class", id_column="tx").dataset
    folder = str(tmp_path / "models")
    built = load_pool(dataset, folder)
    path.write_text(HEADER + _rows(30), encoding="utf-8")
    assert import_file(str(path), "cc").rows_added == 10
    grown = load_pool(dataset, folder)
    ids, features = load_pool(dataset)
    assert np.array_equal(grown[0], ids) and np.array_equal(grown[1], features)
    assert np.array_equal(grown[1][:20], built[1]) and PoolCopy.get(PoolCopy.dataset == dataset).rows == 30


# On tables of a few hundred rows PostgreSQL rightly prefers reading them whole (and joining by hash or merge,
# which read both sides whole); with these off it shows the index plan it would take at scale, if it has one.
PLANNER_OFF = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin")


def _pg_walks(sql, params):
    """The nodes of PostgreSQL's plan for ``sql`` (under PLANNER_OFF) that read a hot table whole: a Seq Scan,
    an index scan with no Index Cond, or one whose condition is on few-valued columns only
    (tests.test_query_plans.LOW_CARDINALITY)."""
    from tests.test_query_plans import HOT, LOW_CARDINALITY
    lines = [row[0] for row in database.execute_sql(f"EXPLAIN {sql}", params).fetchall()]
    walks = []
    nodes = [index for index, line in enumerate(lines) if index == 0 or "->" in line] + [len(lines)]
    for start, end in zip(nodes, nodes[1:]):
        node = lines[start]
        scan = re.search(r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)?"
                         r"(?: using (\w+))? on (\w+)", node)
        if scan is None:
            continue
        kind, index, table = scan.groups()
        table = table if kind != "Bitmap Index Scan" else next((name for name in HOT if table.startswith(name + "_")),
                                                               table)
        if table not in HOT:
            continue
        condition = " ".join(line for line in lines[start + 1:end] if "Index Cond" in line)
        columns = set(re.findall(r"(\w+)\)?(?:::\w+(?: \w+)*)?\)? (?:=|<|>|<=|>=) ", condition))
        if kind == "Seq Scan" or not condition or columns <= LOW_CARDINALITY:
            walks.append((table, node.strip(), condition.strip()))
    return walks


def test_the_hot_request_paths_plan_index_searches(pg_app):
    """tests/test_query_plans.py's request paths on PostgreSQL: every statement they send is EXPLAINed (after an
    ANALYZE, under PLANNER_OFF), and none reads the item, label, queue_entry or standing table whole."""
    from tests.test_query_plans import busy_store, capture, request_paths

    busy = busy_store()
    database.execute_sql("ANALYZE")  # as autovacuum would: the planner knows how few rows each source has
    client = pg_app.test_client()
    for name, run in request_paths(busy, client):
        _, statements = capture(run)
        assert statements, name
        for setting in PLANNER_OFF:
            database.execute_sql(f"SET {setting} = off")
        try:
            walks = [(walk, sql) for sql, params in statements for walk in _pg_walks(sql, params)]
        finally:
            for setting in PLANNER_OFF:
                database.execute_sql(f"RESET {setting}")
        assert walks == [], (name, [walk for walk, _ in walks])
    indexes = {row[0] for row in database.execute_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'standing'")}
    assert {"standing_dataset_id_state_value", "standing_dataset_id_state_item_id"} <= indexes


def test_the_prequential_record_across_retrains_on_postgresql(pg_app, small_csv, tmp_path):
    """Labels given through the screen carry the serving version; the next retrain records each item's pair of
    scores from that version's files (labeler.worker.prequential's queries on PostgreSQL) and reports them."""
    dataset = import_file(small_csv, "cc", label_column="Class").dataset
    dataset.settings = {**(dataset.settings or {}), "cv_repeats": 1}
    Dataset.update(settings=dataset.settings).where(Dataset.id == dataset.id).execute()
    ana = create_user("ana", PASSWORD, "analyst")
    label_truth(dataset, ana, frauds=20, genuine=200)
    first = ModelVersion.get_by_id(retrain(dataset, str(tmp_path))["model_version"])
    assert first.serving and first.counterpart_path is not None
    truth = truth_of(dataset)
    lease = leases.next_item(dataset, ana)
    given = []
    for _ in range(12):
        given.append(lease.item_id)
        outcome, lease = decisions.decide(dataset, ana, lease.item_id, f"label:{truth[lease.item_id]}")
        assert outcome.kind == "recorded"
    second = ModelVersion.get_by_id(retrain(dataset, str(tmp_path))["model_version"])
    rows = list(PrequentialScore.select().where(PrequentialScore.dataset == dataset))
    assert sorted(row.item_id for row in rows) == sorted(given) and {row.model_version for row in rows} == {first.id}
    assert second.metrics["prequential"]["labels"] == len(given)


def test_a_deadlock_victim_is_run_again_and_both_transactions_land(pg_app, small_csv):
    """Two transactions that take two count rows in opposite orders deadlock (as two decisions did, each holding
    a row the other wanted); PostgreSQL aborts one, in_write_transaction rolls it back and runs it again (up to
    three attempts in all), and both increments land."""
    dataset = import_file(small_csv, "cc", label_column="Class").dataset
    for value in ("x", "y"):
        StandingCount.create(dataset=dataset, state="agreed", value=value, items=0)
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts = []

    def add(first, second):
        def work():
            attempts.append(first)
            for value in (first, second):
                StandingCount.update(items=StandingCount.items + 1).where(
                    (StandingCount.dataset == dataset) & (StandingCount.value == value)).execute()
                if attempts.count(first) == 1 and value == first:
                    both_hold_one.wait()  # the first attempts only: each holds one row and asks for the other
            return first

        database.connect(reuse_if_open=True)
        try:
            results.append(in_write_transaction(work))
        finally:
            database.close()

    results = []
    threads = [threading.Thread(target=add, args=pair) for pair in (("x", "y"), ("y", "x"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # a victim, run again (its retry can take the row it lost before the survivor does and deadlock once more,
    # as one run of 2026-12-03 showed: attempts x, y, y, y)
    assert sorted(results) == ["x", "y"] and len(attempts) >= 3
    assert {row.value: row.items for row in StandingCount.select().where(StandingCount.dataset == dataset)} == {
        "x": 2, "y": 2}


def test_a_decision_locks_the_label_counts_only_at_its_end(pg_app, small_csv, monkeypatch):
    """While a decision's transaction takes the next lease, the count rows it will update are not locked yet:
    another connection locks them without waiting (before, the decision held them across the rest of its
    transaction, and two decisions deadlocked). The count lands at the end."""
    dataset = import_file(small_csv, "cc", label_column="Class").dataset
    ana = create_user("ana", PASSWORD, "analyst")
    jobs.request(dataset, jobs.REFILL, "test")
    assert set(jobs.run_queued(pg_app.extensions["labeler.config"], dataset).values()) == {"done"}
    lease = leases.next_item(dataset, ana)
    outcome, lease = decisions.decide(dataset, ana, lease.item_id, "label:genuine")
    assert outcome.kind == "recorded" and label_counts(dataset) == {"genuine": 1}  # the count row exists
    in_next_lease, checked = threading.Event(), threading.Event()
    shipped = decisions.next_lease

    def next_lease(*args):
        in_next_lease.set()
        assert checked.wait(30)
        return shipped(*args)

    monkeypatch.setattr(decisions, "next_lease", next_lease)
    results = []

    def decide():
        database.connect(reuse_if_open=True)
        try:
            results.append(decisions.decide(dataset, ana, lease.item_id, "label:genuine")[0].kind)
        finally:
            database.close()

    thread = threading.Thread(target=decide)
    thread.start()
    try:
        assert in_next_lease.wait(30)  # the decision has recorded its label and now takes the next lease
        with database.atomic():
            locked = database.execute_sql(
                f'SELECT "items" FROM "{StandingCount._meta.table_name}" WHERE "dataset_id" = %s FOR UPDATE NOWAIT',
                (dataset.id,)).fetchall()
        assert locked == [(1,)]  # not held by the decision, and its change not yet written
    finally:
        checked.set()
        thread.join(60)
    assert results == ["recorded"]
    assert label_counts(dataset) == {"genuine": 2}


def test_two_pushes_into_one_dataset_at_once_both_land(pg_app, tmp_path, sample_lines, monkeypatch):
    """Two API pushes into one dataset from two connections (two web processes), the second written while the
    first one writes: the second waits for the first (before, both numbered their rows from the same pool size and
    the second failed on the row-number index), then computes its card history again, and both land whole."""
    header, rows = sample_lines[0], sample_lines[1:1601]
    import_file(write(tmp_path, "first.csv", [header, *rows[:1000]]), "pushed", **ROLES)
    dataset = Dataset.get(Dataset.name == "pushed")
    pusher = create_user("pusher", PASSWORD, "admin")
    first_writes, second_writes = threading.Event(), threading.Event()
    shipped = push_module.write_append

    def write_append(prepared):
        if not first_writes.is_set():
            first_writes.set()
            second_writes.wait(3)  # it never comes while this one holds the dataset's appends
        else:
            second_writes.set()
        return shipped(prepared)

    results, errors = [], []

    def push(batch):
        database.connect(reuse_if_open=True)
        try:
            results.append(push_rows(dataset, as_objects(header, batch), pusher))
        except Exception as error:  # noqa: BLE001 -- the assertion below names it
            errors.append(repr(error))
        finally:
            database.close()

    monkeypatch.setattr(push_module, "write_append", write_append)
    first = threading.Thread(target=push, args=(rows[1000:1300],))
    first.start()
    assert first_writes.wait(60)
    second = threading.Thread(target=push, args=(rows[1300:1600],))
    second.start()
    for thread in (first, second):
        thread.join(120)
    assert errors == [] and [result.rows_added for result in results] == [300, 300]
    numbers = sorted(row for (row,) in Item.select(Item.row_number).where(Item.dataset == dataset).tuples())
    assert numbers == list(range(1600))
    import_file(write(tmp_path, "first.csv", [header, *rows[:1000]]), "serial", **ROLES)
    for part, batch in enumerate((rows[1000:1300], rows[1300:1600])):  # the same appends, one after the other
        import_file(write(tmp_path, f"part{part}.csv", [header, *batch]), "serial", ignore=["scenario"])
    _, expected = vectors(Dataset.get(Dataset.name == "serial"))
    _, got = vectors(Dataset.get(Dataset.name == "pushed"))
    assert set(got) == set(expected) and all(np.array_equal(got[key], expected[key]) for key in expected)


def test_two_imports_creating_one_dataset_at_once_the_second_is_told_why(pg_app, tmp_path, monkeypatch):
    """Two imports create the same new dataset from two connections (two workers): the first lands, the second is
    refused in one line that says what happened and what to do, and leaves nothing behind (before, it failed with
    the driver's unique-violation message)."""
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + _rows(50), encoding="utf-8")
    first_created, second_looked = threading.Event(), threading.Event()
    shipped = importer.check_dataset_name

    def check_dataset_name(name):  # called once an import has found no dataset of that name
        if first_created.is_set():
            second_looked.set()
        return shipped(name)

    monkeypatch.setattr(importer, "check_dataset_name", check_dataset_name)

    def progress(done, total):  # the first import has created the dataset, not committed it
        first_created.set()
        assert second_looked.wait(30)

    errors = []

    def second():
        assert first_created.wait(30)
        database.connect(reuse_if_open=True)
        try:
            import_file(str(path), "cc", label_column="Class", id_column="tx")
        except ImportFailed as error:
            errors.append(str(error))
        finally:
            database.close()

    thread = threading.Thread(target=second)
    thread.start()
    result = import_file(str(path), "cc", label_column="Class", id_column="tx", progress=progress)
    thread.join(60)
    assert (result.created, result.rows_added) == (True, 50)
    assert errors == ["tx.csv: dataset 'cc' was created by another import meanwhile; import the file again to "
                      "append to it"]
    assert Dataset.select().count() == 1 and Item.select().count() == 50
