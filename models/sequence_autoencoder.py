"""LSTM models of each card's recent transactions (models.sequences): a sequence autoencoder whose reconstruction
error scores a transaction by how unusual its card's last k steps are, and a sequence VAE that generates
synthetic sequences.

Inputs are ``sequences`` (float32 (n, k, d), step features in their own units) and ``mask`` (bool (n, k), False
at padded steps), as models.sequences.card_sequences returns them; every sequence needs at least one valid step.
Padded steps count nowhere: the encoder's LSTM skips them (its state starts at the first valid step), the loss
and the errors average over valid steps only, so what a padded step holds changes nothing.

Architecture (the book chapter's): min-max scaling to [0, 1] fitted on the valid steps of the training
sequences (a layer inside the model, so save/load keeps it), ``LSTM(latent_dim)`` encoder, ``RepeatVector(k)``,
``LSTM(n_features, return_sequences=True)`` decoder, masked mean squared error, Adam. The VAE (see models/vae.py
for its loss and why the reconstruction term is a Gaussian one) has an ``LSTM(hidden_units)`` encoder into
z_mean and z_log_var, models.vae's sampling layer with its KL term, and ``RepeatVector(k)``,
``LSTM(hidden_units, return_sequences=True)``, a time-distributed ``Dense(n_features, sigmoid)`` decoder: its
Gaussian term wants outputs over the whole scaled range, which an LSTM's tanh output reaches only at saturation.

Speed on the 2-core CPU (TensorFlow; bench/sequences.py): k = 10, 17 step features, latent 16, batch 1024, about
5 s an epoch per 200,000 sequences; the errors of 1.8 million sequences, built and scored in chunks, about 18 s.
``fit`` holds a scaled copy and the targets of its sequences besides them (about three times their size).

Numpy in, numpy out; imports Keras, so the web process never imports it.
"""
import time

import keras
import numpy as np
from keras import ops

from models.keras_common import PREDICT_CHUNK, MinMaxScaling, SavedKerasModel, seed_everything, training_device
from models.vae import MIN_VARIANCE, Sampling

AUTOENCODER_KIND = "sequence_autoencoder"
VAE_KIND = "sequence_vae"


def as_sequences(sequences, mask, steps=None, n_features=None):
    """(sequences float32 (n, k, d), mask bool (n, k)) checked; raises ValueError naming what is wrong: another
    shape, another k or d than the model's, NaN or infinite values, or a sequence without a valid step."""
    sequences = np.asarray(sequences, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if sequences.ndim != 3 or sequences.shape[0] == 0 or sequences.shape[1] == 0:
        raise ValueError(f"sequences must be a non-empty 3-d array (n, k, d), got shape {sequences.shape}")
    if mask.shape != sequences.shape[:2]:
        raise ValueError(f"mask must have shape {sequences.shape[:2]}, got {mask.shape}")
    if steps is not None and sequences.shape[1] != steps:
        raise ValueError(f"sequences have {sequences.shape[1]} steps, the model expects {steps}")
    if n_features is not None and sequences.shape[2] != n_features:
        raise ValueError(f"sequences have {sequences.shape[2]} features, the model expects {n_features}")
    if not mask.any(axis=1).all():
        raise ValueError("every sequence needs at least one valid (unmasked) step")
    if not np.isfinite(sequences).all():
        raise ValueError("sequences hold NaN or infinite values")
    return sequences, mask


def _targets(scaled, mask):
    """The training target: scaled steps with the mask as one more feature (the losses split it off)."""
    return np.concatenate([scaled, mask[..., None].astype(np.float32)], axis=-1)


@keras.saving.register_keras_serializable(package="labeler")
class MaskedMeanSquaredError(keras.losses.Loss):
    """Per sequence, the mean over valid steps of the mean squared error over features; ``y_true`` carries the
    mask as its last feature."""

    def __init__(self, name="masked_mean_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        target, mask = y_true[..., :-1], y_true[..., -1]
        per_step = ops.mean(ops.square(target - y_pred), axis=-1)
        return ops.sum(per_step * mask, axis=-1) / ops.maximum(ops.sum(mask, axis=-1), 1.0)


@keras.saving.register_keras_serializable(package="labeler")
class MaskedGaussianReconstruction(keras.losses.Loss):
    """The sequence VAE's reconstruction term: 0.5 * sum over valid steps and features of (x - x_hat)^2 /
    variance, per sequence; ``y_true`` carries the mask as its last feature."""

    def __init__(self, variance, name="masked_gaussian_reconstruction", **kwargs):
        super().__init__(name=name, **kwargs)
        self.variance = [float(v) for v in variance]

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        target, mask = y_true[..., :-1], y_true[..., -1]
        variance = ops.convert_to_tensor(np.asarray(self.variance, dtype=np.float32), dtype=y_pred.dtype)
        per_step = ops.sum(ops.square(target - y_pred) / variance, axis=-1)
        return 0.5 * ops.sum(per_step * mask, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(variance=self.variance)
        return config


class _SequenceModel(SavedKerasModel):
    """What the two sequence models share: the scaling layer, the shapes they expect, checks, chunked calls."""

    def __init__(self, latent_dim, seed=0):
        super().__init__(seed)
        self.latent_dim = int(latent_dim)

    @property
    def steps(self):
        """k, the number of steps of a sequence."""
        self._require_model()
        return self.meta["steps"]

    @property
    def n_features(self):
        """d, the number of step features."""
        return len(self._part("scaling").minimum)

    def _part(self, name):
        return self._require_model().get_layer(name)

    def _checked(self, sequences, mask):
        return as_sequences(sequences, mask, self.steps, self.n_features)

    def _fitted_scaling(self, sequences, mask):
        return MinMaxScaling.fitted(sequences[mask], name="scaling")

    def _in_chunks(self, fn, sequences, mask):
        """``fn`` (sequences chunk, mask chunk -> tensor) over chunks of the inputs, as one float32 array."""
        parts = [ops.convert_to_numpy(fn(ops.convert_to_tensor(sequences[start:start + PREDICT_CHUNK]),
                                         ops.convert_to_tensor(mask[start:start + PREDICT_CHUNK])))
                 for start in range(0, len(sequences), PREDICT_CHUNK)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _record(self, kind, sequences, epochs, batch_size, started, history, **extra):
        self.meta = {
            "kind": kind, "seed": self.seed, "latent_dim": self.latent_dim, **extra, "steps": sequences.shape[1],
            "epochs": int(epochs), "batch_size": int(batch_size), "n_sequences": len(sequences),
            "device": training_device(), "backend": keras.backend.backend(),
            "train_seconds": round(time.perf_counter() - started, 3),
            "history": {"loss": [float(v) for v in history.history["loss"]]},
        }

    def scale(self, sequences, mask):
        """``sequences`` min-max scaled with the ranges fitted on the training steps (padded steps too)."""
        sequences, mask = self._checked(sequences, mask)
        return self._in_chunks(lambda chunk, _: self._part("scaling")(chunk), sequences, mask)

    def unscale(self, scaled):
        """Scaled steps (any shape ending in n_features) back in the units of the step features."""
        scaling = self._part("scaling")
        return MinMaxScaling(scaling.minimum, scaling.maximum, inverse=True).numpy(scaled)


class SequenceAutoencoder(_SequenceModel):
    """An LSTM sequence autoencoder; ``fit`` trains a fresh one, ``save``/``load`` round-trip it with its scaling."""

    kind = AUTOENCODER_KIND
    title = "sequence autoencoder"

    def __init__(self, latent_dim=16, seed=0):
        super().__init__(latent_dim, seed)

    @classmethod
    def _init_args(cls, meta):
        return {"latent_dim": meta["latent_dim"], "seed": meta["seed"]}

    def fit(self, sequences, mask, epochs=5, batch_size=512, verbose=0):
        """Train a fresh autoencoder on ``sequences`` (step features, padded steps False in ``mask``); returns self.

        Raises ValueError for inputs ``as_sequences`` rejects.
        """
        sequences, mask = as_sequences(sequences, mask)
        seed_everything(self.seed)
        started = time.perf_counter()
        _, steps, n_features = sequences.shape
        scaling = self._fitted_scaling(sequences, mask)
        scaled_input, mask_input = keras.Input((steps, n_features)), keras.Input((steps,), dtype="bool")
        encoder = keras.Model([scaled_input, mask_input],
                              keras.layers.LSTM(self.latent_dim)(scaled_input, mask=mask_input), name="encoder")
        decoder = keras.Sequential([keras.Input((self.latent_dim,)), keras.layers.RepeatVector(steps),
                                    keras.layers.LSTM(n_features, return_sequences=True)], name="decoder")
        sequences_in = keras.Input((steps, n_features), name="sequences")
        mask_in = keras.Input((steps,), dtype="bool", name="mask")
        model = keras.Model([sequences_in, mask_in], decoder(encoder([scaling(sequences_in), mask_in])),
                            name=AUTOENCODER_KIND)
        model.compile(optimizer=keras.optimizers.Adam(), loss=MaskedMeanSquaredError())
        history = model.fit([sequences, mask], _targets(scaling.numpy(sequences), mask), epochs=int(epochs),
                            batch_size=int(batch_size), shuffle=True, verbose=verbose)
        self.model = model
        feature_error = self._feature_errors(sequences, mask).sum(axis=0) / mask.sum()
        self._record(AUTOENCODER_KIND, sequences, epochs, batch_size, started, history,
                     feature_error=[float(v) for v in np.maximum(feature_error, MIN_VARIANCE)])
        return self

    def _feature_errors(self, sequences, mask):
        """Per sequence and feature, the squared error in scaled units summed over valid steps: float32 (n, d)."""
        scaling, model = self._part("scaling"), self.model

        def summed(chunk, chunk_mask):
            squared = ops.square(scaling(chunk) - model([chunk, chunk_mask], training=False))
            return ops.sum(squared * ops.expand_dims(ops.cast(chunk_mask, squared.dtype), -1), axis=1)

        return self._in_chunks(summed, sequences, mask)

    def errors(self, sequences, mask, standardized=False):
        """(per sequence float32 (n,), per step float32 (n, k)): the squared reconstruction error in scaled units,
        averaged over features for a step and over the valid steps for a sequence; NaN at padded steps. Higher
        is more unusual.

        ``standardized``: each feature's squared error divided by its mean over the training steps (kept in
        ``meta["feature_error"]``), so that a normal step's error is about 1 and a feature the model cannot
        predict on normal sequences (a merchant category drawn at random) weighs no more than one it predicts
        well. Raises ValueError for inputs ``as_sequences`` rejects.
        """
        sequences, mask = self._checked(sequences, mask)
        scaling, model = self._part("scaling"), self.model
        weights = np.ones(self.n_features, dtype=np.float32)
        if standardized:
            weights = 1.0 / np.asarray(self.meta["feature_error"], dtype=np.float32)

        def step_errors(chunk, chunk_mask):
            squared = ops.square(scaling(chunk) - model([chunk, chunk_mask], training=False))
            return ops.mean(squared * ops.convert_to_tensor(weights, dtype=squared.dtype), axis=-1)

        per_step = self._in_chunks(step_errors, sequences, mask)
        per_sequence = np.where(mask, per_step, 0.0).sum(axis=1) / mask.sum(axis=1)
        per_step[~mask] = np.nan
        return per_sequence.astype(np.float32), per_step

    def latent(self, sequences, mask):
        """The encoder's last state for each sequence: float32 (n, latent_dim), values in (-1, 1)."""
        sequences, mask = self._checked(sequences, mask)
        scaling, encoder = self._part("scaling"), self._part("encoder")
        return self._in_chunks(lambda chunk, chunk_mask: encoder([scaling(chunk), chunk_mask], training=False),
                               sequences, mask)


class SequenceVAE(_SequenceModel):
    """An LSTM variational autoencoder of sequences; ``generate`` draws synthetic ones (for training only, never
    labels). ``fit`` trains a fresh one, ``save``/``load`` round-trip it with its scaling."""

    kind = VAE_KIND
    title = "sequence VAE"

    def __init__(self, latent_dim=8, hidden_units=16, seed=0):
        super().__init__(latent_dim, seed)
        self.hidden_units = int(hidden_units)

    @classmethod
    def _init_args(cls, meta):
        return {"latent_dim": meta["latent_dim"], "hidden_units": meta["hidden_units"], "seed": meta["seed"]}

    def fit(self, sequences, mask, epochs=5, batch_size=512, verbose=0):
        """Train a fresh VAE on ``sequences`` (step features, padded steps False in ``mask``); returns self.

        Raises ValueError for inputs ``as_sequences`` rejects.
        """
        sequences, mask = as_sequences(sequences, mask)
        seed_everything(self.seed)
        started = time.perf_counter()
        _, steps, n_features = sequences.shape
        scaling = self._fitted_scaling(sequences, mask)
        scaled_input, mask_input = keras.Input((steps, n_features)), keras.Input((steps,), dtype="bool")
        hidden = keras.layers.LSTM(self.hidden_units)(scaled_input, mask=mask_input)
        encoder = keras.Model([scaled_input, mask_input],
                              [keras.layers.Dense(self.latent_dim, name="z_mean")(hidden),
                               keras.layers.Dense(self.latent_dim, name="z_log_var")(hidden)], name="encoder")
        decoder = keras.Sequential([
            keras.Input((self.latent_dim,)), keras.layers.RepeatVector(steps),
            keras.layers.LSTM(self.hidden_units, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(n_features, activation="sigmoid")),
        ], name="decoder")
        sequences_in = keras.Input((steps, n_features), name="sequences")
        mask_in = keras.Input((steps,), dtype="bool", name="mask")
        z_mean, z_log_var = encoder([scaling(sequences_in), mask_in])
        z = Sampling(seed=self.seed, name="sampling")([z_mean, z_log_var])
        model = keras.Model([sequences_in, mask_in], decoder(z), name=VAE_KIND)
        scaled = scaling.numpy(sequences)
        variance = np.maximum(scaled[mask].var(axis=0), MIN_VARIANCE)
        model.compile(optimizer=keras.optimizers.Adam(), loss=MaskedGaussianReconstruction(variance))
        history = model.fit([sequences, mask], _targets(scaled, mask), epochs=int(epochs),
                            batch_size=int(batch_size), shuffle=True, verbose=verbose)
        self.model = model
        self._record(VAE_KIND, sequences, epochs, batch_size, started, history, hidden_units=self.hidden_units,
                     reconstruction_variance=[float(v) for v in variance])
        return self

    def encode(self, sequences, mask):
        """(z_mean, z_log_var) of each sequence, each float32 (n, latent_dim)."""
        sequences, mask = self._checked(sequences, mask)
        scaling, encoder = self._part("scaling"), self._part("encoder")
        both = self._in_chunks(
            lambda chunk, chunk_mask: ops.concatenate(encoder([scaling(chunk), chunk_mask], training=False), -1),
            sequences, mask)
        return both[:, :self.latent_dim], both[:, self.latent_dim:]

    def decode(self, z):
        """Sequences decoded from latent vectors ``z`` (n, latent_dim), in step-feature units: float32 (n, k, d).

        Every step is decoded: a synthetic sequence has no padding. Raises ValueError for another shape of ``z``.
        """
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}")
        decoder = self._part("decoder")
        parts = [ops.convert_to_numpy(decoder(z[start:start + PREDICT_CHUNK], training=False))
                 for start in range(0, len(z), PREDICT_CHUNK)]
        return self.unscale(np.concatenate(parts).astype(np.float32, copy=False))

    def generate(self, n, seed=0):
        """``n`` synthetic sequences (float32 (n, k, d), step-feature units) decoded from draws of the prior
        N(0, I), seeded. One-hot and first-use features come out as values in between, not 0/1. Raises ValueError
        for n < 1."""
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        z = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim)).astype(np.float32)
        return self.decode(z)
