"""The pool of a dataset as numpy arrays, for scoring and ranking."""
import numpy as np

from labeler.db import Item


def load_pool(dataset):
    """(item ids as int64, features as float32 of shape (n, n_features)) in item id order."""
    rows = Item.select(Item.id, Item.features).where(Item.dataset == dataset).order_by(Item.id).tuples()
    ids, blobs = [], []
    for item_id, blob in rows.iterator():
        ids.append(item_id)
        blobs.append(blob)
    features = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dataset.n_features)
    return np.asarray(ids, dtype=np.int64), features
