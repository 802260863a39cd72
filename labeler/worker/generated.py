"""The generated-samples job: the worker fits the book chapter's VAE (models.vae) on a seeded sample of a dataset's
pool and stores what the admin's generated-samples page draws (labeler.web.generated): the rows decoded from a walk
through two latent dimensions (a grid, the chapter's figure), rows decoded from draws of the prior, as many real
rows of the pool, and each feature's mean and standard deviation over STATS_ROWS real and generated rows.

Tabular datasets get the chapter's VAE as the balancing candidate fits it (hidden 16, latent 6, the Gaussian
reconstruction term), trained for MIN_STEPS batches: on 20,000 rows of the credit-card sample, 5 epochs left the
generated rows' means about one standard deviation from the real ones (median over features), 20 epochs within
0.06, their spread then a fifth of the real rows' (draws of the prior decode towards the average row, which the
page's per-feature summary shows). Images (pixels in [0, 1]) get the chapter's binary cross-entropy and a hidden
layer of IMAGE_HIDDEN: on the 8x8 digits the Gaussian term decoded grey blurs whatever the width (its per-pixel
variance weighs the rarely lit pixels most), and with cross-entropy 16 hidden units decoded recognisable but
smeared digits, 128 sharper ones (256 over twice the epochs looked hardly better). The walk goes over the two
latent dimensions whose encodings of the fitted rows vary most: a dimension the encoder leaves at the prior decodes
one image all along. The outputs are ``.npy`` files in the model folder, each written through a temp file and a
rename, and recorded in one GeneratedSamples row per dataset; the web reads them with numpy alone. TensorFlow loads
when the VAE is fitted, in the worker only.
"""
import math
import os
import time

import numpy as np

from labeler.store.artifacts import npy_file, store_artifacts
from labeler.store.db import GeneratedSamples, utcnow
from labeler.store.pool import load_pool, pool_size

FIT_ROWS = 20_000  # the VAE is fitted on a seeded sample of at most this many rows of the pool
MIN_STEPS = 6000  # batches of training: small pools get more epochs, up to MAX_EPOCHS
MIN_EPOCHS = 5
MAX_EPOCHS = 60
BATCH = 64
TABULAR_HIDDEN = 16  # the chapter's 29 -> 16 -> 6
IMAGE_HIDDEN = 128
LATENT = 6
GRID_STEPS = 10  # the walk's grid is GRID_STEPS x GRID_STEPS
SPAN = 2.5  # the walk goes from -SPAN to SPAN prior standard deviations along each of its two dimensions
IMAGE_SAMPLES = 50  # generated images shown, and as many real ones
TABLE_SAMPLES = 10  # generated rows of a tabular dataset shown, and as many real ones
STATS_ROWS = 2_000  # real and generated rows behind each feature's mean and standard deviation


def run_generated(dataset, progress, config, **options):
    """The generated-samples job's handler (labeler.worker.jobs): ``compute`` into the configured model folder
    with ``options``; returns the job's summary."""
    progress.record(pool_rows=pool_size(dataset))
    record = compute(dataset, progress, config.MODEL_FOLDER, **options)
    return {"stage": f"generated samples from a VAE fitted on {record.fit_rows:,} items on {record.device}",
            "pool_rows": record.pool_rows, "seconds": record.seconds, "device": record.device}


def epochs_for(rows):
    """Epochs giving at least MIN_STEPS batches over ``rows`` rows, within [MIN_EPOCHS, MAX_EPOCHS]."""
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / math.ceil(rows / BATCH))))


def compute(dataset, progress, folder, seed=0, fit_rows=FIT_ROWS, epochs=None, grid_steps=GRID_STEPS):
    """Fit the VAE on a seeded sample of at most ``fit_rows`` of ``dataset``'s pool (``epochs``, default
    epochs_for the sample), store its latent walk, generated rows and as many real rows under ``folder``, and
    record them; returns the GeneratedSamples row. The previous files are removed once the new row is committed.

    ``progress(stage, percent)`` is called as it goes. Raises ValueError for a pool of fewer than 2 items; errors
    from training or writing leave the previous samples in place.
    """
    from models.vae import BERNOULLI, GAUSSIAN, VAE

    progress = progress or (lambda stage, percent: None)
    started = time.perf_counter()
    progress("loading the pool", 2)
    ids, features = load_pool(dataset, folder)
    if len(ids) < 2:
        raise ValueError(f"dataset {dataset.name!r} holds {len(ids)} item(s): the VAE needs at least 2")
    rng = np.random.default_rng(seed)
    fitted = features[np.sort(rng.choice(len(ids), size=min(len(ids), int(fit_rows)), replace=False))]
    image = dataset.image_shape is not None
    epochs = int(epochs or epochs_for(len(fitted)))
    progress(f"fitting the VAE on {len(fitted):,} items ({epochs} epochs)", 10)
    vae = VAE(latent_dim=LATENT, hidden_units=IMAGE_HIDDEN if image else TABULAR_HIDDEN, seed=seed,
              reconstruction=BERNOULLI if image else GAUSSIAN).fit(fitted, epochs=epochs, batch_size=BATCH)
    progress("decoding the latent walk and samples", 85)
    spread = vae.encode(fitted).var(axis=0)
    dims = sorted(int(dim) for dim in np.argsort(-spread, kind="stable")[:2])
    grid = vae.latent_walk(grid_steps, dims=dims, span=SPAN)
    shown = IMAGE_SAMPLES if image else TABLE_SAMPLES
    generated = vae.generate(max(shown, STATS_ROWS), seed=seed)
    real_rows = rng.choice(len(ids), size=min(len(ids), max(shown, STATS_ROWS)), replace=False)
    real = features[real_rows]
    progress("writing the samples", 95)
    files = {"grid.npy": npy_file(grid.astype(np.float32)), "generated.npy": npy_file(generated[:shown]),
             "real.npy": npy_file(real[:shown]), "real_ids.npy": npy_file(ids[real_rows[:shown]])}
    statistics = {"real_mean": real.mean(axis=0), "real_std": real.std(axis=0),
                  "generated_mean": generated.mean(axis=0), "generated_std": generated.std(axis=0)}

    def fields(paths):
        return dict(
            grid_path=paths["grid.npy"], generated_path=paths["generated.npy"], real_path=paths["real.npy"],
            real_ids_path=paths["real_ids.npy"], pool_rows=len(ids), fit_rows=len(fitted), grid_steps=int(grid_steps),
            latent_dims=dims, device=vae.device or "unknown", seconds=round(time.perf_counter() - started, 3),
            details={"hidden_units": vae.hidden_units, "latent_dim": vae.latent_dim,
                     "reconstruction": vae.reconstruction, "epochs": epochs, "seed": int(seed), "span": SPAN,
                     "final_loss": vae.meta["history"]["loss"][-1], "train_seconds": vae.meta.get("train_seconds"),
                     "latent_variance": [float(value) for value in spread], "stats_rows": len(real),
                     **{key: [float(value) for value in values] for key, values in statistics.items()}},
            created_at=utcnow(),
        )

    return store_artifacts(GeneratedSamples, dataset, os.path.join(folder, f"generated-{dataset.id}"), files, fields)
