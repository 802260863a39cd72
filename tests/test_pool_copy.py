"""The columnar copy of the pool: load_pool with the model folder reads the database once, then only the items
imported since; a corrupt, missing or stale copy is rebuilt; an import that rewrites stored features wins."""
import os

import numpy as np

from labeler.data.importer import import_file
from labeler.store.db import Item, PoolCopy
from labeler.store.pool import _write_copy, load_pool
from tests.test_transactions import ROLES, write


def same_as_the_database(dataset, pool):
    ids, features = load_pool(dataset)  # no folder: every vector from the database
    assert np.array_equal(pool[0], ids) and np.array_equal(pool[1], features)


def test_the_copy_serves_once_written_and_grows_by_the_new_items_only(app, sample_lines, tmp_path):
    folder = str(tmp_path / "models")
    dataset = import_file(write(tmp_path, "tx.csv", sample_lines[:1001]), "tx", **ROLES).dataset
    first = load_pool(dataset, folder)
    same_as_the_database(dataset, first)
    record = PoolCopy.get(PoolCopy.dataset == dataset)
    assert (record.rows, record.generation, record.stale) == (1000, 1, False)

    # a vector changed behind the copy's back shows the copy is what serves (the importer never does this)
    item = Item.select().where(Item.dataset == dataset).order_by(Item.id).first()
    Item.update(features=np.zeros(dataset.n_features, np.float32).tobytes()).where(Item.id == item.id).execute()
    served = load_pool(dataset, folder)
    assert isinstance(served[1], np.memmap) and np.array_equal(served[1], first[1])

    # a corrupt file is rebuilt from the database
    with open(record.features_path, "r+b") as stream:
        stream.seek(-4, 2)
        stream.write(b"\xff\xff\xff\xff")
    rebuilt = load_pool(dataset, folder)
    same_as_the_database(dataset, rebuilt)
    assert rebuilt[1][0].sum() == 0


def test_an_append_in_time_order_extends_the_copy_and_an_earlier_one_rebuilds_it(app, sample_lines, tmp_path):
    folder = str(tmp_path / "models")
    header, rows = sample_lines[0], sample_lines[1:]
    dataset = import_file(write(tmp_path, "a.csv", [header, *rows[:800]]), "tx", **ROLES).dataset
    load_pool(dataset, folder)
    import_file(write(tmp_path, "b.csv", [header, *rows[800:1000]]), "tx", **ROLES)
    grown = load_pool(dataset, folder)
    same_as_the_database(dataset, grown)
    record = PoolCopy.get(PoolCopy.dataset == dataset)
    assert record.rows == 1000 and not record.stale

    # rows from before the stored ones in time change stored rows' card history: the copy is marked stale
    earlier = []
    for number, line in enumerate(rows[:100]):  # the same cards, the day before any stored transaction
        fields = line.split(",")
        fields[0], fields[1] = f"early{number}", "2018-03-31T23:59:00Z"
        earlier.append(",".join(fields))
    result = import_file(write(tmp_path, "c.csv", [header, *earlier]), "tx", **ROLES)
    assert result.rows_added == 100
    stale = PoolCopy.get(PoolCopy.dataset == dataset)
    assert stale.stale and stale.generation == record.generation + 1
    same_as_the_database(dataset, load_pool(dataset, folder))
    assert not PoolCopy.get(PoolCopy.dataset == dataset).stale


def test_a_copy_read_before_an_import_rewrote_features_is_not_recorded(app, sample_lines, tmp_path):
    folder = str(tmp_path / "models")
    dataset = import_file(write(tmp_path, "tx.csv", sample_lines[:301]), "tx", **ROLES).dataset
    ids, features = load_pool(dataset, folder)
    record = PoolCopy.get(PoolCopy.dataset == dataset)
    _write_copy(dataset, folder, (record.id, record.generation - 1), ids, features, 300)  # an older reading
    after = PoolCopy.get(PoolCopy.dataset == dataset)
    assert (after.generation, after.features_path) == (record.generation, record.features_path)
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in (record.ids_path, record.features_path))
