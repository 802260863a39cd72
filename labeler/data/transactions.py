"""Column roles of raw transactions at import: a time column, entity columns (card, merchant), categorical
columns, an amount column and id-like columns, and the features they give (models/features.py): time of day,
categories one-hot, and each card's and merchant's history with no look-ahead.

The roles are chosen at a dataset's first import (options, else detection) and kept in ``Dataset.roles``;
appends reuse them. Every function raises ImportFailed (one line naming file, line and column) on bad values.
"""
import re

import numpy as np
import pandas as pd

from labeler.data.errors import ImportFailed, file_line
from models import features as transaction_features

CATEGORY_DETECT_LIMIT = 50  # a text column with 2 to this many distinct values in the first chunk, each seen twice
# on average, is categorical
CATEGORY_LIMIT = 1_000  # a column named categorical with more distinct values in the first chunk is refused
VOCABULARY_LIMIT = 50  # categories one-hot encoded (the most frequent); the rest share an "(other)" column
# names of id columns: card_id, "account number", merchant.no, CardId, accountNumber (not paid, valid, casino)
ID_LIKE_NAME = re.compile(r"(?i:(^|[\s_.-])(id|number|no|nr)$)|[a-z](Id|ID|Number|No|Nr)$")
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
EPOCH_SECONDS = r"[+-]?\d+(\.\d*)?"  # epoch seconds in a text column; anything else must be ISO 8601
AMOUNT_NAMES = ("amount", "amt", "transaction_amount", "tx_amount", "value")


def detect_roles(frame, name, numeric, text, time_column, entity_columns, categorical, amount_column):
    """The roles of a new dataset from its first chunk: a dict with "time", "entities", "amount",
    "categorical" ({column: vocabulary}), "id_like" (numeric columns kept for display only) and "numeric" (the
    numeric columns that stay features). ``numeric`` and ``text`` are the chunk's numeric and text columns."""
    header = list(frame.columns)
    for role, columns in (("time", [time_column] if time_column else []), ("entity", entity_columns),
                          ("categorical", categorical), ("amount", [amount_column] if amount_column else [])):
        for column in columns:
            if column not in header:
                raise ImportFailed(f"{name}: no {role} column {column!r} (columns: {', '.join(map(str, header))})")
    roles_taken = {time_column, *entity_columns}
    if amount_column is None:
        amount_column = next((c for c in numeric if str(c).lower() in AMOUNT_NAMES and c not in roles_taken), None)
    id_like = [c for c in numeric if c not in roles_taken and c not in categorical and _id_like(frame[c], c)]
    vocabularies = {}
    for column in text + [c for c in categorical if c not in text]:
        if column in roles_taken:
            continue
        present = frame[column].dropna().astype(str)
        distinct = present.nunique()
        if column in categorical:
            if distinct > CATEGORY_LIMIT:
                raise ImportFailed(
                    f"{name}: column {column!r}: {distinct:,} distinct values in the first {len(frame):,} rows, too "
                    f"many for a categorical feature (at most {CATEGORY_LIMIT:,}); import without --categorical "
                    f"{column} to keep it for display only")
        elif distinct > CATEGORY_DETECT_LIMIT or distinct < 2 or 2 * distinct > len(present):
            continue  # detected only when few values repeat: free text (names, notes) stays for display
        vocabularies[column] = transaction_features.category_vocabulary(present.tolist(), VOCABULARY_LIMIT)
    kept = [c for c in numeric if c not in roles_taken and c not in id_like and c not in vocabularies]
    return {"time": time_column, "entities": list(entity_columns), "amount": amount_column,
            "categorical": vocabularies, "id_like": id_like, "numeric": kept}


def _id_like(values, column):
    """A numeric column of whole numbers that names an id (card_id, account number) or differs on nearly every
    row: a model would learn the ids."""
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    numbers = numbers[np.isfinite(numbers)]
    if not len(numbers) or not np.all(np.mod(numbers, 1) == 0):
        return False
    numbers = pd.Series(numbers)
    return bool(ID_LIKE_NAME.search(str(column))) or (len(numbers) >= 1_000 and numbers.nunique() >= 0.99 * len(numbers))


def event_times(frame, column, name, first_row):
    """Epoch seconds (float64) of the time column: ISO 8601 text or epoch seconds. Raises ImportFailed naming
    the first value that is neither."""
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        seconds = values.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(seconds)
    else:
        text = values.astype("string").str.strip()
        epoch = text.str.fullmatch(EPOCH_SECONDS).fillna(False).to_numpy(dtype=bool)  # ISO first: the usual case
        parsed = pd.to_datetime(text.where(~epoch), utc=True, format="ISO8601", errors="coerce")
        seconds = ((parsed - EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan).copy()
        if epoch.any():
            seconds[epoch] = pd.to_numeric(text[epoch]).to_numpy(dtype=np.float64)
        bad = np.isnan(seconds)
    if bad.any():
        position = int(np.argmax(bad))
        value = values.iloc[position]
        what = "is missing" if value is None or value != value or str(value).strip() == "" else \
            f"{value!r} is not a time (ISO 8601, e.g. 2024-05-01T13:45:00Z, or epoch seconds)"
        raise ImportFailed(f"{name}: line {file_line(first_row + position)}, column {column!r}: {what}")
    return seconds


def entity_values(frame, column, name, first_row):
    """The entity column as text (ids are compared as text), refusing an empty id."""
    values = frame[column]
    text = values.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy()
    if missing.any():
        position = int(np.argmax(missing))
        raise ImportFailed(f"{name}: line {file_line(first_row + position)}, column {column!r}: the id is missing")
    text = text.str.replace(r"^(\d+)\.0*$", r"\1", regex=True)  # 4000123.0 and 4000123 are one card
    return text.to_numpy(dtype=object)


def row_features(frame, roles):
    """(matrix, names) of the features that need only the row itself: categories one-hot, then time of day."""
    blocks, names = [], []
    for column, vocabulary in roles.get("categorical", {}).items():
        matrix, block_names = transaction_features.one_hot(frame[column], vocabulary, column)
        blocks.append(matrix)
        names += block_names
    if roles.get("time"):
        matrix, block_names = transaction_features.time_features(frame["__seconds__"].to_numpy())
        blocks.append(matrix)
        names += block_names
    if not blocks:
        return np.zeros((len(frame), 0), dtype=np.float32), []
    return np.hstack(blocks).astype(np.float32), names


def row_feature_names(roles):
    """The names of row_features' columns, from the roles alone."""
    names = []
    for column, vocabulary in roles.get("categorical", {}).items():
        names += [f"{column} = {category}" for category in vocabulary] + [f"{column} = {transaction_features.OTHER}"]
    if roles.get("time"):
        names += transaction_features.time_features([0.0])[1]
    return names


def has_history(roles):
    """True when the dataset's rows get history features (a time column and at least one entity)."""
    return bool(roles.get("time") and roles.get("entities"))


def history_features(seconds, entities, amounts):
    """(matrix, names) of the history features; ``entities`` is [(column, values)]."""
    return transaction_features.entity_features(seconds, entities, amounts)


def history_sources(names, columns):
    """The entity column (of ``columns``) each history feature of ``names`` is computed from."""
    return transaction_features.history_sources(names, columns)


def describe(roles):
    """One line naming the roles, for the import summary and ``stats``; None when every feature is a numeric
    column of the file."""
    if not any(roles.get(role) for role in ("time", "entities", "categorical", "id_like")):
        return None
    parts = []
    if roles.get("time"):
        parts.append(f"time {roles['time']!r}")
    if roles.get("entities"):
        parts.append("entities " + ", ".join(map(repr, roles["entities"])))
    if roles.get("amount") and roles.get("entities"):
        parts.append(f"amount {roles['amount']!r}")
    if roles.get("categorical"):
        parts.append("categorical " + ", ".join(f"{column!r} ({len(vocabulary)})"
                                                for column, vocabulary in roles["categorical"].items()))
    if roles.get("id_like"):
        parts.append("id-like, display only " + ", ".join(map(repr, roles["id_like"])))
    return "Roles: " + "; ".join(parts) + "."
