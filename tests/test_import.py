"""The importer on real files: CSV, CSV.gz and Parquet; schema, ids, re-imports, ground truth, and bad input.

Every bad file is tried through the service (one-line ImportFailed naming file, line and column) and through
the CLI (exit 1, one line on stderr); both must leave the store exactly as it was.
"""
import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from labeler.data.importer import HEADER_LIMIT, ImportFailed, _copy_csv, _copy_field, import_file
from labeler.store.db import TABLES, Dataset, GroundTruth, Item, SchemaVersion, database
from tests.bad_inputs import BAD_INPUTS, HEADER, csv_rows
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


def test_ground_truth_is_written_by_runs_of_equal_labels_and_row_by_row_alike(app, tmp_path):
    """A chunk of long runs of one label gets its ground truth one INSERT ... SELECT per run, one whose labels
    change often row by row; both, and an append after them, give each item its own label (none where empty)."""
    labels = ["0"] * 30 + [""] * 10 + ["1"] * 20 + ["", "1", "0"] * 20 + ["1"] * 5 + ["0"] * 55
    lines = ["tx,a,Class", *(f"t{n},{n},{label}" for n, label in enumerate(labels))]
    path = write(tmp_path / "runs.csv", "\n".join(lines[:121]) + "\n")  # chunks: runs, row by row
    dataset = import_file(path, "runs", label_column="Class", id_column="tx", chunk_rows=60).dataset
    more = write(tmp_path / "more.csv", "\n".join([lines[0], *lines[121:]]) + "\n")  # runs again
    assert import_file(more, "runs", chunk_rows=60).rows_added == 60
    truth = dict(GroundTruth.select(Item.external_id, GroundTruth.value).join(Item)
                 .where(Item.dataset == dataset).tuples())
    names = {"0": "genuine", "1": "fraud"}
    assert truth == {f"t{n}": names[label] for n, label in enumerate(labels) if label}


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

def _bad_file(tmp_path, text):
    if text is None:
        return str(tmp_path / "nosuch.csv")
    return write(tmp_path / "bad.csv", text)


@pytest.fixture
def existing(app, tmp_path):
    """A store that already holds a dataset 'base' with ground truth, so 'unchanged' means something."""
    path = write(tmp_path / "base.csv", HEADER + csv_rows(20))
    return import_file(path, "base", label_column="Class", id_column="tx").dataset


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_through_the_service(existing, tmp_path, case):
    text, options, fragments = BAD_INPUTS[case]
    path = _bad_file(tmp_path, text)
    before = store_snapshot()
    options = dict(options)
    dataset = options.pop("dataset", "new")
    with pytest.raises(ImportFailed) as failure:
        import_file(path, dataset, **options)
    message = str(failure.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert store_snapshot() == before
    assert Dataset.get_or_none(Dataset.name == dataset) is None


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_through_the_cli(existing, runner, tmp_path, case):
    text, options, fragments = BAD_INPUTS[case]
    path = _bad_file(tmp_path, text)
    args = ["import", path, "--dataset", options.get("dataset", "new")]
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
    "short row": ('T146,1\n', ["line 48: 2 fields, expected 4"]),
    "duplicate id": ('T130,1,2,"0"\n', ["line 48", "duplicate id 'T130'"]),
    "unknown truth value": ('T146,1,2,"7"\n', ["line 48", "'7'"]),
}


@pytest.mark.parametrize("case", list(LATER_CHUNK_ERRORS))
def test_error_in_a_later_chunk_rolls_back_rows_already_inserted(existing, tmp_path, case):
    """Chunks 1-4 of an append to 'base' are inserted before chunk 5 fails: all of it must go."""
    bad_line, fragments = LATER_CHUNK_ERRORS[case]
    text = HEADER + csv_rows(46, start=100) + bad_line + csv_rows(10, start=147)
    path = write(tmp_path / "more.csv", text)
    before = store_snapshot()
    assert before["item"][0] == 20
    with pytest.raises(ImportFailed) as failure:
        import_file(path, "base", label_column="Class", chunk_rows=10)
    for fragment in ["more.csv", *fragments]:
        assert fragment in str(failure.value), (fragment, str(failure.value))
    assert store_snapshot() == before
    good = write(tmp_path / "good.csv", HEADER + csv_rows(46, start=100))
    assert import_file(good, "base", chunk_rows=10).rows_added == 46  # the store still works after the rollback


def test_error_in_a_later_chunk_of_a_new_dataset_creates_nothing(app, tmp_path):
    path = write(tmp_path / "new.csv", HEADER + csv_rows(25) + 'T25,1,x,"0"\n')
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="line 27"):
        import_file(path, "fresh", chunk_rows=10)
    assert store_snapshot() == before


def test_failed_append_through_the_cli_leaves_the_dataset_as_it_was(existing, runner, tmp_path):
    text = HEADER + csv_rows(46, start=100) + 'T146,1,oops,"0"\n'
    path = write(tmp_path / "more.csv", text)
    before = store_snapshot()
    result = runner.invoke(args=["import", path, "--dataset", "base"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: more.csv: line 48, column 'V2': 'oops' is not a number (nothing was imported)"]
    assert store_snapshot() == before


def test_a_broken_parquet_file_is_refused(existing, tmp_path):
    path = write(tmp_path / "broken.parquet", HEADER + csv_rows(3))
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^broken.parquet: not a readable Parquet file"):
        import_file(path, "new")
    assert store_snapshot() == before


def test_a_directory_is_refused(app, tmp_path):
    with pytest.raises(ImportFailed, match="is a directory"):
        import_file(str(tmp_path), "d")


def test_dataset_must_keep_its_id_column(existing, tmp_path):
    path = write(tmp_path / "other.csv", HEADER + csv_rows(2, start=50))
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



# ---- appending without an id column, names, encodings, booleans (issue 13) -----------------------------------

def test_appending_a_different_file_to_a_row_number_dataset_is_refused(app, runner, tmp_path):
    """Row-number ids collide across different files: the second file's rows must not be dropped as 'present'."""
    first = write(tmp_path / "first.csv", "v,w\n" + "".join(f"{i},{i * 2}\n" for i in range(100)))
    second = write(tmp_path / "second.csv", "v,w\n" + "".join(f"{i},{-i}\n" for i in range(1000, 1100)))
    import_file(first, "d")
    before = store_snapshot()
    with pytest.raises(ImportFailed) as failure:
        import_file(second, "d")
    message = str(failure.value)
    assert message.startswith("second.csv: line 2 differs from row 0 already in dataset 'd', whose ids are row numbers")
    assert "--id-column" in message and "\n" not in message
    assert store_snapshot() == before
    result = runner.invoke(args=["import", second, "--dataset", "d"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"Error: {message} (nothing was imported)"]
    assert store_snapshot() == before


def test_a_file_that_differs_only_after_its_first_rows_is_refused(app, tmp_path):
    rows = [f"{i},{i * 2}\n" for i in range(30)]
    import_file(write(tmp_path / "a.csv", "v,w\n" + "".join(rows)), "d", chunk_rows=7)
    rows[20] = "20,41\n"
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^b.csv: line 22 differs from row 20 "):
        import_file(write(tmp_path / "b.csv", "v,w\n" + "".join(rows + ["30,60\n"])), "d", chunk_rows=7)
    assert store_snapshot() == before


def test_the_same_rows_from_parquet_are_recognized_in_a_row_number_dataset(app, quoted_csv, tmp_path):
    import_file(quoted_csv, "cc", label_column="Class")
    parquet_path = str(tmp_path / "quoted.parquet")
    _file_frame(quoted_csv).to_parquet(parquet_path, index=False)
    before = store_snapshot()
    again = import_file(parquet_path, "cc")
    assert (again.rows_added, again.rows_skipped) == (0, 43)
    assert store_snapshot() == before


def test_duplicate_parquet_columns_are_refused(existing, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = str(tmp_path / "dup.parquet")
    pq.write_table(pa.Table.from_arrays([pa.array([1.0, 2.0]), pa.array([3.0, 4.0])], names=["V1", "V1"]), path)
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^dup.parquet: column 'V1' appears more than once$"):
        import_file(path, "new")
    assert store_snapshot() == before


def test_duplicate_columns_are_refused_when_appending(existing, tmp_path):
    path = write(tmp_path / "dup.csv", '"tx","V1","V2","Class","V2"\nT90,1,2,"0",3\n')
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^dup.csv: line 1: column 'V2' appears more than once in the header$"):
        import_file(path, "base")
    assert store_snapshot() == before


@pytest.mark.parametrize("name", ["cc-2024.v1_a", "x<b>", "Kreditkarten ä", "d" * 120])
def test_dataset_names_that_are_allowed(app, tmp_path, name):
    assert import_file(write(tmp_path / "ok.csv", "v\n1\n"), name).dataset.name == name


@pytest.mark.parametrize("gzipped", [False, True])
def test_an_encoding_error_names_its_line(existing, tmp_path, gzipped):
    body = (HEADER + csv_rows(3000)).encode() + b'T3000,1,2,"caf\xe9"\n' + csv_rows(5, 3001).encode()
    path = tmp_path / ("latin.csv.gz" if gzipped else "latin.csv")
    path.write_bytes(gzip.compress(body) if gzipped else body)
    before = store_snapshot()
    with pytest.raises(ImportFailed) as failure:
        import_file(str(path), "new", label_column="Class", chunk_rows=500)
    assert str(failure.value) == f"{path.name}: line 3002: byte 0xe9 is not UTF-8"
    assert store_snapshot() == before


def test_nul_bytes_into_an_existing_dataset_are_refused(existing, runner, tmp_path):
    path = tmp_path / "zeros.csv"
    path.write_bytes(b"\x00" * (4 * HEADER_LIMIT))
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^zeros.csv: line 1 holds NUL bytes"):
        import_file(str(path), "base")
    result = runner.invoke(args=["import", str(path), "--dataset", "base"])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert store_snapshot() == before


def test_a_header_only_file_into_an_existing_dataset_is_an_error(existing, tmp_path):
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^head.csv: the file has a header but no data rows$"):
        import_file(write(tmp_path / "head.csv", HEADER), "base")
    assert store_snapshot() == before


def test_a_header_line_longer_than_the_limit_is_refused(app, tmp_path):
    path = write(tmp_path / "wide.csv", "a" * (HEADER_LIMIT + 10) + "\n1\n")
    with pytest.raises(ImportFailed, match="^wide.csv: line 1 \\(the header\\) is longer than"):
        import_file(path, "d")


def test_parquet_booleans_are_named_in_the_summary(app, runner, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = str(tmp_path / "flags.parquet")
    pq.write_table(pa.table({"amount": [1.5, 2.5, 3.5], "online": pa.array([True, None, False]),
                             "flagged": pa.array([True, False, True])}), path)
    result = runner.invoke(args=["import", path, "--dataset", "flags", "--exclude", "online"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Dataset 'flags' created: 3 rows read, 3 added, 0 already present."
    assert lines[1:3] == ["Column 'online' is boolean: shown as 0/1, not a feature.",
                          "Column 'flagged' is boolean: shown as True/False, not a feature."]
    base = write(tmp_path / "base.csv", "tx,amount,flag\nA,1,0\nB,2,1\n")
    import_file(base, "appended", id_column="tx")
    more = str(tmp_path / "more.parquet")
    pq.write_table(pa.table({"tx": ["C", "D"], "amount": [3.0, 4.0], "flag": [True, False]}), more)
    result = runner.invoke(args=["import", more, "--dataset", "appended"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        "Dataset 'appended' updated: 2 rows read, 2 added, 0 already present.",
        "Column 'flag' is boolean: imported as a 0/1 feature (false 0, true 1)."]
    items = {i.external_id: i.feature_vector.tolist() for i in Dataset.get(Dataset.name == "appended").items()}
    assert items["C"] == [3.0, 1.0] and items["D"] == [4.0, 0.0]
    good = str(tmp_path / "good.parquet")
    pq.write_table(pa.table({"amount": [1.5, 2.0], "flag": pa.array([True, False], type=pa.bool_())}), good)
    assert import_file(good, "good").notes == ["Column 'flag' is boolean: shown as True/False, not a feature."]
    mixed = str(tmp_path / "mixed.parquet")
    pq.write_table(pa.table({"amount": [1.5, 2.0], "flag": pa.array([True, None])}), mixed)
    with pytest.raises(ImportFailed, match="column 'flag': value is missing"):
        import_file(mixed, "mixed")


def test_a_line_longer_than_the_limit_is_refused_before_pandas_buffers_it(existing, monkeypatch, tmp_path):
    """pandas holds a whole line in memory: a huge one (say 1 GB without a newline) is refused at the limit."""
    from labeler.data import importer
    monkeypatch.setattr(importer, "LINE_LIMIT", 1000)
    path = write(tmp_path / "long.csv", HEADER + csv_rows(3) + "T3," + "7" * 1_000_000 + ',1,"0"\n')
    before = store_snapshot()
    with pytest.raises(ImportFailed, match="^long.csv: line 5 is longer than 1,000 bytes$"):
        import_file(path, "base")
    assert store_snapshot() == before


def test_copy_csv_writes_each_column_as_the_per_field_writer_does():
    """PostgreSQL's COPY text, written a column at a time, is the text of every field written by _copy_field:
    columns of one type with and without None, a mixed one, numpy scalars, quotes and commas in text."""
    blob = np.arange(3, dtype=np.float32).tobytes()
    columns = [[7, 7, 7], ["T1", 'say "hi", then', None], range(10, 13), [blob, memoryview(blob), blob],
               [1.5, None, float("nan")], [np.float64(0.1), 2.0, None], [None, None, None], [1, "x", 2.5]]
    rows = list(zip(*columns))
    assert _copy_csv(columns) == "".join(",".join(map(_copy_field, row)) + "\n" for row in rows)
    assert _copy_csv(columns).splitlines()[1] == '7,"say ""hi"", then",11,\\x' + blob.hex() + ",,2.0,,\"x\""

