"""The pool of a dataset as numpy arrays, for scoring and ranking."""
import numpy as np

from labeler.db import Item, database


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
