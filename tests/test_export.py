"""The export round trip: import a file of raw transactions (numbers and text), label through the decisions, export
JSONL and CSV, and compare every field with the file's row; the decision's reason, note and suggestion travel
with the label."""
import csv
import gzip
import json

import pandas as pd
import pytest

from labeler.data import exporter
from labeler.data.importer import import_file
from labeler.labeling import decisions, leases
from labeler.worker.refill import refresh_queue
from tests.conftest import TRANSACTIONS_SAMPLE


@pytest.fixture
def labeled(app, tmp_path, analyst):
    with gzip.open(TRANSACTIONS_SAMPLE, "rt") as stream:
        frame = pd.read_csv(stream, nrows=400)
    path = tmp_path / "transactions.csv"
    frame.to_csv(path, index=False)
    dataset = import_file(str(path), "tx", label_column="is_fraud", id_column="transaction_id",
                          ignore=["scenario"]).dataset
    refresh_queue(dataset)
    lease = leases.next_item(dataset, analyst)
    first, _ = decisions.decide(dataset, analyst, lease.item_id, "label:fraud", reason="card testing",
                                note='a "burst" at 3 merchants')
    lease = leases.next_item(dataset, analyst)
    second, _ = decisions.decide(dataset, analyst, lease.item_id, "accept")
    return dataset, frame.set_index("transaction_id"), [first.label, second.label]


def test_jsonl_export_gives_back_every_field_of_the_file_as_it_was(labeled, tmp_path):
    dataset, frame, labels = labeled
    out = tmp_path / "labels.jsonl"
    assert exporter.export(dataset, str(out), "jsonl") == 2
    records = {record["id"]: record for record in map(json.loads, out.read_text().splitlines())}
    for label in labels:
        record = records[label.item.external_id]
        source = frame.loc[label.item.external_id]
        for column in dataset.columns:
            expected = source[column].item() if hasattr(source[column], "item") else source[column]
            assert record[column] == expected and type(record[column]) is type(expected), column
        assert (record["label"], record["decided_by"], record["source"], record["standing"]) == (
            label.value, "ana", "human", "single")
        [decision] = record["decisions"]
        assert (decision["annotator"], decision["label"], decision["strategy"], decision["retracted"]) == (
            "ana", label.value, label.strategy, False)
        assert (record["reason"], record["note"]) == (label.reason, label.note)
        assert (record["suggested"], record["suggested_probability"], record["accepted"]) == (
            label.suggested, label.suggested_probability, label.accepted)
        assert record["seconds_on_screen"] == pytest.approx(label.seconds_on_screen)
    fraud = records[labels[0].item.external_id]
    assert (fraud["reason"], fraud["note"]) == ("card testing", 'a "burst" at 3 merchants')
    assert records[labels[1].item.external_id]["accepted"] is True


def test_csv_export_holds_the_same_fields_as_text(labeled, tmp_path):
    dataset, frame, labels = labeled
    out = tmp_path / "labels.csv"
    assert exporter.export(dataset, str(out), "csv") == 2
    with open(out, newline="", encoding="utf-8") as stream:
        rows = {row["id"]: row for row in csv.DictReader(stream)}
    fraud = rows[labels[0].item.external_id]
    source = frame.loc[labels[0].item.external_id]
    assert [fraud[column] for column in dataset.columns] == [str(source[column]) for column in dataset.columns]
    assert (fraud["label"], fraud["reason"], fraud["note"]) == ("fraud", "card testing", 'a "burst" at 3 merchants')
