"""The labeled items most similar to the one on screen: standardized vectors of the items that carry a
standing human label, kept in memory per process and brought up to date from the label log on each request.
numpy only; the pool's feature statistics come from the worker (labeler.store.artifacts.feature_stats).
"""
import threading

import numpy as np
from peewee import SqliteDatabase

from labeler.store.db import Item, Label, database, dataset_key
from labeler.store.prepared import Prepared, slot

RESCAN_WINDOW = 200  # label ids re-read on each refresh: PostgreSQL may commit rows out of id order
SHORTLIST = 32  # candidates beyond k whose distances are computed exactly (LabeledIndex.nearest)


class LabeledIndex:
    """Standardized vectors of one dataset's items that carry a standing human label, kept up to date
    incrementally from the label log (only rows newer than the last one read are fetched). Vectors are
    appended to one growing matrix; an item whose label is undone is masked out, not removed."""

    def __init__(self, dataset_id, n_features):
        self.dataset_id = dataset_id
        self.last_id = 0
        self.seen = set()  # label ids in the rescan window already applied
        self.standing = {}  # item id -> (label id, value)
        self.row_of = {}  # item id -> row of the matrix
        self.ids = np.zeros(0, dtype=np.int64)
        self.external_ids = []
        self.matrix = np.zeros((0, n_features), dtype=np.float32)
        self.squares = np.zeros(0, dtype=np.float32)  # each row's sum of squares
        self.active = np.zeros(0, dtype=bool)
        self.size = 0
        self.lock = threading.Lock()

    def refresh(self, mean, std):
        """Apply label rows written since the last refresh."""
        rows = list(_labels_after(after=self.last_id - _rescan_window()))
        ours = {row[1] for row in rows if row[1] in self.row_of}
        new = list({row[1] for row in rows} - ours)
        vectors = self._vectors(new)  # those of this dataset (the matrix only holds this dataset's items)
        ours.update(vectors)
        touched = set()
        for label_id, item_id, kind, value in rows:
            if label_id in self.seen:
                continue
            self.seen.add(label_id)
            self.last_id = max(self.last_id, label_id)
            if item_id not in ours:
                continue
            if kind == "label":
                if item_id not in self.standing or self.standing[item_id][0] < label_id:
                    self.standing[item_id] = (label_id, value)
            else:
                touched.add(item_id)
        for item_id in touched:
            row = _standing_label(item_id)
            if row is None:
                self.standing.pop(item_id, None)
            else:
                self.standing[item_id] = row
        floor = self.last_id - _rescan_window()
        self.seen = {label_id for label_id in self.seen if label_id > floor}
        for item_id in touched:
            if item_id in self.row_of:
                self.active[self.row_of[item_id]] = item_id in self.standing
        # an item that stands and is not in the matrix was first seen in this refresh: its vector was read above
        self._append({item_id: vectors[item_id] for item_id in self.standing if item_id not in self.row_of}, mean, std)

    def _vectors(self, item_ids):
        """{item id: (external id, feature blob)} of those of ``item_ids`` that belong to this dataset."""
        found = {}
        for start in range(0, len(item_ids), 500):
            rows = (Item.select(Item.id, Item.external_id, Item.features)
                    .where(Item.id.in_(item_ids[start:start + 500]) & (Item.dataset == self.dataset_id)).tuples())
            found.update((item_id, (external_id, blob)) for item_id, external_id, blob in rows)
        return found

    def _append(self, vectors, mean, std):
        """Add the rows of ``vectors`` ({item id: (external id, feature blob)}) to the matrix."""
        for item_id, (external_id, blob) in vectors.items():
            if self.size == len(self.ids):
                capacity = max(64, 2 * self.size)
                self.ids = np.resize(self.ids, capacity)
                self.active = np.resize(self.active, capacity)
                self.squares = np.resize(self.squares, capacity)
                self.matrix = np.resize(self.matrix, (capacity, self.matrix.shape[1]))
            vector = np.frombuffer(blob, dtype=np.float32)
            self.ids[self.size] = item_id
            self.active[self.size] = True
            self.matrix[self.size] = (vector - mean) / std
            self.squares[self.size] = self.matrix[self.size] @ self.matrix[self.size]
            self.external_ids.append(external_id)
            self.row_of[item_id] = self.size
            self.size += 1

    def nearest(self, item_id, vector, mean, std, k):
        """Dicts (item id, external id, label value, distance) of the ``k`` nearest labeled items other than
        ``item_id``, nearest first.

        Every labeled item's squared distance comes from one matrix-vector product (|a|² - 2 a·b + |b|², with
        the rows' |a|² kept): a tenth of the time of subtracting the vector from every row, which took 7 ms a
        request at 100,000 labels. That sum loses digits to cancellation when two vectors nearly match, so
        the nearest k + SHORTLIST are measured again exactly and ranked on that."""
        ids, matrix = self.ids[:self.size], self.matrix[:self.size]
        query = ((np.asarray(vector, dtype=np.float64) - mean) / std).astype(np.float32)
        squared = self.squares[:self.size] - 2 * (matrix @ query) + query @ query
        squared[~self.active[:self.size] | (ids == item_id)] = np.inf
        candidates = int(np.isfinite(squared).sum())
        if candidates == 0:
            return []
        shortlist = min(k + SHORTLIST, candidates)
        rows = np.argpartition(squared, shortlist - 1)[:shortlist]
        distances = np.sqrt(((matrix[rows] - query) ** 2).mean(axis=1))
        order = np.lexsort((rows, distances))[:min(k, candidates)]  # ties by row: the earlier labeled first
        best = rows[order]
        distances = dict(zip(best.tolist(), distances[order].tolist()))
        return [{"item_id": int(ids[row]), "external_id": self.external_ids[row],
                 "value": self.standing[int(ids[row])][1], "distance": distances[row]} for row in best.tolist()]


_labels_after = Prepared(  # by primary key alone: a join on the item's dataset would make SQLite walk its items
    Label.select(Label.id, Label.item, Label.kind, Label.value)
    .where((Label.source == "human") & (Label.id > slot("after"))).order_by(Label.id).tuples())


def _rescan_window():
    """SQLite writes one transaction at a time, so its ids arrive in order; other databases need a window."""
    return 0 if isinstance(database.obj, SqliteDatabase) else RESCAN_WINDOW


def _standing_label(item_id):
    """(label id, value) of the latest human label of ``item_id`` that no undo retracts, or None."""
    retracted = Label.select(Label.retracts).where((Label.item == item_id) & Label.retracts.is_null(False))
    row = (
        Label.select(Label.id, Label.value)
        .where((Label.item == item_id) & (Label.kind == "label") & (Label.source == "human")
               & Label.id.not_in(retracted))
        .order_by(Label.id.desc())
        .tuples()
        .first()
    )
    return None if row is None else (row[0], row[1])


_indexes = {}
_indexes_lock = threading.Lock()


def similar_labeled(dataset, item_id, vector, stats, k=5):
    """The ``k`` labeled items nearest to ``vector`` (standardized Euclidean, RMS per feature), nearest first:
    dicts with item id, external id, label value and distance. The item itself is left out.
    ``stats`` is (mean, std) of the pool's features."""
    mean, std = stats
    with _indexes_lock:
        key = dataset_key(dataset)
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = LabeledIndex(dataset.id, dataset.n_features)
    with index.lock:
        index.refresh(mean, std)
        return index.nearest(item_id, vector, mean, std, k)
