"""The LSTM sequence autoencoder and sequence VAE of models/sequence_autoencoder.py on the bundled simulated
transactions, with a card-testing burst planted on one card: small samples, few epochs.

Every test trains or loads a Keras model, so all are in the slow tier; they import the Keras module themselves,
so that collecting this file for the fast tier does not load TensorFlow."""
import os

import numpy as np
import pandas as pd
import pytest

from models.features import codes_of
from models.sequences import card_sequences, step_features
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SAMPLE = os.path.join(ROOT, "data", "transactions_sample.csv.gz")
K = 10
BURST = [1.2, 0.8, 2.5, 1.9, 0.6]  # card testing: tiny amounts at new online merchants a minute apart ...
BIG = 199.0  # ... then a large one ten minutes later


@pytest.fixture(scope="module")
def sample():
    """The sample's sequences (k=10) with a burst planted on its last card an hour after the data ends: the
    planted rows are the last six, the large amount last. Also: the training rows (12,000 genuine), held-out
    genuine rows and the scenario of every row (9 for the planted ones)."""
    frame = pd.read_csv(SAMPLE, dtype={"card_id": str, "merchant_id": str})
    seconds = (pd.to_datetime(frame["timestamp"], utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    seconds = seconds.to_numpy()
    start = seconds.max() + 3600
    planted_seconds = start + np.array([0, 60, 120, 180, 240, 840], dtype=np.float64)
    card = np.concatenate([frame["card_id"].to_numpy(), [frame["card_id"].iloc[-1]] * 6])
    merchant = np.concatenate([frame["merchant_id"].to_numpy(), [f"NEW{i}" for i in range(6)]])
    amount = np.concatenate([frame["amount"].to_numpy(), BURST + [BIG]])
    channel = codes_of(np.concatenate([frame["channel"].to_numpy(), ["card_not_present"] * 6]))
    category = codes_of(np.concatenate([frame["merchant_category"].to_numpy(), ["digital_goods"] * 6]))
    seconds = np.concatenate([seconds, planted_seconds])
    steps, _ = step_features(seconds, card, merchant, amount,
                             [("channel", channel, None), ("category", category, None)])
    sequences, mask = card_sequences(seconds, card, steps, k=K)
    scenario = np.concatenate([frame["scenario"].to_numpy(), [9] * 6])
    rng = np.random.default_rng(0)
    genuine = rng.permutation(np.flatnonzero(scenario == 0))
    return {"sequences": sequences, "mask": mask, "scenario": scenario, "train": np.sort(genuine[:12_000]),
            "held_out": np.sort(genuine[12_000:22_000])}


@pytest.fixture(scope="module")
def autoencoder(sample):
    from models.sequence_autoencoder import SequenceAutoencoder

    train = sample["train"]
    return SequenceAutoencoder(latent_dim=16, seed=0).fit(sample["sequences"][train], sample["mask"][train],
                                                          epochs=8, batch_size=256)


@pytest.fixture(scope="module")
def vae(sample):
    from models.sequence_autoencoder import SequenceVAE

    train = sample["train"][:4000]
    return SequenceVAE(latent_dim=4, seed=0).fit(sample["sequences"][train], sample["mask"][train], epochs=2)


def test_errors_latent_shapes_and_training_record(sample, autoencoder):
    sequences, mask = sample["sequences"][:3000], sample["mask"][:3000]
    assert (~mask).any()  # the sample starts with new cards: padded sequences among these
    per_sequence, per_step = autoencoder.errors(sequences, mask)
    assert per_sequence.shape == (3000,) and per_step.shape == (3000, K)
    assert np.isnan(per_step[~mask]).all() and np.isfinite(per_step[mask]).all()
    np.testing.assert_allclose(per_sequence, np.nanmean(per_step, axis=1), rtol=1e-5)
    latent = autoencoder.latent(sequences, mask)
    assert latent.shape == (3000, 16) and np.abs(latent).max() < 1.0
    meta = autoencoder.meta
    assert (meta["steps"], autoencoder.n_features, meta["n_sequences"]) == (K, sequences.shape[2], 12_000)
    assert len(meta["history"]["loss"]) == 8 and meta["history"]["loss"][-1] < meta["history"]["loss"][0]
    assert len(meta["feature_error"]) == autoencoder.n_features
    assert autoencoder.device == "CPU" or autoencoder.device.startswith("GPU")
    standardized, _ = autoencoder.errors(sample["sequences"][sample["train"]], sample["mask"][sample["train"]],
                                         standardized=True)
    assert standardized.mean() == pytest.approx(1.0, rel=0.1)  # a normal step's standardized error is about 1


def test_a_planted_card_testing_burst_scores_above_normal_sequences(sample, autoencoder):
    """Against held-out genuine sequences of cards with a history (k valid steps; a card's first transactions,
    at the start of the sample, score high too): the plain error, diluted by the features it cannot predict (a
    merchant category drawn at random), puts the burst's large amount in their top 10%, the standardized error
    in their top 0.5%. The sample's own card-testing transactions score higher than genuine ones on average."""
    sequences, mask, held_out = sample["sequences"], sample["mask"], sample["held_out"]
    with_history = held_out[mask[held_out].all(axis=1)]
    card_testing = sample["scenario"] == 4
    for standardized, percentile, ratio in ((False, 90, 1.2), (True, 99.5, 1.5)):
        errors, _ = autoencoder.errors(sequences, mask, standardized=standardized)
        assert errors[-1] > np.percentile(errors[with_history], percentile), standardized
        assert errors[card_testing].mean() > ratio * errors[held_out].mean(), standardized


def test_padded_steps_change_nothing(sample, autoencoder):
    sequences, mask = sample["sequences"][:3000].copy(), sample["mask"][:3000]
    errors, per_step = autoencoder.errors(sequences, mask)
    latent = autoencoder.latent(sequences, mask)
    sequences[~mask] = 50.0
    changed_errors, changed_per_step = autoencoder.errors(sequences, mask)
    assert np.array_equal(changed_errors, errors) and np.array_equal(changed_per_step, per_step, equal_nan=True)
    assert np.array_equal(autoencoder.latent(sequences, mask), latent)


def test_autoencoder_save_load_round_trip(sample, autoencoder, tmp_path):
    from models.sequence_autoencoder import SequenceAutoencoder, SequenceVAE

    sequences, mask = sample["sequences"][-2000:], sample["mask"][-2000:]
    path = tmp_path / "sequences.keras"
    autoencoder.save(path)
    loaded = SequenceAutoencoder.load(path)
    for standardized in (False, True):
        expected = autoencoder.errors(sequences, mask, standardized=standardized)
        got = loaded.errors(sequences, mask, standardized=standardized)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1], equal_nan=True)
    assert np.array_equal(loaded.latent(sequences, mask), autoencoder.latent(sequences, mask))
    assert np.array_equal(loaded.scale(sequences, mask), autoencoder.scale(sequences, mask))
    assert loaded.meta == autoencoder.meta and loaded.latent_dim == 16
    assert sorted(os.listdir(tmp_path)) == ["sequences.keras"]
    with pytest.raises(ValueError, match="not 'sequence_vae'"):
        SequenceVAE.load(path)


def test_inputs_are_checked(sample, autoencoder):
    from models.sequence_autoencoder import SequenceAutoencoder

    sequences, mask = sample["sequences"][:50].copy(), sample["mask"][:50].copy()
    with pytest.raises(ValueError, match="features, the model expects"):
        autoencoder.errors(sequences[:, :, :-1], mask)
    with pytest.raises(ValueError, match="steps, the model expects"):
        autoencoder.errors(sequences[:, 1:], mask[:, 1:])
    with pytest.raises(ValueError, match="mask must have shape"):
        autoencoder.errors(sequences, mask[:, 1:])
    with pytest.raises(ValueError, match="3-d"):
        autoencoder.errors(sequences[:, 0], mask)
    mask[3] = False
    with pytest.raises(ValueError, match="at least one valid"):
        autoencoder.latent(sequences, mask)
    sequences[4, -1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        SequenceAutoencoder().fit(sequences, sample["mask"][:50], epochs=1)
    with pytest.raises(RuntimeError, match="not trained"):
        SequenceAutoencoder().errors(sequences, mask)


def test_vae_generates_finite_sequences_and_round_trips(sample, vae, tmp_path):
    from models.sequence_autoencoder import SequenceVAE

    generated = vae.generate(50, seed=1)
    assert generated.shape == (50, K, sample["sequences"].shape[2]) and generated.dtype == np.float32
    assert np.isfinite(generated).all()
    steps = sample["sequences"][sample["train"][:4000]][sample["mask"][sample["train"][:4000]]]
    span = steps.max(axis=0) - steps.min(axis=0)
    assert (generated >= steps.min(axis=0) - 1e-4 * span).all()  # sigmoid outputs stay in the training range
    assert (generated <= steps.max(axis=0) + 1e-4 * span).all()
    assert np.array_equal(vae.generate(50, seed=1), generated)
    assert not np.array_equal(vae.generate(50, seed=2), generated)
    z_mean, z_log_var = vae.encode(sample["sequences"][:100], sample["mask"][:100])
    assert z_mean.shape == z_log_var.shape == (100, 4)
    assert vae.meta["kind"] == "sequence_vae" and len(vae.meta["reconstruction_variance"]) == generated.shape[2]
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = SequenceVAE.load(path)
    assert np.array_equal(loaded.generate(50, seed=1), generated) and loaded.meta == vae.meta
    with pytest.raises(ValueError, match="at least 1"):
        vae.generate(0)
