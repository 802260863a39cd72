"""The autoencoder job: the worker fits the autoencoder (models.autoencoder) on a dataset's pool and stores, for
every item, its reconstruction and its reconstruction-error anomaly score, plus a 2-D map of the encodings of a
sample of the pool. They are ``.npy``/``.npz`` files in the model folder, each written through a temp file and a
rename, and recorded in one GenerativeArtifacts row per dataset; the web and the queue refill read them with
numpy alone (labeler.store.artifacts). TensorFlow loads when the first autoencoder is fitted, so a worker that
only retrains weak models never loads it.
"""
import os
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from labeler.store.artifacts import PROJECTION_NAMES, npy_file, scaled, store_artifacts
from labeler.store.db import GenerativeArtifacts, Label, utcnow
from labeler.store.files import write_atomically
from labeler.store.pool import load_pool, pool_size

FIT_ROWS = 50_000  # the autoencoder is fitted on a seeded sample of at most this many rows
EPOCHS = 10
BATCH_SIZE = 256
# Images are seen as pictures, so a small image pool gets more epochs: the digits (1,797 rows, 7 batches an epoch)
# reconstructed no better than their mean image after 10 epochs (squared error 0.087 against 0.073); after 2,000
# batches 0.029 (27 s on 2 cores)
MIN_STEPS = 2_000
MAX_EPOCHS = 300
MAP_POINTS = 5_000  # points on the latent map: every labeled item, then a random sample of the rest
PROJECTIONS = ("pca", "tsne")
DEFAULT_PROJECTION = "pca"  # t-SNE of 5,000 points took 131 s on the 2 shared cores (load 5.7), PCA 0.03 s


def run_autoencoder(dataset, progress, config, **options):
    """The autoencoder job's handler (labeler.worker.jobs): ``compute`` into the configured model folder with
    ``options``; returns the job's summary. The pool size is recorded first, so that a failure on this pool
    is not retried after every retrain."""
    progress.record(pool_rows=pool_size(dataset))
    record = compute(dataset, progress, config.MODEL_FOLDER, **options)
    return {"stage": f"reconstructed {record.pool_rows:,} items on {record.device}", "pool_rows": record.pool_rows,
            "seconds": record.seconds, "device": record.device, "projection": record.projection}


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


def fit_autoencoder(features, seed=0, fit_rows=FIT_ROWS, epochs=EPOCHS, min_steps=0):
    """An autoencoder (models.autoencoder) fitted on ``fit_sample(features, fit_rows, seed)`` for ``epochs``, or
    more on a small pool: at least ``min_steps`` batches (at most MAX_EPOCHS epochs).

    Imports Keras and TensorFlow: only the worker and benchmarks call it. Raises ValueError for non-finite or
    empty features.
    """
    from models.autoencoder import Autoencoder

    rows = fit_sample(features, fit_rows, seed)
    batches = -(-len(rows) // BATCH_SIZE)
    epochs = max(epochs, min(MAX_EPOCHS, -(-min_steps // max(batches, 1))))
    return Autoencoder(seed=seed).fit(features[rows], epochs=epochs, batch_size=BATCH_SIZE)


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


def compute(dataset, progress, folder, seed=0, projection=DEFAULT_PROJECTION, epochs=None,
            fit_rows=FIT_ROWS, map_points=MAP_POINTS):
    """Fit the autoencoder on ``dataset``'s pool, store every item's reconstruction and error and the latent
    map under ``folder``, and record them; returns the GenerativeArtifacts row. ``epochs``: default EPOCHS, and
    for images at least MIN_STEPS batches. The previous artifacts' files are removed once the new row is committed.

    ``progress(stage, percent)`` is called as it goes. Raises ValueError for a pool of fewer than 2 items or an
    unknown projection; errors from training or writing leave the previous artifacts in place.
    """
    progress = progress or (lambda stage, percent: None)
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}")
    started = time.perf_counter()
    progress("loading the pool", 2)
    ids, features = load_pool(dataset, folder)
    if len(ids) < 2:
        raise ValueError(f"dataset {dataset.name!r} holds {len(ids)} item(s): the autoencoder needs at least 2")
    progress(f"fitting the autoencoder on {min(len(ids), fit_rows):,} rows", 5)
    model = fit_autoencoder(features, seed, fit_rows, epochs or EPOCHS,
                            MIN_STEPS if epochs is None and dataset.image_shape else 0)
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
    files = {"ids.npy": npy_file(ids), "reconstruction.npy": npy_file(reconstruction.astype(np.float32)),
             "anomaly.npy": npy_file(error.astype(np.float32)),
             "latent.npz": lambda path: write_atomically(path, lambda out: np.savez(
                 out, ids=ids[points], x=xy[:, 0], y=xy[:, 1], labels=point_labels)),
             "autoencoder.keras": model.save}

    def fields(paths):
        return dict(
            ids_path=paths["ids.npy"], reconstruction_path=paths["reconstruction.npy"],
            anomaly_path=paths["anomaly.npy"], latent_path=paths["latent.npz"],
            model_path=paths["autoencoder.keras"], pool_rows=len(ids), projection=projection,
            scaling={"minimum": minimum.tolist(), "maximum": maximum.tolist()},
            device=model.device or "unknown", seconds=round(time.perf_counter() - started, 3),
            details={"epochs": int(model.meta["epochs"]), "fit_rows": model.meta.get("n_rows"), "seed": int(seed),
                     "map_points": len(points), "map_labeled": int(len(labeled)),
                     "final_loss": model.meta["history"]["loss"][-1], "feature_error": feature_error.tolist(),
                     "train_seconds": model.meta.get("train_seconds")},
            created_at=utcnow(),
        )

    return store_artifacts(GenerativeArtifacts, dataset, os.path.join(folder, f"generative-{dataset.id}"), files,
                           fields)
