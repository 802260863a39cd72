"""Generative candidates for model selection (the dataset setting ``generative_candidates``).

- "latent": an autoencoder fitted once on the whole pool (unsupervised: it sees no label, so reusing it in every
  fold leaks nothing) appends its encodings and its reconstruction error to the weak model's features; one
  candidate per weak kind, named "<kind>+latent".
- "vae_balance": in each training fold, a VAE fitted on that fold's human-labeled positives generates synthetic
  positives around their encodings until the fold's human labels balance; the weak model trains on them beside
  the real rows; one candidate per weak kind, named "<kind>+vae". Synthetic rows are never labels and never in a
  held-out fold.
- "sgan": the semi-supervised GAN's classifier (models.sgan), trained on the fold's human labels (a quarter held
  out inside the fold to pick its checkpoint) and the unlabeled pool; pseudo-labels are not used. On images
  (``image_shape``) it is the convolutional SGAN where the size fits (models.sgan.fits_convolution).

With K > 2 classes (``n_classes``; labels are class indices 0..K-1) only "sgan" is offered: the latent and VAE
balancing candidates are binary. Its ``raw(X)`` is then an (n, K) array of class probabilities, rows summing to 1,
a zero column for each class with fewer than two training labels (the SGAN holds one out to pick its
checkpoint), and ``calibration`` is a list of K one-vs-rest Platt pairs.

Cost: the Keras-trained candidates ("+vae", "sgan") are cross-validated on the first repeat of the folds only;
"+latent" ones, which train no network per fold, on all repeats like the weak kinds. Between two model
selections of a learner, a "+vae" kind refits its weak model around the current positives with the VAE of the
last selection instead of fitting a new one.

The served models are numpy and scikit-learn only: the Keras weights are copied into numpy forward passes
(AutoencoderFeatures, SGANClassifier, its convolutions included), so a pickled model loads and scores without
TensorFlow. Keras is imported only when a generative model is trained.
"""
import math

import numpy as np
from scipy.special import expit, softmax

from models import weak
from models.names import GENERATIVE_CANDIDATES, LATENT, SGAN, VAE_BALANCE

NAMES = GENERATIVE_CANDIDATES
LATENT_SUFFIX = "+latent"
VAE_SUFFIX = "+vae"
MIN_POSITIVES = 10  # "+vae" and "sgan" become candidates once this many positives are labeled
MIN_CLASS_LABELS = 5  # K > 2 classes: "sgan" becomes a candidate once two classes have this many labels each
MIN_SGAN_CLASS_ROWS = 2  # K > 2 classes: the SGAN learns the classes with this many labels (one is held out)
CONV_CHUNK = 2048  # rows per numpy forward pass of the convolutional discriminator

AUTOENCODER_MIN_STEPS = 1000  # small pools get more epochs, up to AUTOENCODER_MAX_EPOCHS
AUTOENCODER_MIN_EPOCHS = 5
AUTOENCODER_MAX_EPOCHS = 100
AUTOENCODER_BATCH = 256
VAE_MIN_STEPS = 600  # the fraud VAE trains for about this many batches: 100 epochs on few positives, fewer on many
VAE_MIN_EPOCHS = 20
VAE_MAX_EPOCHS = 100
VAE_BATCH = 16
SGAN_STEPS = 4000
SGAN_EVAL_EVERY = 100


class CandidateFailed(RuntimeError):
    """A generative candidate produced no usable model (an SGAN whose every checkpoint collapsed)."""


def base_kind(kind):
    """The weak kind under a generative candidate: "boosted" for "boosted+latent", None for "sgan"."""
    for suffix in (LATENT_SUFFIX, VAE_SUFFIX):
        if kind.endswith(suffix):
            return kind[:-len(suffix)]
    return None


def is_generative(kind):
    """Whether ``kind`` names a generative candidate rather than a plain weak kind."""
    return kind == SGAN or base_kind(kind) is not None


def keras_per_fold(kind):
    """Whether ``kind`` trains a Keras model in each fold (cross-validated on the first repeat only)."""
    return kind == SGAN or kind.endswith(VAE_SUFFIX)


def blend_parts(kind):
    """The kinds whose mean makes the blend ``kind`` ("blend" or "blend+<suffix>"), or None for another kind."""
    if kind == weak.BLEND:
        return weak.BLEND_PARTS
    base = base_kind(kind)
    if base == weak.BLEND:
        suffix = kind[len(base):]
        return tuple(part + suffix for part in weak.BLEND_PARTS)
    return None


class AutoencoderFeatures:
    """The autoencoder's encoder and decoder in numpy: ``transform(X)`` gives the encodings and the mean squared
    reconstruction error of each row, shape (n, latent_dim + 1)."""

    def __init__(self, minimum, span, encoder_kernel, encoder_bias, decoder_kernel, decoder_bias, device=None):
        self.minimum = np.asarray(minimum, dtype=np.float32)
        self.span = np.asarray(span, dtype=np.float32)
        self.encoder = (np.asarray(encoder_kernel, dtype=np.float32), np.asarray(encoder_bias, dtype=np.float32))
        self.decoder = (np.asarray(decoder_kernel, dtype=np.float32), np.asarray(decoder_bias, dtype=np.float32))
        self.device = device

    @classmethod
    def from_autoencoder(cls, autoencoder):
        """The numpy copy of a fitted models.autoencoder.Autoencoder."""
        scaling = autoencoder.model.get_layer("scaling")
        encoder_kernel, encoder_bias = autoencoder.model.get_layer("encoder").get_weights()
        decoder_kernel, decoder_bias = autoencoder.model.get_layer("decoder").get_weights()
        return cls(*_scaling_arrays(scaling), encoder_kernel, encoder_bias, decoder_kernel, decoder_bias,
                   autoencoder.device)

    def transform(self, X):
        """[encodings, reconstruction error] of the rows ``X``, float32."""
        scaled = (np.asarray(X, dtype=np.float32) - self.minimum) / self.span
        encoded = np.tanh(scaled @ self.encoder[0] + self.encoder[1])
        reconstructed = expit(encoded @ self.decoder[0] + self.decoder[1])
        error = np.square(scaled - reconstructed).mean(axis=1, keepdims=True)
        return np.hstack([encoded, error]).astype(np.float32)

    def augment(self, X):
        """The rows ``X`` with their encodings and reconstruction error appended."""
        X = np.asarray(X, dtype=np.float32)
        return np.hstack([X, self.transform(X)])


class LatentWeakModel(weak.WeakModel):
    """A weak model trained on features augmented by ``AutoencoderFeatures``; takes the plain features."""

    def __init__(self, kind, estimators, features, calibration=(1.0, 0.0)):
        super().__init__(kind, estimators, calibration)
        self.features = features
        self.device = features.device

    def raw(self, X):
        return super().raw(self.features.augment(X))


def _scaling_arrays(layer):
    """(minimum, span) of a fitted keras_common.MinMaxScaling layer, as it computes them (a zero span is 1)."""
    minimum = np.asarray(layer.minimum, dtype=np.float64)
    span = np.asarray(layer.maximum, dtype=np.float64) - minimum
    return minimum.astype(np.float32), np.where(span > 0, span, 1.0).astype(np.float32)


def _epochs(rows, batch_size, min_steps, min_epochs, max_epochs):
    """Epochs giving at least ``min_steps`` batches over ``rows`` rows, within [min_epochs, max_epochs]."""
    return min(max_epochs, max(min_epochs, math.ceil(min_steps / math.ceil(rows / batch_size))))


def _leaky_relu(x, slope=0.2):
    return np.where(x >= 0, x, slope * x)


def _conv2d_same(x, kernel, bias, stride):
    """Keras' Conv2D with padding "same" (TensorFlow's: the odd pixel of padding at the bottom and right) on the
    images ``x`` of shape (n, height, width, channels), in numpy."""
    _, height, width, _ = x.shape
    size_h, size_w = kernel.shape[:2]
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + size_h - height, 0)
    pad_w = max((out_w - 1) * stride + size_w - width, 0)
    x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.broadcast_to(bias, (len(x), out_h, out_w, len(bias))).copy()
    for i in range(size_h):
        for j in range(size_w):
            out += x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride] @ kernel[i, j]
    return out


class SGANClassifier:
    """The SGAN discriminator's class head in numpy (dense or convolutional). Binary: ``raw(X)`` is P(positive)
    among the real classes and ``predict(X)`` its Platt-calibrated value. K > 2 classes: ``raw(X)`` is the (n, K)
    probabilities of the real classes (renormalized without "fake"), a zero column for each class the SGAN was not
    trained on (``classes`` lists those it was, in its own order), and ``predict(X)`` calibrates them one-vs-rest
    (weak.calibrate_classes). ``calibration`` is set by model selection."""

    kind = SGAN

    def __init__(self, minimum, span, low, high, layers, meta, calibration=None, image_shape=None, classes=None,
                 n_classes=2):
        """``layers``: the discriminator's weights by name; ``image_shape``: the images of a convolutional
        discriminator (None: the dense one); ``calibration``: default, the identity (one pair per class for
        K > 2)."""
        self.minimum = np.asarray(minimum, dtype=np.float32)
        self.span = np.asarray(span, dtype=np.float32)
        self.low, self.high = float(low), float(high)
        self.layers = {name: [np.asarray(w, dtype=np.float32) for w in weights] for name, weights in layers.items()}
        self.meta = meta
        self.device = meta.get("device")
        self.n_classes = int(n_classes)
        self.classes = np.arange(self.n_classes) if classes is None else np.asarray(classes, dtype=np.int64)
        self.image_shape = None if image_shape is None else tuple(int(size) for size in image_shape)
        self.calibration = calibration or ((1.0, 0.0) if self.n_classes == 2 else [(1.0, 0.0)] * self.n_classes)

    @classmethod
    def from_sgan(cls, sgan, classes=None, n_classes=None):
        """The numpy copy of a fitted models.sgan.SGAN (its served checkpoint). ``classes``: the class index out of
        ``n_classes`` that each of the SGAN's classes stands for (default: the same indices, as many classes).
        Raises ValueError when they do not match the SGAN's classes, or a binary SGAN does not stand for two."""
        n_classes = sgan.n_classes if n_classes is None else int(n_classes)
        classes = np.arange(sgan.n_classes) if classes is None else np.asarray(classes, dtype=np.int64)
        if len(classes) != sgan.n_classes or len(np.unique(classes)) != len(classes) or classes.min() < 0 \
                or classes.max() >= n_classes:
            raise ValueError(f"classes {classes.tolist()} do not map the SGAN's {sgan.n_classes} classes into "
                             f"{n_classes}")
        if (sgan.n_classes == 2) != (n_classes == 2):
            raise ValueError("a binary SGAN serves two classes, an SGAN of more classes serves more")
        scaling = sgan.model.get_layer("scaling")
        discriminator = sgan.model.get_layer("discriminator")
        label = discriminator.get_layer("label").get_weights()
        if sgan.convolutional:
            layers = {"conv1": discriminator.get_layer("conv1").get_weights(),
                      "conv2": discriminator.get_layer("conv2").get_weights(), "label": label}
        else:
            dense = [layer for layer in discriminator.layers if layer.__class__.__name__ == "Dense"]
            norm = next(layer for layer in discriminator.layers
                        if layer.__class__.__name__ == "BatchNormalization")
            gamma, beta, mean, variance = norm.get_weights()
            scale = gamma / np.sqrt(variance + norm.epsilon)
            layers = {"hidden1": dense[0].get_weights(), "norm": [scale, beta - mean * scale],
                      "hidden2": dense[1].get_weights(), "label": label}
        meta = {key: sgan.meta[key] for key in ("device", "best_step", "stop_reason", "train_seconds", "threshold")}
        return cls(*_scaling_arrays(scaling), scaling.low, scaling.high, layers, meta,
                   image_shape=sgan.image_shape if sgan.convolutional else None, classes=classes,
                   n_classes=n_classes)

    def _logits(self, X):
        """The class head's logits (the real classes, then "fake") of the rows ``X``, float64."""
        scaled = self.low + (np.asarray(X, dtype=np.float32) - self.minimum) / self.span * (self.high - self.low)
        if self.image_shape is None:
            hidden = _leaky_relu(scaled @ self.layers["hidden1"][0] + self.layers["hidden1"][1])
            hidden = hidden * self.layers["norm"][0] + self.layers["norm"][1]
            hidden = _leaky_relu(hidden @ self.layers["hidden2"][0] + self.layers["hidden2"][1])
            return (hidden @ self.layers["label"][0] + self.layers["label"][1]).astype(np.float64)
        parts = []
        for start in range(0, max(len(scaled), 1), CONV_CHUNK):
            images = scaled[start:start + CONV_CHUNK].reshape(-1, *self.image_shape)
            hidden = _leaky_relu(_conv2d_same(images, *self.layers["conv1"], stride=2))
            hidden = _leaky_relu(_conv2d_same(hidden, *self.layers["conv2"], stride=2))
            parts.append(hidden.reshape(len(hidden), -1) @ self.layers["label"][0] + self.layers["label"][1])
        return np.concatenate(parts).astype(np.float64)

    def raw(self, X):
        """Uncalibrated probabilities of the rows of ``X`` (the "fake" class left out), float64: P(positive) for
        two classes, else (n, K) rows summing to 1."""
        logits = self._logits(X)
        if self.n_classes == 2:
            return expit(logits[:, 1] - logits[:, 0])  # softmax over the two real classes
        probabilities = np.zeros((len(logits), self.n_classes))
        probabilities[:, self.classes] = softmax(logits[:, :len(self.classes)], axis=1)
        return probabilities

    def predict(self, X):
        """Calibrated probabilities of the rows of ``X``: P(positive) for two classes, else (n, K)."""
        if self.n_classes == 2:
            return weak.platt(self.raw(X), *self.calibration)
        return weak.calibrate_classes(self.raw(X), self.calibration)


class GenerativeCandidates:
    """The generative candidates ``names`` over one pool (the rows ``pool`` as the models see them).

    ``n_classes`` is the number of labels (K > 2: labels are class indices 0..K-1, and only "sgan" is offered,
    the latent and VAE balancing candidates being binary); ``image_shape`` (height, width, channels) says the
    rows are images, for the convolutional SGAN. Nothing is trained at construction; the autoencoder is fitted
    on first use and kept. ``devices`` records the device that trained each Keras model kind ("autoencoder",
    "vae", "sgan"). Raises ValueError for an unknown name or fewer than 2 classes.
    """

    def __init__(self, pool, names, seed=0, sgan_steps=SGAN_STEPS, n_classes=2, image_shape=None):
        unknown = next((name for name in names if name not in NAMES), None)
        if unknown is not None:
            raise ValueError(f"unknown generative candidate {unknown!r} (known: {', '.join(NAMES)})")
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        self.pool = np.asarray(pool, dtype=np.float32)
        self.names = tuple(names)
        self.seed = 0 if seed is None else int(seed)
        self.sgan_steps = int(sgan_steps)
        self.n_classes = int(n_classes)
        self.image_shape = None if image_shape is None else tuple(int(size) for size in image_shape)
        self.devices = {}
        self._features = None
        self._vaes = {}

    def kinds(self, y):
        """The generative candidate kinds worth comparing for the human labels ``y`` (binary, or class indices
        for K > 2 classes: "sgan" alone, once two classes have MIN_CLASS_LABELS labels each)."""
        y = np.asarray(y)
        if self.n_classes > 2:
            counts = np.sort(np.bincount(y.astype(np.int64), minlength=self.n_classes))
            return [SGAN] if SGAN in self.names and counts[-2] >= MIN_CLASS_LABELS else []
        positives, negatives = int((y == 1).sum()), int((y == 0).sum())
        bases = weak.candidate_kinds(y)
        kinds = []
        if LATENT in self.names:
            kinds += [base + LATENT_SUFFIX for base in bases]
        if VAE_BALANCE in self.names and positives >= MIN_POSITIVES and negatives > positives:
            kinds += [base + VAE_SUFFIX for base in bases]
        if SGAN in self.names and min(positives, negatives) >= MIN_POSITIVES:
            kinds.append(SGAN)
        return kinds

    @property
    def features(self):
        """The pool's AutoencoderFeatures, fitting the autoencoder on the whole pool on first use."""
        if self._features is None:
            from models.autoencoder import Autoencoder

            epochs = _epochs(len(self.pool), AUTOENCODER_BATCH, AUTOENCODER_MIN_STEPS, AUTOENCODER_MIN_EPOCHS,
                             AUTOENCODER_MAX_EPOCHS)
            autoencoder = Autoencoder(seed=self.seed).fit(self.pool, epochs=epochs, batch_size=AUTOENCODER_BATCH)
            self.devices["autoencoder"] = autoencoder.device
            self._features = AutoencoderFeatures.from_autoencoder(autoencoder)
        return self._features

    def device_of(self, kind):
        """The device that trained the Keras model behind ``kind`` ("CPU", "GPU (...)"), or None."""
        if kind == SGAN:
            return self.devices.get("sgan")
        if kind.endswith(VAE_SUFFIX):
            return self.devices.get("vae")
        if kind.endswith(LATENT_SUFFIX):
            return self.devices.get("autoencoder")
        return None

    def start_selection(self):
        """Forget the VAEs of the previous model selection (each selection fits its own)."""
        self._vaes = {}

    def fit(self, kind, X_human, y_human, X_fit, y_fit, repeats, seed, key):
        """A fitted model of generative ``kind`` with ``raw(X)``.

        ``X_human``/``y_human`` are the human-labeled training rows, ``X_fit``/``y_fit`` the training set (human
        rows repeated ``repeats`` times, plus pseudo-labels); ``key`` names the training set (a fold, or
        "final"), under which a "+vae" kind keeps its VAE. Raises ValueError for an unknown kind or a binary kind
        with K > 2 classes, and CandidateFailed when the SGAN collapsed at every checkpoint or (K > 2) fewer than
        two classes have MIN_SGAN_CLASS_ROWS labels.
        """
        if kind == SGAN:
            return self._fit_sgan(X_human, y_human, seed)
        base = base_kind(kind)
        if base is None:
            raise ValueError(f"unknown generative candidate kind {kind!r}")
        if self.n_classes > 2:
            raise ValueError(f"generative candidate {kind!r} is binary; with {self.n_classes} classes only "
                             f"{SGAN!r} is")
        if kind.endswith(LATENT_SUFFIX):
            features = self.features
            model = weak.fit(base, features.augment(X_fit), y_fit, seed=seed)
            return LatentWeakModel(kind, model.estimators, features)
        synthetic = self.synthetic_positives(X_human, y_human, repeats, seed, key)
        model = weak.fit(base, np.concatenate([X_fit, synthetic]),
                         np.concatenate([y_fit, np.ones(len(synthetic), dtype=y_fit.dtype)]), seed=seed)
        model.kind = kind
        model.device = self.devices.get("vae")
        return model

    def synthetic_positives(self, X_human, y_human, repeats, seed, key):
        """Rows generated by a VAE around the positives of ``X_human``: as many as the human negatives outnumber
        the positives, times ``repeats``. The VAE is fitted on those positives, once per ``key``."""
        positives = np.asarray(X_human, dtype=np.float32)[np.asarray(y_human) == 1]
        wanted = int(round(((np.asarray(y_human) == 0).sum() - len(positives)) * repeats))
        if wanted < 1 or len(positives) == 0:
            return np.zeros((0, positives.shape[1]), dtype=np.float32)
        vae = self._vaes.get(key)
        if vae is None:
            from models.vae import VAE

            vae = VAE(seed=seed).fit(positives, epochs=_epochs(len(positives), VAE_BATCH, VAE_MIN_STEPS,
                                                               VAE_MIN_EPOCHS, VAE_MAX_EPOCHS), batch_size=VAE_BATCH)
            self.devices["vae"] = vae.device
            self._vaes[key] = vae
        return vae.sample_around(positives, wanted, seed=seed)

    def _fit_sgan(self, X_human, y_human, seed):
        """The SGANClassifier trained on the human labels (with K > 2 classes, on the classes that have
        MIN_SGAN_CLASS_ROWS labels). Raises CandidateFailed as ``fit``."""
        from models.sgan import SGAN as KerasSGAN
        from models.sgan import CollapsedError

        X_human, y_human = np.asarray(X_human, dtype=np.float32), np.asarray(y_human, dtype=np.int64)
        classes = np.arange(2)
        if self.n_classes > 2:
            classes = np.flatnonzero(np.bincount(y_human, minlength=self.n_classes) >= MIN_SGAN_CLASS_ROWS)
            if len(classes) < 2:
                raise CandidateFailed(f"{SGAN}: fewer than two classes have {MIN_SGAN_CLASS_ROWS} labels")
            kept = np.isin(y_human, classes)
            X_human, y_human = X_human[kept], np.searchsorted(classes, y_human[kept])
        try:
            sgan = KerasSGAN(n_classes=len(classes), seed=seed, image_shape=self.image_shape).fit(
                X_human, y_human, self.pool, steps=self.sgan_steps, eval_every=SGAN_EVAL_EVERY)
        except CollapsedError as error:
            raise CandidateFailed(f"{SGAN}: {error}") from error
        self.devices["sgan"] = sgan.device
        return SGANClassifier.from_sgan(sgan, classes=classes, n_classes=self.n_classes)
