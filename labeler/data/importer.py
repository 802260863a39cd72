"""Import transactions from CSV, CSV.gz or Parquet into the label store.

The file is streamed in chunks and validated as it goes; the whole import is one database transaction,
so any error leaves the store exactly as it was. A label column becomes ground truth, kept apart from the
items. Re-importing rows whose ids already exist adds nothing; new ids are appended.
"""
import gzip
import json
import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from peewee import PostgresqlDatabase, fn

from labeler.store.db import Dataset, GroundTruth, Item, database

DEFAULT_CHUNK_ROWS = 50_000
BINARY_TRUTH = {"0": "genuine", "1": "fraud"}
INSERT_BATCH = 5_000
PG_ROWS_PER_STATEMENT = 1_000


class ImportFailed(ValueError):
    """The file cannot be imported; the message is one line naming the file, line and column."""


@dataclass
class ImportResult:
    dataset: Dataset
    created: bool
    rows_read: int
    rows_added: int
    rows_skipped: int


class _CountingReader:
    """A binary file wrapper that remembers how many bytes were read, for the progress bar."""

    def __init__(self, raw):
        self.raw = raw
        self.position = 0

    def read(self, size=-1):
        data = self.raw.read(size)
        self.position += len(data)
        return data

    def readable(self):
        return True

    def close(self):
        self.raw.close()


def _chunks(path, chunk_rows, string_columns, progress):
    """Yield DataFrames of the file, ``string_columns`` read as text. Raises ImportFailed for unreadable files."""
    name = os.path.basename(path)
    size = os.path.getsize(path)
    if size == 0:
        raise ImportFailed(f"{name}: the file is empty")
    if path.endswith(".parquet") or path.endswith(".pq"):
        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:
            raise ImportFailed(f"{name}: not a readable Parquet file ({error})") from None
        total, done = parquet.metadata.num_rows, 0
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            for column in string_columns:
                if column in frame:
                    frame[column] = frame[column].astype("string").astype(object).where(frame[column].notna(), None)
            done += len(frame)
            yield frame
            progress(done, total)
        return
    raw = open(path, "rb")
    counter = _CountingReader(raw)
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    stream = gzip.GzipFile(fileobj=counter) if gzipped else counter
    try:
        reader = pd.read_csv(
            stream,
            chunksize=chunk_rows,
            dtype={column: str for column in string_columns},
            keep_default_na=False,
            na_values=[""],
            low_memory=False,
        )
        for frame in reader:
            yield frame
            progress(counter.position, size)
    except pd.errors.EmptyDataError:
        raise ImportFailed(f"{name}: the file is empty") from None
    except pd.errors.ParserError as error:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if match:
            expected, line, saw = match.groups()
            raise ImportFailed(f"{name}: line {line} has {saw} fields, expected {expected}") from None
        raise ImportFailed(f"{name}: cannot parse the file ({str(error).strip()})") from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ImportFailed(f"{name}: cannot read the file ({error})") from None
    finally:
        raw.close()


def _header_line(row_index):
    """The 1-based file line of data row ``row_index`` (0-based), the header being line 1."""
    return row_index + 2


def _feature_matrix(frame, feature_columns, name, first_row):
    """The chunk's features as float32. Raises ImportFailed on a non-numeric, missing or infinite value."""
    for column in feature_columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            numeric = pd.to_numeric(values, errors="coerce")
            bad = numeric.isna() & values.notna()
            if bad.any():
                position = int(np.argmax(bad.to_numpy()))
                raise ImportFailed(
                    f"{name}: line {_header_line(first_row + position)}, column {column!r}: "
                    f"{values.iloc[position]!r} is not a number"
                )
            frame[column] = numeric
    matrix = frame[feature_columns].to_numpy(dtype=np.float64)
    finite = np.isfinite(matrix)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        value = matrix[row, col]
        what = "is missing" if np.isnan(value) else f"is {value} (infinite)"
        raise ImportFailed(f"{name}: line {_header_line(first_row + int(row))}, column {feature_columns[col]!r}: value {what}")
    with np.errstate(over="ignore"):
        as32 = matrix.astype(np.float32)
    if not np.isfinite(as32).all():
        row, col = np.argwhere(~np.isfinite(as32))[0]
        raise ImportFailed(
            f"{name}: line {_header_line(first_row + int(row))}, column {feature_columns[col]!r}: "
            f"{matrix[row, col]} is too large for a 32-bit float"
        )
    return as32


def _infer_schema(frame, name, label_column, id_column, exclude):
    """(display columns, text columns, feature columns) of a new dataset from its first chunk.

    Raises ImportFailed.
    """
    header = list(frame.columns)
    for role, column in (("label", label_column), ("id", id_column)):
        if column is not None and column not in header:
            raise ImportFailed(f"{name}: no {role} column {column!r} (columns: {', '.join(map(str, header))})")
    for column in exclude:
        if column not in header:
            raise ImportFailed(f"{name}: cannot exclude {column!r}: no such column")
    if len(set(header)) != len(header):
        duplicated = sorted({c for c in header if header.count(c) > 1})
        raise ImportFailed(f"{name}: duplicate column names: {', '.join(duplicated)}")
    columns = [c for c in header if c not in (label_column, id_column)]
    numeric = []
    for column in columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.is_numeric_dtype(values):
            numeric.append(column)
            continue
        present = values.dropna()
        parsed = pd.to_numeric(present, errors="coerce").notna()
        if len(present) and parsed.mean() >= 0.5 and (column not in exclude or parsed.all()):
            numeric.append(column)  # mostly numbers: the stray values are errors, reported with their line
    features = [c for c in numeric if c not in exclude]
    if not features:
        raise ImportFailed(f"{name}: no numeric feature columns found")
    return columns, [c for c in columns if c not in numeric], features


def _display_rows(frame, columns, text_columns, name, first_row):
    """(float64 blobs of the numeric display columns, JSON of the text columns or None) per row.

    Raises ImportFailed when a numeric display column holds text.
    """
    numeric = [c for c in columns if c not in text_columns]
    for column in numeric:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            parsed = pd.to_numeric(values, errors="coerce")
            bad = (parsed.isna() & values.notna()).to_numpy()
            if bad.any():
                position = int(np.argmax(bad))
                raise ImportFailed(
                    f"{name}: line {_header_line(first_row + position)}, column {column!r}: "
                    f"{values.iloc[position]!r} is not a number"
                )
            frame[column] = parsed
    matrix = frame[numeric].to_numpy(dtype=np.float64)
    blobs = [row.tobytes() for row in matrix]
    if not text_columns:
        return blobs, [None] * len(blobs)
    block = frame[text_columns].astype(object)
    block = block.where(block.notna(), None)
    dumps = json.dumps
    return blobs, [dumps([None if v is None else str(v) for v in row]) for row in block.itertuples(index=False, name=None)]


def _truth_values(frame, label_column):
    """The label column's values as stripped text, None where empty; None without a label column."""
    if label_column is None:
        return None
    values = frame[label_column]
    return [None if v is None or v != v else str(v).strip() or None for v in values]


def _check_truth(values, allowed, name, first_row, label_column):
    for position, value in enumerate(values):
        if value is not None and value not in allowed:
            raise ImportFailed(
                f"{name}: line {_header_line(first_row + position)}, column {label_column!r}: "
                f"label {value!r} is not in the dataset's label set ({', '.join(sorted(allowed))})"
            )


def _is_postgres():
    return isinstance(database.obj, PostgresqlDatabase)


def _bulk_insert(model, fields, rows):
    """Insert ``rows`` (tuples in ``fields`` order) through the driver's cursor, skipping peewee's per-row work.

    SQLite: executemany, a loop in C. PostgreSQL drivers send executemany row by row, so there each statement
    carries PG_ROWS_PER_STATEMENT rows in one multi-row VALUES.
    """
    table = model._meta.table_name
    columns = ", ".join(f'"{field}"' for field in fields)
    row_placeholders = "(" + ", ".join([database.param] * len(fields)) + ")"
    cursor = database.cursor()
    if _is_postgres():
        for start in range(0, len(rows), PG_ROWS_PER_STATEMENT):
            batch = rows[start:start + PG_ROWS_PER_STATEMENT]
            cursor.execute(f'INSERT INTO "{table}" ({columns}) VALUES {", ".join([row_placeholders] * len(batch))}',
                           [value for row in batch for value in row])
        return
    for start in range(0, len(rows), INSERT_BATCH):
        cursor.executemany(f'INSERT INTO "{table}" ({columns}) VALUES {row_placeholders}',
                           rows[start:start + INSERT_BATCH])


def _insert_ground_truth(dataset, truths):
    """GroundTruth rows for ``truths``, (row number, stored value) pairs of ``dataset``'s items."""
    param = database.param
    truth_table, item_table = GroundTruth._meta.table_name, Item._meta.table_name
    cursor = database.cursor()
    if _is_postgres():
        for start in range(0, len(truths), PG_ROWS_PER_STATEMENT):
            batch = truths[start:start + PG_ROWS_PER_STATEMENT]
            values = ", ".join([f"({param}, {param})"] * len(batch))
            cursor.execute(
                f'INSERT INTO "{truth_table}" ("item_id", "value") SELECT i."id", t.value FROM "{item_table}" i '
                f'JOIN (VALUES {values}) AS t (row_number, value) ON i."row_number" = t.row_number '
                f'WHERE i."dataset_id" = {param}',
                [value for pair in batch for value in pair] + [dataset.id],
            )
        return
    cursor.executemany(
        f'INSERT INTO "{truth_table}" ("item_id", "value") SELECT "id", {param} FROM "{item_table}" '
        f'WHERE "dataset_id" = {param} AND "row_number" = {param}',
        [(value, dataset.id, row) for row, value in truths],
    )


def import_file(path, dataset_name, label_column=None, id_column=None, exclude=(), labels=None,
                chunk_rows=DEFAULT_CHUNK_ROWS, progress=None):
    """Import ``path`` into the dataset ``dataset_name``, creating it on first import.

    ``labels`` names the label set of a new dataset (default: genuine/fraud, or the label column's values).
    ``progress(done, total)`` is called after each chunk. Returns an ImportResult.
    Raises ImportFailed with one line naming file, line and column; the store is then unchanged.
    """
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise ImportFailed(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImportFailed(f"{path}: is a directory, not a file")
    exclude = list(exclude or ())
    progress = progress or (lambda done, total: None)
    existing = Dataset.get_or_none(Dataset.name == dataset_name)
    if existing is not None:
        if id_column is not None and id_column != existing.id_column:
            raise ImportFailed(
                f"{name}: dataset {dataset_name!r} uses id column {existing.id_column!r}, not {id_column!r}"
            )
        id_column = existing.id_column
        label_column = label_column or existing.label_column
    string_columns = [c for c in (id_column, label_column) if c]

    with database.atomic():
        dataset, created = existing, existing is None
        known_ids = set()
        next_row = 0
        if existing is not None:
            known_ids = {row[0] for row in Item.select(Item.external_id).where(Item.dataset == existing).tuples()}
            last_row = Item.select(fn.MAX(Item.row_number)).where(Item.dataset == existing).scalar()
            next_row = 0 if last_row is None else last_row + 1
        seen = set()
        truth_seen = set()
        pending_truth = []
        rows_read = rows_added = 0
        for frame in _chunks(path, chunk_rows, string_columns, progress):
            if frame.empty:
                continue  # a header-only CSV still yields one empty chunk
            first_row = rows_read
            if dataset is None:
                columns, text_columns, features = _infer_schema(frame, name, label_column, id_column, exclude)
                dataset = Dataset.create(
                    name=dataset_name, columns=columns, text_columns=text_columns, feature_columns=features,
                    labels=list(labels) if labels else [], id_column=id_column, label_column=label_column,
                    settings={},
                )
            else:
                missing = [c for c in dataset.columns + string_columns if c not in frame.columns]
                if missing:
                    raise ImportFailed(f"{name}: missing column(s) {', '.join(map(repr, missing))} of dataset {dataset_name!r}")
            matrix = _feature_matrix(frame, dataset.feature_columns, name, first_row)
            if id_column:
                ids = frame[id_column].tolist()
                for position, value in enumerate(ids):
                    if value is None or value != value or str(value).strip() == "":
                        raise ImportFailed(f"{name}: line {_header_line(first_row + position)}, column {id_column!r}: id is missing")
                ids = [str(v).strip() for v in ids]
            else:
                ids = [str(first_row + i) for i in range(len(frame))]
            truth = _truth_values(frame, label_column)
            numbers, texts = _display_rows(frame, dataset.columns, dataset.text_columns, name, first_row)
            new_rows = []
            new_truth = []
            for position, external_id in enumerate(ids):
                if external_id in seen:
                    raise ImportFailed(
                        f"{name}: line {_header_line(first_row + position)}, column {id_column!r}: "
                        f"duplicate id {external_id!r} in the file"
                    )
                seen.add(external_id)
                if external_id in known_ids:
                    continue
                new_rows.append((dataset.id, external_id, next_row, numbers[position], texts[position],
                                 matrix[position].tobytes()))
                if truth is not None and truth[position] is not None:
                    new_truth.append((next_row, truth[position]))
                next_row += 1
            if truth is not None:
                truth_seen.update(v for v in truth if v is not None)
                if not created:
                    allowed = set(dataset.settings.get("truth_map", {}))
                    _check_truth(truth, allowed, name, first_row, label_column)
            if new_rows:
                _bulk_insert(Item, ["dataset_id", "external_id", "row_number", "numbers", "texts", "features"], new_rows)
                pending_truth.extend(new_truth)
            rows_read += len(frame)
            rows_added += len(new_rows)

        if dataset is None:
            raise ImportFailed(f"{name}: the file has a header but no data rows")
        if created:
            _settle_label_set(dataset, truth_seen, labels, f"{name}: column {label_column!r}")
        if pending_truth:
            truth_map = dataset.settings.get("truth_map", {})
            _insert_ground_truth(dataset, [(row, truth_map[value]) for row, value in pending_truth])
    return ImportResult(dataset, created, rows_read, rows_added, rows_read - rows_added)


def _settle_label_set(dataset, truth_values, labels, where):
    """Fix a new dataset's label set, positive label and the ground-truth mapping.

    Raises ImportFailed, its message starting with ``where`` (file and label column).
    """
    if truth_values and truth_values <= set(BINARY_TRUTH):
        truth_map = {value: BINARY_TRUTH[value] for value in BINARY_TRUTH}
        names = list(labels) if labels else ["genuine", "fraud"]
        if labels:
            if len(labels) != 2:
                raise ImportFailed(f"{where}: holds 0/1 but {len(labels)} label names were given")
            truth_map = {"0": labels[0], "1": labels[1]}
    elif truth_values:
        truth_map = {value: value for value in truth_values}
        names = list(labels) if labels else sorted(truth_values)
        unknown = set(truth_map.values()) - set(names)
        if unknown:
            raise ImportFailed(
                f"{where}: values {', '.join(sorted(unknown))} are not in the label set {', '.join(names)}")
    else:
        truth_map = {}
        names = list(labels) if labels else ["genuine", "fraud"]
    dataset.labels = names
    dataset.positive_label = "fraud" if "fraud" in names else names[-1]
    dataset.settings = {**(dataset.settings or {}), "truth_map": truth_map}
    dataset.save()
