"""Shared pieces of the Keras 3 generative models: seeding, device reporting, scaling layer, saving.

Importing this module imports Keras (and through it the configured backend, TensorFlow by default); the web
process never imports it. Models save as one ``.keras`` file: the Keras model, whose scaling is a layer inside
it, plus a ``labeler.json`` entry in the same zip archive for what is not a weight (history, threshold, device).
"""
import json
import os
import tempfile
import zipfile

import keras
import numpy as np
from keras import ops

META_ENTRY = "labeler.json"
PREDICT_CHUNK = 65536


def seed_everything(seed):
    """Seed Python, numpy and the Keras backend with ``seed`` and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()


def training_device():
    """The device the backend trains on, such as ``"CPU"`` or ``"GPU (/physical_device:GPU:0)"``."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        return f"GPU ({gpus[0].name})" if gpus else "CPU"
    if backend == "jax":
        import jax
        device = jax.devices()[0]
        return "CPU" if device.platform == "cpu" else f"{device.platform.upper()} ({device.device_kind})"
    if backend == "torch":
        import torch
        return f"GPU ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"
    return backend.upper()


def as_features(X, n_features=None, name="X"):
    """``X`` as a float32 2-d array; raises ValueError naming ``name`` when its shape or values are unusable."""
    array = np.asarray(X, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array of features, got shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, the model expects {n_features}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


@keras.saving.register_keras_serializable(package="labeler")
class MinMaxScaling(keras.layers.Layer):
    """Maps each feature from [minimum, maximum] (fitted on training rows) to [low, high], or back when inverse.

    Values outside the fitted range map outside [low, high]; a constant feature maps to ``low``.
    """

    def __init__(self, minimum, maximum, low=0.0, high=1.0, inverse=False, **kwargs):
        super().__init__(**kwargs)
        self.minimum = [float(v) for v in minimum]
        self.maximum = [float(v) for v in maximum]
        self.low = float(low)
        self.high = float(high)
        self.inverse = bool(inverse)
        span = np.asarray(self.maximum, dtype=np.float64) - np.asarray(self.minimum, dtype=np.float64)
        self._span = np.where(span > 0, span, 1.0).astype(np.float32)
        self._minimum = np.asarray(self.minimum, dtype=np.float32)

    @classmethod
    def fitted(cls, X, low=0.0, high=1.0, **kwargs):
        """A scaling layer fitted on the rows of ``X``."""
        return cls(X.min(axis=0), X.max(axis=0), low=low, high=high, **kwargs)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        minimum = ops.convert_to_tensor(self._minimum, dtype=self.compute_dtype)
        span = ops.convert_to_tensor(self._span, dtype=self.compute_dtype)
        width = self.high - self.low
        if self.inverse:
            return (x - self.low) / width * span + minimum
        return self.low + (x - minimum) / span * width

    def compute_output_shape(self, input_shape):
        return input_shape

    def numpy(self, X):
        """This layer applied to the numpy array ``X``, as float32 numpy."""
        return np.asarray(ops.convert_to_numpy(self(X)), dtype=np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(minimum=self.minimum, maximum=self.maximum, low=self.low, high=self.high,
                      inverse=self.inverse)
        return config


def predict_numpy(fn, X, chunk=PREDICT_CHUNK):
    """``fn`` (numpy chunk -> tensor, in inference mode) applied to ``X`` in chunks, as one float32 array."""
    parts = [ops.convert_to_numpy(fn(X[start:start + chunk])) for start in range(0, len(X), chunk)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def save_model(model, path, meta):
    """Write ``model`` and the JSON-able ``meta`` to ``path`` (a ``.keras`` file) through a temp file and rename.

    Raises ValueError when ``path`` does not end in ``.keras``.
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"model path must end in .keras: {path}")
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".keras")
    os.close(handle)
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(META_ENTRY, json.dumps(meta))
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_model(path, kind):
    """(Keras model, meta dict) from a file written by ``save_model`` for a model of ``kind``.

    Raises FileNotFoundError when ``path`` is missing and ValueError when it holds another kind of model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path}")
    with zipfile.ZipFile(path) as archive:
        if META_ENTRY not in archive.namelist():
            raise ValueError(f"{path} is not a labeler model file (no {META_ENTRY})")
        meta = json.loads(archive.read(META_ENTRY))
    if meta.get("kind") != kind:
        raise ValueError(f"{path} holds a {meta.get('kind')!r} model, not {kind!r}")
    return keras.saving.load_model(path, compile=False), meta


class SavedKerasModel:
    """What the Keras wrappers share: the trained model, its training record, atomic save and typed load.

    Subclasses set ``kind`` and ``title`` and turn a training record back into constructor arguments with
    ``_init_args(meta)``.
    """

    kind = None
    title = None

    def __init__(self, seed=0):
        self.seed = int(seed)
        self.model = None
        self.meta = {}

    @property
    def device(self):
        """The device that trained this model ("CPU", "GPU (...)"), or None before ``fit``/``load``."""
        return self.meta.get("device")

    def _require_model(self):
        if self.model is None:
            raise RuntimeError(f"the {self.title} is not trained: call fit or load first")
        return self.model

    def save(self, path):
        """Write the model, its scaling and its training record to ``path`` (``.keras``), atomically."""
        save_model(self._require_model(), path, self.meta)

    @classmethod
    def load(cls, path):
        """The model read from ``path``; raises FileNotFoundError or ValueError for a missing or other file."""
        model, meta = load_model(path, cls.kind)
        loaded = cls(**cls._init_args(meta))
        loaded.model, loaded.meta = model, meta
        return loaded

    @classmethod
    def _init_args(cls, meta):
        raise NotImplementedError

