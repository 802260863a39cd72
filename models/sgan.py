"""Semi-supervised GAN (SGAN) classifier trained on labeled items and the unlabeled pool, with a collapse guard.

Architecture (the book chapter's): features scaled to [-1, 1]; generator 10-d normal noise -> Dense 16
LeakyReLU(0.2) BatchNorm(0.8) -> Dense 32 LeakyReLU BatchNorm -> Dense n_features tanh; discriminator Dense 31
LeakyReLU BatchNorm Dropout(0.25) -> Dense 16 LeakyReLU with a real/fake sigmoid head and a class head of
n_classes + 1 (the last is "fake"); Adam(2e-4, 0.5) for both. Images whose height and width are multiples of 4 and
at least 8 (``image_shape``; the 8x8 digits, MNIST's 28x28) get the chapter's convolutional models instead: the
discriminator Conv2D 32 3x3 stride 2 -> LeakyReLU Dropout(0.25) -> Conv2D 64 3x3 stride 2 -> LeakyReLU -> Flatten
-> the two heads, the generator Dense to (h/4, w/4, 64) -> Conv2DTranspose 32 stride 2 -> LeakyReLU BatchNorm ->
Conv2DTranspose c stride 2, tanh. Rows stay flat (pixels in [0, 1], row-major h x w x c, reshaped inside the
models) and are scaled from [0, 1] as a whole, not per pixel, so that an image stays an image. Each step trains the
discriminator on a real batch (labeled rows with their class, unlabeled rows for the real/fake head only) and a
separate fake batch, with soft, occasionally flipped real/fake targets and the chapter's class weights (n_classes /
half_batch for real classes, 1 / half_batch for "fake"), then the generator against the discriminator in inference
mode.

The chapter's SGAN reaches a good F1 and then collapses. Here the discriminator is evaluated every ``eval_every``
steps on held-out labeled items; each evaluation is a checkpoint, the served model is the one with the best
validation score among checkpoints that are not collapsed (a collapsed checkpoint predicts a single class for every
validation item), and training stops once the model stays collapsed. The score is the validation average precision
with two classes, the validation accuracy with more (the chapter's measure for the digits), or, when the
population's positive rate is known, the best F1 estimated on the whole population (recall from the validation
positives, flagged rows counted on the unlabeled rows): labels picked for being suspicious are fraud-rich, and
their average precision says little about the false alarms among hundreds of thousands of unlabeled rows. Training
needs the TensorFlow backend (its train step uses tf.GradientTape); a saved model predicts on any Keras backend.
Numpy in, numpy out; imports Keras.
"""
import time

import keras
import numpy as np
from keras import ops
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve

from models.keras_common import (MinMaxScaling, SavedKerasModel, as_features, predict_numpy, seed_everything,
                                 training_device)

KIND = "sgan"
VALIDATION_AP = "validation_ap"
VALIDATION_ACCURACY = "validation_accuracy"
POPULATION_F1 = "population_f1"
CRITERIA = (VALIDATION_AP, VALIDATION_ACCURACY, POPULATION_F1)
POPULATION_SAMPLE = 65536  # rows of the population scored at each evaluation for the population-F1 criterion


class CollapsedError(RuntimeError):
    """Raised when no evaluation during training produced a non-collapsed checkpoint."""


def build_generator(latent_dim, n_features):
    """The generator: noise of ``latent_dim`` -> a row of ``n_features`` in [-1, 1]."""
    return keras.Sequential([
        keras.Input((latent_dim,)),
        keras.layers.Dense(16), keras.layers.LeakyReLU(negative_slope=0.2),
        keras.layers.BatchNormalization(momentum=0.8),
        keras.layers.Dense(32), keras.layers.LeakyReLU(negative_slope=0.2),
        keras.layers.BatchNormalization(momentum=0.8),
        keras.layers.Dense(n_features, activation="tanh"),
    ], name="generator")


def build_discriminator(n_features, n_classes):
    """The discriminator: a scaled row -> [P(real) of shape (n, 1), class probabilities of shape (n, n_classes + 1)]."""
    rows = keras.Input((n_features,))
    hidden = keras.layers.Dense(31)(rows)
    hidden = keras.layers.LeakyReLU(negative_slope=0.2)(hidden)
    hidden = keras.layers.BatchNormalization(momentum=0.8)(hidden)
    hidden = keras.layers.Dropout(0.25)(hidden)
    hidden = keras.layers.Dense(16)(hidden)
    hidden = keras.layers.LeakyReLU(negative_slope=0.2)(hidden)
    real = keras.layers.Dense(1, activation="sigmoid", name="real")(hidden)
    label = keras.layers.Dense(n_classes + 1, activation="softmax", name="label")(hidden)
    return keras.Model(rows, [real, label], name="discriminator")


def fits_convolution(image_shape):
    """Whether images of ``image_shape`` (height, width, channels; None for tabular rows) get the convolutional
    models: height and width multiples of 4 (two stride-2 layers) and at least 8."""
    if image_shape is None:
        return False
    height, width, _ = image_shape
    return height % 4 == 0 and width % 4 == 0 and min(height, width) >= 8


def build_conv_generator(latent_dim, image_shape):
    """The convolutional generator: noise of ``latent_dim`` -> a flat image of ``image_shape`` in [-1, 1]."""
    height, width, channels = image_shape
    return keras.Sequential([
        keras.Input((latent_dim,)),
        keras.layers.Dense(height // 4 * width // 4 * 64), keras.layers.LeakyReLU(negative_slope=0.2),
        keras.layers.Reshape((height // 4, width // 4, 64)),
        keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same"), keras.layers.LeakyReLU(negative_slope=0.2),
        keras.layers.BatchNormalization(momentum=0.8),
        keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="tanh"),
        keras.layers.Reshape((height * width * channels,)),
    ], name="generator")


def build_conv_discriminator(image_shape, n_classes):
    """The convolutional discriminator: a flat scaled image -> [P(real) (n, 1), class probabilities
    (n, n_classes + 1)]."""
    height, width, channels = image_shape
    rows = keras.Input((height * width * channels,))
    hidden = keras.layers.Reshape((height, width, channels))(rows)
    hidden = keras.layers.Conv2D(32, 3, strides=2, padding="same", name="conv1")(hidden)
    hidden = keras.layers.LeakyReLU(negative_slope=0.2)(hidden)
    hidden = keras.layers.Dropout(0.25)(hidden)
    hidden = keras.layers.Conv2D(64, 3, strides=2, padding="same", name="conv2")(hidden)
    hidden = keras.layers.LeakyReLU(negative_slope=0.2)(hidden)
    hidden = keras.layers.Flatten()(hidden)
    real = keras.layers.Dense(1, activation="sigmoid", name="real")(hidden)
    label = keras.layers.Dense(n_classes + 1, activation="softmax", name="label")(hidden)
    return keras.Model(rows, [real, label], name="discriminator")


def holdout_split(y, fraction, n_classes, seed):
    """(train indices, validation indices) of labels ``y``: ``fraction`` of each class held out, at least one.

    Raises ValueError when a class has fewer than two rows (one to train on, one to validate with).
    """
    counts = np.bincount(y, minlength=n_classes)
    if counts.min() < 2:
        raise ValueError(f"each class needs at least 2 labeled rows to hold one out, got {counts.tolist()}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for k in range(n_classes):
        members = rng.permutation(np.flatnonzero(y == k))
        n_val = min(max(1, int(round(fraction * len(members)))), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def select_checkpoint(history):
    """Index in ``history`` of the served checkpoint: the best ``score`` among entries not ``collapsed``.

    Ties go to the earliest; entries whose score is NaN never win. Raises CollapsedError when none qualifies.
    """
    best = None
    for index, entry in enumerate(history):
        if entry["collapsed"] or not np.isfinite(entry["score"]):
            continue
        if best is None or entry["score"] > history[best]["score"]:
            best = index
    if best is None:
        raise CollapsedError("the SGAN produced no checkpoint that predicts more than one class on validation")
    return best


def f1_threshold(y, scores):
    """(threshold, F1): the score threshold with the best F1 for binary labels ``y``, and that F1."""
    precision, recall, thresholds = precision_recall_curve(y, scores)
    f1s = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1s))
    return float(thresholds[best]), float(f1s[best])


def population_f1_threshold(positive_scores, population_scores, positive_rate):
    """(threshold, estimated F1) for a population of which ``positive_rate`` is positive.

    Recall at a threshold comes from held-out positives (``positive_scores``), the number of flagged rows from
    scoring the whole population (``population_scores``, labeled or not), so F1 = 2 R F / (N + F) with F the
    expected positives and N the rows flagged. Unlike F1 on validation labels picked for being suspicious, this
    holds the population's class balance. Raises ValueError without positives or for a rate outside (0, 1).
    """
    if not 0.0 < positive_rate < 1.0:
        raise ValueError(f"positive_rate must be in (0, 1), got {positive_rate}")
    positive_scores = np.sort(np.asarray(positive_scores, dtype=np.float64))
    if positive_scores.size == 0:
        raise ValueError("population_f1_threshold needs at least one held-out positive")
    population = np.sort(np.asarray(population_scores, dtype=np.float64))
    expected = positive_rate * len(population)
    recall = 1.0 - np.arange(len(positive_scores)) / len(positive_scores)  # at threshold positive_scores[i]
    flagged = len(population) - np.searchsorted(population, positive_scores, side="left")
    f1 = 2 * recall * expected / (flagged + expected)
    best = int(np.argmax(f1))
    return float(positive_scores[best]), float(f1[best])


def _make_train_step(generator, discriminator, d_optimizer, g_optimizer):
    """A compiled TensorFlow function running one discriminator and one generator update; returns their losses."""
    import tensorflow as tf

    def weighted_crossentropy(targets, probabilities, weights):
        losses = keras.losses.categorical_crossentropy(targets, probabilities)
        return ops.sum(losses * weights) / ops.cast(ops.shape(weights)[0], losses.dtype)

    def binary(targets, probabilities):
        return ops.mean(keras.losses.binary_crossentropy(targets, probabilities))

    @tf.function(reduce_retracing=True)
    def step(real_rows, real_targets, real_labels, real_weights, fake_noise, fake_targets, fake_labels,
             fake_weights, generator_noise, generator_targets):
        fake_rows = generator(fake_noise, training=True)
        with tf.GradientTape() as tape:
            real_p, real_label_p = discriminator(real_rows, training=True)
            fake_p, fake_label_p = discriminator(fake_rows, training=True)
            real_loss = 0.5 * binary(real_targets, real_p) + 0.5 * weighted_crossentropy(
                real_labels, real_label_p, real_weights)
            fake_loss = 0.5 * binary(fake_targets, fake_p) + 0.5 * weighted_crossentropy(
                fake_labels, fake_label_p, fake_weights)
            d_loss = 0.5 * (real_loss + fake_loss)
        d_variables = discriminator.trainable_variables
        d_optimizer.apply(tape.gradient(d_loss, d_variables), d_variables)
        with tf.GradientTape() as tape:
            judged_p, _ = discriminator(generator(generator_noise, training=True), training=False)
            g_loss = binary(generator_targets, judged_p)
        g_variables = generator.trainable_variables
        g_optimizer.apply(tape.gradient(g_loss, g_variables), g_variables)
        return d_loss, g_loss

    return step


class SGAN(SavedKerasModel):
    """Semi-supervised GAN classifier; ``fit`` trains a fresh one and serves its best non-collapsed checkpoint."""

    kind = KIND
    title = "SGAN"

    def __init__(self, n_classes=2, latent_dim=10, seed=0, image_shape=None):
        """``image_shape`` (height, width, channels) says the rows are images: the convolutional models where
        they fit (fits_convolution). Raises ValueError for fewer than 2 classes or a shape that is not 3 positive
        sizes."""
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        if image_shape is not None:
            image_shape = tuple(int(size) for size in image_shape)
            if len(image_shape) != 3 or min(image_shape) < 1:
                raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
        super().__init__(seed)
        self.n_classes = int(n_classes)
        self.latent_dim = int(latent_dim)
        self.image_shape = image_shape

    @classmethod
    def _init_args(cls, meta):
        return {"n_classes": meta["n_classes"], "latent_dim": meta["latent_dim"], "seed": meta["seed"],
                "image_shape": meta.get("image_shape")}

    @property
    def convolutional(self):
        """Whether this SGAN's models are the convolutional ones (images of a size that fits them)."""
        return fits_convolution(self.image_shape)

    @property
    def history(self):
        """The validation curve: one dict per evaluation (step, score by the checkpoint criterion, validation ap
        and argmax f1, collapsed, d_loss, g_loss; accuracy with more than two classes)."""
        return self.meta.get("history", [])

    @property
    def threshold(self):
        """Decision threshold on P(class 1) for two classes, chosen for the best F1 on validation."""
        return self.meta.get("threshold")

    def _part(self, name):
        return self._require_model().get_layer(name)

    @property
    def n_features(self):
        return len(self._part("scaling").minimum)

    def _labels(self, y, name):
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.number) or not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"{name} must be a 1-d array of class indices")
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"{name} holds classes outside 0..{self.n_classes - 1}")
        return y

    def _validation_metrics(self, probabilities, y):
        """The figures of class probabilities over the real classes against labels ``y``: "ap" (macro over the
        classes for more than two), "f1" (argmax, macro for more than two), "collapsed" (one class predicted
        for every row), and for more than two classes "accuracy"."""
        predicted = probabilities.argmax(axis=1)
        collapsed = len(np.unique(predicted)) < 2
        if self.n_classes == 2:
            ap = average_precision_score(y == 1, probabilities[:, 1])
            f1 = f1_score(y, predicted, pos_label=1, average="binary", zero_division=0)
            return {"ap": float(ap), "f1": float(f1), "collapsed": bool(collapsed)}
        ap = np.mean([average_precision_score(y == k, probabilities[:, k])
                      for k in range(self.n_classes) if (y == k).any()])
        f1 = f1_score(y, predicted, average="macro", zero_division=0)
        return {"ap": float(ap), "f1": float(f1), "collapsed": bool(collapsed),
                "accuracy": float(np.mean(predicted == y))}

    def _class_probabilities_scaled(self, discriminator, rows):
        label_p = predict_numpy(lambda chunk: discriminator(chunk, training=False)[1], rows)
        real = label_p[:, :self.n_classes]
        return real / np.maximum(real.sum(axis=1, keepdims=True), 1e-12)

    def fit(self, X_labeled, y_labeled, X_unlabeled=None, X_val=None, y_val=None, steps=3000, batch_size=64,
            eval_every=100, validation_fraction=0.25, patience=15, collapse_patience=5,
            balance_labeled=True, soft_labels=(0.9, 0.1), flip_probability=0.05, positive_rate=None,
            criterion=None, verbose=False):
        """Train a fresh SGAN; returns self, serving the best non-collapsed checkpoint.

        ``X_labeled``/``y_labeled`` are labeled rows (raw features, classes 0..n_classes-1); ``X_unlabeled`` the
        unlabeled pool (real/fake head only). Validation is ``X_val``/``y_val``, or else a stratified
        ``validation_fraction`` of the labeled rows held out of training. Training stops after ``steps``, after
        ``patience`` evaluations without a better score, or once ``collapse_patience`` evaluations in a row are
        collapsed. Labeled batches draw each class equally often when ``balance_labeled``. Real/fake targets are
        uniform in [soft_labels[0], 1] for real and [0, soft_labels[1]] for fake, each flipped with
        ``flip_probability``. With two classes, ``threshold`` is the best-F1 one on validation, or, given the
        population's ``positive_rate``, the best estimated F1 over all rows given (``population_f1_threshold``).
        Checkpoints are compared by ``criterion``: "validation_ap" (average precision on the validation labels,
        the mean over classes with more than two; the default for two classes), "validation_accuracy" (the
        default for more than two) or "population_f1" (two classes and ``positive_rate`` only: the best F1
        estimated on the population, recall from the validation positives, flagged rows counted on a fixed sample
        of at most POPULATION_SAMPLE of all rows given, labeled or not). With ``image_shape`` the rows hold
        height * width * channels pixels in [0, 1]. Raises ValueError for unusable inputs (a class with fewer
        than two labeled rows, a validation set without every class, rows that are not of ``image_shape``, an
        unknown criterion or "population_f1" without a ``positive_rate`` or with more than two classes) and
        CollapsedError when no checkpoint is usable.
        """
        if criterion is None:
            criterion = VALIDATION_AP if self.n_classes == 2 else VALIDATION_ACCURACY
        if criterion not in CRITERIA:
            raise ValueError(f"unknown checkpoint criterion {criterion!r} (known: {', '.join(CRITERIA)})")
        if criterion == POPULATION_F1 and (positive_rate is None or self.n_classes != 2):
            raise ValueError("the population_f1 criterion needs two classes and a positive_rate")
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("SGAN training needs the TensorFlow Keras backend; loading and predicting do not")
        X_labeled = as_features(X_labeled, name="X_labeled")
        n_features = X_labeled.shape[1]
        if self.image_shape is not None and n_features != int(np.prod(self.image_shape)):
            raise ValueError(f"rows of {n_features} features are not images of {self.image_shape}")
        y_labeled = self._labels(y_labeled, "y_labeled")
        if len(y_labeled) != len(X_labeled):
            raise ValueError(f"X_labeled has {len(X_labeled)} rows but y_labeled has {len(y_labeled)}")
        if X_val is None:
            train, val = holdout_split(y_labeled, validation_fraction, self.n_classes, self.seed)
            X_train, X_val, y_train, y_val = X_labeled[train], X_labeled[val], y_labeled[train], y_labeled[val]
        else:
            X_train, y_train = X_labeled, y_labeled
            X_val = as_features(X_val, n_features, name="X_val")
            y_val = self._labels(y_val, "y_val")
        for name, labels in (("training", y_train), ("validation", y_val)):
            missing = sorted(set(range(self.n_classes)) - set(labels.tolist()))
            if missing:
                raise ValueError(f"the {name} labels hold no row of class {missing}")
        if X_unlabeled is not None and len(X_unlabeled):
            X_unlabeled = as_features(X_unlabeled, n_features, name="X_unlabeled")
        else:
            X_unlabeled = np.empty((0, n_features), dtype=np.float32)

        seed_everything(self.seed)
        started = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        if self.convolutional:
            scaling = MinMaxScaling(np.zeros(n_features), np.ones(n_features), low=-1.0, high=1.0, name="scaling")
            generator = build_conv_generator(self.latent_dim, self.image_shape)
            discriminator = build_conv_discriminator(self.image_shape, self.n_classes)
        else:
            scaling = MinMaxScaling.fitted(np.concatenate([X_train, X_unlabeled]), low=-1.0, high=1.0,
                                           name="scaling")
            generator = build_generator(self.latent_dim, n_features)
            discriminator = build_discriminator(n_features, self.n_classes)
        train_rows, unlabeled_rows, val_rows = (scaling.numpy(X_train), scaling.numpy(X_unlabeled),
                                                scaling.numpy(X_val))
        step = _make_train_step(generator, discriminator, keras.optimizers.Adam(2e-4, beta_1=0.5),
                                keras.optimizers.Adam(2e-4, beta_1=0.5))

        half = batch_size // 2
        n_labeled = half if len(unlabeled_rows) == 0 else half // 2
        n_unlabeled = half - n_labeled
        fake_class = self.n_classes
        class_weight = self.n_classes / half  # the chapter's class weights
        fake_weight = 1.0 / half
        labeled_p = None
        if balance_labeled:
            counts = np.bincount(y_train, minlength=self.n_classes)
            labeled_p = (1.0 / counts[y_train]) / self.n_classes
        eye = np.eye(self.n_classes + 1, dtype=np.float32)
        real_weights = np.concatenate([np.full(n_labeled, class_weight), np.zeros(n_unlabeled)]).astype(np.float32)
        fake_labels = np.repeat(eye[[fake_class]], half, axis=0)
        fake_weights = np.full(half, fake_weight, dtype=np.float32)
        real_low, fake_high = soft_labels

        def targets(size, real):
            values = rng.uniform(real_low, 1.0, size) if real else rng.uniform(0.0, fake_high, size)
            flip = rng.random(size) < flip_probability
            return np.where(flip, 1.0 - values, values).astype(np.float32)[:, None]

        population_sample = None
        if criterion == POPULATION_F1:
            population = np.concatenate([train_rows, val_rows, unlabeled_rows])
            if len(population) > POPULATION_SAMPLE:
                sample_rng = np.random.default_rng([self.seed, 1])
                population = population[np.sort(sample_rng.choice(len(population), POPULATION_SAMPLE,
                                                                  replace=False))]
            population_sample = population

        history, checkpoints = [], []
        stop_reason = "steps"
        since_best, collapsed_run, seen_healthy = 0, 0, False
        d_losses, g_losses = [], []
        for number in range(1, int(steps) + 1):
            picked = rng.choice(len(train_rows), n_labeled, p=labeled_p)
            real_rows = train_rows[picked]
            real_labels = eye[y_train[picked]]
            if n_unlabeled:
                pool_picked = rng.integers(0, len(unlabeled_rows), n_unlabeled)
                real_rows = np.concatenate([real_rows, unlabeled_rows[pool_picked]])
                real_labels = np.concatenate([real_labels, np.zeros((n_unlabeled, self.n_classes + 1), np.float32)])
            d_loss, g_loss = step(
                real_rows, targets(half, True), real_labels, real_weights,
                rng.standard_normal((half, self.latent_dim)).astype(np.float32), targets(half, False),
                fake_labels, fake_weights,
                rng.standard_normal((batch_size, self.latent_dim)).astype(np.float32),
                np.ones((batch_size, 1), np.float32))
            d_losses.append(float(d_loss))
            g_losses.append(float(g_loss))
            if number % eval_every and number != steps:
                continue
            val_probabilities = self._class_probabilities_scaled(discriminator, val_rows)
            figures = self._validation_metrics(val_probabilities, y_val)
            collapsed = figures["collapsed"]
            if criterion == POPULATION_F1:
                _, score = population_f1_threshold(
                    val_probabilities[y_val == 1, 1],
                    self._class_probabilities_scaled(discriminator, population_sample)[:, 1], positive_rate)
            elif criterion == VALIDATION_ACCURACY:
                score = float(np.mean(val_probabilities.argmax(axis=1) == y_val))
            else:
                score = figures["ap"]
            history.append({"step": number, "score": score, **figures,
                            "d_loss": float(np.mean(d_losses)), "g_loss": float(np.mean(g_losses))})
            d_losses, g_losses = [], []
            checkpoints.append(None)
            if verbose:
                print(f"step {number}: {criterion} {score:.4f}, validation AP {figures['ap']:.4f}, "
                      f"F1 {figures['f1']:.4f}{' collapsed' if collapsed else ''}")
            healthy_best = [entry["score"] for entry in history[:-1] if not entry["collapsed"]]
            if not collapsed and (not healthy_best or score > max(healthy_best)):
                checkpoints[-1] = (discriminator.get_weights(), generator.get_weights())
                since_best = 0
            else:
                since_best += 1
            seen_healthy = seen_healthy or not collapsed
            collapsed_run = collapsed_run + 1 if collapsed else 0
            if seen_healthy and collapsed_run >= collapse_patience:
                stop_reason = "collapsed"
                break
            if patience and since_best >= patience:
                stop_reason = "patience"
                break

        best = select_checkpoint(history)
        discriminator_weights, generator_weights = checkpoints[best]
        discriminator.set_weights(discriminator_weights)
        generator.set_weights(generator_weights)
        threshold = 0.5
        if self.n_classes == 2:
            val_scores = self._class_probabilities_scaled(discriminator, val_rows)[:, 1]
            if positive_rate is None:
                threshold, _ = f1_threshold(y_val, val_scores)
            else:
                population = np.concatenate([train_rows, val_rows, unlabeled_rows])
                threshold, _ = population_f1_threshold(
                    val_scores[y_val == 1], self._class_probabilities_scaled(discriminator, population)[:, 1],
                    positive_rate)
        self.model = self._bundle(scaling, discriminator, generator, n_features)
        self.meta = {
            "kind": KIND, "seed": self.seed, "n_classes": self.n_classes, "latent_dim": self.latent_dim,
            "steps": int(steps), "batch_size": int(batch_size), "eval_every": int(eval_every),
            "n_labeled_train": len(X_train), "n_validation": len(X_val), "n_unlabeled": len(X_unlabeled),
            "device": training_device(), "backend": keras.backend.backend(),
            "train_seconds": round(time.perf_counter() - started, 3), "history": history,
            "best_index": best, "best_step": history[best]["step"], "stop_reason": stop_reason,
            "threshold": threshold, "positive_rate": positive_rate, "criterion": criterion,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
        }
        return self

    def _bundle(self, scaling, discriminator, generator, n_features):
        """One Keras model holding scaling, discriminator and generator, for saving and prediction."""
        features = keras.Input((n_features,), name="features")
        noise = keras.Input((self.latent_dim,), name="noise")
        real, label = discriminator(scaling(features))
        unscaling = MinMaxScaling(scaling.minimum, scaling.maximum, low=-1.0, high=1.0, inverse=True,
                                  name="unscaling")
        return keras.Model([features, noise], [real, label, unscaling(generator(noise))], name=KIND)

    def predict_proba(self, X):
        """Probabilities of the real classes for the rows of ``X`` (the "fake" class left out, renormalized)."""
        X = as_features(X, self.n_features)
        scaling, discriminator = self._part("scaling"), self._part("discriminator")
        return self._class_probabilities_scaled(discriminator, scaling.numpy(X))

    def predict(self, X):
        """Predicted class of each row of ``X`` (with two classes: P(class 1) at or above ``threshold``)."""
        probabilities = self.predict_proba(X)
        if self.n_classes == 2:
            return (probabilities[:, 1] >= self.threshold).astype(np.int64)
        return probabilities.argmax(axis=1)

    def real_probability(self, X):
        """The discriminator's probability that each row of ``X`` is real rather than generated."""
        X = as_features(X, self.n_features)
        scaling, discriminator = self._part("scaling"), self._part("discriminator")
        return predict_numpy(lambda chunk: discriminator(scaling(chunk), training=False)[0], X)[:, 0]

    def generate(self, n, seed=0):
        """``n`` rows from the generator, in the original units of the features."""
        noise = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim)).astype(np.float32)
        generator, unscaling = self._part("generator"), self._part("unscaling")
        return predict_numpy(lambda chunk: unscaling(generator(chunk, training=False)), noise)

