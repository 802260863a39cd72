"""The Keras generative models on real rows of the bundled credit-card sample: small data, few epochs.

The tests that import Keras (all but three) are in the slow tier, and they import the Keras modules themselves,
so that collecting this file for the fast tier (-m "not slow") does not load TensorFlow."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from tests.conftest import ROOT, SAMPLE

slow = pytest.mark.slow

N_FEATURES = 29


@pytest.fixture(scope="module", autouse=True)
def one_compute_thread():
    """scikit-learn's OpenMP threads on one core: on shared cores, spinning threads slow boosting many times."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def sample():
    """(X, y): the first 2,500 genuine rows and all 49 frauds of the sample, Time dropped (29 features)."""
    frame = pd.read_csv(SAMPLE)
    frame = pd.concat([frame[frame["Class"] == 0].iloc[:2500], frame[frame["Class"] == 1]])
    return frame.drop(columns=["Time", "Class"]).to_numpy(np.float32), frame["Class"].to_numpy(np.int64)


@pytest.fixture(scope="module")
def autoencoder(sample):
    from models.autoencoder import Autoencoder

    return Autoencoder(seed=3).fit(sample[0], epochs=5, batch_size=64)


@pytest.fixture(scope="module")
def vae(sample):
    from models.vae import VAE

    return VAE(seed=3).fit(sample[0], epochs=5, batch_size=64)


@pytest.fixture(scope="module")
def sgan_split(sample):
    """Labeled training rows, explicit validation rows and an unlabeled pool, disjoint, from the sample."""
    X, y = sample
    rng = np.random.default_rng(0)
    frauds, genuine = rng.permutation(np.flatnonzero(y == 1)), rng.permutation(np.flatnonzero(y == 0))
    train = np.concatenate([frauds[:25], genuine[:250]])
    val = np.concatenate([frauds[25:], genuine[250:490]])
    pool = genuine[490:]
    return X[train], y[train], X[val], y[val], X[pool]


def fit_sgan(split, seed=5, **kwargs):
    from models.sgan import SGAN

    X_train, y_train, X_val, y_val, X_pool = split
    options = dict(steps=400, eval_every=50, patience=None)
    options.update(kwargs)
    return SGAN(seed=seed).fit(X_train, y_train, X_pool, X_val=X_val, y_val=y_val, **options)


@pytest.fixture(scope="module")
def sgan(sgan_split):
    return fit_sgan(sgan_split)


def test_importing_models_package_does_not_load_tensorflow():
    code = "import sys, models; print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@slow
def test_autoencoder_shapes_scaling_and_device(sample, autoencoder):
    X, _ = sample
    assert autoencoder.encode(X).shape == (len(X), 12)
    assert np.abs(autoencoder.encode(X)).max() < 1.0
    assert autoencoder.reconstruct(X).shape == (len(X), N_FEATURES)
    assert autoencoder.reconstruction_error(X).shape == (len(X), N_FEATURES)
    assert autoencoder.anomaly_score(X).shape == (len(X),)
    scaled = autoencoder.scale(X)
    assert np.allclose(scaled.min(axis=0), 0.0) and np.allclose(scaled.max(axis=0), 1.0, atol=1e-5)
    assert autoencoder.device == "CPU" or autoencoder.device.startswith("GPU")
    assert len(autoencoder.meta["history"]["loss"]) == 5


@slow
def test_autoencoder_scores_frauds_as_more_anomalous(sample, autoencoder):
    X, y = sample
    score = autoencoder.anomaly_score(X)
    assert score[y == 1].mean() > 3 * score[y == 0].mean()


@slow
def test_autoencoder_save_load_round_trip(sample, autoencoder, tmp_path):
    from models.autoencoder import Autoencoder

    X, _ = sample
    path = tmp_path / "ae.keras"
    autoencoder.save(path)
    loaded = Autoencoder.load(path)
    assert np.array_equal(loaded.encode(X), autoencoder.encode(X))
    assert np.array_equal(loaded.anomaly_score(X), autoencoder.anomaly_score(X))
    assert np.array_equal(loaded.scale(X), autoencoder.scale(X))
    assert loaded.meta == autoencoder.meta
    assert sorted(os.listdir(tmp_path)) == ["ae.keras"]


@slow
def test_autoencoder_is_deterministic_for_a_seed(sample, autoencoder):
    from models.autoencoder import Autoencoder

    X, _ = sample
    again = Autoencoder(seed=3).fit(X, epochs=5, batch_size=64)
    other = Autoencoder(seed=4).fit(X, epochs=5, batch_size=64)
    assert np.array_equal(again.encode(X), autoencoder.encode(X))
    assert not np.allclose(other.encode(X), autoencoder.encode(X))


@slow
def test_fit_rejects_non_finite_rows(sample):
    from models.autoencoder import Autoencoder

    X = sample[0][:100].copy()
    X[7, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        Autoencoder().fit(X, epochs=1)


@slow
def test_predict_rejects_wrong_width(sample, autoencoder):
    with pytest.raises(ValueError, match="has 28 features, the model expects 29"):
        autoencoder.encode(sample[0][:10, :28])


@slow
def test_vae_shapes(sample, vae):
    X, _ = sample
    assert vae.encode(X).shape == (len(X), 6)
    assert vae.reconstruct(X).shape == (len(X), N_FEATURES)
    assert vae.reconstruction_error(X).shape == (len(X), N_FEATURES)
    assert vae.device == "CPU" or vae.device.startswith("GPU")


@slow
def test_vae_fitted_on_frauds_samples_fraud_like_rows(sample):
    from models.vae import VAE

    X, y = sample
    frauds = X[y == 1]
    vae = VAE(seed=3).fit(frauds, epochs=100, batch_size=16)
    synthetic = vae.sample_around(frauds, 300, seed=1)
    assert synthetic.shape == (300, N_FEATURES)
    assert np.array_equal(synthetic, vae.sample_around(frauds, 300, seed=1))
    assert not np.allclose(synthetic, vae.sample_around(frauds, 300, seed=2))
    scaled = vae.scale(synthetic)
    to_frauds = np.linalg.norm(scaled - vae.scale(frauds).mean(axis=0), axis=1).mean()
    to_genuine = np.linalg.norm(scaled - vae.scale(X[y == 0]).mean(axis=0), axis=1).mean()
    assert to_frauds < 0.75 * to_genuine
    # V14, the strongest fraud signal of the data set, is far below the genuine rows' in the synthetic rows
    assert synthetic[:, 13].mean() < X[y == 0, 13].mean() - 3


@slow
def test_vae_loss_holds_the_kl_term(sample, vae):
    from keras import ops

    from models.vae import GaussianReconstruction, kl_divergence

    X, _ = sample
    batch = X[:256]
    model = vae.model
    reconstructed = model(batch)
    z_mean, z_log_var = vae.encode_distribution(batch)
    expected_kl = float(kl_divergence(ops.convert_to_tensor(z_mean), ops.convert_to_tensor(z_log_var)))
    assert len(model.losses) == 1
    assert expected_kl > 0
    assert float(model.losses[0]) == pytest.approx(expected_kl, rel=1e-5)
    target = vae.scale(batch)
    term = GaussianReconstruction(vae.meta["reconstruction_variance"])
    reconstruction = float(ops.mean(term.call(target, reconstructed)))
    total = float(model.compute_loss(x=batch, y=target, y_pred=reconstructed))
    assert total == pytest.approx(reconstruction + expected_kl, rel=1e-5)
    terms = vae.loss_terms(batch)
    assert terms["kl"] == pytest.approx(expected_kl, rel=1e-5)
    assert terms["total"] == pytest.approx(terms["reconstruction"] + terms["kl"])


@slow
def test_vae_save_load_round_trip_and_determinism(sample, vae, tmp_path):
    from models.vae import VAE

    X, y = sample
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = VAE.load(path)
    assert np.array_equal(loaded.encode(X), vae.encode(X))
    assert np.array_equal(loaded.sample_around(X[y == 1], 50, seed=9), vae.sample_around(X[y == 1], 50, seed=9))
    again = VAE(seed=3).fit(X, epochs=5, batch_size=64)
    assert np.array_equal(again.encode(X), vae.encode(X))
    assert again.meta["history"] == vae.meta["history"]


@slow
def test_load_refuses_another_kind_and_missing_file(autoencoder, tmp_path):
    from models.vae import VAE

    path = tmp_path / "ae.keras"
    autoencoder.save(path)
    with pytest.raises(ValueError, match="holds a 'autoencoder' model, not 'vae'"):
        VAE.load(path)
    with pytest.raises(FileNotFoundError):
        VAE.load(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="must end in .keras"):
        autoencoder.save(tmp_path / "ae.h5")
    assert sorted(os.listdir(tmp_path)) == ["ae.keras"]


@slow
def test_sgan_class_head_has_a_fake_class():
    from models.sgan import build_discriminator

    for n_classes in (2, 3):
        discriminator = build_discriminator(N_FEATURES, n_classes)
        real, label = discriminator(np.zeros((4, N_FEATURES), np.float32))
        assert tuple(real.shape) == (4, 1)
        assert tuple(label.shape) == (4, n_classes + 1)


@slow
def test_sgan_predicts_real_class_probabilities(sgan, sgan_split):
    X_val = sgan_split[2]
    probabilities = sgan.predict_proba(X_val)
    assert probabilities.shape == (len(X_val), 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert set(np.unique(sgan.predict(X_val))) <= {0, 1}
    assert sgan.real_probability(X_val).shape == (len(X_val),)
    assert sgan.generate(7).shape == (7, N_FEATURES)
    assert sgan.device == "CPU" or sgan.device.startswith("GPU")


@slow
def test_sgan_serves_the_best_non_collapsed_checkpoint(sgan, sgan_split):
    _, _, X_val, y_val, _ = sgan_split
    history = sgan.history
    assert len(history) == 400 // 50
    healthy = [entry["score"] for entry in history if not entry["collapsed"]]
    best = history[sgan.meta["best_index"]]
    assert not best["collapsed"] and best["score"] == max(healthy)
    assert sgan.meta["best_step"] == best["step"]
    served_score = average_precision_score(y_val, sgan.predict_proba(X_val)[:, 1])
    assert served_score == pytest.approx(best["score"], abs=1e-6)
    # well above the average precision of a random ranking (the validation fraud rate)
    assert served_score > 2 * y_val.mean()


@slow
def test_select_checkpoint_skips_collapsed_and_nan_entries():
    from models.sgan import CollapsedError, select_checkpoint

    history = [{"score": 0.3, "collapsed": False}, {"score": 0.9, "collapsed": True},
               {"score": float("nan"), "collapsed": False}, {"score": 0.5, "collapsed": False},
               {"score": 0.5, "collapsed": False}]
    assert select_checkpoint(history) == 3
    with pytest.raises(CollapsedError):
        select_checkpoint([{"score": 0.9, "collapsed": True}])


@slow
def test_sgan_save_load_round_trip(sgan, sgan_split, tmp_path):
    from models.sgan import SGAN

    X_val = sgan_split[2]
    path = tmp_path / "sgan.keras"
    sgan.save(path)
    loaded = SGAN.load(path)
    assert np.array_equal(loaded.predict_proba(X_val), sgan.predict_proba(X_val))
    assert np.array_equal(loaded.generate(5, seed=2), sgan.generate(5, seed=2))
    assert loaded.threshold == sgan.threshold and loaded.history == sgan.history


@slow
def test_sgan_is_deterministic_for_a_seed(sgan, sgan_split):
    X_val = sgan_split[2]
    again = fit_sgan(sgan_split)
    assert again.history == sgan.history
    assert np.array_equal(again.predict_proba(X_val), sgan.predict_proba(X_val))


@slow
def test_sgan_needs_two_labeled_rows_per_class_to_hold_out_validation(sgan_split):
    from models.sgan import SGAN

    X_train, y_train, _, _, X_pool = sgan_split
    keep = np.concatenate([np.flatnonzero(y_train == 1)[:1], np.flatnonzero(y_train == 0)])
    with pytest.raises(ValueError, match=r"at least 2 labeled rows .* \[250, 1\]"):
        SGAN().fit(X_train[keep], y_train[keep], X_pool, steps=10)


@slow
def test_sgan_refuses_validation_without_frauds(sgan_split):
    from models.sgan import SGAN

    X_train, y_train, X_val, y_val, X_pool = sgan_split
    genuine = y_val == 0
    with pytest.raises(ValueError, match=r"the validation labels hold no row of class \[1\]"):
        SGAN().fit(X_train, y_train, X_pool, X_val=X_val[genuine], y_val=y_val[genuine], steps=10)


@slow
def test_holdout_split_keeps_a_row_of_each_class_on_both_sides():
    from models.sgan import holdout_split

    y = np.array([0] * 50 + [1] * 2)
    train, val = holdout_split(y, 0.25, 2, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(52))
    assert (y[train] == 1).sum() == 1 and (y[val] == 1).sum() == 1
    assert (y[val] == 0).sum() == 12


@slow
def test_population_threshold_counts_flagged_rows_of_the_whole_population():
    from models.sgan import population_f1_threshold

    # 4 held-out positives; a population of 1,000 rows of which 1% (10) are expected positive
    positives = np.array([0.2, 0.6, 0.8, 0.9])
    population = np.concatenate([np.linspace(0.0, 0.5, 985), np.full(15, 0.85)])
    threshold, f1 = population_f1_threshold(positives, population, 0.01)
    # at 0.6 or 0.8: recall 3/4 or 1/2, 15 rows flagged; at 0.9: recall 1/4, none flagged; at 0.2: ~600 flagged
    assert threshold == 0.6
    assert f1 == pytest.approx(2 * 0.75 * 10 / (15 + 10))
    with pytest.raises(ValueError, match="positive_rate"):
        population_f1_threshold(positives, population, 0.0)


# ---- generative candidates in model selection -----------------------------------------------------------------

UNPICKLE_SCRIPT = """
import pickle, sys
import numpy as np
models = pickle.loads(open(sys.argv[1], "rb").read())
np.save(sys.argv[3], np.array([model.predict(np.load(sys.argv[2])) for model in models]))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""


@pytest.fixture(scope="module")
def labeled_sample(sample):
    """(pool rows, labeled pool indices, their labels): 30 frauds and 300 genuine rows labeled, seeded."""
    X, y = sample
    rng = np.random.default_rng(1)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == 1), 30, replace=False),
                              rng.choice(np.flatnonzero(y == 0), 300, replace=False)])
    return X, labeled, y[labeled].astype(np.int8)


def scores_without_tensorflow(models, X, tmp_path):
    """[``model.predict(X)`` for each of ``models``] run in a fresh interpreter from their pickle, and the
    TensorFlow or Keras modules that loaded there."""
    import pickle

    (tmp_path / "model.pkl").write_bytes(pickle.dumps(models))
    np.save(tmp_path / "X.npy", X)
    result = subprocess.run([sys.executable, "-c", UNPICKLE_SCRIPT, str(tmp_path / "model.pkl"),
                             str(tmp_path / "X.npy"), str(tmp_path / "scores.npy")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return np.load(tmp_path / "scores.npy"), result.stdout.strip()


@slow
def test_autoencoder_features_in_numpy_match_keras(sample, autoencoder):
    from models.generative_candidates import AutoencoderFeatures

    X, _ = sample
    features = AutoencoderFeatures.from_autoencoder(autoencoder).transform(X)
    assert features.shape == (len(X), 12 + 1)
    assert np.allclose(features[:, :12], autoencoder.encode(X), atol=1e-5)
    assert np.allclose(features[:, 12], autoencoder.anomaly_score(X), rtol=1e-4, atol=1e-7)


@slow
def test_sgan_classifier_in_numpy_matches_keras(sgan, sgan_split):
    from models.generative_candidates import SGANClassifier

    X_val = sgan_split[2]
    classifier = SGANClassifier.from_sgan(sgan)
    assert np.allclose(classifier.raw(X_val), sgan.predict_proba(X_val)[:, 1], atol=1e-5)
    assert classifier.meta["best_step"] == sgan.meta["best_step"] and classifier.device == sgan.device


@slow
def test_latent_candidate_competes_and_serves_without_tensorflow(sample, labeled_sample, tmp_path):
    from labeler.store.settings import DEFAULTS
    from models.learner import ActiveLearner

    X, labeled, y = labeled_sample
    sample_truth = sample[1]
    loop = {key: value for key, value in DEFAULTS.items() if key != "labeling"}
    settings = {**loop, "generative_candidates": ["latent"], "cv_folds": 3, "cv_repeats": 1}
    learner = ActiveLearner(X, np.arange(len(X)), settings, seed=0)
    assert learner.generative._features is None  # nothing trained before model selection asks
    selected = learner.train(labeled, y)
    latent_kinds = ["blend+latent"]
    assert list(selected.metrics) == ["blend"] + latent_kinds
    for kind in latent_kinds:
        assert 0 < selected.metrics[kind]["auprc"] <= 1
        assert selected.metrics[kind]["repeats"] == 1 and selected.metrics[kind]["folds"] == 3
        assert selected.metrics[kind]["device"] == "CPU" or selected.metrics[kind]["device"].startswith("GPU")
    from models import selection

    model = selection.fit_final("boosted+latent", X[labeled], y, seed=0, generative=learner.generative)
    scores = model.predict(X)
    assert scores.shape == (len(X),) and np.all((scores >= 0) & (scores <= 1))
    unlabeled = np.setdiff1d(np.arange(len(X)), labeled)
    assert average_precision_score(sample_truth[unlabeled], scores[unlabeled]) > 3 * sample_truth[unlabeled].mean()
    unpickled, loaded = scores_without_tensorflow([model], X, tmp_path)
    assert np.array_equal(unpickled[0], scores) and loaded == "[]"


@slow
def test_vae_balance_candidate_never_puts_synthetic_rows_in_held_out_folds(labeled_sample):
    from models import selection
    from models.generative_candidates import GenerativeCandidates

    X, labeled, y = labeled_sample
    generative = GenerativeCandidates(X, ["vae_balance"], seed=0)
    assert generative.kinds(y) == ["blend+vae"]  # the weak default (the blend) balanced by the VAE
    metrics, held_p, held_y = selection.cross_validate("logistic+vae", X[labeled], y, folds=3, repeats=2,
                                                       generative=generative)
    # one repeat (Keras per fold), and the held-out rows are exactly the human labels
    assert metrics["repeats"] == 1 and len(held_p) == len(held_y) == len(y)
    assert sorted(held_y.tolist()) == sorted(y.tolist())
    assert metrics["auprc"] > 2 * y.mean()
    # the fold VAE was fitted on the training fold's frauds only and balances that fold's human labels
    synthetic = generative.synthetic_positives(X[labeled], y, 1, seed=0, key=("fold", 0))
    assert synthetic.shape == ((y == 0).sum() - (y == 1).sum(), N_FEATURES)


@slow
def test_each_generative_candidate_trains_and_scores_the_pool(sample, labeled_sample, tmp_path):
    from models import selection
    from models.generative_candidates import GenerativeCandidates

    X, labeled, y = labeled_sample
    truth = sample[1]
    unlabeled = np.setdiff1d(np.arange(len(X)), labeled)
    generative = GenerativeCandidates(X, ["latent", "vae_balance", "sgan"], seed=0, sgan_steps=300)
    assert "sgan" in generative.kinds(y)
    kinds = ["logistic", "logistic+latent", "logistic+vae", "sgan"]  # one per candidate name, to stay fast
    selected = selection.select(X[labeled], y, kinds=kinds, folds=3, repeats=1, seed=0, generative=generative)
    assert list(selected.metrics) == kinds and selected.kind in kinds
    models, scores = [], []
    for kind in kinds[1:]:
        assert selected.metrics[kind]["auprc"] > 2 * y.mean(), kind
        assert selected.metrics[kind]["device"] == generative.device_of(kind) is not None
        model = (selected.model if kind == selected.kind
                 else selection.fit_final(kind, X[labeled], y, seed=0, generative=generative))
        assert model.kind == kind
        models.append(model)
        scores.append(model.predict(X))
        assert scores[-1].shape == (len(X),) and np.isfinite(scores[-1]).all(), kind
        # the pool's unlabeled frauds rank well above their rate among the unlabeled rows
        assert average_precision_score(truth[unlabeled], scores[-1][unlabeled]) > 3 * truth[unlabeled].mean(), kind
    unpickled, loaded = scores_without_tensorflow(models, X, tmp_path)
    # numpy's float32 sums round differently from TensorFlow's kernels: equal to float32 precision
    np.testing.assert_allclose(unpickled, np.array(scores), rtol=1e-5, atol=1e-6)
    assert loaded == "[]"


@slow
def test_generative_selection_is_deterministic_for_a_seed(labeled_sample):
    from models import selection
    from models.generative_candidates import GenerativeCandidates

    X, labeled, y = labeled_sample

    def metrics():
        generative = GenerativeCandidates(X, ["latent"], seed=0)
        return selection.select(X[labeled], y, kinds=["logistic+latent"], folds=3, repeats=1, seed=0,
                                generative=generative).metrics

    assert metrics() == metrics()


def test_generative_kind_without_its_candidates_is_refused(labeled_sample):
    from models import selection
    from models.generative_candidates import GenerativeCandidates

    X, labeled, y = labeled_sample
    with pytest.raises(ValueError, match="'logistic\\+latent' needs the generative candidates"):
        selection.fit_final("logistic+latent", X[labeled], y)
    with pytest.raises(ValueError, match="unknown generative candidate 'gan'"):
        GenerativeCandidates(X, ["latent", "gan"])


@slow
def test_sgan_population_f1_criterion_serves_the_best_estimate(sgan_split):
    from models.sgan import SGAN

    X_train, y_train, X_val, y_val, X_pool = sgan_split
    rate = 49 / 2549
    model = fit_sgan(sgan_split, criterion="population_f1", positive_rate=rate)
    history = model.history
    best = history[model.meta["best_index"]]
    assert best["score"] == max(entry["score"] for entry in history if not entry["collapsed"])
    assert model.meta["criterion"] == "population_f1"
    # the score is the population estimate, not the validation AP recorded beside it
    assert any(entry["score"] != entry["ap"] for entry in history)
    scores = model.predict_proba(X_val)[:, 1]
    assert average_precision_score(y_val, scores) == pytest.approx(best["ap"], abs=1e-6)
    with pytest.raises(ValueError, match="needs two classes and a positive_rate"):
        SGAN().fit(X_train, y_train, X_pool, X_val=X_val, y_val=y_val, steps=10, criterion="population_f1")
    with pytest.raises(ValueError, match="unknown checkpoint criterion 'loss'"):
        SGAN().fit(X_train, y_train, X_pool, X_val=X_val, y_val=y_val, steps=10, criterion="loss")


def test_a_candidate_whose_final_fit_fails_is_marked_and_the_next_best_serves(labeled_sample, monkeypatch):
    from models import selection, weak
    from models.generative_candidates import CandidateFailed, GenerativeCandidates

    X, labeled, y = labeled_sample
    generative = GenerativeCandidates(X, ["sgan"], seed=0)
    memorized = weak.fit("boosted", X[labeled], y)  # a stand-in that has seen every held-out fold: it wins the CV

    def fit(kind, X_human, y_human, X_fit, y_fit, repeats, seed, key):
        if key == "final":
            raise CandidateFailed("sgan: the SGAN produced no checkpoint that predicts more than one class")
        return memorized

    monkeypatch.setattr(generative, "fit", fit)
    selected = selection.select(X[labeled], y, kinds=["logistic", "sgan"], folds=3, repeats=1, generative=generative)
    assert selected.metrics["sgan"]["auprc"] > selected.metrics["logistic"]["auprc"]
    assert selected.kind == "logistic" and selected.model.kind == "logistic"
    assert "no checkpoint" in selected.metrics["sgan"]["failed"]
    with pytest.raises(CandidateFailed):
        selection.select(X[labeled], y, kinds=["sgan"], folds=3, repeats=1, generative=generative)
