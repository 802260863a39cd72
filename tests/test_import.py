"""The importer on real files: CSV, CSV.gz and Parquet; schema, ids, re-imports, ground truth, and bad input.

Every bad file is tried through the service (one-line ImportFailed naming file, line and column) and through
the CLI (exit 1, one line on stderr); both must leave the store exactly as it was.
"""
import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from labeler.data.importer import ImportFailed, import_file
from labeler.store.db import TABLES, Dataset, GroundTruth, Item, SchemaVersion, database
from tests.conftest import SAMPLE

FRAUD_LINES = (657, 707, 951)  # file lines of the bundled sample that hold the first three frauds


def store_snapshot():
    """{table: (row count, sha256 of every row in id order)} of the whole store."""
    snapshot = {}
    for model in [SchemaVersion, *TABLES]:
        table = model._meta.table_name
        rows = database.execute_sql(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
        digest = hashlib.sha256(repr([tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                                      for row in rows]).encode()).hexdigest()
        snapshot[table] = (len(rows), digest)
    return snapshot


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def quoted_csv(tmp_path):
    """Lines of the bundled sample taken verbatim (quoted header, quoted "0"/"1" class): 40 genuine, 3 frauds."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    keep = [lines[0], *lines[1:41], *(lines[n - 1] for n in FRAUD_LINES)]
    path = tmp_path / "quoted.csv"
    path.write_text("\n".join(keep) + "\n", encoding="utf-8")
    return str(path)


def _file_frame(path):
    return pd.read_csv(path, dtype={"Class": str})


def test_csv_with_quoted_header_and_values(app, quoted_csv):
    result = import_file(quoted_csv, "cc", label_column="Class", exclude=["Time"])
    dataset = result.dataset
    frame = _file_frame(quoted_csv)
    assert (result.created, result.rows_read, result.rows_added, result.rows_skipped) == (True, 43, 43, 0)
    assert dataset.columns == ["Time", *[f"V{i}" for i in range(1, 29)], "Amount"]
    assert dataset.feature_columns == [f"V{i}" for i in range(1, 29)] + ["Amount"]
    assert dataset.text_columns == []
    assert "Class" not in dataset.columns and "Class" not in dataset.feature_columns
    assert (dataset.labels, dataset.positive_label, dataset.label_column) == (["genuine", "fraud"], "fraud", "Class")

    items = list(dataset.items().order_by(Item.row_number))
    assert [item.external_id for item in items] == [str(n) for n in range(43)]
    expected = frame[dataset.feature_columns].to_numpy(dtype=np.float32)
    assert np.array_equal(np.stack([item.feature_vector for item in items]), expected)
    shown = np.array([[float(v) for v in item.display_values(dataset)] for item in items])
    assert np.array_equal(shown, frame[dataset.columns].to_numpy(dtype=np.float64))

    truth = {gt.item.external_id: gt.value for gt in GroundTruth.select().join(Item).where(Item.dataset == dataset)}
    assert len(truth) == 43
    assert sorted((n for n, value in truth.items() if value == "fraud"), key=int) == ["40", "41", "42"]


def test_gzip_and_parquet_give_the_same_items_as_csv(app, quoted_csv, tmp_path):
    gz_path = str(tmp_path / "quoted.csv.gz")
    with open(quoted_csv, "rb") as source, gzip.open(gz_path, "wb") as target:
        target.write(source.read())
    parquet_path = str(tmp_path / "quoted.parquet")
    _file_frame(quoted_csv).to_parquet(parquet_path, index=False)

    imported = {}
    for name, path in (("csv", quoted_csv), ("gz", gz_path), ("parquet", parquet_path)):
        dataset = import_file(path, name, label_column="Class").dataset
        items = list(dataset.items().order_by(Item.row_number))
        truth = dict(GroundTruth.select(Item.external_id, GroundTruth.value).join(Item)
                     .where(Item.dataset == dataset).tuples())
        imported[name] = (dataset.columns, dataset.feature_columns, [i.external_id for i in items],
                          np.stack([i.feature_vector for i in items]).tobytes(),
                          [i.display_values(dataset) for i in items], truth)
    assert len(imported["csv"][2]) == 43 and list(imported["csv"][5].values()).count("fraud") == 3
    assert imported["gz"] == imported["csv"]
    assert imported["parquet"] == imported["csv"]


def test_text_column_is_kept_for_display_only(app, tmp_path):
    path = write(tmp_path / "shops.csv", '"tx","merchant","amount","hour","label"\n'
                 'a1,Corner shop,12.5,3,0\n'
                 'a2,"Big, Store",99,23,1\n'
                 'a3,,7.25,12,0\n')
    dataset = import_file(path, "shops", label_column="label", id_column="tx").dataset
    assert dataset.columns == ["merchant", "amount", "hour"]
    assert dataset.text_columns == ["merchant"]
    assert dataset.feature_columns == ["amount", "hour"]
    items = {item.external_id: item for item in dataset.items()}
    assert sorted(items) == ["a1", "a2", "a3"]
    assert items["a2"].display_values(dataset) == ["Big, Store", "99", "23"]
    assert items["a3"].display_values(dataset) == ["", "7.25", "12"]
    assert items["a1"].feature_vector.tolist() == [12.5, 3.0]


def test_excluded_column_of_mostly_numbers_is_kept_as_text(app, tmp_path):
    path = write(tmp_path / "codes.csv", "code,amount\n1234,5\n5678,6\nAB12,7\n")
    dataset = import_file(path, "codes", exclude=["code"]).dataset
    assert (dataset.text_columns, dataset.feature_columns) == (["code"], ["amount"])
    assert [i.display_values(dataset) for i in dataset.items().order_by(Item.row_number)] == [
        ["1234", "5"], ["5678", "6"], ["AB12", "7"]]
    with pytest.raises(ImportFailed, match="line 4, column 'code': 'AB12' is not a number"):
        import_file(path, "as-feature")  # not excluded: a feature column, and AB12 is an error


def test_exclude_keeps_a_numeric_column_for_display(app, quoted_csv):
    dataset = import_file(quoted_csv, "cc", label_column="Class", exclude=["Time", "Amount"]).dataset
    assert "Amount" in dataset.columns and "Amount" not in dataset.feature_columns
    assert dataset.n_features == 28


def test_row_number_ids_are_stable_and_reimport_adds_nothing(app, quoted_csv):
    first = import_file(quoted_csv, "cc", label_column="Class")
    before = store_snapshot()
    again = import_file(quoted_csv, "cc", label_column="Class")
    assert (again.created, again.rows_read, again.rows_added, again.rows_skipped) == (False, 43, 0, 43)
    assert store_snapshot() == before
    assert first.dataset.id == again.dataset.id


def test_importing_more_rows_appends(app, quoted_csv, tmp_path):
    lines = open(quoted_csv, encoding="utf-8").read().splitlines()
    head = write(tmp_path / "head.csv", "\n".join(lines[:11]) + "\n")  # header + 10 rows
    first = import_file(head, "cc", label_column="Class")
    assert first.rows_added == 10
    more = import_file(quoted_csv, "cc", label_column="Class")
    assert (more.created, more.rows_read, more.rows_added, more.rows_skipped) == (False, 43, 33, 10)
    items = list(more.dataset.items().order_by(Item.row_number))
    assert [(i.row_number, i.external_id) for i in items] == [(n, str(n)) for n in range(43)]
    assert GroundTruth.select().join(Item).where(Item.dataset == more.dataset).count() == 43


def test_appending_after_a_single_row_dataset(app, tmp_path):
    """The next row number after a dataset whose only row is number 0 is 1."""
    one = write(tmp_path / "one.csv", "tx,v\nA,1\n")
    two = write(tmp_path / "two.csv", "tx,v\nA,1\nB,2\n")
    import_file(one, "d", id_column="tx")
    result = import_file(two, "d", id_column="tx")
    assert result.rows_added == 1
    assert [(i.row_number, i.external_id) for i in result.dataset.items().order_by(Item.row_number)] == [
        (0, "A"), (1, "B")]


def test_id_column_appends_new_ids_and_skips_known_ones(app, tmp_path):
    first = write(tmp_path / "a.csv", "tx,v,w\nT1,1,2\nT2,3,4\n")
    second = write(tmp_path / "b.csv", "tx,v,w\nT3,5,6\nT1,1,2\nT4,7,8\n")
    import_file(first, "d", id_column="tx")
    result = import_file(second, "d")  # the dataset remembers its id column
    assert (result.rows_added, result.rows_skipped) == (2, 1)
    assert [i.external_id for i in result.dataset.items().order_by(Item.row_number)] == ["T1", "T2", "T3", "T4"]


# ---- bad input ----------------------------------------------------------------------------------------------

HEADER = '"tx","V1","V2","Class"\n'


def _rows(n, start=0):
    return "".join(f'T{i},{i}.5,{-i},"{i % 2}"\n' for i in range(start, start + n))


BAD_INPUTS = {
    # name: (file text or None for a missing file, import options, fragments of the one-line message)
    "missing file": (None, {}, ["nosuch.csv", "no such file"]),
    "empty file": ("", {}, ["bad.csv", "empty"]),
    "header only": (HEADER, {}, ["bad.csv", "no data rows"]),
    "unknown label column": (HEADER + _rows(3), {"label_column": "Klass"}, ["bad.csv", "label column 'Klass'"]),
    "unknown id column": (HEADER + _rows(3), {"id_column": "txid"}, ["bad.csv", "id column 'txid'"]),
    "ragged row": (HEADER + _rows(3) + 'T3,1,2,"0",9\n', {}, ["bad.csv", "line 5", "5 fields", "expected 4"]),
    "text in a feature column": (HEADER + _rows(3) + 'T3,1,abc,"0"\n', {},
                                 ["bad.csv", "line 5", "'V2'", "'abc' is not a number"]),
    "empty cell in a feature column": (HEADER + _rows(2) + 'T2,,1,"0"\n' + _rows(2, 3), {},
                                       ["bad.csv", "line 4", "'V1'", "missing"]),
    "NaN in a feature column": (HEADER + _rows(2) + 'T2,NaN,1,"0"\n' + _rows(2, 3), {},
                                ["bad.csv", "line 4", "'V1'", "'NaN' is not a number"]),
    "inf in a feature column": (HEADER + _rows(3) + 'T3,1,inf,"0"\n', {},
                                ["bad.csv", "line 5", "'V2'", "inf"]),
    "-inf in a feature column": (HEADER + _rows(3) + 'T3,-inf,1,"0"\n', {},
                                 ["bad.csv", "line 5", "'V1'", "inf"]),
    "too large for float32": (HEADER + _rows(3) + 'T3,1e300,1,"0"\n', {},
                              ["bad.csv", "line 5", "'V1'", "32-bit"]),
    "duplicate id": (HEADER + _rows(3) + 'T1,1,2,"0"\n', {"id_column": "tx"},
                     ["bad.csv", "line 5", "'tx'", "duplicate id 'T1'"]),
    "missing id": (HEADER + _rows(3) + ',1,2,"0"\n', {"id_column": "tx"}, ["bad.csv", "line 5", "'tx'", "missing"]),
    "unknown truth value": (HEADER + _rows(3) + 'T3,1,2,"maybe"\n',
                            {"label_column": "Class", "labels": ["genuine", "fraud"]},
                            ["bad.csv", "column 'Class'", "maybe", "not in the label set genuine, fraud"]),
}


def _bad_file(tmp_path, text):
    if text is None:
        return str(tmp_path / "nosuch.csv")
    return write(tmp_path / "bad.csv", text)


@pytest.fixture
def existing(app, tmp_path):
    """A store that already holds a dataset 'base' with ground truth, so 'unchanged' means something."""
    path = write(tmp_path / "base.csv", HEADER + _rows(20))
    return import_file(path, "base", label_column="Class", id_column="tx").dataset


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_through_the_service(existing, tmp_path, case):
    text, options, fragments = BAD_INPUTS[case]
    path = _bad_file(tmp_path, text)
    before = store_snapshot()
    with pytest.raises(ImportFailed) as failure:
        import_file(path, "new", **options)
    message = str(failure.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert store_snapshot() == before
    assert Dataset.get_or_none(Dataset.name == "new") is None


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_through_the_cli(existing, runner, tmp_path, case):
    text, options, fragments = BAD_INPUTS[case]
    path = _bad_file(tmp_path, text)
    args = ["import", path, "--dataset", "new"]
    if "label_column" in options:
        args += ["--label-column", options["label_column"]]
    if "id_column" in options:
        args += ["--id-column", options["id_column"]]
    if "labels" in options:
        args += ["--labels", ",".join(options["labels"])]
    before = store_snapshot()
    result = runner.invoke(args=args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and lines[0].endswith("(nothing was imported)")
    for fragment in fragments:
        assert fragment in lines[0]
    assert store_snapshot() == before


LATER_CHUNK_ERRORS = {
    # name: (the bad line, fragments); it is file line 48, in the fifth chunk of ten rows
    "text in a feature column": ('T146,1,oops,"0"\n', ["line 48", "'V2'", "'oops' is not a number"]),
    "inf in a feature column": ('T146,inf,1,"0"\n', ["line 48", "'V1'", "inf"]),
    "ragged row": ('T146,1,2,"0",extra\n', ["line 48", "5 fields", "expected 4"]),
    "duplicate id": ('T130,1,2,"0"\n', ["line 48", "duplicate id 'T130'"]),
    "unknown truth value": ('T146,1,2,"7"\n', ["line 48", "'7'"]),
}


@pytest.mark.parametrize("case", list(LATER_CHUNK_ERRORS))
def test_error_in_a_later_chunk_rolls_back_rows_already_inserted(existing, tmp_path, case):
    """Chunks 1-4 of an append to 'base' are inserted before chunk 5 fails: all of it must go."""
    bad_line, fragments = LATER_CHUNK_ERRORS[case]
    text = HEADER + _rows(46, start=100) + bad_line + _rows(10, start=147)
    path = write(tmp_path / "more.csv", text)
    before = store_snapshot()
    assert before["item"][0] == 20
    with pytest.raises(ImportFailed) as failure:
        import_file(path, "base", label_column="Class", chunk_rows=10)
    for fragment in ["more.csv", *fragments]:
        assert fragment in str(failure.value), (fragment, str(failure.value))
    assert store_snapshot() == before
    good = write(tmp_path / "good.csv", HEADER + _rows(46, start=100))
    assert import_file(good, "base", chunk_rows=10).rows_added == 46  # the store still works after the rollback


def test_error_in_a_later_chunk_of_a_new_dataset_creates_nothing(app, tmp_path):
    path = write(tmp_path / "new.csv", HEADER + _rows(25) + 'T25,1,x,"0"\n')
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="line 27"):
        import_file(path, "fresh", chunk_rows=10)
    assert store_snapshot() == before


def test_failed_append_through_the_cli_leaves_the_dataset_as_it_was(existing, runner, tmp_path):
    text = HEADER + _rows(46, start=100) + 'T146,1,oops,"0"\n'
    path = write(tmp_path / "more.csv", text)
    before = store_snapshot()
    result = runner.invoke(args=["import", path, "--dataset", "base"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: more.csv: line 48, column 'V2': 'oops' is not a number (nothing was imported)"]
    assert store_snapshot() == before


def test_a_broken_parquet_file_is_refused(existing, tmp_path):
    path = write(tmp_path / "broken.parquet", HEADER + _rows(3))
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^broken.parquet: not a readable Parquet file"):
        import_file(path, "new")
    assert store_snapshot() == before


def test_a_directory_is_refused(app, tmp_path):
    with pytest.raises(ImportFailed, match="is a directory"):
        import_file(str(tmp_path), "d")


def test_dataset_must_keep_its_id_column(existing, tmp_path):
    path = write(tmp_path / "other.csv", HEADER + _rows(2, start=50))
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="uses id column 'tx', not 'V1'"):
        import_file(path, "base", id_column="V1")
    assert store_snapshot() == before


def test_append_missing_a_column_is_refused(existing, tmp_path):
    path = write(tmp_path / "narrow.csv", '"tx","V1","Class"\nT90,1,"0"\n')
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="missing column.*'V2'"):
        import_file(path, "base")
    assert store_snapshot() == before

