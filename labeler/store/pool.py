"""The pool of a dataset as numpy arrays, for scoring and ranking, and its size."""
import os
import uuid

import numpy as np
import pandas as pd
from peewee import fn

from labeler.store.db import Item, Label, PoolCopy, database, utcnow, write_transaction
from labeler.store.files import file_digest, remove_files, write_atomically


def load_pool(dataset, folder=None):
    """(item ids as int64, features as float32 of shape (n, n_features)) in item id order.

    With ``folder`` (the model folder) the columnar copy there serves (see PoolCopy): only the items imported
    since it was written are read from the database, and the copy is extended with them. A missing, corrupt or
    stale copy is rebuilt from the database (a file's checksum is computed again whenever its size, mtime or
    inode changed: labeler.store.files.file_digest). Without ``folder`` every feature vector is read from the database.
    Raises OSError when the copy cannot be written.
    """
    if folder is None:
        return _read_items(dataset)[:2]
    record = PoolCopy.get_or_none(PoolCopy.dataset == dataset)
    seen = None if record is None else (record.id, record.generation)
    copy = None if record is None or record.stale else _read_copy(record)
    start = record.rows if copy is not None else 0
    ids, features, rows = _read_items(dataset, from_row=start)
    if copy is not None:
        if not len(ids):
            return copy
        ids, features = np.concatenate([copy[0], ids]), np.concatenate([copy[1], features])
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            order = np.argsort(ids, kind="stable")
            ids, features = ids[order], features[order]
    _write_copy(dataset, folder, seen, ids, features, max(rows, start))
    return ids, features


def _read_items(dataset, from_row=0):
    """(ids, features, the highest row number read + 1 or 0) of the items of ``dataset`` whose row number is
    ``from_row`` or more, in item id order, read by one statement (an import's rows come all or none): the
    driver's rows as they come, no peewee row objects for 284,807 items."""
    query = (Item.select(Item.id, Item.features, Item.row_number)
             .where((Item.dataset == dataset) & (Item.row_number >= from_row)).order_by(Item.id))
    ids, blobs, last = [], [], -1
    for item_id, blob, row_number in database.execute(query):
        ids.append(item_id)
        blobs.append(bytes(blob))  # PostgreSQL hands bytea back as memoryview
        last = max(last, row_number)
    features = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dataset.n_features)
    return np.asarray(ids, dtype=np.int64), features, last + 1


def _read_copy(record):
    """(ids, features) of a PoolCopy's files, memory-mapped, or None when a file is missing, changed since it
    was written or of the wrong shape."""
    try:
        if any(file_digest(path) != record.digests.get(name)
               for name, path in (("ids", record.ids_path), ("features", record.features_path))):
            return None
        ids = np.load(record.ids_path, mmap_mode="r", allow_pickle=False)
        features = np.load(record.features_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, TypeError):
        return None
    if ids.shape != (record.rows,) or features.shape != (record.rows, record.dataset.n_features):
        return None
    return ids, features


def _write_copy(dataset, folder, seen, ids, features, rows):
    """Write ``ids`` and ``features`` (the items whose row number is below ``rows``) as ``dataset``'s pool copy
    unless the PoolCopy row changed since it was
    read as ``seen`` ((id, generation), or None when there was none): an import that rewrote stored features
    meanwhile wins, and the next load rebuilds. Old files are removed once the new ones are recorded."""
    stem = os.path.join(folder, f"pool-{dataset.id}-{uuid.uuid4().hex}")
    paths = {"ids": stem + ".ids.npy", "features": stem + ".features.npy"}
    digests = {name: write_atomically(path, lambda stream, array=array: np.save(stream, array, allow_pickle=False))
               for (name, path), array in zip(paths.items(), (np.ascontiguousarray(ids), np.ascontiguousarray(features)))}
    old = []
    with write_transaction():
        record = PoolCopy.get_or_none(PoolCopy.dataset == dataset)
        now = None if record is None else (record.id, record.generation)
        if now != seen:
            old = list(paths.values())
        else:
            fields = dict(ids_path=paths["ids"], features_path=paths["features"], digests=digests, rows=rows,
                          stale=False, created_at=utcnow())
            if record is None:
                PoolCopy.create(dataset=dataset, generation=1, **fields)
            else:
                old = [record.ids_path, record.features_path]
                PoolCopy.update(generation=record.generation + 1, **fields).where(PoolCopy.id == record.id).execute()
    remove_files([path for path in old if path])


def invalidate_pool_copy(dataset):
    """Mark ``dataset``'s pool copy stale (stored rows' features were rewritten); call in the writing
    transaction. The next load_pool with a folder rebuilds it."""
    if not PoolCopy.update(stale=True, generation=PoolCopy.generation + 1).where(PoolCopy.dataset == dataset).execute():
        PoolCopy.create(dataset=dataset, stale=True, generation=1)


def pool_size(dataset):
    """How many items ``dataset`` holds, read from the (dataset, row_number) index without a scan (row numbers
    run from 0 without gaps: an append continues after the last one)."""
    last = Item.select(fn.MAX(Item.row_number)).where(Item.dataset == dataset).scalar()
    return 0 if last is None else last + 1


def human_labels(dataset, ids):
    """(pool indices, label values) of the standing human labels of ``dataset``; ``ids`` sorted item ids."""
    rows = list(Label.effective(dataset).select(Label.item, Label.value).tuples())
    if not rows:
        return np.zeros(0, dtype=np.int64), []
    items = np.array([item for item, _ in rows], dtype=np.int64)
    return np.searchsorted(ids, items), [value for _, value in rows]


def events_of(dataset, ids):
    """(epoch seconds float64, first entity values, second entity values: object arrays, None where missing) of
    the items ``ids`` (sorted item ids of the pool), in that order."""
    query = (Item.select(Item.id, Item.event_time, Item.entity, Item.second_entity).where(Item.dataset == dataset)
             .order_by(Item.id))
    found = {item_id: (seconds, entity, second) for item_id, seconds, entity, second in database.execute(query)}
    rows = [found[item_id] for item_id in ids.tolist()]
    return (np.array([row[0] for row in rows], dtype=np.float64), np.array([row[1] for row in rows], dtype=object),
            np.array([row[2] for row in rows], dtype=object))


def groups_of(dataset, ids):
    """(integer codes of the second entity, the merchant: equal values, equal codes; epoch seconds) of the items
    ``ids`` (sorted item ids of the pool), or None when the dataset has no second entity. The label rates of
    models.features are taken per group."""
    if len((dataset.roles or {}).get("entities") or []) < 2 or not len(ids):
        return None
    seconds, _, merchants = events_of(dataset, ids)
    return pd.factorize(merchants, use_na_sentinel=False)[0].astype(np.int64), seconds
