"""What the worker computed beside the models, read with numpy alone: the autoencoder's stored outputs
(every item's reconstruction and error, the latent map; labeler.worker.autoencoder writes them) and the pool's
feature statistics (labeler.worker.refill writes them). Nothing here touches a model.
"""
import os
import time
import uuid
import zipfile

import numpy as np
from peewee import fn

from labeler.store.db import FeatureStats, GenerativeArtifacts, Item, Label, SequenceArtifacts, write_transaction
from labeler.store.files import remove_files, write_atomically
from labeler.store.prepared import Prepared, slot

PROJECTION_NAMES = {"tsne": "t-SNE", "pca": "PCA"}
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


_artifacts_of = Prepared(GenerativeArtifacts.select().where(GenerativeArtifacts.dataset == slot("dataset")).limit(1))


def artifacts_of(dataset):
    """The GenerativeArtifacts row of ``dataset``, or None."""
    return _artifacts_of.first(dataset=dataset)  # a Dataset or its id, as before


def store_artifacts(table, dataset, folder, files, fields):
    """Write a dataset's new outputs and make them its one row of ``table`` (GenerativeArtifacts or
    SequenceArtifacts). Each of ``files`` ({file name: function(path) writing it}) goes to a fresh path under
    ``folder`` (the name after a time stamp and a random token); ``fields(paths)`` gives the row's fields from
    {file name: path}. The replaced row's files are removed once the new row is committed; on any error the new
    files are, and the previous outputs stay. Returns the row."""
    os.makedirs(folder, exist_ok=True)
    token = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    paths = {name: os.path.join(folder, f"{token}-{name}") for name in files}
    written = []
    try:
        for name, write in files.items():
            write(paths[name])
            written.append(paths[name])
        row = fields(paths)
        with write_transaction():
            record = table.get_or_none(table.dataset == dataset)
            old = [] if record is None else [getattr(record, name) for name in row if name.endswith("_path")]
            if record is None:
                record = table.create(dataset=dataset, **row)
            else:
                table.update(**row).where(table.id == record.id).execute()
                record = table.get_by_id(record.id)
    except BaseException:
        remove_files(written)
        raise
    remove_files(path for path in old if path and path not in written)
    return record


def npy_file(array):
    """A writer for store_artifacts: ``array`` as a ``.npy`` file, written atomically."""
    return lambda path: write_atomically(path, lambda out: np.save(out, array, allow_pickle=False))


def feature_stats(dataset):
    """(mean, std, rows) of ``dataset``'s features as the worker last stored them: float64 arrays and the pool
    size they were computed on; None when none are stored (the worker's first queue refill stores them)."""
    row = FeatureStats.get_or_none(FeatureStats.dataset == dataset)
    if row is None or len(row.mean) != dataset.n_features:
        return None
    return np.asarray(row.mean, dtype=np.float64), np.asarray(row.std, dtype=np.float64), row.rows


def scaled(values, minimum, maximum):
    """``values`` (rows or one row of features) min-max scaled with the per-feature ``minimum`` and
    ``maximum`` as the autoencoder scales its input: 0 at the minimum, 1 at the maximum, 0 for a constant
    feature."""
    minimum = np.asarray(minimum, dtype=np.float64)
    span = np.asarray(maximum, dtype=np.float64) - minimum
    return (np.asarray(values, dtype=np.float64) - minimum) / np.where(span > 0, span, 1.0)


def _positions(record, ids):
    """Rows of the stored arrays holding the items ``ids``, or None when a file is unreadable or an id is not
    stored (an item imported after the artifacts were computed)."""
    try:
        stored = np.load(record.ids_path, mmap_mode="r", allow_pickle=False)
    except READ_ERRORS:
        return None
    ids = np.asarray(ids, dtype=np.int64)
    if stored.ndim != 1 or len(stored) != record.pool_rows or (len(ids) and len(stored) == 0):
        return None
    positions = np.minimum(np.searchsorted(stored, ids), max(len(stored) - 1, 0))
    if len(ids) and not np.array_equal(stored[positions], ids):
        return None
    return positions


def stored_anomaly(dataset, ids):
    """The autoencoder's stored reconstruction error (mean squared, scaled units) of the items ``ids`` (item ids,
    any order) as float64 aligned to ``ids``: higher is more unusual. None when ``dataset`` has no artifacts, a
    file is missing or unreadable, or an id has no stored score (imported after the artifacts were computed).

    For the cold start this error should replace the robust-distance score (models.strategies.anomaly_scores),
    not be averaged with it: bench/cold_start.py (bench/results/cold_start.md) found it alone ahead of both the
    robust score and the rank average of the two on the full credit-card file (frauds in the top 100: 85 vs 72
    and 80; top 500: 216 vs 153 and 168; means of 3 seeds), and ahead on the top 100 of the bundled sample.
    numpy only.
    """
    record = artifacts_of(dataset)
    if record is None:
        return None
    positions = _positions(record, ids)
    if positions is None:
        return None
    try:
        scores = np.load(record.anomaly_path, mmap_mode="r", allow_pickle=False)
        if scores.shape != (record.pool_rows,):
            return None
        return np.asarray(scores[positions], dtype=np.float64)
    except READ_ERRORS:
        return None


def reconstruction_of(dataset, item_id):
    """What the screen draws for item ``item_id``, or None when there are no readable artifacts holding it: a
    dict with ``reconstruction`` (float32, in the features' units), the fitted per-feature ``minimum`` and
    ``maximum``, ``feature_error`` (the pool's mean squared error per feature, in scaled units) and
    ``created_at``. numpy only."""
    record = artifacts_of(dataset)
    if record is None:
        return None
    positions = _positions(record, [item_id])
    if positions is None:
        return None
    try:
        matrix = np.load(record.reconstruction_path, mmap_mode="r", allow_pickle=False)
        if matrix.shape != (record.pool_rows, dataset.n_features):
            return None
        row = np.array(matrix[positions[0]], dtype=np.float32)
    except READ_ERRORS:
        return None
    scaling = record.scaling or {}
    stored = {"minimum": scaling.get("minimum", ()), "maximum": scaling.get("maximum", ()),
              "feature_error": (record.details or {}).get("feature_error", ())}
    arrays = {key: np.asarray(values, dtype=np.float64) for key, values in stored.items()}
    if any(array.shape != row.shape for array in arrays.values()):
        return None
    return {"reconstruction": row, **arrays, "created_at": record.created_at}


def latent_map(dataset):
    """The stored latent map of ``dataset``: dict with ids, x, y (float32), labels (str, "" when unlabeled at
    the time), the projection's name, the artifacts row; None when none is stored, or its file is unreadable or
    holds no point."""
    record = artifacts_of(dataset)
    if record is None:
        return None
    try:
        with np.load(record.latent_path, allow_pickle=False) as stored:
            points = {key: stored[key] for key in ("ids", "x", "y", "labels")}
    except READ_ERRORS:
        return None
    if len({len(values) for values in points.values()}) != 1 or len(points["ids"]) == 0:
        return None
    return {**points, "projection": PROJECTION_NAMES.get(record.projection, record.projection),
            "record": record}


def labels_since(dataset, record):
    """How many human labels of ``dataset`` were written after ``record`` (its artifacts) was computed."""
    return (Label.select(fn.COUNT(Label.id)).join(Item)
            .where((Item.dataset == dataset) & (Label.source == "human") & (Label.kind == "label")
                   & (Label.created_at > record.created_at)).scalar() or 0)


def sequence_of(dataset, item_id):
    """The sequence autoencoder's stored outputs for item ``item_id`` (raw transactions), or None when there are
    no readable sequence artifacts holding it: a dict with ``error`` (the error of the card's last transactions
    up to this one), ``steps`` (float64 per step, oldest first, this one last; NaN where the card had no earlier
    transaction), ``worse_than`` (for a sequence with every step, the highest of the pool's error quantiles
    this error reaches, e.g. 0.99: worse than 99% of the pool's full sequences; else None) and ``step_high``
    (the 99th percentile of the steps of the pool's full sequences: a step above it reconstructs worse than 99%
    of them). Reads two rows of the stored files (memory-mapped) and the quantiles the worker recorded: nothing
    that grows with the pool. numpy only."""
    stored = _sequence_rows(dataset, [item_id])
    if stored is None:
        return None
    record, errors, steps = stored
    error, row = float(errors[0]), steps[0].astype(np.float64)
    details = record.details or {}
    full = bool(np.all(np.isfinite(row)))  # the pool's quantiles are of sequences with every step
    passed = [float(q) for q, value in (details.get("error_quantiles") or {}).items() if full and error >= value]
    step_high = (details.get("step_error_quantiles") or {}).get("0.99")
    return {"error": error, "steps": row, "worse_than": max(passed, default=None),
            "step_high": float("inf") if step_high is None else float(step_high), "created_at": record.created_at}


def stored_sequence_error(dataset, ids):
    """The sequence autoencoder's stored error of the items ``ids`` (item ids, any order) as float64 aligned to
    ``ids``, NaN where the card had fewer earlier transactions than a full sequence holds (such sequences rank
    high for that alone: bench/sequence_loop.py). None when ``dataset`` has no sequence artifacts, a file is
    missing or unreadable, or an id has no stored error. numpy only."""
    stored = _sequence_rows(dataset, ids)
    if stored is None:
        return None
    _, errors, steps = stored
    errors[~np.isfinite(steps[:, 0])] = np.nan  # padded from the start: the first step tells
    return errors


def _sequence_rows(dataset, ids):
    """(the SequenceArtifacts row, the errors float64 and the step errors float32 of the items ``ids``), or None
    when there is no row, a file is missing or unreadable, or an id has no stored error."""
    record = SequenceArtifacts.get_or_none(SequenceArtifacts.dataset == dataset)
    if record is None:
        return None
    positions = _positions(record, ids)
    if positions is None:
        return None
    try:
        errors = np.load(record.error_path, mmap_mode="r", allow_pickle=False)
        steps = np.load(record.step_error_path, mmap_mode="r", allow_pickle=False)
        if errors.shape != (record.pool_rows,) or steps.shape != (record.pool_rows, record.steps):
            return None
        return record, np.asarray(errors[positions], dtype=np.float64), np.asarray(steps[positions])
    except READ_ERRORS:
        return None
