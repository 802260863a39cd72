"""Variational autoencoder on min-max scaled features; generates synthetic rows around given ones (balancing).

Architecture (the book chapter's): scaling to [0, 1], Dense(16, relu), z_mean and z_log_var of 6, a sampling
layer that adds the KL divergence as its layer loss, Dense(16, relu), Dense(n_features, sigmoid). The loss is a
reconstruction term plus the KL term. The reconstruction term is a Gaussian negative log-likelihood with each
feature's variance fixed to its scaled training variance, not the chapter's binary cross-entropy: on min-max
scaled card features most values sit in a narrow band, and with cross-entropy the KL term won, the encoder
collapsed onto the prior and every decoded row was the average row. Images (pixels in [0, 1]) take the chapter's
binary cross-entropy instead (``reconstruction="bernoulli"``) and a wider hidden layer (bench figures in
labeler.worker.generated): with the Gaussian term, whose per-pixel variance weighs the rarely lit pixels most, the
decoded digits were grey blurs.

For balancing, fit on labeled rows (or the labeled frauds) and call ``sample_around`` with the frauds: a VAE
fitted on a pool of almost only genuine rows decodes fraud encodings toward genuine rows. Synthetic rows are for
training only: they are never labels. Numpy in, numpy out; imports Keras.
"""
import time

import keras
import numpy as np
from keras import ops

from models.keras_common import (MinMaxScaling, SavedKerasModel, as_features, predict_numpy, seed_everything,
                                 training_device)

KIND = "vae"
MIN_VARIANCE = 1e-6
GAUSSIAN = "gaussian"
BERNOULLI = "bernoulli"
RECONSTRUCTIONS = (GAUSSIAN, BERNOULLI)


def kl_divergence(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, 1)) summed over the latent axis and averaged over rows."""
    per_row = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
    return ops.mean(per_row)


@keras.saving.register_keras_serializable(package="labeler")
class Sampling(keras.layers.Layer):
    """Draws z = z_mean + exp(z_log_var / 2) * eps and adds the KL divergence as this layer's loss."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        self.add_loss(kl_divergence(z_mean, z_log_var))
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        config = super().get_config()
        config.update(seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="labeler")
class GaussianReconstruction(keras.losses.Loss):
    """The VAE's reconstruction term: 0.5 * sum over features of (x - x_hat)^2 / variance, per row."""

    def __init__(self, variance, name="gaussian_reconstruction", **kwargs):
        super().__init__(name=name, **kwargs)
        self.variance = [float(v) for v in variance]

    def call(self, y_true, y_pred):
        variance = ops.convert_to_tensor(np.asarray(self.variance, dtype=np.float32), dtype=y_pred.dtype)
        return 0.5 * ops.sum(ops.square(ops.cast(y_true, y_pred.dtype) - y_pred) / variance, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(variance=self.variance)
        return config


@keras.saving.register_keras_serializable(package="labeler")
class BernoulliReconstruction(keras.losses.Loss):
    """The chapter's reconstruction term for pixels: binary cross-entropy summed over the features, per row."""

    def __init__(self, name="bernoulli_reconstruction", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        y_true = ops.cast(y_true, y_pred.dtype)
        return -ops.sum(y_true * ops.log(y_pred) + (1.0 - y_true) * ops.log(1.0 - y_pred), axis=-1)


class VAE(SavedKerasModel):
    """A variational autoencoder; ``fit`` trains a fresh one, ``save``/``load`` round-trip it with its scaling."""

    kind = KIND
    title = "VAE"

    def __init__(self, latent_dim=6, hidden_units=16, seed=0, reconstruction=GAUSSIAN):
        """``reconstruction``: the loss's reconstruction term, "gaussian" (tabular features) or "bernoulli"
        (pixels in [0, 1]). Raises ValueError for another."""
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction term {reconstruction!r} (known: {', '.join(RECONSTRUCTIONS)})")
        super().__init__(seed)
        self.latent_dim = int(latent_dim)
        self.hidden_units = int(hidden_units)
        self.reconstruction = reconstruction

    @classmethod
    def _init_args(cls, meta):
        return {"latent_dim": meta["latent_dim"], "hidden_units": meta["hidden_units"], "seed": meta["seed"],
                "reconstruction": meta.get("reconstruction", GAUSSIAN)}

    def _reconstruction_term(self, variance):
        """The loss's reconstruction term; ``variance``: the scaled training variance of each feature (Gaussian)."""
        return BernoulliReconstruction() if self.reconstruction == BERNOULLI else GaussianReconstruction(variance)

    @property
    def n_features(self):
        return len(self._require_model().get_layer("scaling").minimum)

    def _part(self, name):
        return self._require_model().get_layer(name)

    def fit(self, X, epochs=10, batch_size=256, verbose=0):
        """Train a fresh VAE on the rows of ``X`` (raw features); returns self.

        Raises ValueError when ``X`` is not a finite, non-empty 2-d array.
        """
        X = as_features(X)
        seed_everything(self.seed)
        started = time.perf_counter()
        n_features = X.shape[1]
        scaling = MinMaxScaling.fitted(X, name="scaling")
        scaled_input = keras.Input((n_features,))
        hidden = keras.layers.Dense(self.hidden_units, activation="relu")(scaled_input)
        encoder = keras.Model(scaled_input, [keras.layers.Dense(self.latent_dim, name="z_mean")(hidden),
                                             keras.layers.Dense(self.latent_dim, name="z_log_var")(hidden)],
                              name="encoder")
        decoder = keras.Sequential([keras.Input((self.latent_dim,)),
                                    keras.layers.Dense(self.hidden_units, activation="relu"),
                                    keras.layers.Dense(n_features, activation="sigmoid")], name="decoder")
        features = keras.Input((n_features,), name="features")
        z_mean, z_log_var = encoder(scaling(features))
        z = Sampling(seed=self.seed, name="sampling")([z_mean, z_log_var])
        model = keras.Model(features, decoder(z), name=KIND)
        scaled = scaling.numpy(X)
        variance = np.maximum(scaled.var(axis=0), MIN_VARIANCE)
        model.compile(optimizer=keras.optimizers.Adam(), loss=self._reconstruction_term(variance))
        history = model.fit(X, scaled, epochs=int(epochs), batch_size=int(batch_size), shuffle=True,
                            verbose=verbose)
        self.model = model
        self.meta = {
            "kind": KIND, "seed": self.seed, "latent_dim": self.latent_dim, "hidden_units": self.hidden_units,
            "epochs": int(epochs), "batch_size": int(batch_size), "n_rows": len(X),
            "reconstruction": self.reconstruction, "reconstruction_variance": [float(v) for v in variance],
            "device": training_device(), "backend": keras.backend.backend(),
            "train_seconds": round(time.perf_counter() - started, 3),
            "history": {"loss": [float(v) for v in history.history["loss"]]},
        }
        return self

    def _checked(self, X):
        return as_features(X, self.n_features)

    def scale(self, X):
        """``X`` min-max scaled with the ranges fitted on the training rows."""
        return predict_numpy(self._part("scaling"), self._checked(X))

    def unscale(self, X_scaled):
        """Scaled rows back in the original units of the features."""
        scaling = self._part("scaling")
        return MinMaxScaling(scaling.minimum, scaling.maximum, inverse=True).numpy(X_scaled)

    def encode_distribution(self, X):
        """(z_mean, z_log_var) of the rows of ``X``, each of shape (n, latent_dim)."""
        encoder = self._part("encoder")
        scaled = self.scale(X)
        both = predict_numpy(lambda chunk: ops.concatenate(encoder(chunk, training=False), axis=-1), scaled)
        return both[:, :self.latent_dim], both[:, self.latent_dim:]

    def encode(self, X):
        """Latent features of ``X``: the mean of its encoding, shape (n, latent_dim)."""
        return self.encode_distribution(X)[0]

    def decode_scaled(self, Z):
        """Rows decoded from latent vectors ``Z``, in scaled units ([0, 1])."""
        Z = as_features(Z, self.latent_dim, name="Z")
        decoder = self._part("decoder")
        return predict_numpy(lambda chunk: decoder(chunk, training=False), Z)

    def reconstruct(self, X):
        """The reconstruction of ``X`` from the mean of its encoding, in the original units."""
        return self.unscale(self.decode_scaled(self.encode(X)))

    def reconstruction_error(self, X):
        """Per-feature squared reconstruction error of ``X`` in scaled units, shape (n, n_features)."""
        return np.square(self.scale(X) - self.decode_scaled(self.encode(X)))

    def loss_terms(self, X):
        """The mean reconstruction term, KL term and their sum over the rows of ``X``, at the encoding means."""
        scaled = self.scale(X)
        z_mean, z_log_var = self.encode_distribution(X)
        reconstructed = self.decode_scaled(z_mean)
        term = self._reconstruction_term(self.meta["reconstruction_variance"])
        reconstruction = float(ops.convert_to_numpy(ops.mean(term.call(
            ops.convert_to_tensor(scaled), ops.convert_to_tensor(reconstructed)))))
        kl = float(ops.convert_to_numpy(kl_divergence(ops.convert_to_tensor(z_mean),
                                                      ops.convert_to_tensor(z_log_var))))
        return {"reconstruction": reconstruction, "kl": kl, "total": reconstruction + kl}

    def generate(self, n, seed=0):
        """``n`` rows decoded from seeded draws of the prior N(0, I), in the original units of the features.

        Raises ValueError for n < 1.
        """
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        z = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim)).astype(np.float32)
        return self.unscale(self.decode_scaled(z))

    def latent_walk(self, steps=10, dims=(0, 1), span=2.5):
        """Rows decoded from a walk over two latent dimensions, in the original units: a ``steps`` x ``steps``
        grid, row-major, whose column j sets ``dims[0]`` from -span to span (left to right) and row i sets
        ``dims[1]`` from span to -span (top to bottom); the other dimensions stay 0, the prior's mean.

        Raises ValueError for fewer than 2 steps or ``dims`` that are not two distinct latent dimensions.
        """
        steps, dims = int(steps), [int(dim) for dim in dims]
        if steps < 2:
            raise ValueError(f"a latent walk needs at least 2 steps, got {steps}")
        if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= dim < self.latent_dim for dim in dims):
            raise ValueError(f"dims must be two distinct dimensions of the {self.latent_dim}-d latent space, "
                             f"got {dims}")
        values = np.linspace(-float(span), float(span), steps, dtype=np.float32)
        z = np.zeros((steps * steps, self.latent_dim), dtype=np.float32)
        z[:, dims[0]] = np.tile(values, steps)
        z[:, dims[1]] = np.repeat(values[::-1], steps)
        return self.unscale(self.decode_scaled(z))

    def sample_around(self, X_anchor, n, seed=0, spread=1.0):
        """``n`` synthetic rows in original units, decoded from draws around the encodings of ``X_anchor``.

        Anchors are taken in turn from a seeded shuffle; each draw is z_mean + spread * sigma * eps. Meant to
        balance a classifier's training (e.g. frauds); the rows are never labels. Raises ValueError for n < 1.
        """
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        z_mean, z_log_var = self.encode_distribution(X_anchor)
        rng = np.random.default_rng(seed)
        order = np.resize(rng.permutation(len(z_mean)), int(n))
        epsilon = rng.standard_normal((int(n), self.latent_dim)).astype(np.float32)
        z = z_mean[order] + float(spread) * np.exp(0.5 * z_log_var[order]) * epsilon
        return self.unscale(self.decode_scaled(z))

