"""The autoencoder put to work where analysts and admins see it.

The worker (``run_job``, through labeler.tasks.generative_task, or the ``generative`` command) fits the
autoencoder on a dataset's pool and stores, for every item, its reconstruction and its reconstruction-error
anomaly score, plus a 2-D map of the encodings of a sample of the pool. They are ``.npy``/``.npz`` files in the
model folder, each written through a temp file and a rename, and recorded in one GenerativeArtifacts row per
dataset. The web process reads them with numpy alone (``stored_anomaly``, ``reconstruction_of``,
``latent_map``): TensorFlow is imported only inside ``fit_autoencoder``, which only the worker calls.
"""
import os
import time
import uuid
import zipfile

import numpy as np
from peewee import fn

from labeler.db import Dataset, GenerativeArtifacts, Item, Job, Label, utcnow, write_transaction
from labeler.pool import load_pool

GENERATIVE = "autoencoder"  # Job.kind of the job that computes the artifacts
FIT_ROWS = 50_000  # the autoencoder is fitted on a seeded sample of at most this many rows
EPOCHS = 10
MAP_POINTS = 5_000  # points on the latent map: every labeled item, then a random sample of the rest
PROJECTIONS = ("pca", "tsne")
PROJECTION_NAMES = {"tsne": "t-SNE", "pca": "PCA"}
DEFAULT_PROJECTION = "pca"  # t-SNE of 5,000 points took 131 s on the 2 shared cores (load 5.7), PCA 0.03 s
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


# ---- numpy pieces shared with bench/cold_start.py ------------------------------------------------------------


def fit_sample(features, rows, seed=0):
    """Sorted row indices of ``features`` to fit on: all rows when there are at most ``rows``, else a seeded
    random ``rows`` that always include each feature's minimum and maximum row, so that the fitted min-max
    scaling spans the whole pool."""
    count = len(features)
    if count <= rows:
        return np.arange(count)
    extremes = np.unique(np.concatenate([features.argmin(axis=0), features.argmax(axis=0)]))
    rest = np.setdiff1d(np.arange(count), extremes)
    drawn = np.random.default_rng(seed).choice(rest, size=max(rows - len(extremes), 0), replace=False)
    return np.sort(np.concatenate([extremes, drawn]))


def fit_autoencoder(features, seed=0, fit_rows=FIT_ROWS, epochs=EPOCHS):
    """An autoencoder (models.autoencoder) fitted on ``fit_sample(features, fit_rows, seed)``.

    Imports Keras and TensorFlow: only the worker and benchmarks call it. Raises ValueError for non-finite or
    empty features.
    """
    from models.autoencoder import Autoencoder

    return Autoencoder(seed=seed).fit(features[fit_sample(features, fit_rows, seed)], epochs=epochs)


def scaled(values, minimum, maximum):
    """``values`` (rows or one row of features) min-max scaled with the per-feature ``minimum`` and
    ``maximum`` as the autoencoder scales its input: 0 at the minimum, 1 at the maximum, 0 for a constant
    feature."""
    minimum = np.asarray(minimum, dtype=np.float64)
    span = np.asarray(maximum, dtype=np.float64) - minimum
    return (np.asarray(values, dtype=np.float64) - minimum) / np.where(span > 0, span, 1.0)


def mean_feature_error(features, reconstruction, minimum, maximum, chunk=65536):
    """The mean over rows of each feature's squared reconstruction error in scaled units, float64."""
    total = np.zeros(features.shape[1])
    for start in range(0, len(features), chunk):
        part = slice(start, start + chunk)
        total += np.square(scaled(features[part], minimum, maximum)
                           - scaled(reconstruction[part], minimum, maximum)).sum(axis=0)
    return total / max(len(features), 1)


def map_sample(count, labeled, points, seed=0):
    """Sorted pool indices for the latent map: every index in ``labeled`` (a seeded sample of ``points`` of them
    if there are more), then a seeded random sample of the other indices up to ``points`` in all."""
    rng = np.random.default_rng(seed)
    labeled = np.unique(np.asarray(labeled, dtype=np.int64))
    if len(labeled) > points:
        labeled = rng.choice(labeled, size=points, replace=False)
    rest = np.setdiff1d(np.arange(count), labeled)
    drawn = rng.choice(rest, size=min(points - len(labeled), len(rest)), replace=False)
    return np.sort(np.concatenate([labeled, drawn]))


def project(encodings, method=DEFAULT_PROJECTION, seed=0):
    """The rows of ``encodings`` projected to 2-D with scikit-learn's t-SNE or PCA, as float32 (n, 2).

    Raises ValueError for an unknown method.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    encodings = np.asarray(encodings, dtype=np.float32)
    if method not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {method!r}")
    if len(encodings) < 3:
        return np.column_stack([encodings[:, 0], np.zeros(len(encodings))]).astype(np.float32)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(encodings).astype(np.float32)
    perplexity = min(30.0, (len(encodings) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(encodings).astype(np.float32)


# ---- the job -------------------------------------------------------------------------------------------------


def pool_size(dataset):
    """How many items ``dataset`` holds."""
    return Item.select(fn.COUNT(Item.id)).where(Item.dataset == dataset).scalar() or 0


def artifacts_of(dataset):
    """The GenerativeArtifacts row of ``dataset``, or None."""
    return GenerativeArtifacts.get_or_none(GenerativeArtifacts.dataset == dataset)


def _remove_files(paths):
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def compute(dataset, progress=None, folder=None, seed=0, projection=DEFAULT_PROJECTION, epochs=EPOCHS,
            fit_rows=FIT_ROWS, map_points=MAP_POINTS):
    """Fit the autoencoder on ``dataset``'s pool, store every item's reconstruction and error and the latent
    map under ``folder`` (default: labeler.engine.model_folder()), and record them; returns the
    GenerativeArtifacts row. The previous artifacts' files are removed once the new row is committed.

    ``progress(stage, percent)`` is called as it goes. Raises ValueError for a pool of fewer than 2 items or an
    unknown projection; errors from training or writing leave the previous artifacts in place.
    """
    from labeler.engine import model_folder, write_atomically

    progress = progress or (lambda stage, percent: None)
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}")
    started = time.perf_counter()
    progress("loading the pool", 2)
    ids, features = load_pool(dataset)
    if len(ids) < 2:
        raise ValueError(f"dataset {dataset.name!r} holds {len(ids)} item(s): the autoencoder needs at least 2")
    progress(f"fitting the autoencoder on {min(len(ids), fit_rows):,} rows", 5)
    model = fit_autoencoder(features, seed, fit_rows, epochs)
    progress("reconstructing the pool", 55)
    reconstruction = model.reconstruct(features)
    error = model.anomaly_score(features)
    minimum, maximum = features.min(axis=0), features.max(axis=0)  # the model's scaling: its fit sample
    # holds each feature's extreme rows
    feature_error = mean_feature_error(features, reconstruction, minimum, maximum)
    progress(f"projecting the latent map ({PROJECTION_NAMES[projection]})", 65)
    standing = {label.item_id: label.value for label in Label.effective(dataset)}
    labeled = np.flatnonzero(np.isin(ids, np.fromiter(standing, dtype=np.int64, count=len(standing))))
    points = map_sample(len(ids), labeled, map_points, seed)
    xy = project(model.encode(features[points]), projection, seed)
    point_labels = np.array([standing.get(int(item_id), "") for item_id in ids[points]], dtype=str)
    progress("writing the artifacts", 95)
    target = os.path.join(folder or model_folder(), f"generative-{dataset.id}")
    os.makedirs(target, exist_ok=True)
    token = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    paths = {name: os.path.join(target, f"{token}-{name}") for name in
             ("ids.npy", "reconstruction.npy", "anomaly.npy", "latent.npz", "autoencoder.keras")}
    written = []
    try:
        for name, array in (("ids.npy", ids), ("reconstruction.npy", reconstruction.astype(np.float32)),
                            ("anomaly.npy", error.astype(np.float32))):
            write_atomically(paths[name], lambda out, array=array: np.save(out, array, allow_pickle=False))
            written.append(paths[name])
        write_atomically(paths["latent.npz"], lambda out: np.savez(out, ids=ids[points], x=xy[:, 0], y=xy[:, 1],
                                                                labels=point_labels))
        written.append(paths["latent.npz"])
        model.save(paths["autoencoder.keras"])
        written.append(paths["autoencoder.keras"])
        fields = dict(
            ids_path=paths["ids.npy"], reconstruction_path=paths["reconstruction.npy"],
            anomaly_path=paths["anomaly.npy"], latent_path=paths["latent.npz"],
            model_path=paths["autoencoder.keras"], pool_rows=len(ids), projection=projection,
            scaling={"minimum": minimum.tolist(), "maximum": maximum.tolist()},
            device=model.device or "unknown", seconds=round(time.perf_counter() - started, 3),
            details={"epochs": int(epochs), "fit_rows": model.meta.get("n_rows"), "seed": int(seed),
                     "map_points": len(points), "map_labeled": int(len(labeled)),
                     "final_loss": model.meta["history"]["loss"][-1], "feature_error": feature_error.tolist(),
                     "train_seconds": model.meta.get("train_seconds")},
            created_at=utcnow(),
        )
        with write_transaction():
            record = artifacts_of(dataset)
            old = [] if record is None else [record.ids_path, record.reconstruction_path, record.anomaly_path,
                                             record.latent_path, record.model_path]
            if record is None:
                record = GenerativeArtifacts.create(dataset=dataset, **fields)
            else:
                GenerativeArtifacts.update(**fields).where(GenerativeArtifacts.id == record.id).execute()
                record = GenerativeArtifacts.get_by_id(record.id)
    except BaseException:
        _remove_files(written)
        raise
    _remove_files(path for path in old if path and path not in written)
    return record


def needs_refresh(dataset):
    """True when ``dataset`` has no artifacts or they were computed on a pool of another size, and no
    autoencoder job of it is waiting or running, and the last one did not fail on the pool as it is now."""
    size = pool_size(dataset)
    record = artifacts_of(dataset)
    if record is not None and record.pool_rows == size:
        return False
    last = (Job.select().where((Job.dataset == dataset) & (Job.kind == GENERATIVE))
            .order_by(Job.id.desc()).first())
    if last is None:
        return True
    if last.state in ("queued", "running"):
        return False
    return not (last.state == "failed" and (last.payload or {}).get("pool_rows") == size)


def request_generative(dataset, reason, enqueue):
    """Queue the autoencoder job of ``dataset`` unless one is already waiting; returns (job, created).

    ``enqueue(dataset_id)`` hands it to the task queue once the job row is committed.
    """
    is_waiting = (Job.dataset == dataset) & (Job.kind == GENERATIVE) & (Job.state == "queued")
    with write_transaction():
        waiting = Job.get_or_none(is_waiting)
        if waiting is not None:
            return waiting, False
        job = Job.create(dataset=dataset, kind=GENERATIVE, state="queued", stage="queued",
                         payload={"reason": reason})
    enqueue(dataset.id)
    return job, True


def _update(job_id, **fields):
    with write_transaction():
        Job.update(**fields).where(Job.id == job_id).execute()


def run_job(job_id, **options):
    """Run the waiting autoencoder job ``job_id`` (``compute`` with ``options``); returns its final state.

    A job no longer waiting (another task took it) is left alone and its state returned. A failure marks the
    job failed with the error, keeps the previous artifacts and is not raised further.
    """
    with write_transaction():
        claimed = (Job.update(state="running", stage="starting", percent=0.0, started_at=utcnow())
                   .where((Job.id == job_id) & (Job.state == "queued")).execute())
    job = Job.get_by_id(job_id)
    if not claimed:
        return job.state
    dataset = Dataset.get_by_id(job.dataset_id)
    payload = {**(job.payload or {}), "pool_rows": pool_size(dataset)}
    _update(job_id, payload=payload)

    def progress(stage, percent):
        _update(job_id, stage=stage, percent=float(percent))

    try:
        record = compute(dataset, progress, **options)
    except Exception as error:  # the job records any failure; the previous artifacts stay
        _update(job_id, state="failed", stage="failed", error=f"{type(error).__name__}: {error}",
                finished_at=utcnow())
        return "failed"
    summary = {"pool_rows": record.pool_rows, "seconds": record.seconds, "device": record.device,
               "projection": record.projection}
    _update(job_id, state="done", stage=f"reconstructed {record.pool_rows:,} items on {record.device}",
            percent=100.0, finished_at=utcnow(), payload={**payload, **summary})
    return "done"


def run_waiting(dataset_id, **options):
    """Run the oldest waiting autoencoder job of dataset ``dataset_id``; returns its final state, or None when
    none waits."""
    job = (Job.select().where((Job.dataset == dataset_id) & (Job.kind == GENERATIVE) & (Job.state == "queued"))
           .order_by(Job.id).first())
    return None if job is None else run_job(job.id, **options)


def recover_interrupted(enqueue):
    """Mark autoencoder jobs left 'running' by a dead worker as failed and queue a fresh one for their datasets;
    hand every waiting one to the queue again. Returns the number interrupted. Call only at worker start."""
    for job in Job.select().where((Job.kind == GENERATIVE) & (Job.state == "queued")):
        enqueue(job.dataset_id)
    stale = list(Job.select().where((Job.kind == GENERATIVE) & (Job.state == "running")))
    for job in stale:
        _update(job.id, state="failed", stage="interrupted", finished_at=utcnow(),
                error="the worker stopped during this job; a new one was queued")
        request_generative(Dataset.get_by_id(job.dataset_id), "retry after an interrupted job", enqueue)
    return len(stale)


# ---- reading, numpy only -------------------------------------------------------------------------------------


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



UNLABELED_COLOUR = "#9aa3ad"
POSITIVE_COLOUR = "#c62828"
LABEL_COLOURS = ("#2e7d32", "#0b5fff", "#8e24aa", "#ef6c00", "#00838f", "#6d4c41", "#c2185b", "#827717")


def map_view(dataset, width=640, height=480, margin=8):
    """What the admin's latent-map page draws, or None when ``dataset`` has no readable map: a dict with
    ``groups`` (unlabeled first, then each label of the dataset's label set, then any other label; each with
    label, colour, count and points as (x, y, external id) in SVG units, the projection's aspect kept),
    width, height, projection, the artifacts row as ``record`` and ``labels_since`` (human labels written
    since the map was computed)."""
    stored = latent_map(dataset)
    if stored is None:
        return None
    x, y = stored["x"].astype(np.float64), stored["y"].astype(np.float64)
    unit = min(width - 2 * margin, height - 2 * margin) / max(float(np.ptp(x)), float(np.ptp(y)), 1e-12)
    left = (width - unit * float(np.ptp(x))) / 2
    top = (height - unit * float(np.ptp(y))) / 2
    cx = left + (x - x.min()) * unit
    cy = top + (y.max() - y) * unit  # SVG y grows downwards
    labels = stored["labels"].astype(str)
    present = set(labels.tolist()) - {""}
    order = [""] + [label for label in dataset.labels if label in present] + sorted(present - set(dataset.labels))
    labeled_ids = stored["ids"][labels != ""].tolist()
    external = {}
    for start in range(0, len(labeled_ids), 500):
        external.update(Item.select(Item.id, Item.external_id)
                        .where(Item.id.in_(labeled_ids[start:start + 500])).tuples())
    palette = iter(LABEL_COLOURS * (1 + len(order) // len(LABEL_COLOURS)))
    groups = []
    for label in order:
        members = np.flatnonzero(labels == label)
        if label == "":
            colour = UNLABELED_COLOUR
        elif label == dataset.positive_label:
            colour = POSITIVE_COLOUR
        else:
            colour = next(palette)
        points = [(round(float(cx[i]), 1), round(float(cy[i]), 1), external.get(int(stored["ids"][i])))
                  for i in members]
        groups.append({"label": label or "unlabeled", "labeled": label != "", "colour": colour,
                       "count": len(members), "points": points})
    record = stored["record"]
    return {"groups": groups, "width": width, "height": height, "projection": stored["projection"],
            "record": record, "points": len(labels), "labels_since": labels_since(dataset, record)}
