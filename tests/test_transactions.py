"""Raw transactions at import (issue 14): column roles (time, entities, categorical, amount, id-like), their
features stored with the pool, history without look-ahead across appends, and bad values refused in one line."""

import numpy as np
import pytest

from labeler.data.importer import ImportFailed, import_file
from labeler.data.transactions import CATEGORY_LIMIT
from labeler.store.db import Dataset, Item
from models import features
from models.weak import NativeCategories
from tests.test_import import store_snapshot

ROLES = {"time_column": "timestamp", "entity_columns": ["card_id", "merchant_id"], "label_column": "is_fraud",
         "id_column": "transaction_id", "ignore": ["scenario"]}


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def vectors(dataset):
    rows = {item.external_id: item for item in dataset.items()}
    return rows, {external_id: item.feature_vector for external_id, item in rows.items()}


def test_roles_are_detected_and_recorded(app, sample_lines, tmp_path):
    path = write(tmp_path, "tx.csv", sample_lines[:3001])
    result = import_file(path, "tx", **ROLES)
    dataset = result.dataset
    assert dataset.roles["time"] == "timestamp" and dataset.roles["entities"] == ["card_id", "merchant_id"]
    assert dataset.roles["amount"] == "amount" and dataset.roles["numeric"] == ["amount"]
    assert set(dataset.roles["categorical"]) == {"channel", "merchant_category", "country"}
    assert "scenario" not in dataset.columns and "is_fraud" not in dataset.columns
    assert not any(name.startswith(("card_id =", "transaction_id")) for name in dataset.feature_columns)
    assert dataset.feature_columns[:3] == ["amount", "channel = card_present", "channel = card_not_present"]
    assert "card_id: transactions in 7d" in dataset.feature_columns
    assert result.notes[-1].startswith("Roles: time 'timestamp'; entities 'card_id', 'merchant_id'; amount 'amount'")
    item = Item.get(Item.external_id == "tx00000001")
    assert item.entity == "4000461" and item.event_time == 1522541501.0  # 2018-04-01T00:11:41Z


def test_a_numeric_card_id_is_never_a_feature_even_without_roles(app, tmp_path):
    lines = ["card_id,amount,hour"] + [f"{4000000 + n % 7},{n * 1.5},{n % 24}" for n in range(40)]
    dataset = import_file(write(tmp_path, "plain.csv", lines), "plain").dataset
    assert dataset.feature_columns == ["amount", "hour"] and dataset.roles["id_like"] == ["card_id"]
    assert dataset.columns == ["card_id", "amount", "hour"]


def test_history_features_match_the_feature_pipeline_on_the_whole_file(app, sample_lines, tmp_path):
    """Stored vectors hold, after the row features, exactly what models.features gives on the file's columns."""
    import pandas as pd
    path = write(tmp_path, "tx.csv", sample_lines[:4001])
    dataset = import_file(path, "tx", **ROLES).dataset
    frame = pd.read_csv(path, dtype={"card_id": str})
    seconds = ((pd.to_datetime(frame["timestamp"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    expected, names = features.entity_features(seconds, [("card_id", frame["card_id"].to_numpy()),
                                                         ("merchant_id", frame["merchant_id"].to_numpy())],
                                               frame["amount"].to_numpy())
    assert dataset.feature_columns[-len(names):] == names
    _, stored = vectors(dataset)
    matrix = np.stack([stored[tx] for tx in frame["transaction_id"]])[:, -len(names):]
    np.testing.assert_allclose(matrix, expected, rtol=1e-6)


def test_an_append_sees_the_stored_history_and_a_late_arrival_refreshes_later_rows(app, sample_lines, tmp_path):
    """Importing the file in three parts (the middle part last) stores the same vectors as importing it whole."""
    header, rows = sample_lines[0], sample_lines[1:3001]
    whole = import_file(write(tmp_path, "whole.csv", [header, *rows]), "whole", **ROLES).dataset
    options = {key: value for key, value in ROLES.items() if key != "ignore"}
    import_file(write(tmp_path, "a.csv", [header, *rows[:1000]]), "parts", **ROLES)
    result = import_file(write(tmp_path, "c.csv", [header, *rows[2000:]]), "parts", ignore=["scenario"])
    assert result.rows_added == 1000
    late = import_file(write(tmp_path, "b.csv", [header, *rows[1000:2000]]), "parts", ignore=["scenario"],
                       **{key: options[key] for key in ("time_column", "entity_columns")})
    assert late.rows_added == 1000
    assert any("history features were computed again" in note for note in late.notes)
    parts = Dataset.get(Dataset.name == "parts")
    history = len(whole.feature_columns) - whole.feature_columns.index("card_id: transactions in 1d")
    assert parts.feature_columns[-history:] == whole.feature_columns[-history:]  # (the categories' order may
    _, expected = vectors(whole)                                                  # differ: first chunks differ)
    _, got = vectors(parts)
    assert set(got) == set(expected)
    for external_id, vector in expected.items():
        np.testing.assert_allclose(got[external_id][-history:], vector[-history:], rtol=1e-6, err_msg=external_id)
    again = import_file(write(tmp_path, "b.csv", [header, *rows[1000:2000]]), "parts", ignore=["scenario"])
    assert (again.rows_added, again.rows_skipped) == (0, 1000)
    _, after = vectors(parts)
    assert all(np.array_equal(after[key], got[key]) for key in got)


def test_an_append_reads_only_the_stored_rows_of_the_cards_and_merchants_it_names(app, sample_lines, tmp_path,
                                                                                   monkeypatch):
    """Ten late transactions pushed into 1,990 stored ones: the history is read for their cards and merchants
    only, and every stored vector ends as importing the 2,000 at once gives."""
    import pandas as pd

    from labeler.data import importer
    header, rows = sample_lines[0], sample_lines[1:2001]
    whole = import_file(write(tmp_path, "whole.csv", [header, *rows]), "whole", **ROLES).dataset
    import_file(write(tmp_path, "first.csv", [header, *rows[:1000], *rows[1010:]]), "parts", **ROLES)
    read = []
    original = importer._stored_history
    monkeypatch.setattr(importer, "_stored_history",
                        lambda *args: read.append(original(*args)) or read[-1])
    late = import_file(write(tmp_path, "late.csv", [header, *rows[1000:1010]]), "parts", ignore=["scenario"])
    assert late.rows_added == 10
    pushed = pd.read_csv(write(tmp_path, "late.csv", [header, *rows[1000:1010]]), dtype=str)
    stored = pd.read_csv(write(tmp_path, "first.csv", [header, *rows[:1000], *rows[1010:]]), dtype=str)
    sharing = stored.card_id.isin(pushed.card_id) | stored.merchant_id.isin(pushed.merchant_id)
    assert len(read[0]["ids"]) == sharing.sum() < len(stored) // 2
    history = len(whole.feature_columns) - whole.feature_columns.index("card_id: transactions in 1d")
    _, expected = vectors(whole)
    _, got = vectors(Dataset.get(Dataset.name == "parts"))
    for external_id, vector in expected.items():
        np.testing.assert_allclose(got[external_id][-history:], vector[-history:], rtol=1e-6, err_msg=external_id)


HEADER = "tx,time,card,shop,amount,channel"


@pytest.mark.parametrize("line, fragments", [
    ("T9,yesterday,C1,S1,5.0,pos", ["line 4", "column 'time'", "'yesterday' is not a time"]),
    ("T9,,C1,S1,5.0,pos", ["line 4", "column 'time'", "is missing"]),
    ("T9,2024-05-01T10:00:00Z,,S1,5.0,pos", ["line 4", "column 'card'", "the id is missing"]),
])
def test_a_bad_time_or_entity_is_refused_with_its_line(app, tmp_path, line, fragments):
    good = ["T1,2024-05-01T09:00:00Z,C1,S1,1.0,pos", "T2,1714554000,C2,S2,2.0,web"]
    import_file(write(tmp_path, "ok.csv", [HEADER, *good]), "ok", id_column="tx", time_column="time")
    before = store_snapshot()
    with pytest.raises(ImportFailed) as failure:
        import_file(write(tmp_path, "bad.csv", [HEADER, *good, line]), "new", id_column="tx", time_column="time",
                    entity_columns=["card", "shop"])
    message = str(failure.value)
    assert message.startswith("bad.csv: ") and "\n" not in message
    assert all(fragment in message for fragment in fragments), message
    assert store_snapshot() == before


def test_a_categorical_column_with_too_many_values_is_refused(app, tmp_path):
    lines = ["tx,amount,device"] + [f"T{n},{n},device-{n}" for n in range(CATEGORY_LIMIT + 5)]
    with pytest.raises(ImportFailed, match=r"column 'device': 1,005 distinct values .* too many for a categorical "
                                           r"feature \(at most 1,000\); import without --categorical device"):
        import_file(write(tmp_path, "many.csv", lines), "many", id_column="tx", categorical=["device"])
    assert Dataset.select().count() == 0


def test_appending_with_other_roles_is_refused(app, sample_lines, tmp_path):
    path = write(tmp_path, "tx.csv", sample_lines[:201])
    import_file(path, "tx", **ROLES)
    with pytest.raises(ImportFailed, match="has time column 'timestamp', not 'card_id'"):
        import_file(path, "tx", time_column="card_id", ignore=["scenario"])


def test_an_unseen_category_in_an_append_goes_to_other(app, tmp_path):
    first = ["tx,amount,channel"] + [f"T{n},{n},{'pos' if n % 2 else 'web'}" for n in range(20)]
    dataset = import_file(write(tmp_path, "a.csv", first), "d", id_column="tx").dataset
    assert dataset.feature_columns == ["amount", "channel = pos", "channel = web", "channel = (other)"]
    import_file(write(tmp_path, "b.csv", ["tx,amount,channel", "T99,5,moto"]), "d")
    assert Item.get(Item.external_id == "T99").feature_vector.tolist() == [5.0, 0.0, 0.0, 1.0]


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_screen_shows_the_cards_history_with_readable_times(app, client, analyst, run_jobs, sample_lines,
                                                                tmp_path):
    import re

    from labeler.labeling.history import readable_gap
    from labeler.worker import jobs
    from tests.conftest import login
    dataset = import_file(write(tmp_path, "tx.csv", sample_lines[:3001]), "tx", **ROLES).dataset
    jobs.request(dataset, jobs.REFILL, "test")
    assert set(run_jobs(dataset).values()) == {"done"}
    login(client, "ana")
    page = client.get("/datasets/tx/label").get_data(as_text=True)
    shown = Item.get_by_id(int(re.search(r'data-item-id="(\d+)"', page)[1]))
    history = page[page.index("data-history"):page.index("</section>", page.index("data-history"))]
    panel_start = history.index('<div id="merchant-panel"')
    panel_end = history.index("</div>", panel_start) + len("</div>")
    panel, history = history[panel_start:panel_end], history[:panel_start] + history[panel_end:]
    assert f"This card_id's transactions ({shown.entity})" in history
    rows = re.findall(r"<tr( class=\"current\"[^>]*)?><td>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)</td>"
                      r"<td class=\"muted\">([^<]+)</td>", history)
    same_card = Item.select().where(Item.dataset == dataset, Item.entity == shown.entity, Item.id != shown.id)
    before = same_card.where(Item.event_time <= shown.event_time).count()
    after = same_card.where(Item.event_time > shown.event_time).count()
    assert len(rows) == min(before, 6) + 1 + min(after, 6) and sum(1 for current, _, _ in rows if current) == 1
    assert [gap for current, _, gap in rows if current] == ["this one"]
    assert all(gap.endswith(("earlier", "later", "same second")) for current, _, gap in rows if not current)
    assert "<th>merchant_id</th><th>amount</th><th>channel</th><th>merchant_category</th><th>country</th>" in history
    assert re.search(r"<dt>timestamp</dt><dd>2018-0\d-\d\d \d\d:\d\d:\d\d UTC</dd>", page)
    merchant_rows = re.findall(r"<tr( class=\"current\"[^>]*)?><td>\d{4}-\d\d-\d\d [\d:]+ UTC</td>", panel)
    at_merchant = Item.select().where(Item.dataset == dataset, Item.second_entity == shown.second_entity,
                                      Item.event_time <= shown.event_time).count()
    assert len(merchant_rows) == min(at_merchant, 12) and merchant_rows[0]  # newest first: this one
    assert f"merchant_id {shown.second_entity}: its latest" in panel and "<th>card_id</th>" in panel
    assert [readable_gap(s) for s in (40, 180, 7500, 86400, 4 * 86400)] == ["40 s", "3 min", "2 h 5 min", "1 day",
                                                                         "4 days"]


@pytest.fixture
def card_queue(app, analyst, run_jobs, tmp_path):
    """A dataset of two cards, 12 transactions each, with its queue computed."""
    from labeler.worker import jobs
    lines = [HEADER] + [f"T{n},2024-05-01T{9 + n // 6:02d}:{n % 6 * 7:02d}:00Z,C{n % 2},S{n % 5},{n + 1}.5,"
                        f"{'pos' if n % 3 else 'web'}" for n in range(24)]
    dataset = import_file(write(tmp_path, "cards.csv", lines), "cards", id_column="tx", time_column="time",
                          entity_columns=["card", "shop"]).dataset
    jobs.request(dataset, jobs.REFILL, "test")
    assert set(run_jobs(dataset).values()) == {"done"}
    return dataset


def test_two_analysts_never_hold_transactions_of_one_card_at_once(card_queue, analyst):
    from labeler.data.users import create_user
    from labeler.labeling import leases
    from labeler.store.db import Lease
    from tests.conftest import PASSWORD
    dataset = card_queue
    bob = create_user("bob", PASSWORD, "analyst")
    first = leases.next_item(dataset, analyst)
    second = leases.next_item(dataset, bob)
    assert first is not None and second is not None
    card_of = {item.id: item.entity for item in dataset.items()}
    assert card_of[first.item_id] != card_of[second.item_id]
    carol = create_user("carol", PASSWORD, "analyst")
    assert leases.next_item(dataset, carol) is None  # both cards are held
    assert Lease.select().where(Lease.user == carol.id).count() == 0


def test_one_decision_labels_a_run_of_the_card_and_undo_takes_it_back(card_queue, analyst, client):
    import re

    from labeler.labeling import decisions
    from labeler.store.db import Label
    from tests.conftest import login
    login(client, "ana")
    page = client.get("/datasets/cards/label").get_data(as_text=True)
    shown = Item.get_by_id(int(re.search(r'data-item-id="(\d+)"', page)[1]))
    later = list(Item.select().where(Item.dataset == card_queue, Item.entity == shown.entity,
                                     Item.event_time > shown.event_time).order_by(Item.event_time).limit(6))
    assert later  # (the seeded queue's first item is not its card's last transaction)
    through = re.search(r'name="through" value="(\d+)"', page)[1]
    assert int(through) == later[-1].id
    assert f"and the {len(later)} later one" in page and 'data-key="b"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    reply = client.post(f"/datasets/cards/label/{shown.id}/run", headers={"HX-Request": "true"},
                        data={"decision": "label:fraud", "through": through, "csrf_token": token})
    assert reply.status_code == 200
    assert f"Labeled transaction {shown.external_id} and the {len(later)} later transaction(s) of its card as fraud" \
        in reply.get_data(as_text=True)
    anchor = Label.get((Label.item == shown.id) & (Label.kind == "label"))
    run = list(Label.select().where(Label.bulk_of == anchor.id))
    assert sorted(label.item_id for label in run) == sorted(item.id for item in later)
    assert all(label.value == "fraud" and label.source == "human" and label.annotator_id == analyst.id
               for label in run)
    outcome, _ = decisions.undo(card_queue, analyst)
    assert outcome.kind == "undone" and f"and on the {len(later)} later transaction(s) of its card" in outcome.message
    undone = {label.retracts_id for label in Label.select().where(Label.kind == "undo")}
    assert undone == {anchor.id, *(label.id for label in run)}


def test_a_run_must_end_at_a_later_transaction_of_the_same_card(card_queue, analyst):
    from labeler.labeling import decisions, leases
    from labeler.store.db import Label
    lease = leases.next_item(card_queue, analyst)
    item = Item.get_by_id(lease.item_id)
    other_card = Item.get((Item.dataset == card_queue) & (Item.entity != item.entity))
    before = store_snapshot()
    with pytest.raises(decisions.LabelingError, match="is not a later transaction of the card"):
        decisions.decide_run(card_queue, analyst, item.id, "label:fraud", other_card.id)
    with pytest.raises(decisions.LabelingError, match="takes label:LABEL"):
        decisions.decide_run(card_queue, analyst, item.id, "accept", item.id)
    assert store_snapshot() == before and Label.select().count() == 0
    from labeler.labeling.history import AROUND, card_run
    card = list(Item.select().where(Item.dataset == card_queue, Item.entity == "C0").order_by(Item.event_time))
    assert len(card) == 12
    assert [row.id for row in card_run(card_queue, card[0], card[AROUND])] == [row.id for row in card[1:AROUND + 1]]
    assert card_run(card_queue, card[0], card[AROUND + 1]) is None  # past what the card's history shows
    assert card_run(card_queue, card[3], card[1]) is None  # earlier


def test_the_export_names_labels_of_a_run_bulk(card_queue, analyst, tmp_path):
    import csv

    from labeler.data.exporter import export
    from labeler.labeling import decisions, leases
    lease = leases.next_item(card_queue, analyst)
    item = Item.get_by_id(lease.item_id)
    later = (Item.select().where(Item.dataset == card_queue, Item.entity == item.entity,
                                 Item.event_time > item.event_time).order_by(Item.event_time).offset(1).first())
    decisions.decide_run(card_queue, analyst, item.id, "label:fraud", later.id)
    export(card_queue, str(tmp_path / "out.csv"))
    with open(tmp_path / "out.csv", newline="") as stream:
        rows = {row["id"]: row for row in csv.DictReader(stream)}
    assert rows[item.external_id]["source"] == "human"
    assert rows[later.external_id]["source"] == "bulk" and rows[later.external_id]["label"] == "fraud"


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_retrain_on_raw_transactions_uses_the_merchants_label_rates_and_native_categories(
        app, analyst, run_jobs, sample_lines, tmp_path, monkeypatch):
    from labeler.store.db import GroundTruth, Label, ModelVersion, Standing
    from labeler.store.pool import groups_of, load_pool
    from labeler.worker import jobs
    from models import learner as learner_module
    dataset = import_file(write(tmp_path, "tx.csv", sample_lines[:6001]), "tx", **ROLES).dataset
    truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).tuples())
    frauds = [item for item, value in truth.items() if value == "fraud"][:30]
    genuine = [item for item, value in truth.items() if value == "genuine"][:90]
    for item in frauds + genuine:
        Label.create(item=item, value=truth[item], annotator=analyst, source="human")
    Standing.refresh(frauds + genuine)
    ids, _ = load_pool(dataset)
    codes, times = groups_of(dataset, ids)
    assert np.array_equal(times, [Item.get_by_id(i).event_time for i in ids.tolist()])
    merchants = {item.id: item.display_values(dataset)[dataset.columns.index("merchant_id")] for item in dataset.items()}
    assert len(set(codes.tolist())) == len(set(merchants.values()))
    assert all((codes[i] == codes[j]) == (merchants[a] == merchants[b])
               for i, a in enumerate(ids[:50].tolist()) for j, b in enumerate(ids[:50].tolist()))
    seen = {}
    original = learner_module.ActiveLearner.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen["groups"] = self.groups
        seen["learner"] = self
    monkeypatch.setattr(learner_module.ActiveLearner, "__init__", spy)
    jobs.request(dataset, jobs.RETRAIN, "test")
    assert set(run_jobs(dataset).values()) == {"done"}
    assert np.array_equal(seen["groups"][0], codes) and np.array_equal(seen["groups"][1], times)
    names = dataset.feature_columns
    assert [names[start:stop] for start, stop in seen["learner"].categorical] == [
        [f"{column} = {category}" for category in [*vocabulary, "(other)"]]
        for column, vocabulary in dataset.roles["categorical"].items()]
    boosted = [estimator for estimator in seen["learner"].selected.model.estimators
               if isinstance(estimator, NativeCategories)]
    assert boosted and boosted[0].boosted.is_categorical_.sum() == len(dataset.roles["categorical"])
    assert ModelVersion.select().where(ModelVersion.dataset == dataset).count() == 1


@pytest.mark.parametrize("name, id_like", [("card_id", True), ("CardId", True), ("account number", True),
                                           ("merchant.no", True), ("accountNumber", True), ("paid", False),
                                           ("valid", False), ("casino", False), ("Amount", False)])
def test_id_like_names(name, id_like):
    from labeler.data.transactions import ID_LIKE_NAME
    assert bool(ID_LIKE_NAME.search(name)) is id_like


def card_c0_first(tmp_path, run_jobs):
    """Dataset "cards": card C0's 30 transactions, then C1's 3, with the worker's queue (``run_jobs(dataset)``
    runs it) reordered so that every C0 entry comes first. Returns (dataset, {item id: card})."""
    from labeler.store.db import QueueEntry
    from labeler.worker import jobs
    lines = [HEADER] + [f"T{n},2024-05-0{1 + n // 24}T{n % 24:02d}:00:00Z,{'C1' if n >= 30 else 'C0'},S{n % 4},"
                        f"{n + 1}.5,pos" for n in range(33)]
    dataset = import_file(write(tmp_path, "cards.csv", lines), "cards", id_column="tx", time_column="time",
                          entity_columns=["card", "shop"]).dataset
    jobs.request(dataset, jobs.REFILL, "test")
    assert set(run_jobs(dataset).values()) == {"done"}
    card = {item.id: item.entity for item in dataset.items()}
    for entry in list(QueueEntry.select().where(QueueEntry.dataset == dataset)):
        QueueEntry.update(priority=entry.priority + (1000 if card[entry.item_id] == "C1" else 0)).where(
            QueueEntry.id == entry.id).execute()
    return dataset, card


def test_an_analyst_gets_another_card_when_the_head_of_the_queue_is_a_held_card(app, analyst, run_jobs, tmp_path):
    """Card C0's 30 transactions head the queue and another analyst holds one of them: the next analyst gets
    card C1's, however far down the queue they are."""
    from labeler.data.users import create_user
    from labeler.labeling import leases
    from labeler.store.db import QueueEntry
    from tests.conftest import PASSWORD
    dataset, card = card_c0_first(tmp_path, run_jobs)
    c1_queued = sum(1 for entry in QueueEntry.select().where(QueueEntry.dataset == dataset)
                    if card[entry.item_id] == "C1")
    assert c1_queued and QueueEntry.select().where(QueueEntry.dataset == dataset).count() - c1_queued > 20
    first = leases.next_item(dataset, analyst)
    assert card[first.item_id] == "C0"
    bob = create_user("bob", PASSWORD, "analyst")
    second = leases.next_item(dataset, bob)
    assert second is not None and card[second.item_id] == "C1"
