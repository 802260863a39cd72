"""Features of raw transactions, numpy in and numpy out: the time of day, categories one-hot, and each entity's
(card's, merchant's) recent history in time order with no look-ahead: a transaction sees only the transactions
of its entity strictly before it in time, never one at the same second or later.

Every function takes whole columns (one value per transaction, in any order) and returns one row per
transaction in that same order, float32 and finite.
"""
import numpy as np
import pandas as pd

from models.names import AGAINST_USUAL, FIRST_AT, MEAN_AMOUNT_IN, SINCE_PREVIOUS, TRANSACTIONS_IN

DAY = 86_400
WINDOWS = (("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY))
NIGHT = (22, 6)  # hours [22, 24) and [0, 6)
NO_HISTORY_SECONDS = 30 * DAY  # "seconds since the previous one" of an entity's first transaction
OTHER = "(other)"


def time_features(seconds):
    """(matrix, names) of hour of day (0-24, fractional), day of week (0 Monday) and night (0/1) of epoch
    ``seconds`` (UTC)."""
    seconds = np.asarray(seconds, dtype=np.float64)
    hour = (seconds % DAY) / 3600.0
    day_of_week = ((seconds // DAY) + 3) % 7  # 1970-01-01 was a Thursday
    night = (hour >= NIGHT[0]) | (hour < NIGHT[1])
    return (np.column_stack([hour, day_of_week, night]).astype(np.float32),
            ["hour of day", "day of week", "night (22-6 h)"])


def category_vocabulary(values, limit):
    """The categories to one-hot, most frequent first (ties by name), at most ``limit`` of them."""
    present = np.asarray([value for value in values if value is not None], dtype=object).astype(str)
    names, counts = np.unique(present, return_counts=True)
    order = np.lexsort((names, -counts))
    return names[order][:limit].tolist()


def category_codes(values, vocabulary):
    """Each value's position in ``vocabulary`` (compared as text), ``len(vocabulary)`` for any other value (an
    unseen category at scoring time, or a missing one)."""
    text = pd.Series(values).astype("string")
    codes = pd.Index(list(vocabulary), dtype="string").get_indexer(text).astype(np.int64)
    codes[codes < 0] = len(vocabulary)
    return codes


def one_hot(values, vocabulary, column):
    """(matrix, names): one 0/1 column per category of ``vocabulary`` and one for any other value (an unseen
    category at scoring time, or a missing one)."""
    codes = category_codes(values, vocabulary)
    matrix = np.zeros((len(codes), len(vocabulary) + 1), dtype=np.float32)
    matrix[np.arange(len(codes)), codes] = 1.0
    return matrix, [f"{column} = {category}" for category in vocabulary] + [f"{column} = {OTHER}"]


def one_hot_blocks(names, vocabularies):
    """[(start, stop)] ranges of the one-hot blocks that ``one_hot`` made for each {column: vocabulary} of
    ``vocabularies`` in the feature ``names``. Raises ValueError when a block is missing or split."""
    blocks = []
    for column, vocabulary in vocabularies.items():
        block = [f"{column} = {category}" for category in [*vocabulary, OTHER]]
        start = names.index(block[0]) if block[0] in names else -1
        if start < 0 or list(names[start:start + len(block)]) != block:
            raise ValueError(f"the one-hot columns of {column!r} are not one block of the features")
        blocks.append((start, start + len(block)))
    return blocks


def codes_of(values):
    """Integer codes of ``values``: equal values, equal codes (pandas' factorize, a hash table; missing values
    share one code)."""
    return pd.factorize(np.asarray(values), use_na_sentinel=False)[0].astype(np.int64)


class EntityHistory:
    """Transactions ordered by (entity, time). Positions are in that order: ``now[i]`` is where the transactions
    strictly before the i-th (in that order) end, ``start[i]`` where its entity's run starts. Queries run in
    sorted order (fast), and ``back`` returns a result to the callers' order."""

    def __init__(self, codes, seconds):
        seconds = np.asarray(seconds, dtype=np.float64)
        offset = seconds - (seconds.min() if len(seconds) else 0.0)
        stride = (float(offset.max()) if len(offset) else 0.0) + 60 * DAY
        keys = np.asarray(codes, dtype=np.float64) * stride + offset
        if len(keys) and keys.max() >= 2 ** 53:
            raise ValueError("too many entities over too long a time for exact keys")
        self.order = np.argsort(keys, kind="stable")
        self.ordered = keys[self.order]
        self.seconds = seconds[self.order]
        self.now = np.searchsorted(self.ordered, self.ordered, side="left")  # ties at one second are not seen
        self.start = np.searchsorted(self.ordered, self.ordered - offset[self.order], side="left")

    def since(self, width):
        """Where the window of ``width`` seconds before each transaction starts."""
        return np.searchsorted(self.ordered, self.ordered - width, side="left")

    def back(self, values):
        """``values`` (in sorted order) in the callers' order."""
        result = np.empty_like(values)
        result[self.order] = values
        return result


def window_stats(codes, seconds, amounts=None, history=None):
    """Per transaction and window of WINDOWS: how many transactions of the same entity came in the window
    before it, and their mean amount (0 without any). Returns (counts, means), each of shape (n, len(WINDOWS))."""
    history = history or EntityHistory(codes, seconds)
    n = len(history.ordered)
    counts, means = np.zeros((n, len(WINDOWS))), np.zeros((n, len(WINDOWS)))
    cumulative = None
    if amounts is not None:
        cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(amounts, dtype=np.float64)[history.order])])
    for column, (_, width) in enumerate(WINDOWS):
        start = history.since(width)
        count = (history.now - start).astype(np.float64)
        counts[:, column] = history.back(count)
        if cumulative is not None:
            total = cumulative[history.now] - cumulative[start]
            means[:, column] = history.back(np.divide(total, count, out=np.zeros(n), where=count > 0))
    return counts, means


def seconds_since_previous(codes, seconds, history=None):
    """Seconds since the same entity's previous transaction (strictly earlier); NO_HISTORY_SECONDS for its first,
    and capped there."""
    history = history or EntityHistory(codes, seconds)
    previous = history.now - 1
    has = previous >= history.start
    gap = np.full(len(history.ordered), float(NO_HISTORY_SECONDS))
    gap[has] = history.seconds[has] - history.seconds[previous[has]]
    return history.back(np.minimum(gap, NO_HISTORY_SECONDS))


def earlier_count(codes, seconds):
    """How many transactions of the same entity came strictly before each one, at any time."""
    history = EntityHistory(codes, seconds)
    return history.back(history.now - history.start)


def entity_features(seconds, entities, amounts=None):
    """(matrix, names) of the history features of transactions at epoch ``seconds``.

    ``entities`` is a list of (column name, values); the first is the one whose habits are measured (the card):
    its count and mean amount over each window, the amount against its usual amount (log of the ratio to its
    30-day mean, 0 without history) and the log seconds since its previous transaction. Every other entity (the
    merchant) gets its count over each window and whether this is the first transaction of the pair (first
    entity, this one): "a merchant new to this card". ``amounts`` may be None (no amount features).
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    columns, names = [], []
    (primary, primary_values), others = entities[0], entities[1:]
    primary_codes = codes_of(primary_values)
    history = EntityHistory(primary_codes, seconds)
    counts, means = window_stats(primary_codes, seconds, amounts, history)
    for position, (window, _) in enumerate(WINDOWS):
        columns.append(counts[:, position])
        names.append(TRANSACTIONS_IN.format(entity=primary, window=window))
    if amounts is not None:
        amounts = np.asarray(amounts, dtype=np.float64)
        for position, (window, _) in enumerate(WINDOWS):
            columns.append(means[:, position])
            names.append(MEAN_AMOUNT_IN.format(card=primary, window=window))
        usual = means[:, -1]
        ratio = np.where(counts[:, -1] > 0, np.log1p(np.abs(amounts)) - np.log1p(np.abs(usual)), 0.0)
        columns.append(ratio)
        names.append(AGAINST_USUAL.format(card=primary))
    columns.append(np.log1p(seconds_since_previous(primary_codes, seconds, history)))
    names.append(SINCE_PREVIOUS.format(card=primary))
    for other, values in others:
        codes = codes_of(values)
        other_counts, _ = window_stats(codes, seconds)
        for position, (window, _) in enumerate(WINDOWS):
            columns.append(other_counts[:, position])
            names.append(TRANSACTIONS_IN.format(entity=other, window=window))
        pairs = primary_codes * (int(codes.max()) + 1 if len(codes) else 1) + codes
        columns.append((earlier_count(codes_of(pairs), seconds) == 0).astype(np.float64))
        names.append(FIRST_AT.format(other=other, card=primary))
    return np.column_stack(columns).astype(np.float32), names


def history_sources(names, columns):
    """The entity column each of entity_features' ``names`` (for entity ``columns``, the card first) is computed
    from: another entity's counts from that entity's transactions; the card's habits and "first at this
    merchant" (a pair of the card's) from the card's."""
    own = {TRANSACTIONS_IN.format(entity=other, window=window): other for other in columns[1:] for window, _ in WINDOWS}
    return [own.get(name, columns[0]) for name in names]


LABEL_SMOOTHING = 5.0  # pseudo-counts at the labels' positive rate: a group seen once says little
LABEL_WINDOW = 28 * DAY  # with times, only the labels of the group's last four weeks before the row count


def label_rates(groups, labeled, y, rows=None, rows_labels=None, seconds=None, rows_seconds=None):
    """Features taken from labels (at retrain time, from human labels only): per row, its group's (a merchant's)
    smoothed share of positives among the labeled rows, and the log of how many labeled rows that is.

    ``groups`` are integer codes of the labeled pool (``labeled`` indexes into them, ``y`` their 0/1 labels).
    Returns float32 (n, 2) for ``rows`` (codes; default: every row of ``groups``). A row never sees its own
    label. With ``seconds`` (the pool's times; ``rows_seconds`` those of ``rows``) only the labeled rows of the
    group strictly before the row and within LABEL_WINDOW count: a merchant compromised last week is known by
    last week's frauds, not by its genuine years before. Without, every labeled row of the group counts but the
    row itself (``rows_labels`` gives each row's own label or -1; by default the pool's own labels when
    ``rows`` is None, none otherwise).
    """
    groups = np.asarray(groups, dtype=np.int64)
    labeled = np.asarray(labeled, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    own_rows = rows is None
    rows = groups if own_rows else np.asarray(rows, dtype=np.int64)
    if seconds is not None:
        seconds = np.asarray(seconds, dtype=np.float64)
        rows_seconds = seconds if own_rows else np.asarray(rows_seconds, dtype=np.float64)
        counts, positives = _windowed_label_counts(groups[labeled], seconds[labeled], y, rows, rows_seconds)
    else:
        if own_rows:
            rows_labels = np.full(len(groups), -1.0)
            rows_labels[labeled] = y
        size = int(max(groups.max(initial=0), rows.max(initial=0))) + 1
        counts = np.bincount(groups[labeled], minlength=size).astype(np.float64)[rows]
        positives = np.bincount(groups[labeled], weights=y, minlength=size)[rows]
        if rows_labels is not None:
            own = np.asarray(rows_labels, dtype=np.float64) >= 0
            counts[own] -= 1
            positives[own] -= np.asarray(rows_labels, dtype=np.float64)[own]
    prior = float(y.mean()) if len(y) else 0.0
    share = (positives + LABEL_SMOOTHING * prior) / (counts + LABEL_SMOOTHING)
    return np.column_stack([share, np.log1p(counts)]).astype(np.float32)


def _windowed_label_counts(groups, seconds, y, rows, rows_seconds):
    """(labeled rows, positives among them) of each row's group in [its time - LABEL_WINDOW, its time)."""
    start = min(seconds.min(initial=np.inf), rows_seconds.min(initial=np.inf))
    start = 0.0 if not np.isfinite(start) else start
    stride = max(seconds.max(initial=start), rows_seconds.max(initial=start)) - start + 2 * LABEL_WINDOW
    keys = groups.astype(np.float64) * stride + (seconds - start)
    if len(keys) and keys.max() >= 2 ** 53:
        raise ValueError("too many groups over too long a time for exact keys")
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    cumulative = np.concatenate([[0.0], np.cumsum(y[order])])
    queries = rows.astype(np.float64) * stride + (rows_seconds - start)
    query_order = np.argsort(queries, kind="stable")  # sorted queries search fast
    sorted_queries = queries[query_order]
    now = np.searchsorted(ordered, sorted_queries, side="left")
    since = np.searchsorted(ordered, sorted_queries - LABEL_WINDOW, side="left")
    counts, positives = np.empty(len(rows)), np.empty(len(rows))
    counts[query_order] = now - since
    positives[query_order] = cumulative[now] - cumulative[since]
    return counts, positives
