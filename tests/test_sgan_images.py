"""The SGAN with K classes plus "fake" on images: the convolutional models on scikit-learn's bundled digits (8x8,
10 classes; on disk, no download), their numpy copy, K-class probabilities with a zero column for a class without
labels, and the collapse guard for K classes.

The tests that train Keras models are in the slow tier and import Keras themselves, so that collecting this file
for the fast tier does not load TensorFlow."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from models import weak
from models.generative_candidates import (MIN_CLASS_LABELS, CandidateFailed, GenerativeCandidates, SGANClassifier,
                                          _conv2d_same)

slow = pytest.mark.slow
SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def digits():
    """(X pixels in [0, 1], y, labeled indices: 20 of each class, unlabeled pool indices, test indices)."""
    data = load_digits()
    X, y = (data.data / 16).astype(np.float32), data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(X))
    test, pool = order[:400], order[400:]
    labeled = np.concatenate([pool[y[pool] == k][:20] for k in range(10)])
    return X, y, labeled, np.setdiff1d(pool, labeled), test


@pytest.fixture(scope="module")
def conv_sgan(digits):
    from models.sgan import SGAN

    X, y, labeled, unlabeled, _ = digits
    return SGAN(n_classes=10, seed=0, image_shape=SHAPE).fit(X[labeled], y[labeled], X[unlabeled], steps=1500,
                                                             eval_every=100, patience=None)


@slow
def test_convolutional_models_only_where_they_fit_the_image_size():
    from models.sgan import fits_convolution

    assert fits_convolution((8, 8, 1)) and fits_convolution((28, 28, 1)) and fits_convolution((32, 16, 3))
    assert not any(fits_convolution(shape) for shape in (None, (4, 4, 1), (6, 8, 1), (8, 10, 1), (7, 7, 3)))


def test_numpy_convolution_pads_as_tensorflow_does():
    """Stride 2, "same": an all-ones kernel over ones counts the pixels each window covers; 8 pixels take their
    one pixel of padding at the bottom and right (checked against Keras in the slow tier)."""
    ones = np.ones((1, 7, 7, 1), dtype=np.float32)
    counted = _conv2d_same(ones, np.ones((3, 3, 1, 1), dtype=np.float32), np.zeros(1, np.float32), stride=2)
    assert counted.shape == (1, 4, 4, 1)
    assert counted[0, :, :, 0].tolist() == [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]]
    even = _conv2d_same(np.ones((2, 8, 8, 1), np.float32), np.ones((3, 3, 1, 2), np.float32),
                        np.array([0.0, 1.0], np.float32), stride=2)
    assert even.shape == (2, 4, 4, 2) and even[0, 0, 0].tolist() == [9, 10] and even[0, 3, 3].tolist() == [4, 5]


def _dense_classifier(n_features, n_real, classes, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    layers = {"hidden1": [rng.normal(size=(n_features, 31)), rng.normal(size=31)], "norm": [np.ones(31), np.zeros(31)],
              "hidden2": [rng.normal(size=(31, 16)), rng.normal(size=16)],
              "label": [rng.normal(size=(16, n_real + 1)), rng.normal(size=n_real + 1)]}
    return SGANClassifier(np.zeros(n_features), np.ones(n_features), -1.0, 1.0, layers, {"device": "CPU"},
                          classes=classes, n_classes=n_classes)


def test_k_class_probabilities_have_a_zero_column_for_a_class_without_labels():
    X = np.random.default_rng(1).random((50, 6)).astype(np.float32)
    model = _dense_classifier(6, 3, classes=[0, 1, 3], n_classes=4)
    raw = model.raw(X)
    assert raw.shape == (50, 4) and raw.dtype == np.float64
    assert np.allclose(raw.sum(axis=1), 1.0) and not raw[:, 2].any() and (raw[:, [0, 1, 3]] > 0).all()
    assert model.calibration == [(1.0, 0.0)] * 4 and np.allclose(model.predict(X), raw)
    model.calibration = [(2.0, -1.0), (1.0, 0.5), (1.0, 0.0), (0.5, 0.0)]
    calibrated = model.predict(X)
    assert np.allclose(calibrated, weak.calibrate_classes(raw, model.calibration))
    assert np.allclose(calibrated.sum(axis=1), 1.0) and not calibrated[:, 2].any()


def test_binary_classifier_still_gives_p_positive():
    X = np.random.default_rng(2).random((20, 6)).astype(np.float32)
    model = _dense_classifier(6, 2, classes=None, n_classes=2)
    assert model.raw(X).shape == (20,) and model.calibration == (1.0, 0.0)
    assert np.allclose(model.predict(X), weak.platt(model.raw(X), 1.0, 0.0))


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_k_classes_offer_only_the_sgan_once_two_classes_have_enough_labels():
    pool = np.random.default_rng(3).random((40, 64)).astype(np.float32)
    generative = GenerativeCandidates(pool, ["latent", "vae_balance", "sgan"], n_classes=10, image_shape=SHAPE)
    few = np.array([0] * MIN_CLASS_LABELS + [1] * (MIN_CLASS_LABELS - 1) + [2, 3])
    assert generative.kinds(few) == []
    assert generative.kinds(np.append(few, 1)) == ["sgan"]
    assert GenerativeCandidates(pool, ["latent"], n_classes=10).kinds(np.repeat(np.arange(10), 20)) == []
    with pytest.raises(ValueError, match="is binary"):
        generative.fit("logistic+latent", pool[:4], np.arange(4), pool[:4], np.arange(4), 1, 0, "final")
    with pytest.raises(CandidateFailed, match="fewer than two classes"):
        generative.fit("sgan", pool[:5], np.array([0, 0, 1, 2, 3]), pool[:5], None, 1, 0, "final")
    with pytest.raises(ValueError, match="at least 2"):
        GenerativeCandidates(pool, ["sgan"], n_classes=1)


@slow
def test_conv_sgan_learns_the_digits_from_200_labels_and_round_trips(conv_sgan, digits, tmp_path):
    from models.sgan import SGAN

    X, y, labeled, _, test = digits
    assert conv_sgan.convolutional and conv_sgan.meta["image_shape"] == [8, 8, 1]
    assert conv_sgan.meta["criterion"] == "validation_accuracy"
    best = conv_sgan.history[conv_sgan.meta["best_index"]]
    assert best["score"] == best["accuracy"] and not best["collapsed"]
    accuracy = float(np.mean(conv_sgan.predict(X[test]) == y[test]))
    majority = np.bincount(y[labeled]).max() / len(labeled)
    assert accuracy >= 0.8 > 5 * majority, accuracy  # 0.905 seen (seed 0, 150 labels trained, 50 validate)
    conv_sgan.save(tmp_path / "sgan.keras")
    loaded = SGAN.load(tmp_path / "sgan.keras")
    assert loaded.convolutional and loaded.image_shape == SHAPE and loaded.n_classes == 10
    assert np.array_equal(loaded.predict_proba(X[test]), conv_sgan.predict_proba(X[test]))
    assert loaded.generate(4, seed=1).shape == (4, 64)


@slow
def test_conv_sgan_in_numpy_matches_keras(conv_sgan, digits):
    X, _, _, _, test = digits
    classifier = SGANClassifier.from_sgan(conv_sgan)
    raw = classifier.raw(X[test])
    assert raw.shape == (len(test), 10) and np.allclose(raw.sum(axis=1), 1.0)
    assert np.allclose(raw, conv_sgan.predict_proba(X[test]), atol=1e-5)
    spread = SGANClassifier.from_sgan(conv_sgan, classes=np.arange(10) + 2, n_classes=12).raw(X[test])
    assert np.allclose(spread[:, 2:], raw) and not spread[:, :2].any()
    with pytest.raises(ValueError, match="do not map"):
        SGANClassifier.from_sgan(conv_sgan, classes=np.arange(9), n_classes=12)


@slow
def test_numpy_convolution_matches_keras_on_odd_sizes():
    import keras

    rng = np.random.default_rng(4)
    for size in (7, 14):
        images = rng.normal(size=(3, size, size, 2)).astype(np.float32)
        layer = keras.layers.Conv2D(5, 3, strides=2, padding="same")
        expected = keras.ops.convert_to_numpy(layer(images))
        kernel, bias = layer.get_weights()
        assert np.allclose(_conv2d_same(images, kernel, bias, stride=2), expected, atol=1e-5)


def _collapsing_after(monkeypatch, healthy_calls):
    """Make the SGAN's evaluations after the first ``healthy_calls`` predict class 0 for every row."""
    from models.sgan import SGAN

    real = SGAN._class_probabilities_scaled
    calls = []

    def evaluate(self, discriminator, rows):
        calls.append(1)
        probabilities = real(self, discriminator, rows)
        if len(calls) > healthy_calls:
            probabilities = np.zeros_like(probabilities)
            probabilities[:, 0] = 1.0
        return probabilities

    monkeypatch.setattr(SGAN, "_class_probabilities_scaled", evaluate)


@slow
def test_a_k_class_sgan_that_collapses_serves_its_best_checkpoint_before(monkeypatch, digits):
    from models.sgan import SGAN

    X, y, labeled, unlabeled, _ = digits
    _collapsing_after(monkeypatch, healthy_calls=3)
    model = SGAN(n_classes=10, seed=0, image_shape=SHAPE).fit(X[labeled], y[labeled], X[unlabeled], steps=1000,
                                                              eval_every=50, patience=None, collapse_patience=3)
    assert [entry["collapsed"] for entry in model.history] == [False] * 3 + [True] * 3
    assert model.meta["stop_reason"] == "collapsed" and model.meta["best_index"] < 3


@slow
def test_a_k_class_sgan_collapsed_at_every_checkpoint_is_never_served(monkeypatch, digits):
    from models.sgan import SGAN, CollapsedError

    X, y, labeled, unlabeled, _ = digits
    _collapsing_after(monkeypatch, healthy_calls=0)
    with pytest.raises(CollapsedError):
        SGAN(n_classes=10, seed=0, image_shape=SHAPE).fit(X[labeled], y[labeled], X[unlabeled], steps=100,
                                                          eval_every=50, patience=None)
    generative = GenerativeCandidates(X[unlabeled], ["sgan"], n_classes=10, image_shape=SHAPE, sgan_steps=100)
    with pytest.raises(CandidateFailed, match="no checkpoint"):
        generative.fit("sgan", X[labeled], y[labeled], X[labeled], y[labeled], 1, 0, "final")


@slow
def test_the_k_class_candidate_gives_a_zero_column_for_a_class_without_labels(digits):
    X, y, labeled, unlabeled, test = digits
    keep = labeled[(y[labeled] != 7) | (np.arange(len(labeled)) == np.flatnonzero(y[labeled] == 7)[0])]
    generative = GenerativeCandidates(X[unlabeled], ["sgan"], n_classes=10, image_shape=SHAPE, sgan_steps=300)
    model = generative.fit("sgan", X[keep], y[keep], X[keep], y[keep], 1, 0, "final")
    raw = model.raw(X[test])
    assert raw.shape == (len(test), 10) and np.allclose(raw.sum(axis=1), 1.0) and not raw[:, 7].any()
    assert model.classes.tolist() == [0, 1, 2, 3, 4, 5, 6, 8, 9] and generative.device_of("sgan") == "CPU"
    assert np.allclose(model.predict(X[test]).sum(axis=1), 1.0)
