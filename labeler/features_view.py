"""What the labeling screen shows about one item's features: how far each lies from the pool, each beside the
autoencoder's reconstruction (read from the worker's stored outputs, labeler.generative), and the most similar
items that already carry a human label.

Pool statistics are computed once per pool size and kept in ``Dataset.settings['feature_stats']``; the labeled
items' vectors are kept in memory per process and brought up to date from the label log on each request.
"""
import math
import threading
import time

import numpy as np
from peewee import SqliteDatabase, fn

from labeler import generative
from labeler.db import Dataset, Item, Label, database, write_transaction
from labeler.pool import load_pool

BAR_LIMIT = 20.0  # |z| that fills half the chart; the scale is logarithmic so that 2 and 20 both read
MARKED = 3  # how many of the most unusual features are marked
MARK_FROM = 2.0  # ... provided they lie at least this many standard deviations out
ROW_HEIGHT = 16
NAME_WIDTH = 80
CHART_WIDTH = 300
TEXT_WIDTH = 60
RECON_WIDTH = 200  # the reconstruction chart: 0..1 in scaled units
RECON_MARK_FROM = 10.0  # a feature is marked when its error is at least this many times the pool's mean error
RESCAN_WINDOW = 200  # label ids re-read on each refresh: PostgreSQL may commit rows out of id order

POOL_CHECK_SECONDS = 10.0

_stats_cache = {}
_pool_checked = {}
_stats_lock = threading.Lock()


def cache_key(dataset):
    """What identifies ``dataset`` across stores in one process: the store's name, the id, the creation time."""
    return (database.obj.database, dataset.id, str(dataset.created_at))


def pool_rows(dataset):
    """How many items ``dataset`` holds, read from the (dataset, row_number) index without a scan."""
    last = Item.select(fn.MAX(Item.row_number)).where(Item.dataset == dataset).scalar()
    return 0 if last is None else last + 1


def feature_stats(dataset):
    """(mean, std) float64 arrays of ``dataset``'s features over its whole pool.

    Computed once per pool size (one scan), stored in the dataset's settings for other processes, cached here;
    the pool size is looked up again at most every POOL_CHECK_SECONDS.
    """
    checked_at, rows = _pool_checked.get(cache_key(dataset), (-1e9, None))
    if time.monotonic() - checked_at > POOL_CHECK_SECONDS:
        rows = pool_rows(dataset)
        _pool_checked[cache_key(dataset)] = (time.monotonic(), rows)
    key = (cache_key(dataset), rows)
    cached = _stats_cache.get(key)
    if cached is not None:
        return cached
    with _stats_lock:
        cached = _stats_cache.get(key)
        if cached is not None:
            return cached
        stored = (Dataset.get_by_id(dataset.id).settings or {}).get("feature_stats") or {}
        if stored.get("rows") == rows and len(stored.get("mean", ())) == dataset.n_features:
            mean, std = np.asarray(stored["mean"]), np.asarray(stored["std"])
        else:
            _, features = load_pool(dataset)
            mean = features.mean(axis=0, dtype=np.float64) if rows else np.zeros(dataset.n_features)
            std = features.std(axis=0, dtype=np.float64) if rows else np.ones(dataset.n_features)
            std[~(std > 0)] = 1.0
            _store_stats(dataset, rows, mean, std)
        _stats_cache[key] = (mean, std)
        return mean, std


def _store_stats(dataset, rows, mean, std):
    with write_transaction():
        settings = Dataset.get_by_id(dataset.id).settings or {}
        settings["feature_stats"] = {"rows": rows, "mean": mean.tolist(), "std": std.tolist()}
        Dataset.update(settings=settings).where(Dataset.id == dataset.id).execute()


def feature_bars(vector, stats, names):
    """One dict per feature: name, value, z-score, bar geometry (x, width in the SVG) and whether it is marked.

    ``stats`` is feature_stats(dataset), ``names`` the feature columns. Bars grow from the centre line, right
    for values above the pool mean, left below, on a log scale.
    """
    mean, std = stats
    z = (np.asarray(vector, dtype=np.float64) - mean) / std
    half = CHART_WIDTH / 2
    centre = NAME_WIDTH + half
    order = np.argsort(-np.abs(z), kind="stable")
    marked = {int(i) for i in order[:MARKED] if abs(z[i]) >= MARK_FROM}
    bars = []
    for index, name in enumerate(names):
        score = float(z[index])
        length = half * min(1.0, math.log1p(abs(score)) / math.log1p(BAR_LIMIT))
        bars.append({
            "name": name,
            "value": float(vector[index]),
            "z": score,
            "x": centre - length if score < 0 else centre,
            "width": length,
            "y": index * ROW_HEIGHT,
            "marked": index in marked,
        })
    return bars


def chart_geometry(count):
    """Sizes the bar chart template needs: total width and height, centre line, tick positions."""
    half = CHART_WIDTH / 2
    centre = NAME_WIDTH + half
    ticks = []
    for value in (1, 3, 10):
        offset = half * math.log1p(value) / math.log1p(BAR_LIMIT)
        ticks += [(centre - offset, -value), (centre + offset, value)]
    return {
        "width": NAME_WIDTH + CHART_WIDTH + TEXT_WIDTH,
        "height": count * ROW_HEIGHT + 14,
        "centre": centre,
        "ticks": ticks,
        "text_x": NAME_WIDTH + CHART_WIDTH + 6,
        "row_height": ROW_HEIGHT,
    }


def reconstruction_bars(dataset, item_id, vector, names):
    """The item's actual values beside the autoencoder's reconstruction, per feature, from the stored outputs:
    a dict with ``rows`` (one dict per feature: name, actual and reconstruction in the features' units, both
    scaled to 0..1 as the autoencoder sees them, bar widths, the squared error, its ratio to the pool's mean
    error for that feature, whether it is marked), ``chart`` (sizes) and ``created_at``; None when the dataset
    has no stored outputs holding the item (the screen then shows no reconstruction).

    At most MARKED features are marked: those with the largest error ratio, provided it is at least
    RECON_MARK_FROM. Nothing here touches a model.
    """
    stored = generative.reconstruction_of(dataset, item_id)
    if stored is None:
        return None
    vector = np.asarray(vector, dtype=np.float64)
    actual = generative.scaled(vector, stored["minimum"], stored["maximum"])
    rebuilt = generative.scaled(stored["reconstruction"], stored["minimum"], stored["maximum"])
    error = np.square(actual - rebuilt)
    ratio = error / np.maximum(stored["feature_error"], 1e-12)
    order = np.argsort(-ratio, kind="stable")
    marked = {int(i) for i in order[:MARKED] if ratio[i] >= RECON_MARK_FROM}
    rows = []
    for index, name in enumerate(names):
        rows.append({
            "name": name,
            "value": float(vector[index]),
            "reconstruction": float(stored["reconstruction"][index]),
            "scaled": float(actual[index]),
            "scaled_reconstruction": float(rebuilt[index]),
            "width": RECON_WIDTH * float(np.clip(actual[index], 0.0, 1.0)),
            "reconstruction_width": RECON_WIDTH * float(np.clip(rebuilt[index], 0.0, 1.0)),
            "error": float(error[index]),
            "ratio": float(ratio[index]),
            "y": index * ROW_HEIGHT,
            "marked": index in marked,
        })
    chart = {"width": NAME_WIDTH + RECON_WIDTH + TEXT_WIDTH, "height": len(rows) * ROW_HEIGHT + 14,
             "left": NAME_WIDTH, "right": NAME_WIDTH + RECON_WIDTH, "text_x": NAME_WIDTH + RECON_WIDTH + 6}
    return {"rows": rows, "chart": chart, "created_at": stored["created_at"]}


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
        self.active = np.zeros(0, dtype=bool)
        self.size = 0
        self.lock = threading.Lock()

    def refresh(self, mean, std):
        """Apply label rows written since the last refresh."""
        rows = list(
            Label.select(Label.id, Label.item, Label.kind, Label.value)
            .where((Label.source == "human") & (Label.id > self.last_id - _rescan_window()))
            .order_by(Label.id)
            .tuples()
        )  # by primary key alone: a join on the item's dataset would make SQLite walk the dataset's items
        items = list({row[1] for row in rows})
        ours = set()
        for start in range(0, len(items), 500):
            chunk = items[start:start + 500]
            ours.update(i for (i,) in Item.select(Item.id).where(Item.id.in_(chunk)
                                                                 & (Item.dataset == self.dataset_id)).tuples())
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
        self._append([item_id for item_id in self.standing if item_id not in self.row_of], mean, std)

    def _append(self, item_ids, mean, std):
        for start in range(0, len(item_ids), 500):
            rows = (Item.select(Item.id, Item.external_id, Item.features)
                    .where(Item.id.in_(item_ids[start:start + 500])).tuples())
            for item_id, external_id, blob in rows:
                if self.size == len(self.ids):
                    capacity = max(64, 2 * self.size)
                    self.ids = np.resize(self.ids, capacity)
                    self.active = np.resize(self.active, capacity)
                    self.matrix = np.resize(self.matrix, (capacity, self.matrix.shape[1]))
                vector = np.frombuffer(blob, dtype=np.float32)
                self.ids[self.size] = item_id
                self.active[self.size] = True
                self.matrix[self.size] = (vector - mean) / std
                self.external_ids.append(external_id)
                self.row_of[item_id] = self.size
                self.size += 1

    def nearest(self, item_id, vector, mean, std, k):
        """Dicts (item id, external id, label value, distance) of the ``k`` nearest labeled items other than
        ``item_id``, nearest first."""
        ids, matrix = self.ids[:self.size], self.matrix[:self.size]
        query = ((np.asarray(vector, dtype=np.float64) - mean) / std).astype(np.float32)
        distances = np.sqrt(((matrix - query) ** 2).mean(axis=1))
        distances[~self.active[:self.size] | (ids == item_id)] = np.inf
        count = min(k, int(np.isfinite(distances).sum()))
        if count == 0:
            return []
        best = np.argpartition(distances, count - 1)[:count]
        best = best[np.argsort(distances[best], kind="stable")]
        return [{"item_id": int(ids[row]), "external_id": self.external_ids[row],
                 "value": self.standing[int(ids[row])][1], "distance": float(distances[row])} for row in best]


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
    ``stats`` is feature_stats(dataset)."""
    mean, std = stats
    with _indexes_lock:
        key = cache_key(dataset)
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = LabeledIndex(dataset.id, dataset.n_features)
    with index.lock:
        index.refresh(mean, std)
        return index.nearest(item_id, vector, mean, std, k)
