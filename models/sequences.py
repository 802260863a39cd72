"""Each card's recent transactions as a sequence, numpy in and numpy out, for the LSTM sequence autoencoder.

Two steps: ``step_features`` turns each transaction into a row of per-step features, and ``card_sequences``
stacks, for each transaction, the rows of its card's last ``k`` transactions up to and including it (oldest
first, the transaction itself last), left-padded with zeros and a mask that is False at padded steps.

No look-ahead, the rule of models.features: a transaction sees only its card's transactions strictly before it
in time, never one at the same second or later; two transactions of a card at one second do not see each other
(each sequence ends with its own transaction), and earlier transactions at one second keep their input order.

Sizes: the sequences take n * k * d * 4 bytes (1.8 million transactions, k = 10 and 17 features: 1.2 GB), their
row index n * k * 8 (144 MB). ``sequence_rows`` builds the index for some rows only (``rows=``), and
``gather_sequences`` the sequences of a slice of that index: training takes a sample, scoring goes in chunks.
Speed on 1.8 million transactions (2 cores): the step features and the whole index about 1.5 s each, gathering
every sequence at once about 5 s (bench/sequences.py).
"""
import numpy as np

from models.features import DAY, EntityHistory, codes_of, earlier_count, seconds_since_previous

PADDING = -1  # the row index of a padded step


def step_features(seconds, card_values, merchant_values, amounts, categories=()):
    """(matrix float32 (n, d), names): per transaction, the features of one step of its card's sequence.

    The signed log amount (log1p of its absolute value); log1p of the seconds since the card's previous
    transaction (strictly earlier, capped at models.features.NO_HISTORY_SECONDS, which the card's first gets);
    the hour of day as sine and cosine (midnight next to 23:59); 1 when it is the card's first transaction at
    this merchant; then each of ``categories`` one-hot: (column name, integer codes in [0, count) or -1 for a
    missing value (all zeros), count) — pass the count of the training vocabulary, so that scoring gets the
    same columns (None: the largest code plus one). Raises ValueError for columns of different lengths or codes
    out of range.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    amounts = np.asarray(amounts, dtype=np.float64)
    n = len(seconds)
    if not len(card_values) == len(merchant_values) == len(amounts) == n:
        raise ValueError("seconds, cards, merchants and amounts must have one value per transaction")
    cards = codes_of(card_values)
    merchants = codes_of(merchant_values)
    gap = seconds_since_previous(cards, seconds)
    pairs = cards * (int(merchants.max()) + 1 if n else 1) + merchants
    first_use = earlier_count(codes_of(pairs), seconds) == 0
    angle = 2 * np.pi * (seconds % DAY) / DAY
    columns = [np.sign(amounts) * np.log1p(np.abs(amounts)), np.log1p(gap), np.sin(angle), np.cos(angle),
               first_use]
    names = ["log amount", "log seconds since the card's previous", "hour of day (sin)", "hour of day (cos)",
             "first at this merchant"]
    matrix = np.column_stack(columns).astype(np.float32)
    parts = [matrix]
    for column, codes, count in categories:
        if len(codes) != n:
            raise ValueError(f"{column} codes must have one value per transaction")
        encoded, encoded_names = one_hot_codes(codes, count, column)
        parts.append(encoded)
        names += encoded_names
    return np.concatenate(parts, axis=1), names


def one_hot_codes(codes, count=None, column="code"):
    """(matrix float32 (n, count), names) of the integer ``codes`` one-hot, -1 all zeros; ``count`` None: the
    largest code plus one. Raises ValueError for a code out of [-1, count)."""
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    n = len(codes)
    count = int(codes.max(initial=-1)) + 1 if count is None else int(count)
    if len(codes) and (codes.min() < -1 or codes.max() >= count):
        raise ValueError(f"{column} codes must lie in [-1, {count})")
    matrix = np.zeros((n, count), dtype=np.float32)
    present = codes >= 0
    matrix[np.flatnonzero(present), codes[present]] = 1.0
    return matrix, [f"{column} = {code}" for code in range(count)]


def sequence_rows(seconds, card_values, k=10, rows=None):
    """Row index (int64 (m, k)) of the sequences of ``rows`` (default: every transaction, m = n): for each, the
    input rows of its card's last k - 1 transactions strictly before it in time, oldest first, then its own row;
    PADDING (-1) at the start for a card with fewer. Vectorised: one sort by (card, time), then searchsorted.

    Raises ValueError for k < 1, columns of different lengths or too many cards over too long a time (as
    ``step_features``), IndexError for a row out of range.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    seconds = np.asarray(seconds, dtype=np.float64)
    if len(card_values) != len(seconds):
        raise ValueError("seconds and cards must have one value per transaction")
    history = EntityHistory(codes_of(card_values), seconds)
    n = len(seconds)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"rows must lie in [0, {n})")
    position = np.empty(n, dtype=np.int64)
    position[history.order] = np.arange(n)
    sorted_rows = position[rows]
    earlier = history.now[sorted_rows, None] + np.arange(1 - k, 0)  # the k - 1 positions before the first tie
    index = np.empty((len(rows), k), dtype=np.int64)
    index[:, :-1] = np.where(earlier >= history.start[sorted_rows, None],
                             history.order[np.maximum(earlier, 0)], PADDING)
    index[:, -1] = rows
    return index


def gather_sequences(steps, index):
    """(sequences float32 (m, k, d), mask bool (m, k)) of the ``steps`` rows named by ``index`` (from
    ``sequence_rows``): zeros and mask False at padded steps. Raises ValueError when ``steps`` is not 2-d."""
    steps = np.asarray(steps, dtype=np.float32)
    if steps.ndim != 2:
        raise ValueError(f"steps must be a 2-d array, got shape {steps.shape}")
    mask = index != PADDING
    sequences = steps[np.where(mask, index, 0)]
    sequences[~mask] = 0.0
    return sequences, mask


def card_sequences(seconds, card_values, steps, k=10, rows=None):
    """(sequences float32 (m, k, d), mask bool (m, k)) of ``rows`` (default: every transaction): each one's card's
    last k transactions up to and including it, in time order, the transaction itself last, left-padded.

    ``steps`` holds one row of step features per transaction (``step_features``). Raises ValueError for k < 1 or
    columns of different lengths, IndexError for a row out of range.
    """
    if len(steps) != len(seconds):
        raise ValueError("steps must have one row per transaction")
    return gather_sequences(steps, sequence_rows(seconds, card_values, k, rows))
