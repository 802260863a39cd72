"""The sequence job (raw transactions): the worker fits the book chapter's LSTM sequence autoencoder
(models.sequence_autoencoder) on each card's last STEPS transactions and stores, for every item, the error of its
card's sequence up to and including it, each step's error and the encoder's vector.

Errors are standardized per step feature (a normal step's error is about 1), so that a feature the model cannot
predict on normal sequences (a merchant category drawn at random) weighs no more than the amount, the gap or a
first use (bench/sequences.py: card-testing frauds in the top 500 full sequences 167-214 standardized against
83-108 plain, full simulated set). The outputs are ``.npy`` files in the model folder, each written through a temp
file and a rename, and recorded in one SequenceArtifacts row per dataset; the web reads them with numpy alone
(labeler.store.artifacts): the card's history marks the steps that reconstruct worst, and the cold start takes the
top of the errors (labeler.worker.refill.cold_start_anomaly). TensorFlow loads when the model is fitted, in the
worker only.
"""
import os
import time

import numpy as np

from labeler.store.artifacts import npy_file, store_artifacts
from labeler.store.db import SequenceArtifacts, utcnow
from labeler.store.pool import events_of, load_pool, pool_size
from labeler.worker.refill import categorical_blocks
from models import sequences

STEPS = 10  # k: the card's last transactions in each sequence, the item itself last
FIT_ROWS = 200_000  # sequences the model is fitted on: a seeded sample of the pool
EPOCHS = 5
BATCH = 1024
CHUNK = 100_000  # sequences built and scored at a time: memory stays bounded on any pool
ERROR_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.995, 0.999)  # recorded: the screen says where an item's error stands


def run_sequences(dataset, progress, config, **options):
    """The sequence job's handler (labeler.worker.jobs): ``compute`` into the configured model folder; returns
    the job's summary. The pool size is recorded first, so that a failure on this pool is not retried after
    every retrain."""
    progress.record(pool_rows=pool_size(dataset))
    record = compute(dataset, progress, config.MODEL_FOLDER, **options)
    return {"stage": f"sequences of {record.pool_rows:,} transactions on {record.device}",
            "pool_rows": record.pool_rows, "seconds": record.seconds, "device": record.device}


def transaction_steps(dataset, ids, features):
    """(step features float32 (n, d), their names, epoch seconds, cards) of the pool's items ``ids`` (with their
    ``features``): the amount (a numeric feature of the file, by its role), the times, cards and merchants of
    the items, and each categorical column's code (the one-hot block of the features). Raises ValueError when
    the dataset has no time and card."""
    roles = dataset.roles or {}
    if not (roles.get("time") and roles.get("entities")):
        raise ValueError(f"dataset {dataset.name!r} has no time and card columns: its items have no sequences")
    seconds, cards, merchants = events_of(dataset, ids)
    if len(roles["entities"]) < 2:
        merchants = np.zeros(len(ids), dtype=object)  # no merchant column: "first at this merchant" is constant
    amount = roles.get("amount")
    amounts = (features[:, dataset.feature_columns.index(amount)] if amount in dataset.feature_columns
               else np.zeros(len(ids)))
    categories = [(column, np.argmax(features[:, start:stop], axis=1), stop - start)
                  for column, (start, stop) in zip(roles.get("categorical") or {}, categorical_blocks(dataset))]
    steps, names = sequences.step_features(seconds, cards, merchants, amounts, categories=categories)
    return steps, names, seconds, cards


def compute(dataset, progress, folder, seed=0, steps=STEPS, fit_rows=FIT_ROWS, epochs=EPOCHS):
    """Fit the sequence autoencoder on ``dataset``'s pool, store every item's sequence error, step errors and
    latent vector under ``folder``, and record them; returns the SequenceArtifacts row. The previous files are
    removed once the new row is committed.

    ``progress(stage, percent)`` is called as it goes. Raises ValueError for a dataset without time and card, or
    a pool of fewer than 2 items; errors from training or writing leave the previous artifacts in place.
    """
    from models.sequence_autoencoder import SequenceAutoencoder

    progress = progress or (lambda stage, percent: None)
    started = time.perf_counter()
    progress("loading the pool", 2)
    ids, features = load_pool(dataset, folder)
    if len(ids) < 2:
        raise ValueError(f"dataset {dataset.name!r} holds {len(ids)} item(s): the sequence model needs at least 2")
    step_matrix, step_names, seconds, cards = transaction_steps(dataset, ids, features)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(ids), size=min(len(ids), fit_rows), replace=False))
    progress(f"fitting the sequence autoencoder on {len(sample):,} sequences of {steps}", 10)
    model = SequenceAutoencoder(seed=seed).fit(*sequences.card_sequences(seconds, cards, step_matrix, steps, sample),
                                               epochs=epochs, batch_size=BATCH)
    error = np.empty(len(ids), dtype=np.float32)
    step_error = np.empty((len(ids), steps), dtype=np.float32)
    latent = None
    for start in range(0, len(ids), CHUNK):
        progress(f"scoring sequences {start:,}-{min(start + CHUNK, len(ids)):,} of {len(ids):,}",
                 40 + int(50 * start / len(ids)))
        rows = np.arange(start, min(start + CHUNK, len(ids)))
        chunk, mask = sequences.card_sequences(seconds, cards, step_matrix, steps, rows)
        error[rows], step_error[rows] = model.errors(chunk, mask, standardized=True)
        vectors = model.latent(chunk, mask)
        if latent is None:
            latent = np.empty((len(ids), vectors.shape[1]), dtype=np.float32)
        latent[rows] = vectors
    progress("writing the artifacts", 95)
    full = np.all(np.isfinite(step_error), axis=1)  # a card with fewer earlier transactions ranks high for that
    # alone (a first use, the longest gap): the pool's figures are of full sequences
    files = {"ids.npy": npy_file(ids), "error.npy": npy_file(error), "step_error.npy": npy_file(step_error),
             "latent.npy": npy_file(latent), "sequence.keras": model.save}

    def fields(paths):
        return dict(
            ids_path=paths["ids.npy"], error_path=paths["error.npy"], step_error_path=paths["step_error.npy"],
            latent_path=paths["latent.npy"], model_path=paths["sequence.keras"], pool_rows=len(ids), steps=steps,
            step_names=step_names, device=model.device or "unknown", seconds=round(time.perf_counter() - started, 3),
            details={"epochs": int(epochs), "fit_rows": int(len(sample)), "seed": int(seed),
                     "final_loss": model.meta["history"]["loss"][-1], "train_seconds": model.meta.get("train_seconds"),
                     "full_sequences": int(full.sum()),
                     "error_quantiles": {str(q): float(np.quantile(error[full], q)) for q in ERROR_QUANTILES}
                     if full.any() else {},
                     "step_error_quantiles": {str(q): float(np.quantile(step_error[full], q))
                                              for q in (0.5, 0.9, 0.99)} if full.any() else {}},
            created_at=utcnow(),
        )

    return store_artifacts(SequenceArtifacts, dataset, os.path.join(folder, f"sequences-{dataset.id}"), files, fields)
