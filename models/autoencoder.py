"""Autoencoder on min-max scaled features: latent features from its encoder, reconstruction error as anomaly score.

Architecture (the book chapter's): scaling to [0, 1], Dense(12, tanh) encoder, Dense(n_features, sigmoid)
decoder, mean squared error, Adam. Numpy in, numpy out; imports Keras, so the web process never imports it.
"""
import time

import keras
import numpy as np

from models.keras_common import (MinMaxScaling, SavedKerasModel, as_features, predict_numpy, seed_everything,
                                 training_device)

KIND = "autoencoder"


class Autoencoder(SavedKerasModel):
    """A dense autoencoder; ``fit`` trains a fresh one, ``save``/``load`` round-trip it with its scaling."""

    kind = KIND
    title = "autoencoder"

    def __init__(self, latent_dim=12, seed=0):
        super().__init__(seed)
        self.latent_dim = int(latent_dim)

    @classmethod
    def _init_args(cls, meta):
        return {"latent_dim": meta["latent_dim"], "seed": meta["seed"]}

    @property
    def n_features(self):
        return len(self._scaling.minimum)

    @property
    def _scaling(self):
        return self._require_model().get_layer("scaling")

    def fit(self, X, epochs=10, batch_size=256, verbose=0):
        """Train a fresh autoencoder on the rows of ``X`` (raw features); returns self.

        Raises ValueError when ``X`` is not a finite, non-empty 2-d array.
        """
        X = as_features(X)
        seed_everything(self.seed)
        started = time.perf_counter()
        n_features = X.shape[1]
        scaling = MinMaxScaling.fitted(X, name="scaling")
        encoder = keras.Sequential([keras.Input((n_features,)),
                                    keras.layers.Dense(self.latent_dim, activation="tanh")], name="encoder")
        decoder = keras.Sequential([keras.Input((self.latent_dim,)),
                                    keras.layers.Dense(n_features, activation="sigmoid")], name="decoder")
        features = keras.Input((n_features,), name="features")
        model = keras.Model(features, decoder(encoder(scaling(features))), name=KIND)
        model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
        history = model.fit(X, scaling.numpy(X), epochs=int(epochs), batch_size=int(batch_size),
                            shuffle=True, verbose=verbose)
        self.model = model
        self.meta = {
            "kind": KIND, "seed": self.seed, "latent_dim": self.latent_dim, "epochs": int(epochs),
            "batch_size": int(batch_size), "n_rows": len(X), "device": training_device(),
            "backend": keras.backend.backend(), "train_seconds": round(time.perf_counter() - started, 3),
            "history": {"loss": [float(v) for v in history.history["loss"]]},
        }
        return self

    def _checked(self, X):
        return as_features(X, self.n_features)

    def scale(self, X):
        """``X`` min-max scaled with the ranges fitted on the training rows."""
        X = self._checked(X)
        return predict_numpy(self._scaling, X)

    def encode(self, X):
        """Latent features of ``X``: shape (n, latent_dim), values in (-1, 1)."""
        X = self._checked(X)
        encoder = self.model.get_layer("encoder")
        return predict_numpy(lambda chunk: encoder(self._scaling(chunk), training=False), X)

    def reconstruct_scaled(self, X):
        """The reconstruction of ``X`` in scaled units ([0, 1]), shape (n, n_features)."""
        X = self._checked(X)
        return predict_numpy(lambda chunk: self.model(chunk, training=False), X)

    def reconstruct(self, X):
        """The reconstruction of ``X`` in the original units of its features."""
        scaling = self._scaling
        inverse = MinMaxScaling(scaling.minimum, scaling.maximum, inverse=True)
        return inverse.numpy(self.reconstruct_scaled(X))

    def reconstruction_error(self, X):
        """Per-feature squared reconstruction error of ``X`` in scaled units, shape (n, n_features)."""
        X = self._checked(X)
        return np.square(self.scale(X) - self.reconstruct_scaled(X))

    def anomaly_score(self, X):
        """Mean squared reconstruction error per row of ``X``: higher is more unusual."""
        return self.reconstruction_error(X).mean(axis=1)

