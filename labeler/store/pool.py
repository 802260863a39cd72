"""The pool of a dataset as numpy arrays, for scoring and ranking, and its size."""
import numpy as np
import pandas as pd
from peewee import fn

from labeler.store.db import Item, Label, database


def load_pool(dataset):
    """(item ids as int64, features as float32 of shape (n, n_features)) in item id order."""
    query = Item.select(Item.id, Item.features).where(Item.dataset == dataset).order_by(Item.id)
    cursor = database.execute(query)  # the driver's rows as they come: no peewee row objects for 284,807 items
    ids, blobs = [], []
    for item_id, blob in cursor:
        ids.append(item_id)
        blobs.append(bytes(blob))  # PostgreSQL hands bytea back as memoryview
    features = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dataset.n_features)
    return np.asarray(ids, dtype=np.int64), features


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
