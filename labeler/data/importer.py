"""Import transactions from CSV, CSV.gz or Parquet into the label store.

The file is streamed in chunks and validated as it goes; the whole import is one database transaction,
so any error leaves the store exactly as it was. A label column becomes ground truth, kept apart from the
items. Re-importing rows whose ids already exist adds nothing; new ids are appended. Where the ids are row
numbers, a re-imported row must be the very row stored under its number (see import_file). A thread reads the
next chunk while one is stored, and memory stays bounded by the chunk size: ids are checked against the store's
index, not held in a set. A small append (the API's pushes) can be prepared with no lock held and then only
inserted (prepare_append, write_append).
"""
import codecs
import csv
import gc
import gzip
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from peewee import IntegrityError, PostgresqlDatabase
from peewee import __exception_wrapper__ as peewee_errors  # the drivers' errors raised as peewee's

from labeler.data import transactions
from labeler.data.errors import ImportFailed, file_line
from labeler.store.db import Dataset, GroundTruth, Item, advisory_lock, database, refresh_statistics
from labeler.store.pool import invalidate_pool_copy, pool_size

DEFAULT_CHUNK_ROWS = 50_000
BINARY_TRUTH = {"0": "genuine", "1": "fraud"}
INSERT_BATCH = 5_000
PG_ROWS_PER_COPY = 10_000  # rows of one COPY on PostgreSQL: the CSV text of 10,000 items is a few MB
TRUTH_RUN_ROWS = 16  # ground truth is written by runs of equal labels where they average this many rows or more
HEADER_LIMIT = 1 << 20  # bytes: a CSV header line longer than this is refused (a binary file, not a table)
LINE_LIMIT = 16 << 20  # bytes: a longer CSV line is refused, so memory stays bounded on any input
COMPARE_BATCH = 500  # stored rows fetched per query when a re-import is checked against them
# a dataset name becomes a path segment of the web's URLs (/datasets/<name>): no '/', '\\' or control characters
NAME_LIMIT = 120
PLAIN_JSON_TEXT = r"^[ !#-\[\]-~]*$"  # printable ASCII with no quote or backslash: json.dumps only quotes it


@dataclass
class ImportResult:
    dataset: Dataset
    created: bool
    rows_read: int
    rows_added: int
    rows_skipped: int
    notes: list = field(default_factory=list)  # one line each, for the import summary (e.g. boolean columns)


def check_dataset_name(name):
    """Raise ImportFailed unless ``name`` can name a dataset: 1 to NAME_LIMIT printable characters, no '/' or
    '\\', not starting with '.' nor with or ending in a space (it is a path segment of the web's URLs)."""
    if not isinstance(name, str) or not name:
        raise ImportFailed("the dataset name is empty")
    problem = None
    if len(name) > NAME_LIMIT:
        problem = f"is longer than {NAME_LIMIT} characters"
    elif "/" in name or "\\" in name:
        problem = "contains '/' or '\\'"
    elif not name.isprintable():
        problem = "contains a control character"
    elif name.startswith("."):
        problem = "starts with '.'"
    elif name != name.strip():
        problem = "starts or ends with a space"
    if problem:
        raise ImportFailed(f"dataset name {name!r} {problem}")


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


class _LineGuard:
    """Wraps the (decompressed) CSV bytes on their way to pandas, which would buffer a whole line however long:
    refuses NUL bytes, and a line still unfinished after LINE_LIMIT bytes of it (a line within one read costs
    no more than the read), naming the line. Raises ImportFailed from read()."""

    def __init__(self, stream, name):
        self.stream, self.name = stream, name
        self.line = 1  # file line of the next byte
        self.run = 0  # bytes since the last newline

    def read(self, size=-1):
        data = self.stream.read(size)
        nul = data.find(b"\x00")
        if nul >= 0:
            line = self.line + data.count(b"\n", 0, nul)
            raise ImportFailed(f"{self.name}: line {line} holds NUL bytes: not a CSV text file")
        last = data.rfind(b"\n")
        if last < 0:
            self.run += len(data)
        else:
            self.line += data.count(b"\n")
            self.run = len(data) - last - 1
        if self.run > LINE_LIMIT:
            raise ImportFailed(f"{self.name}: line {self.line} is longer than {LINE_LIMIT:,} bytes")
        return data

    def readable(self):
        return True

    def close(self):
        self.stream.close()


def _open_text_source(path, gzipped):
    """The file's (decompressed) bytes as a binary stream."""
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _undecodable_line(path, gzipped):
    """(file line, byte) of the first byte that is not UTF-8, or None; reads in blocks, memory stays bounded."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    with _open_text_source(path, gzipped) as stream:
        while True:
            block = stream.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                # error.object is the decoder's pending bytes (never a newline) followed by this block
                return lines + error.object[:error.start].count(b"\n"), error.object[error.start]
            if not block:
                return None
            lines += block.count(b"\n")


def _check_csv_header(path, gzipped, name):
    """Refuse a CSV whose header line is not text or names a column twice (pandas would rename the second
    'V1' to 'V1.1'). Reads at most HEADER_LIMIT bytes. Raises ImportFailed."""
    with _open_text_source(path, gzipped) as stream:
        head = b""
        while b"\n" not in head and len(head) <= HEADER_LIMIT:
            block = stream.read(64 * 1024)
            if not block:
                break
            head += block
    line = head.split(b"\n", 1)[0]
    if b"\x00" in line:
        raise ImportFailed(f"{name}: line 1 holds NUL bytes: not a CSV text file")
    if len(line) > HEADER_LIMIT:
        raise ImportFailed(f"{name}: line 1 (the header) is longer than {HEADER_LIMIT:,} bytes: not a CSV table")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{name}: line 1: byte 0x{line[error.start]:02x} is not UTF-8") from None
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff").rstrip("\r"))), [])
    seen = set()
    for column in header:
        if column in seen:
            raise ImportFailed(f"{name}: line 1: column {column!r} appears more than once in the header")
        seen.add(column)


class _FieldCounter:
    """Field counts of the CSV's data rows, read with the csv module on demand, in one forward pass at most.

    pandas fills a short row's missing fields with empty values; this tells a short row from empty cells.
    """

    def __init__(self, path, gzipped):
        self.path, self.gzipped = path, gzipped
        self.reader = None
        self.row = -1  # data row index of the last row read; the header is row -1

    def fields(self, row_index):
        """(file line, number of fields) of data row ``row_index`` (0-based, blank lines skipped as pandas does)."""
        if self.reader is None:
            self.stream = io.TextIOWrapper(_open_text_source(self.path, self.gzipped), encoding="utf-8",
                                           newline="")
            self.reader = csv.reader(self.stream)
            next(self.reader, None)
        record = None
        while self.row < row_index:
            record = next(self.reader)
            if record:
                self.row += 1
        return self.reader.line_num, len(record)

    def close(self):
        if self.reader is not None:
            self.stream.close()


def _check_short_rows(frame, counter, first_row, name):
    """Raise ImportFailed on a row with fewer fields than the header: it has an empty last column, so only
    those rows are counted."""
    candidates = np.flatnonzero(frame.iloc[:, -1].isna().to_numpy())
    for position in candidates:
        try:
            line, count = counter.fields(first_row + int(position))
        except (csv.Error, StopIteration, UnicodeDecodeError):
            return  # the csv module disagrees with pandas: leave the row to the value checks
        if count < len(frame.columns):
            raise ImportFailed(f"{name}: line {line}: {count} field{'s' if count != 1 else ''}, "
                               f"expected {len(frame.columns)}")


def _chunks(path, chunk_rows, string_columns, progress, notes=None, ahead=False):
    """Yield DataFrames of the file, ``string_columns`` read as text; ``progress(done, total)`` is called after
    each. With ``ahead`` a thread reads and parses the next chunk while the caller works on this one (the parser
    and the decompressor release the GIL; at most two chunks wait, so memory stays bounded by the chunk size).
    Raises ImportFailed for unreadable files.

    ``notes`` (a dict), when given, gets "booleans": the Parquet file's boolean columns.
    """
    frames = _frames(path, chunk_rows, string_columns, {} if notes is None else notes)
    for frame, done, total in (_read_ahead(frames) if ahead else frames):
        yield frame
        progress(done, total)


def _read_ahead(iterator):
    """Yield ``iterator``'s items, each next one produced by a thread while the caller works on this one; its
    exceptions are raised here. Closing this generator waits for the item being read, then closes ``iterator``."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-reader") as reader:
        try:
            pending = reader.submit(next, iterator, None)
            while (item := pending.result()) is not None:
                pending = reader.submit(next, iterator, None)
                yield item
        finally:
            reader.shutdown(wait=True)
            iterator.close()


def _frames(path, chunk_rows, string_columns, notes):
    """(DataFrame, done, total) of each chunk of the file (see _chunks); ``notes`` gets "booleans"."""
    name = os.path.basename(path)
    size = os.path.getsize(path)
    if size == 0:
        raise ImportFailed(f"{name}: the file is empty")
    if path.endswith(".parquet") or path.endswith(".pq"):
        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:
            raise ImportFailed(f"{name}: not a readable Parquet file ({error})") from None
        schema = parquet.schema_arrow
        seen = set()
        for column in schema.names:
            if column in seen:
                raise ImportFailed(f"{name}: column {column!r} appears more than once")
            seen.add(column)
        notes["booleans"] = [f.name for f in schema if pa.types.is_boolean(f.type)]
        total, done = parquet.metadata.num_rows, 0
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            for column in string_columns:
                if column in frame:
                    frame[column] = frame[column].astype("string").astype(object).where(frame[column].notna(), None)
            done += len(frame)
            yield frame, done, total
        return
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        _check_csv_header(path, gzipped, name)
    except (OSError, EOFError) as error:
        raise ImportFailed(f"{name}: cannot read the file ({error})") from None
    raw = open(path, "rb")
    counter = _CountingReader(raw)
    stream = _LineGuard(gzip.GzipFile(fileobj=counter) if gzipped else counter, name)
    fields = _FieldCounter(path, gzipped)
    rows = 0
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
            if len(frame.columns):
                _check_short_rows(frame, fields, rows, name)
            rows += len(frame)
            yield frame, counter.position, size
    except pd.errors.EmptyDataError:
        raise ImportFailed(f"{name}: the file is empty") from None
    except pd.errors.ParserError as error:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if match:
            expected, line, saw = match.groups()
            raise ImportFailed(f"{name}: line {line} has {saw} fields, expected {expected}") from None
        raise ImportFailed(f"{name}: cannot parse the file ({str(error).strip()})") from None
    except UnicodeDecodeError as error:
        where = _undecodable_line(path, gzipped)
        if where is None:
            raise ImportFailed(f"{name}: cannot read the file ({error})") from None
        raise ImportFailed(f"{name}: line {where[0]}: byte 0x{where[1]:02x} is not UTF-8") from None
    except (OSError, EOFError) as error:
        raise ImportFailed(f"{name}: cannot read the file ({error})") from None
    finally:
        fields.close()
        raw.close()


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
                    f"{name}: line {file_line(first_row + position)}, column {column!r}: "
                    f"{values.iloc[position]!r} is not a number"
                )
            frame[column] = numeric
    matrix = frame[feature_columns].to_numpy(dtype=np.float64)
    finite = np.isfinite(matrix)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        value = matrix[row, col]
        what = "is missing" if np.isnan(value) else f"is {value} (infinite)"
        raise ImportFailed(f"{name}: line {file_line(first_row + int(row))}, column {feature_columns[col]!r}: value {what}")
    with np.errstate(over="ignore"):
        as32 = matrix.astype(np.float32)
    if not np.isfinite(as32).all():
        row, col = np.argwhere(~np.isfinite(as32))[0]
        raise ImportFailed(
            f"{name}: line {file_line(first_row + int(row))}, column {feature_columns[col]!r}: "
            f"{matrix[row, col]} is too large for a 32-bit float"
        )
    return as32


def _infer_schema(frame, name, label_column, id_column, exclude, text_only=()):
    """(display columns, text columns, numeric feature columns) of a new dataset from its first chunk.
    ``text_only`` columns (a time, entities) are kept as text whatever they hold.

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
        if column in text_only or pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.is_numeric_dtype(values):
            numeric.append(column)
            continue
        present = values.dropna()
        parsed = pd.to_numeric(present, errors="coerce").notna()
        if len(present) and parsed.mean() >= 0.5 and (column not in exclude or parsed.all()):
            numeric.append(column)  # mostly numbers: the stray values are errors, reported with their line
    features = [c for c in numeric if c not in exclude]
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
                    f"{name}: line {file_line(first_row + position)}, column {column!r}: "
                    f"{values.iloc[position]!r} is not a number"
                )
            frame[column] = parsed
    matrix = frame[numeric].to_numpy(dtype=np.float64)
    blobs = _row_blobs(matrix)
    if not text_columns:
        return blobs, [None] * len(blobs)
    return blobs, _json_rows(frame[text_columns])


def _amounts(frame, dataset):
    """The chunk's values of ``dataset``'s amount column (Dataset.amount_column; already numeric after
    _display_rows) as floats, None where missing; all None when the dataset has no amount column."""
    column = dataset.amount_column
    if column is None:
        return [None] * len(frame)
    return [None if value != value else value for value in frame[column].to_numpy(dtype=np.float64).tolist()]


def _json_rows(block):
    """Each row of ``block`` as the JSON text of its values' list, exactly as json.dumps writes it (text, null
    where missing), built column by column with Arrow's string kernels: a value of printable ASCII without quote
    or backslash is only quoted; json.dumps encodes the rest."""
    columns = []
    for column in block.columns:
        values = block[column]
        text = pa.array(values.astype(object).where(values.isna(), values.astype(str)), type=pa.string(),
                        from_pandas=True)
        quoted = pc.binary_join_element_wise('"', text, '"', "")
        plain = pc.fill_null(pc.match_substring_regex(text, PLAIN_JSON_TEXT), True).to_numpy(zero_copy_only=False)
        if not plain.all():
            encoded = quoted.to_numpy(zero_copy_only=False).copy()
            for position in np.flatnonzero(~plain):
                encoded[position] = json.dumps(text[int(position)].as_py())
            quoted = pa.array(encoded, type=pa.string())
        columns.append(pc.fill_null(quoted, "null"))
    return pc.binary_join_element_wise("[", pc.binary_join_element_wise(*columns, ", "), "]", "").to_pylist()


def _row_blobs(matrix):
    """Each row of the 2-d ``matrix`` as bytes (one view over the array, no copy per row in Python)."""
    matrix = np.ascontiguousarray(matrix)
    if matrix.shape[1] == 0:
        return [b""] * len(matrix)
    return matrix.view(np.dtype((np.void, matrix.shape[1] * matrix.itemsize))).ravel().tolist()


def _check_unique_ids(dataset, ids, stored, start_row, name, first_row, id_column):
    """Raise ImportFailed naming the first of the chunk's ``ids`` that an earlier chunk of the file holds (stored by
    this import: row number ``start_row`` or later) or that repeats within ``ids``. ``stored``: the lookup of
    ``ids`` (_stored_ids), or None when none was made (a new dataset: one is made when ``ids`` repeat)."""
    if stored is None:
        if len(set(ids)) == len(ids):
            return
        stored = _stored_ids(dataset, ids)
    seen = {external_id for external_id, row in stored.items() if row >= start_row}
    if not seen and len(set(ids)) == len(ids):
        return
    for position, external_id in enumerate(ids):
        if external_id in seen:
            raise ImportFailed(f"{name}: line {file_line(first_row + position)}, column {id_column!r}: "
                               f"duplicate id {external_id!r} in the file")
        seen.add(external_id)


def _truth_values(frame, label_column):
    """The label column's values as stripped text, None where empty; None without a label column."""
    if label_column is None:
        return None
    text = frame[label_column].astype("string").str.strip()
    return text.astype(object).where(text.notna() & (text != ""), None).tolist()


def _check_truth(values, allowed, name, first_row, label_column):
    for position, value in enumerate(values):
        if value is not None and value not in allowed:
            raise ImportFailed(
                f"{name}: line {file_line(first_row + position)}, column {label_column!r}: "
                f"label {value!r} is not in the dataset's label set ({', '.join(sorted(allowed))})"
            )


def _is_postgres():
    return isinstance(database.obj, PostgresqlDatabase)


def _bulk_insert(model, fields, columns):
    """Insert the rows whose values are ``columns`` (a sequence per field, in ``fields`` order, all as long)
    through the driver's cursor, skipping peewee's per-row work.

    SQLite: executemany, a loop in C. PostgreSQL: COPY ... FROM STDIN of the rows as CSV (_copy_csv),
    PG_ROWS_PER_COPY at a time (its drivers send executemany row by row).
    """
    table = model._meta.table_name
    names = ", ".join(f'"{field}"' for field in fields)
    count = len(columns[0])
    cursor = database.cursor()
    if _is_postgres():
        for start in range(0, count, PG_ROWS_PER_COPY):
            cursor.copy_expert(f'COPY "{table}" ({names}) FROM STDIN WITH (FORMAT csv)', io.StringIO(
                _copy_csv([column[start:start + PG_ROWS_PER_COPY] for column in columns])))
        return
    row_placeholders = "(" + ", ".join([database.param] * len(fields)) + ")"
    rows = list(zip(*columns))
    for start in range(0, count, INSERT_BATCH):
        cursor.executemany(f'INSERT INTO "{table}" ({names}) VALUES {row_placeholders}',
                           rows[start:start + INSERT_BATCH])


def _copy_field(value):
    """``value`` as a field of PostgreSQL's COPY CSV: None as NULL (nothing, unquoted), text quoted, bytes as
    bytea's hex input, a float in its shortest exact form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, (bytes, memoryview)):
        return _bytea(value)
    if isinstance(value, float):
        return float.__repr__(value)  # numpy's floats too, without their repr's type name
    return str(value)


def _quoted(text):
    return '"' + text.replace('"', '""') + '"'


def _bytea(blob):
    return "\\x" + blob.hex()


_COPY_WRITERS = {str: _quoted, bytes: _bytea, float: float.__repr__, int: int.__repr__}


def _copy_column(values):
    """The COPY CSV fields of one column's ``values``, as _copy_field writes them: a column of one type (and
    None) is written by that type's own method, without _copy_field's per-value type tests."""
    kinds = set(map(type, values)) - {type(None)}
    if len(kinds) != 1:
        return list(map(_copy_field, values))
    write = _COPY_WRITERS.get(kinds.pop())
    if write is None:
        return list(map(_copy_field, values))
    if None in values:
        return ["" if value is None else write(value) for value in values]
    return list(map(write, values))


def _copy_csv(columns):
    """The CSV text for COPY ... FROM STDIN WITH (FORMAT csv) of the rows whose values are ``columns``."""
    fields = [_copy_column(values) for values in columns]
    return "\n".join(map(",".join, zip(*fields))) + "\n"


def _insert_ground_truth(dataset, truths):
    """GroundTruth rows for ``truths``, (row number, stored value) pairs of ``dataset``'s items."""
    row_numbers = np.array([row for row, _ in truths], dtype=np.int64)
    query = Item.select(Item.row_number, Item.id).where(
        Item.dataset == dataset, Item.row_number.between(int(row_numbers.min()), int(row_numbers.max()))
    ).order_by(Item.row_number)
    stored = np.array(database.execute(query).fetchall(), dtype=np.int64).reshape(-1, 2)  # the cursor: no models
    item_ids = stored[np.searchsorted(stored[:, 0], row_numbers), 1]
    _bulk_insert(GroundTruth, ["item_id", "value"], [item_ids.tolist(), [value for _, value in truths]])


def import_file(path, dataset_name, label_column=None, id_column=None, exclude=(), labels=None,
                chunk_rows=DEFAULT_CHUNK_ROWS, progress=None, time_column=None, entity_columns=(), categorical=(),
                amount_column=None, ignore=(), positive_labels=None):
    """Import ``path`` into the dataset ``dataset_name``, creating it on first import.

    ``labels`` names the label set of a new dataset (default: genuine/fraud, or the label column's values),
    ``positive_labels`` those of its labels that count as fraud (default: importer.default_positive_labels).
    ``progress(done, total)`` is called after each chunk. Raw transactions: ``time_column`` (ISO 8601 or epoch
    seconds), ``entity_columns`` (the card first, then e.g. the merchant), ``categorical`` and ``amount_column``
    name column roles (labeler.data.transactions; detected where not given), chosen at the first import.
    ``ignore`` names columns not imported at all (say, a second ground-truth column). Returns an ImportResult.
    Raises ImportFailed with one line naming file, line and column; the store is then unchanged.

    Without an id column an item's id is its row number in the file, so importing into such a dataset again
    means "this file again, perhaps grown": a row whose id is already stored is skipped only when it is the
    very row stored under that id (same display values and features); new row numbers are appended. A row
    that differs from the stored one means a different file: it is refused, naming the line, rather than
    skipped (which would drop its data while reporting success) or given a new id (which would duplicate the
    whole file when the same file is imported twice). Different files go into one dataset only with an id
    column, chosen at its first import (--id-column).
    """
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise ImportFailed(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImportFailed(f"{path}: is a directory, not a file")
    exclude = list(exclude or ())
    progress = progress or (lambda done, total: None)
    existing = Dataset.get_or_none(Dataset.name == dataset_name)
    if existing is None:
        check_dataset_name(dataset_name)
    role_options = {"time_column": time_column, "entity_columns": list(entity_columns or ()),
                    "categorical": list(categorical or ()), "amount_column": amount_column}
    if existing is not None:
        if existing.image_shape:
            raise ImportFailed(f"{name}: dataset {dataset_name!r} holds images: import an NPZ file or a folder of "
                               f"PNG files into it")
        if id_column is not None and id_column != existing.id_column:
            raise ImportFailed(
                f"{name}: dataset {dataset_name!r} uses id column {existing.id_column!r}, not {id_column!r}"
            )
        _check_same_roles(existing, role_options, name)
        id_column = existing.id_column
        label_column = label_column or existing.label_column
    string_columns = [c for c in (id_column, label_column, time_column, *role_options["entity_columns"]) if c]

    with database.atomic(), _no_cycle_collection():
        dataset, created = existing, existing is None
        roles = (existing.roles or {}) if existing is not None else None
        next_row = 0
        if existing is not None:
            hold_appends(existing)
            next_row = pool_size(existing)
            string_columns += [c for c in [roles.get("time"), *roles.get("entities", [])] if c]
        history = None
        if role_options["entity_columns"] or (roles and transactions.has_history(roles)):
            roles, history = _history_pass(path, name, chunk_rows, string_columns, existing, roles, id_column,
                                           label_column, exclude, role_options, ignore)
        start_row = next_row
        truth_seen = set()
        pending_truth = []
        rows_read = rows_added = 0
        file_notes = {}
        for frame in _without(_chunks(path, chunk_rows, string_columns, progress, file_notes, ahead=True), ignore,
                              name):
            if frame.empty:
                continue  # a header-only CSV still yields one empty chunk
            first_row = rows_read
            if dataset is None:
                columns, text_columns, numeric = _infer_schema(frame, name, label_column, id_column, exclude,
                                                               _role_columns(role_options))
                if roles is None:
                    roles = transactions.detect_roles(frame, name, numeric, text_columns, **role_options)
                names = _feature_names(roles, history)
                if not names:
                    raise ImportFailed(f"{name}: no numeric feature columns found")
                dataset = create_dataset(
                    name, dataset_name, columns=columns, text_columns=text_columns, feature_columns=names,
                    labels=list(labels) if labels else [], id_column=id_column, label_column=label_column,
                    settings={}, roles=roles,
                )
            else:
                _check_columns(frame, dataset, string_columns, name)
            rows = _prepare_rows(frame, dataset, roles, history, id_column, label_column, name, first_row)
            stored = None if created else _stored_ids(dataset, rows.ids)
            if not id_column and not created:
                _check_same_rows(dataset, rows.ids, stored, rows.numbers, rows.texts, name, first_row)
            if id_column:  # row numbers never repeat
                _check_unique_ids(dataset, rows.ids, stored, start_row, name, first_row, id_column)
            if rows.truth is not None:
                truth_seen.update(v for v in rows.truth if v is not None)
                if not created:
                    _check_truth(rows.truth, set(dataset.settings.get("truth_map", {})), name, first_row,
                                 label_column)
            added = _insert_new_rows(dataset, rows, stored, next_row, pending_truth, start_row, name, first_row,
                                     id_column)
            next_row += added
            rows_read += len(frame)
            rows_added += added

        if dataset is None or rows_read == 0:
            raise ImportFailed(f"{name}: the file has a header but no data rows")
        if created:
            settle_label_set(dataset, truth_seen, labels, f"{name}: column {label_column!r}", positive_labels)
        _write_truth_and_history(dataset, pending_truth, history)
    if rows_added:
        refresh_statistics(Item, GroundTruth)  # PostgreSQL's planner learns the new sizes now, not at autovacuum
    return _result(dataset, created, rows_read, rows_added, history, file_notes)


def create_dataset(file_name, dataset_name, **fields):
    """The new Dataset ``dataset_name``. Raises ImportFailed when another import created it since this one looked
    (two at once, from two workers: the database's unique name lets one through)."""
    try:
        return Dataset.create(name=dataset_name, **fields)
    except IntegrityError:
        raise ImportFailed(f"{file_name}: dataset {dataset_name!r} was created by another import meanwhile; import "
                           f"the file again to append to it") from None


def _result(dataset, created, rows_read, rows_added, history, file_notes):
    """The ImportResult of an import, with its notes."""
    notes = _boolean_notes(dataset, file_notes.get("booleans", []))
    described = transactions.describe(dataset.roles or {})
    if described and (created or history is not None):
        notes.append(described)
    if history is not None and history.changed:
        notes.append(f"{len(history.changed):,} stored transactions come after appended ones of the same "
                     f"{history.entity}: their history features were computed again.")
    return ImportResult(dataset, created, rows_read, rows_added, rows_read - rows_added, notes)


def _check_columns(frame, dataset, string_columns, name):
    """Raise ImportFailed when the chunk lacks a column of ``dataset`` or of ``string_columns``."""
    missing = [c for c in dataset.columns + string_columns if c not in frame.columns]
    if missing:
        raise ImportFailed(f"{name}: missing column(s) {', '.join(map(repr, missing))} of dataset {dataset.name!r}")


@dataclass
class _Rows:
    """A chunk's rows validated, with their display values and features: all an insert needs but row numbers."""
    ids: list
    numbers: list  # float64 blobs
    texts: list  # JSON or None
    features: list  # the feature vectors as float32 blobs (built here, so that an append's insert only inserts)
    amounts: list
    times: list
    entities: list  # (first entity, second entity) per row
    truth: list  # stripped label values (None where empty), or None without a label column


def _prepare_rows(frame, dataset, roles, history, id_column, label_column, name, first_row):
    """The chunk's _Rows; no database access. Raises ImportFailed naming the line and column of a bad value."""
    matrix, times, entities = _features_of_chunk(frame, dataset, roles, history, name, first_row)
    if id_column:
        ids = frame[id_column].tolist()
        for position, value in enumerate(ids):
            if value is None or value != value or str(value).strip() == "":
                raise ImportFailed(f"{name}: line {file_line(first_row + position)}, column {id_column!r}: id is missing")
        ids = [str(v).strip() for v in ids]
    else:
        ids = [str(first_row + i) for i in range(len(frame))]
    truth = _truth_values(frame, label_column)
    numbers, texts = _display_rows(frame, dataset.columns, dataset.text_columns, name, first_row)
    return _Rows(ids, numbers, texts, _row_blobs(matrix), _amounts(frame, dataset), times, entities, truth)


ITEM_FIELDS = ["dataset_id", "external_id", "row_number", "numbers", "texts", "features", "amount", "event_time",
               "entity", "second_entity"]


def _insert_new_rows(dataset, rows, stored, next_row, pending_truth, start_row, name, first_row, id_column):
    """_insert_rows of a chunk of import_file. Into a new dataset (``stored`` None: no lookup was made) the
    (dataset, external_id) index finds an id of an earlier chunk of the file: then ImportFailed names it, as
    _check_unique_ids does, instead of a file-long set of ids held in memory."""
    if stored is not None or not id_column:
        return _insert_rows(dataset, rows, stored, next_row, pending_truth)
    try:
        # a savepoint (PostgreSQL refuses every statement after a failed one); the driver's error as peewee's
        with database.atomic(), peewee_errors:
            return _insert_rows(dataset, rows, stored, next_row, pending_truth)
    except IntegrityError:
        _check_unique_ids(dataset, rows.ids, _stored_ids(dataset, rows.ids), start_row, name, first_row, id_column)
        raise


def _insert_rows(dataset, rows, stored, next_row, pending_truth):
    """Insert the _Rows ``rows`` whose ids are not in ``stored`` (None or empty: all), numbered from ``next_row``;
    append (first row number, label codes: -1 where empty, the codes' label values) to ``pending_truth``: a byte
    or two per row, so memory stays bounded by the chunk size. Returns how many were inserted."""
    keep = [position for position, external_id in enumerate(rows.ids) if external_id not in stored] \
        if stored else None

    def pick(values):
        return list(values) if keep is None else [values[position] for position in keep]

    ids = pick(rows.ids)
    if not ids:
        return 0
    row_numbers = range(next_row, next_row + len(ids))
    entities = pick(rows.entities)
    _bulk_insert(Item, ITEM_FIELDS, [
        [dataset.id] * len(ids), ids, row_numbers, pick(rows.numbers), pick(rows.texts), pick(rows.features),
        pick(rows.amounts), pick(rows.times), [first for first, _ in entities], [second for _, second in entities]])
    if rows.truth is not None:
        values = pd.Categorical(pick(rows.truth))
        pending_truth.append((next_row, values.codes, list(values.categories)))
    return len(ids)


def _insert_truth_runs(dataset, start, codes, names):
    """Write the GroundTruth of ``dataset``'s items numbered from ``start`` on, whose ``codes`` (-1 where empty)
    index ``names`` (the stored values), one INSERT ... SELECT per run of equal codes over its row numbers (the
    (dataset, row_number) index): no item id goes through Python. Returns False, writing nothing, when the runs are
    too short for that to pay (more than one in TRUTH_RUN_ROWS rows: _insert_ground_truth then writes them)."""
    bounds = np.flatnonzero(np.diff(codes)) + 1
    if (len(bounds) + 1) * TRUTH_RUN_ROWS > len(codes):
        return False
    firsts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(codes)]])
    runs = [(names[code], dataset.id, start + first, start + end - 1)
            for first, end, code in zip(firsts.tolist(), ends.tolist(), codes[firsts].tolist()) if code >= 0]
    mark = database.param
    database.cursor().executemany(
        f'INSERT INTO "{GroundTruth._meta.table_name}" ("item_id", "value") SELECT "id", {mark} FROM '
        f'"{Item._meta.table_name}" WHERE "dataset_id" = {mark} AND "row_number" BETWEEN {mark} AND {mark}', runs)
    return True


def _write_truth_and_history(dataset, pending_truth, history):
    """After the items: their ground truth, and the history features of stored rows that appended rows changed
    (the pool copy is then rebuilt)."""
    truth_map = dataset.settings.get("truth_map", {})
    for start, codes, values in pending_truth:
        names = np.array([truth_map[value] for value in values], dtype=object)
        if _insert_truth_runs(dataset, start, codes, names):
            continue
        present = np.flatnonzero(codes >= 0)
        if len(present):
            _insert_ground_truth(dataset, list(zip((present + start).tolist(), names[codes[present]].tolist())))
    if history is not None and history.changed:
        _refresh_history(dataset, history)
        invalidate_pool_copy(dataset)  # stored rows' features changed: the worker's copy is rebuilt


def _stored_ids(dataset, ids):
    """{external id: row number} of those of ``ids`` that ``dataset`` holds already, looked up on the (dataset,
    external_id) index COMPARE_BATCH at a time: the work follows the ids asked about, not the pool."""
    found = {}
    table = Item._meta.table_name
    for start in range(0, len(ids), COMPARE_BATCH):
        batch = ids[start:start + COMPARE_BATCH]
        marks = ", ".join([database.param] * len(batch))  # the SQL text by hand: peewee's costs more than the query
        cursor = database.execute_sql(f'SELECT "external_id", "row_number" FROM "{table}" WHERE "dataset_id" = '
                                      f'{database.param} AND "external_id" IN ({marks})', [dataset.id, *batch])
        found.update(cursor.fetchall())
    return found


@dataclass
class PreparedAppend:
    """Rows of a file validated and with their features, ready for write_append; nothing written yet."""
    dataset: Dataset
    name: str  # the file's name, for messages
    chunks: list  # _Rows
    history: object  # _FileHistory or None
    pool_rows: int  # the dataset's size when the features were computed
    rows_read: int

    def is_current(self):
        """False when the features depend on stored rows (history features) and the pool has grown since they
        were computed: prepare again."""
        return self.history is None or pool_size(self.dataset) == self.pool_rows


def hold_appends(dataset):
    """Inside the transaction that appends to ``dataset``, before it reads the dataset's size: on PostgreSQL, wait
    until no other transaction (of any process) appends to it, since the new rows are numbered on from that size
    and a card's history features read the stored rows. On SQLite write_transaction lets one writer at a time."""
    advisory_lock("append", dataset.id)


def prepare_append(path, dataset, chunk_rows=DEFAULT_CHUNK_ROWS):
    """Read ``path`` (CSV, CSV.gz or Parquet) for appending to the existing ``dataset`` with its own id, label and
    role columns, as import_file(path, dataset.name) would: every check and every feature (a raw-transaction
    dataset's card history, from the stored rows), but no write, so no write lock is held meanwhile. The whole
    file is held in memory: for small batches (the API's pushes). Returns a PreparedAppend for write_append.
    Raises ImportFailed as import_file does."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise ImportFailed(f"{path}: no such file")
    if dataset.image_shape:
        raise ImportFailed(f"{name}: dataset {dataset.name!r} holds images: import an NPZ file or a folder of PNG "
                           f"files into it")
    roles = dataset.roles or {}
    string_columns = [c for c in (dataset.id_column, dataset.label_column, roles.get("time"),
                                  *roles.get("entities", [])) if c]
    no_roles = {"time_column": None, "entity_columns": [], "categorical": [], "amount_column": None}
    with database.atomic(), _no_cycle_collection():  # one snapshot of the stored rows read
        pool_rows = pool_size(dataset)
        history = None
        if transactions.has_history(roles):
            roles, history = _history_pass(path, name, chunk_rows, string_columns, dataset, roles, dataset.id_column,
                                           dataset.label_column, [], no_roles, ())
        chunks, seen, rows_read = [], set(), 0
        allowed = set(dataset.settings.get("truth_map", {}))
        for frame in _chunks(path, chunk_rows, string_columns, lambda done, total: None):
            if frame.empty:
                continue
            _check_columns(frame, dataset, string_columns, name)
            rows = _prepare_rows(frame, dataset, roles, history, dataset.id_column, dataset.label_column, name,
                                 rows_read)
            _check_unique_ids(dataset, rows.ids, {external_id: 0 for external_id in seen & set(rows.ids)}, 0,
                              name, rows_read, dataset.id_column)
            seen.update(rows.ids)
            if rows.truth is not None:
                _check_truth(rows.truth, allowed, name, rows_read, dataset.label_column)
            chunks.append(rows)
            rows_read += len(frame)
    if rows_read == 0:
        raise ImportFailed(f"{name}: the file has a header but no data rows")
    return PreparedAppend(dataset, name, chunks, history, pool_rows, rows_read)


def write_append(prepared):
    """Write a PreparedAppend: the rows whose ids are not stored yet (looked up now, so appends stay idempotent
    by id), their ground truth and the history features of stored rows they changed. Only inserts of rows
    already built: call it in a write transaction, after hold_appends and prepared.is_current(). Returns an
    ImportResult. Raises ImportFailed for a dataset of row numbers whose stored row differs (as import_file)."""
    dataset = prepared.dataset
    with database.atomic(), _no_cycle_collection():
        next_row = pool_size(dataset)
        pending_truth, first_row, rows_added = [], 0, 0
        for rows in prepared.chunks:
            stored = _stored_ids(dataset, rows.ids)
            if not dataset.id_column:
                _check_same_rows(dataset, rows.ids, stored, rows.numbers, rows.texts, prepared.name, first_row)
            added = _insert_rows(dataset, rows, stored, next_row, pending_truth)
            next_row += added
            rows_added += added
            first_row += len(rows.ids)
        _write_truth_and_history(dataset, pending_truth, prepared.history)
    return _result(dataset, False, prepared.rows_read, rows_added, prepared.history, {})


@contextmanager
def _no_cycle_collection():
    """Pause Python's cycle collector: an import creates millions of tuples and strings (no cycles), and each
    collection would walk every one still alive (about a tenth of a large import's time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _role_columns(options):
    """The columns that role options keep as text: the time and the entities."""
    return [c for c in (options["time_column"], *options["entity_columns"]) if c]


def _without(frames, ignore, name):
    """The chunks without the ignored columns. Raises ImportFailed when one is not in the file."""
    for frame in frames:
        missing = [column for column in ignore if column not in frame.columns]
        if missing:
            raise ImportFailed(f"{name}: cannot ignore {', '.join(map(repr, missing))}: no such column")
        yield frame.drop(columns=list(ignore)) if ignore else frame


def _check_same_roles(dataset, options, name):
    """Raise ImportFailed when role options name other columns than the dataset's roles (chosen at its first
    import): an append cannot change what the features mean."""
    roles = dataset.roles or {}
    given = {"time_column": ("time", options["time_column"]), "amount_column": ("amount", options["amount_column"])}
    for option, (role, value) in given.items():
        if value is not None and value != roles.get(role):
            raise ImportFailed(f"{name}: dataset {dataset.name!r} has {role} column {roles.get(role)!r}, not {value!r} "
                               f"(roles are chosen at the first import)")
    if options["entity_columns"] and options["entity_columns"] != roles.get("entities", []):
        raise ImportFailed(f"{name}: dataset {dataset.name!r} has entity columns "
                           f"{', '.join(roles.get('entities', [])) or 'none'} (roles are chosen at the first import)")
    if options["categorical"] and set(options["categorical"]) - set(roles.get("categorical", {})):
        raise ImportFailed(f"{name}: dataset {dataset.name!r} has categorical columns "
                           f"{', '.join(roles.get('categorical', {})) or 'none'} (roles are chosen at the first import)")


@dataclass
class _FileHistory:
    """The history features of a file's rows (zeros for rows already stored), and those of stored rows that
    changed because appended rows came before them."""
    names: list
    file_matrix: np.ndarray
    changed: dict  # item id -> the item's new history features
    entity: str  # the first entity column (the card)
    offset: int  # where the history features start in the feature vector
    seconds: np.ndarray  # every file row's event time, in file order
    entities: list  # every file row's values of the first two entity columns (arrays, in file order)


def _history_pass(path, name, chunk_rows, string_columns, existing, roles, id_column, label_column, exclude,
                  role_options, ignore):
    """Read the file once for its times, entities and amounts, and compute every new row's history features
    over the stored rows and the file's new rows together. Returns (roles, _FileHistory or None for a file
    with no rows). Raises ImportFailed for a bad time or entity, naming its line."""
    seconds, entities, amounts, ids = [], {}, [], []
    rows = 0
    for frame in _without(_chunks(path, chunk_rows, string_columns, lambda done, total: None), ignore, name):
        if frame.empty:
            continue
        if roles is None:
            _, text_columns, numeric = _infer_schema(frame, name, label_column, id_column, exclude,
                                                     _role_columns(role_options))
            roles = transactions.detect_roles(frame, name, numeric, text_columns, **role_options)
        if not roles.get("time"):
            raise ImportFailed(f"{name}: entity columns need a time column (--time-column)")
        missing = [c for c in [roles["time"], *roles["entities"]] if c not in frame.columns]
        if missing:
            raise ImportFailed(f"{name}: missing column(s) {', '.join(map(repr, missing))}")
        seconds.append(transactions.event_times(frame, roles["time"], name, rows))
        for column in roles["entities"]:
            entities.setdefault(column, []).append(transactions.entity_values(frame, column, name, rows))
        if roles.get("amount"):
            amounts.append(pd.to_numeric(frame[roles["amount"]], errors="coerce").fillna(0).to_numpy(np.float64))
        if id_column:
            ids.extend(frame[id_column].astype("string").str.strip().tolist())
        else:
            ids.extend(str(rows + i) for i in range(len(frame)))
        rows += len(frame)
    if rows == 0:
        return roles, None
    known_ids = _stored_ids(existing, ids) if existing is not None else set()
    new = ~pd.Series(ids).duplicated().to_numpy() & np.array([i not in known_ids for i in ids], dtype=bool)
    named = {column: set(np.concatenate(entities[column])[new].tolist()) for column in roles["entities"]}
    stored = _stored_history(existing, roles, named)
    amount_parts = [stored["amount"], *amounts] if roles.get("amount") else None
    all_seconds = np.concatenate([stored["seconds"], np.concatenate(seconds)[new]])
    all_entities = [(column, np.concatenate([stored[column], np.concatenate(entities[column])[new]]))
                    for column in roles["entities"]]
    all_amounts = None
    if amount_parts is not None:
        all_amounts = np.concatenate([stored["amount"], np.concatenate(amounts)[new]])
    matrix, names = transactions.history_features(all_seconds, all_entities, all_amounts)
    held = len(stored["ids"])
    file_matrix = np.zeros((rows, len(names)), dtype=np.float32)
    file_matrix[new] = matrix[held:]
    offset = len(roles.get("numeric", [])) + len(transactions.row_feature_names(roles))
    changed = {}
    if held:  # a stored row's feature is computed again where the file names the entity it is computed from
        before = stored["vectors"][:, offset:offset + len(names)]
        shares = {column: np.isin(stored[column], np.array(sorted(named[column]), dtype=object))
                  for column in roles["entities"]}
        after = np.where(np.column_stack([shares[column] for column in
                                          transactions.history_sources(names, roles["entities"])]),
                         matrix[:held], before)
        differs = np.flatnonzero(np.any(before != after, axis=1))
        changed = {int(stored["ids"][i]): after[i] for i in differs}
    file_entities = [np.concatenate(entities[column]) for column in roles["entities"][:2]]
    return roles, _FileHistory(names, file_matrix, changed, roles["entities"][0], offset, np.concatenate(seconds),
                               file_entities)


def _stored_history(dataset, roles, named):
    """The ids, times, entity values, amounts and feature vectors, in id order, of the stored rows whose
    history features the file's rows share: those of the cards and merchants ``named`` ({entity column: values
    of the file's new rows}) names, each read on its entity index (with a third entity column, which has no
    index, every stored row). Empty for a new dataset. A row read for its merchant has its card's history
    incomplete: _history_pass keeps its card features as stored."""
    columns = {"ids": np.zeros(0, dtype=np.int64), "seconds": np.zeros(0), "amount": np.zeros(0),
               "vectors": np.zeros((0, 0), dtype=np.float32)}
    for column in roles["entities"]:
        columns[column] = np.zeros(0, dtype=object)
    if dataset is None:
        return columns
    fields = (Item.id, Item.event_time, Item.numbers, Item.texts, Item.features)
    indexed = [Item.entity, Item.second_entity]
    if len(roles["entities"]) > len(indexed):
        rows = list(Item.select(*fields).where(Item.dataset == dataset).order_by(Item.id).tuples())
    else:
        found = {}
        for entity_field, column in zip(indexed, roles["entities"]):
            values = sorted(named[column])
            for start in range(0, len(values), COMPARE_BATCH):
                found.update((row[0], row) for row in Item.select(*fields).where(
                    (Item.dataset == dataset) & entity_field.in_(values[start:start + COMPARE_BATCH])).tuples())
        rows = [found[item_id] for item_id in sorted(found)]
    if not rows:
        return columns
    text_index = {column: dataset.text_columns.index(column) for column in roles["entities"]}
    number_columns = [c for c in dataset.columns if c not in dataset.text_columns]
    texts = [json.loads(row[3]) if row[3] else [] for row in rows]
    columns["ids"] = np.array([row[0] for row in rows], dtype=np.int64)
    columns["seconds"] = np.array([row[1] for row in rows], dtype=np.float64)
    for column, index in text_index.items():
        columns[column] = np.array([str(values[index]).strip() for values in texts], dtype=object)
    if roles.get("amount"):
        numbers = np.frombuffer(b"".join(bytes(row[2]) for row in rows), dtype=np.float64)
        columns["amount"] = numbers.reshape(len(rows), len(number_columns))[:, number_columns.index(roles["amount"])]
    columns["vectors"] = np.frombuffer(b"".join(bytes(row[4]) for row in rows), dtype=np.float32).reshape(
        len(rows), dataset.n_features)
    return columns


def _feature_names(roles, history):
    """The feature vector's names: the file's numeric features, the row features, the history features."""
    return [*roles.get("numeric", []), *transactions.row_feature_names(roles), *(history.names if history else [])]


def _features_of_chunk(frame, dataset, roles, history, name, first_row):
    """(feature matrix float32, event times, [(first entity, second entity)] values) of a chunk's rows.
    Raises ImportFailed."""
    size = len(frame)
    blocks = [_feature_matrix(frame, dataset.file_features, name, first_row)]
    times, entities = [None] * size, [(None, None)] * size
    rows = slice(first_row, first_row + size)
    if roles.get("time"):
        frame["__seconds__"] = history.seconds[rows] if history is not None else \
            transactions.event_times(frame, roles["time"], name, first_row)
        times = frame["__seconds__"].tolist()
    if history is not None:  # roles with entities always have a history pass, which read their values
        columns = [values[rows].tolist() for values in history.entities]
        entities = list(zip(columns[0], columns[1] if len(columns) > 1 else [None] * size))
    if roles:
        blocks.append(transactions.row_features(frame, roles)[0])
    if history is not None:
        blocks.append(history.file_matrix[rows])
    return np.hstack(blocks).astype(np.float32), times, entities


def _refresh_history(dataset, history):
    """Write the new history features of stored rows that appended rows came before."""
    start, end = history.offset, history.offset + len(history.names)
    for item_id, blob in Item.select(Item.id, Item.features).where(Item.id.in_(list(history.changed))).tuples():
        vector = np.frombuffer(bytes(blob), dtype=np.float32).copy()
        vector[start:end] = history.changed[item_id]
        Item.update(features=vector.tobytes()).where(Item.id == item_id).execute()


def _boolean_notes(dataset, booleans):
    """One line per boolean column of a Parquet file, saying what it became."""
    notes = []
    for column in booleans:
        if column in dataset.feature_columns:
            notes.append(f"Column {column!r} is boolean: imported as a 0/1 feature (false 0, true 1).")
        elif column in dataset.columns and column not in dataset.text_columns:
            notes.append(f"Column {column!r} is boolean: shown as 0/1, not a feature.")
        elif column in dataset.text_columns:
            notes.append(f"Column {column!r} is boolean: shown as True/False, not a feature.")
    return notes


def _check_same_rows(dataset, ids, stored, numbers, texts, name, first_row):
    """Raise ImportFailed when a row whose row-number id is in ``stored`` (already stored) differs from the stored
    row (its display values: the features follow from them, and history features from other rows too)."""
    positions = [p for p, external_id in enumerate(ids) if external_id in stored]
    for start in range(0, len(positions), COMPARE_BATCH):
        batch = positions[start:start + COMPARE_BATCH]
        stored = {
            external_id: (bytes(stored_numbers), stored_texts)
            for external_id, stored_numbers, stored_texts in Item.select(
                Item.external_id, Item.numbers, Item.texts
            ).where(Item.dataset == dataset, Item.external_id.in_([ids[p] for p in batch])).tuples()
        }
        for position in batch:
            if stored[ids[position]] != (numbers[position], texts[position]):
                raise ImportFailed(
                    f"{name}: line {file_line(first_row + position)} differs from row {ids[position]} already "
                    f"in dataset {dataset.name!r}, whose ids are row numbers: only the same file, or a longer "
                    f"version of it, can be imported into it again (import a different file into a new dataset, "
                    f"or give the dataset an id column at its first import with --id-column)"
                )


NEGATIVE_NAMES = ("genuine", "legit", "legitimate", "normal", "benign", "ok", "none", "no_fraud", "not_fraud")


def default_positive_labels(names):
    """The labels that count as fraud when none are named: ``fraud`` when the set has it; else, when one label
    is named like a negative (genuine, legit, normal, ...), every other label (fraud typologies); else the last
    of two labels; else none (a label set of classes, such as the digits)."""
    if "fraud" in names:
        return ["fraud"]
    negatives = [name for name in names if str(name).strip().lower() in NEGATIVE_NAMES]
    if len(negatives) == 1:
        return [name for name in names if name != negatives[0]]
    return [names[-1]] if len(names) == 2 else []


def settle_label_set(dataset, truth_values, labels, where, positive_labels=None):
    """Fix a new dataset's label set, its positive labels (``positive_labels``, default
    default_positive_labels) and the ground-truth mapping.

    Raises ImportFailed, its message starting with ``where`` (file and label column).
    """
    if truth_values and truth_values <= set(BINARY_TRUTH):
        truth_map = {value: BINARY_TRUTH[value] for value in BINARY_TRUTH}
        names = list(labels) if labels else ["genuine", "fraud"]
        if labels:
            if len(labels) != 2:
                raise ImportFailed(f"{where}: holds 0/1 but {len(labels)} label names were given")
            truth_map = {"0": labels[0], "1": labels[1]}
    elif labels and truth_values <= {str(code) for code in range(len(labels))}:
        # codes 0..K-1 with K label names (a simulator's scenario column): code i is the i-th name
        truth_map = {str(code): name for code, name in enumerate(labels)}
        names = list(labels)
    elif truth_values:
        truth_map = {value: value for value in truth_values}
        names = list(labels) if labels else sorted(truth_values, key=_natural_key)
        unknown = set(truth_map.values()) - set(names)
        if unknown:
            raise ImportFailed(
                f"{where}: values {', '.join(sorted(unknown))} are not in the label set {', '.join(names)}")
    else:
        truth_map = {}
        names = list(labels) if labels else ["genuine", "fraud"]
    if positive_labels is None:
        positives = default_positive_labels(names)
    else:
        positives = [label for label in names if label in set(positive_labels)]
        unknown = sorted(set(positive_labels) - set(names))
        if unknown:
            raise ImportFailed(f"{where}: positive label(s) {', '.join(unknown)} are not in the label set "
                               f"{', '.join(names)}")
    dataset.labels = names
    dataset.positive_label = positives[0] if positives else None
    dataset.settings = {**(dataset.settings or {}), "truth_map": truth_map, "positive_labels": positives}
    dataset.save()


def _natural_key(value):
    """Sorts label names with numbers in numeric order (2 before 10)."""
    text = str(value)
    return (0, float(text), text) if text.lstrip("-").replace(".", "", 1).isdigit() else (1, 0.0, text)
