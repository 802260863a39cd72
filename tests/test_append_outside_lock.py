"""Appends whose features are computed before the write transaction (labeler.data.importer.prepare_append and
write_append, used by the API's pushes): the same rows and vectors as the importer's own append, the write lock
free while the file is read and the features computed, ids stored meanwhile skipped, features computed again
when the pool grew meanwhile; and the importer's reader thread, which stops when an import fails."""
import csv
import sqlite3
import threading

import numpy as np
import pytest

from labeler.data import importer
from labeler.data.importer import ImportFailed, import_file, prepare_append, write_append
from labeler.data.push import push_rows
from labeler.data.users import create_user
from labeler.store.db import Dataset, Item, User, database, write_transaction
from tests.test_transactions import ROLES, vectors, write


@pytest.fixture
def pusher(app):
    create_user("pusher", "correct horse battery", "admin")
    return User.get(User.name == "pusher")


def as_objects(header, lines, ignore=("scenario",)):
    """The CSV ``lines`` as the API's objects (text values as the file has them), without ``ignore``d columns."""
    return [{key: value for key, value in row.items() if key not in ignore}
            for row in csv.DictReader([header, *lines])]


def test_a_push_of_raw_transactions_stores_what_the_importer_would(app, sample_lines, tmp_path, pusher):
    """A late part pushed stores the vectors the importer stores for it, and refreshes the stored rows after it."""
    header, rows = sample_lines[0], sample_lines[1:3001]
    first = write(tmp_path, "first.csv", [header, *rows[:1000], *rows[2000:]])
    import_file(first, "file", **ROLES)
    import_file(first, "pushed", **ROLES)
    import_file(write(tmp_path, "late.csv", [header, *rows[1000:2000]]), "file", ignore=["scenario"])
    result = push_rows(Dataset.get(Dataset.name == "pushed"), as_objects(header, rows[1000:2000]), pusher)
    assert (result.rows_read, result.rows_added) == (1000, 1000)
    assert any("history features were computed again" in note for note in result.notes)
    _, expected = vectors(Dataset.get(Dataset.name == "file"))
    _, got = vectors(Dataset.get(Dataset.name == "pushed"))
    assert set(got) == set(expected) and len(got) == 3000
    assert all(np.array_equal(got[key], expected[key]) for key in expected)


def write_lock_free(path):
    """True when another connection can take the store's write lock at once."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        probe.close()


def test_features_are_computed_without_the_write_lock_and_only_the_inserts_hold_it(app, config, sample_lines,
                                                                                   tmp_path, pusher, monkeypatch):
    header, rows = sample_lines[0], sample_lines[1:1201]
    dataset = import_file(write(tmp_path, "first.csv", [header, *rows[:1000]]), "tx", **ROLES).dataset
    seen = {}

    def spying(name, function):
        def spy(*args, **kwargs):
            seen.setdefault(name, []).append(write_lock_free(config.DATABASE))
            return function(*args, **kwargs)
        monkeypatch.setattr(importer, name, spy)

    for name in ("_history_pass", "_prepare_rows", "_bulk_insert"):
        spying(name, getattr(importer, name))
    result = push_rows(dataset, as_objects(header, rows[1000:]), pusher)
    assert result.rows_added == 200
    assert seen["_history_pass"] == [True] and seen["_prepare_rows"] == [True]
    assert seen["_bulk_insert"] and not any(seen["_bulk_insert"])  # items and ground truth: under the lock


def test_ids_stored_meanwhile_are_skipped_and_a_grown_pool_means_features_again(app, sample_lines, tmp_path,
                                                                               pusher, monkeypatch):
    header, rows = sample_lines[0], sample_lines[1:1301]
    import_file(write(tmp_path, "first.csv", [header, *rows[:1000]]), "tx", **ROLES)
    dataset = Dataset.get(Dataset.name == "tx")
    batch = write(tmp_path, "batch.csv", [header, *rows[1000:1100]])
    prepared = prepare_append(batch, dataset)
    assert prepared.is_current()
    import_file(write(tmp_path, "meanwhile.csv", [header, *rows[1050:1200]]), "tx", ignore=["scenario"])
    assert not prepared.is_current()  # history features: the 150 rows stored meanwhile change them
    with write_transaction():
        result = write_append(prepare_append(batch, dataset))
    assert (result.rows_added, result.rows_skipped) == (50, 50)

    # push_rows prepares again under the lock when another append landed between its preparation and its write
    import_file(write(tmp_path, "reference.csv", [header, *rows[:1000]]), "reference", **ROLES)
    import_file(write(tmp_path, "r1.csv", [header, *rows[1000:1200]]), "reference", ignore=["scenario"])
    import_file(write(tmp_path, "r2.csv", [header, *rows[1200:]]), "reference", ignore=["scenario"])
    calls = []

    def racing(path, target):
        calls.append(path)
        prepared = prepare_append(path, target)
        if len(calls) == 1:  # another client's append lands now
            import_file(write(tmp_path, "other.csv", [header, *rows[1200:]]), "tx", ignore=["scenario"])
        return prepared

    monkeypatch.setattr("labeler.data.push.prepare_append", racing)
    assert push_rows(dataset, as_objects(header, rows[1000:1200]), pusher).rows_added == 0
    assert len(calls) == 2
    _, expected = vectors(Dataset.get(Dataset.name == "reference"))
    _, got = vectors(dataset)
    assert set(got) == set(expected) and all(np.array_equal(got[key], expected[key]) for key in expected)


def test_a_prepared_append_of_plain_rows_needs_no_second_preparation(app, small_csv, tmp_path):
    header, *lines = open(small_csv, encoding="utf-8").read().splitlines()
    numbered = [f"tx,{header}"] + [f"t{n},{line}" for n, line in enumerate(lines)]
    dataset = import_file(write(tmp_path, "first.csv", numbered[:11]), "cc", label_column="Class",
                          id_column="tx").dataset
    prepared = prepare_append(write(tmp_path, "more.csv", [numbered[0], *numbered[5:21]]), dataset)
    import_file(write(tmp_path, "meanwhile.csv", [numbered[0], *numbered[15:18]]), "cc")
    assert prepared.is_current()  # no history features: ids are looked up at the write
    with write_transaction():
        result = write_append(prepared)
    assert (result.rows_read, result.rows_added, result.rows_skipped) == (16, 7, 9)
    assert Item.select().where(Item.dataset == dataset).count() == 20
    with pytest.raises(ImportFailed, match=r"^more\.csv: line 3, column 'V2': 'x' is not a number$"):
        bad = [numbered[0], numbered[30], numbered[31].replace(numbered[31].split(",")[3], "x", 1)]
        prepare_append(write(tmp_path, "more.csv", bad), dataset)


def test_the_reader_thread_stops_when_an_import_fails(app, small_csv, tmp_path):
    header, *lines = open(small_csv, encoding="utf-8").read().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[2], "x", 1)
    path = write(tmp_path, "bad.csv", [header, *lines])
    with pytest.raises(ImportFailed, match=r"^bad\.csv: line 5, column 'V2': 'x' is not a number$"):
        import_file(path, "cc", chunk_rows=2)
    assert not [thread for thread in threading.enumerate() if thread.name == "import-reader"]
    assert not Dataset.select().exists() and database.transaction_depth() == 0


@pytest.mark.parametrize("chunk_rows, duplicate_at, line", [
    (3, 7, 9),  # an id of an earlier chunk, into a new dataset: the index finds it, the line is named
    (3, 2, 4),  # a repeat within a chunk
    (50, 7, 9),  # one chunk
])
def test_a_repeated_id_is_named_at_its_line_without_a_file_long_set_of_ids(app, small_csv, tmp_path, chunk_rows,
                                                                          duplicate_at, line):
    header, *lines = open(small_csv, encoding="utf-8").read().splitlines()
    numbered = [f"tx,{header}"] + [f"t{n},{line}" for n, line in enumerate(lines[:20])]
    numbered[1 + duplicate_at] = numbered[1 + duplicate_at].replace(f"t{duplicate_at},", "t1,", 1)
    message = rf"^dup\.csv: line {line}, column 'tx': duplicate id 't1' in the file$"
    with pytest.raises(ImportFailed, match=message):
        import_file(write(tmp_path, "dup.csv", numbered), "new", id_column="tx", chunk_rows=chunk_rows)
    assert not Dataset.select().exists() and not Item.select().exists()
    import_file(write(tmp_path, "first.csv", [numbered[0], *lines_with_ids(lines, 100, 103)]), "old", id_column="tx")
    with pytest.raises(ImportFailed, match=message):  # an append: ids stored before are skipped, not repeats
        import_file(write(tmp_path, "dup.csv", [*numbered, *lines_with_ids(lines, 100, 103)]), "old",
                    chunk_rows=chunk_rows)
    assert Item.select().count() == 3


def lines_with_ids(lines, start, stop):
    return [f"t{n},{lines[n]}" for n in range(start, stop)]
