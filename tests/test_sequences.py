"""Each card's sequences of models/sequences.py (numpy only, no Keras): against a per-card Python loop over a
seeded random set of transactions, padding and mask, order, and the rule that a transaction sees nothing of its
card at or after its own time."""
import subprocess
import sys

import numpy as np
import pytest

from models import features, sequences
from tests.conftest import ROOT

DAY = features.DAY
K = 6


@pytest.fixture(scope="module")
def transactions():
    """500 transactions of 15 cards at 40 merchants, in shuffled order, with ties at one second."""
    rng = np.random.default_rng(11)
    n = 500
    seconds = 1_600_000_000 + np.sort(rng.integers(0, 20 * DAY, n)).astype(np.float64)
    card = rng.integers(0, 15, n)
    seconds[20], card[20] = seconds[21], card[21]  # two of one card at one second
    seconds[40], seconds[41], seconds[42] = seconds[42], seconds[42], seconds[42]  # three, one card each
    card[40], card[41] = card[42], card[42]
    merchant = np.array([f"M{m}" for m in rng.integers(0, 40, n)])
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    channel = rng.integers(0, 2, n)
    category = rng.integers(-1, 5, n)  # -1: missing
    shuffled = rng.permutation(n)
    return (seconds[shuffled], card[shuffled], merchant[shuffled], amount[shuffled], channel[shuffled],
            category[shuffled])


def reference_rows(seconds, card, k):
    """The row index by a loop per transaction: its card's earlier rows in (time, input position) order."""
    index = np.full((len(seconds), k), sequences.PADDING)
    for row in range(len(seconds)):
        earlier = np.flatnonzero((card == card[row]) & (seconds < seconds[row]))
        earlier = earlier[np.argsort(seconds[earlier], kind="stable")][max(0, len(earlier) - (k - 1)):]
        index[row, k - 1 - len(earlier):k - 1] = earlier
        index[row, -1] = row
    return index


def reference_steps(seconds, card, merchant, amount, channel, category):
    rows = []
    for row in range(len(seconds)):
        earlier = (card == card[row]) & (seconds < seconds[row])
        gap = seconds[row] - seconds[earlier].max() if earlier.any() else features.NO_HISTORY_SECONDS
        hour = (seconds[row] % DAY) / 3600
        first = not np.any(earlier & (merchant == merchant[row]))
        rows.append([np.log1p(amount[row]), np.log1p(min(gap, features.NO_HISTORY_SECONDS)),
                     np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24), float(first),
                     *np.eye(2)[channel[row]], *(np.eye(5)[category[row]] if category[row] >= 0 else np.zeros(5))])
    return np.array(rows, dtype=np.float32)


def steps_of(transactions):
    seconds, card, merchant, amount, channel, category = transactions
    return sequences.step_features(seconds, card, merchant, amount,
                                   [("channel", channel, 2), ("category", category, 5)])


def test_step_features_match_a_loop(transactions):
    matrix, names = steps_of(transactions)
    assert matrix.dtype == np.float32 and matrix.shape == (500, len(names)) == (500, 12)
    assert names[:5] == ["log amount", "log seconds since the card's previous", "hour of day (sin)",
                         "hour of day (cos)", "first at this merchant"]
    assert names[5:7] == ["channel = 0", "channel = 1"] and names[-1] == "category = 4"
    np.testing.assert_allclose(matrix, reference_steps(*transactions), rtol=1e-5, atol=1e-5)


def test_step_features_without_codes_and_signed_amounts():
    matrix, names = sequences.step_features([0.0, 60.0], ["a", "a"], ["m", "m"], [-9.0, 9.0])
    assert len(names) == 5 and matrix.shape == (2, 5)
    assert matrix[0, 0] == pytest.approx(-np.log1p(9.0)) and matrix[1, 0] == pytest.approx(np.log1p(9.0))
    assert matrix[:, 1] == pytest.approx([np.log1p(features.NO_HISTORY_SECONDS), np.log1p(60.0)])
    assert matrix[:, 4].tolist() == [1.0, 0.0]


def test_first_use_is_per_card_and_merchant():
    seconds = [0.0, 10.0, 20.0, 30.0, 30.0]
    matrix, _ = sequences.step_features(seconds, ["a", "a", "b", "a", "a"], ["m", "m", "m", "n", "n"],
                                        [1.0] * 5)
    assert matrix[:, 4].tolist() == [1.0, 0.0, 1.0, 1.0, 1.0]  # the two at one second do not see each other


def test_step_features_reject_bad_codes_and_lengths(transactions):
    seconds, card, merchant, amount, channel, _ = transactions
    with pytest.raises(ValueError, match="channel codes must lie in"):
        sequences.step_features(seconds, card, merchant, amount, [("channel", channel, 1)])
    with pytest.raises(ValueError, match="category codes must have one value"):
        sequences.step_features(seconds, card, merchant, amount, [("category", channel[:3], None)])
    with pytest.raises(ValueError, match="one value per transaction"):
        sequences.step_features(seconds, card[:-1], merchant, amount)


def test_sequence_rows_match_a_per_card_loop(transactions):
    seconds, card = transactions[:2]
    for k in (1, 2, K, 40):
        assert np.array_equal(sequences.sequence_rows(seconds, card, k), reference_rows(seconds, card, k)), k


def test_sequences_shape_padding_mask_and_order(transactions):
    seconds, card = transactions[:2]
    steps, _ = steps_of(transactions)
    seqs, mask = sequences.card_sequences(seconds, card, steps, k=K)
    assert seqs.shape == (500, K, steps.shape[1]) and seqs.dtype == np.float32
    assert mask.shape == (500, K) and mask.dtype == bool
    assert np.array_equal(seqs[:, -1], steps) and mask[:, -1].all()
    assert (seqs[~mask] == 0).all()
    assert not (np.diff(mask.astype(int), axis=1) < 0).any()  # padding only at the start
    index = sequences.sequence_rows(seconds, card, K)
    times = np.where(mask, seconds[np.maximum(index, 0)], 0.0)
    assert (np.diff(times, axis=1) >= 0).all()
    assert (card[np.maximum(index, 0)][mask] == np.repeat(card, K).reshape(-1, K)[mask]).all()
    first = np.array([seconds[row] == seconds[card == card[row]].min() for row in range(500)])
    assert (mask[first].sum(axis=1) == 1).all()  # a card's first transaction: itself, then nothing
    assert (mask[~first].sum(axis=1) >= 2).all()


def test_transactions_at_one_second_do_not_see_each_other(transactions):
    seconds, card = transactions[:2]
    index = sequences.sequence_rows(seconds, card, K)
    for row in range(500):
        earlier = index[row, :-1][index[row, :-1] >= 0]
        assert (seconds[earlier] < seconds[row]).all()


def test_a_later_transaction_never_changes_an_earlier_sequence(transactions):
    """Changing every transaction at or after a cut, and dropping them, leaves the earlier sequences as they were."""
    seconds, card, merchant, amount, channel, category = transactions
    steps, _ = steps_of(transactions)
    seqs, mask = sequences.card_sequences(seconds, card, steps, k=K)
    cut = np.median(seconds)
    later = seconds >= cut
    changed = (seconds + later * 5.0, card, np.where(later, "M0", merchant), np.where(later, 999.0, amount),
               np.where(later, 1, channel), np.where(later, 4, category))
    changed_steps, _ = steps_of(changed)
    changed_seqs, changed_mask = sequences.card_sequences(changed[0], card, changed_steps, k=K)
    assert np.array_equal(changed_seqs[~later], seqs[~later]) and np.array_equal(changed_mask[~later], mask[~later])
    kept = (seconds[~later], card[~later], merchant[~later], amount[~later], channel[~later], category[~later])
    kept_seqs, kept_mask = sequences.card_sequences(kept[0], kept[1], steps_of(kept)[0], k=K)
    assert np.array_equal(kept_seqs, seqs[~later]) and np.array_equal(kept_mask, mask[~later])


def test_rows_build_only_the_sequences_asked_for(transactions):
    seconds, card = transactions[:2]
    steps, _ = steps_of(transactions)
    full, full_mask = sequences.card_sequences(seconds, card, steps, k=K)
    rows = np.array([499, 3, 3, 250])
    some, some_mask = sequences.card_sequences(seconds, card, steps, k=K, rows=rows)
    assert np.array_equal(some, full[rows]) and np.array_equal(some_mask, full_mask[rows])
    index = sequences.sequence_rows(seconds, card, K)
    chunked = [sequences.gather_sequences(steps, index[start:start + 64]) for start in range(0, 500, 64)]
    assert np.array_equal(np.concatenate([part[0] for part in chunked]), full)
    empty, empty_mask = sequences.card_sequences(seconds, card, steps, k=K, rows=[])
    assert empty.shape == (0, K, steps.shape[1]) and empty_mask.shape == (0, K)


def test_card_sequences_reject_bad_arguments(transactions):
    seconds, card = transactions[:2]
    steps, _ = steps_of(transactions)
    with pytest.raises(ValueError, match="k must be at least 1"):
        sequences.card_sequences(seconds, card, steps, k=0)
    with pytest.raises(IndexError, match=r"rows must lie in \[0, 500\)"):
        sequences.card_sequences(seconds, card, steps, rows=[500])
    with pytest.raises(IndexError):
        sequences.card_sequences(seconds, card, steps, rows=[-1])
    with pytest.raises(ValueError, match="one row per transaction"):
        sequences.card_sequences(seconds, card, steps[:-1])
    with pytest.raises(ValueError, match="one value per transaction"):
        sequences.sequence_rows(seconds, card[:-1])
    with pytest.raises(ValueError, match="2-d"):
        sequences.gather_sequences(steps[:, 0], sequences.sequence_rows(seconds, card))


def test_importing_sequences_loads_neither_keras_nor_tensorflow():
    code = ("import sys, models.sequences; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'torch', 'jax')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
