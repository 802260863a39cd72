"""Transactions pushed through the JSON API (labeler.web.api): a JSON array of objects or NDJSON, appended to a
dataset by the importer itself, so the validation, the features and the idempotence by id are the import's. The
rows are written as a CSV file in a temporary folder, read, checked and given their features with no lock held
(labeler.data.importer.prepare_append), then inserted in one short write transaction with the audit entry: all
or nothing, and analysts' label writes wait only for the inserts. The importer's one-line errors name a file
line; here they name the batch's row (1-based) and the field.
"""
import csv
import json
import os
import re
import tempfile

from labeler.data import audit
from labeler.data.errors import ImportFailed
from labeler.data.importer import hold_appends, prepare_append, write_append
from labeler.store.db import write_transaction

BATCH_FILE = "batch.csv"
_LINE = re.compile(r"\bline (\d+)")


def parse_rows(body, ndjson=False):
    """The objects of a request body (bytes): a JSON array of objects, or with ``ndjson`` one object per line
    (blank lines skipped). NaN and Infinity are refused (not JSON). Raises ImportFailed with one line naming the
    row (1-based) for a body that is not UTF-8, not JSON, empty, or holds something other than objects."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"the body is not UTF-8 text (byte {error.start})") from None
    if ndjson:
        rows = []
        for line in text.splitlines():
            if line.strip():
                rows.append(_loads(line, f"row {len(rows) + 1}"))
    else:
        rows = _loads(text, "the body")
        if not isinstance(rows, list):
            raise ImportFailed(f"the body is a JSON {_kind(rows)}, not an array of objects (or send "
                               f"Content-Type: application/x-ndjson, one object per line)")
    if not rows:
        raise ImportFailed("the body holds no rows")
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ImportFailed(f"row {number}: a JSON {_kind(row)}, not an object")
    return rows


def _loads(text, where):
    """``text`` parsed as JSON. Raises ImportFailed naming ``where``, the line and column."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError as error:
        raise ImportFailed(f"{where}: bad JSON ({error})") from None


def _kind(value):
    """What JSON calls ``value``'s type."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}[type(value)]


def push_rows(dataset, rows, user):
    """Append ``rows`` (dicts of field: value, as parse_rows gives them) to ``dataset`` with the importer's
    validation, idempotent by id (rows whose id is stored already are counted, not added), and record it in the
    audit log as ``user``'s import; all or nothing. Returns the importer's ImportResult.

    Fields are the dataset's id column, its columns and (optional) its ground-truth column; a missing field is
    an empty value. Raises ImportFailed, one line naming the row and the field, for a dataset whose ids are row
    numbers (no id column: a pushed row has no id of its own), an unknown field, a value that is an object or an
    array or holds a NUL character, and everything the importer refuses; the store is then unchanged.
    """
    if not dataset.id_column:
        raise ImportFailed(f"dataset {dataset.name!r} has no id column (its ids are row numbers), so pushed rows "
                           f"have no ids of their own: push into a dataset imported with --id-column")
    fields = [dataset.id_column, *dataset.columns, *([dataset.label_column] if dataset.label_column else [])]
    known = set(fields)
    with tempfile.TemporaryDirectory(prefix="labeler-push-") as folder:
        path = os.path.join(folder, BATCH_FILE)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(fields)
            for number, row in enumerate(rows, 1):
                unknown = [field for field in row if field not in known]
                if unknown:
                    raise ImportFailed(f"row {number}: unknown field {unknown[0]!r} (the fields of dataset "
                                       f"{dataset.name!r}: {', '.join(fields)})")
                writer.writerow([_cell(row.get(field), number, field) for field in fields])
        try:
            prepared = prepare_append(path, dataset)
            with write_transaction():
                hold_appends(dataset)
                if not prepared.is_current():  # history features, and the pool grew meanwhile: under the lock now
                    prepared = prepare_append(path, dataset)
                result = write_append(prepared)
                audit.record(user, audit.IMPORTED, result.dataset, via="api", rows_read=result.rows_read,
                             rows_added=result.rows_added)
        except ImportFailed as error:
            raise ImportFailed(_rows_named(str(error))) from None
    return result


def _cell(value, number, field):
    """A JSON value as the CSV cell the importer reads: null empty, numbers in their shortest exact text.
    Raises ImportFailed for an object, an array or a NUL character."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise ImportFailed(f"row {number}, field {field!r}: a JSON {_kind(value)}, not a number or text")
    text = repr(value) if isinstance(value, float) else str(value)
    if "\x00" in text:
        raise ImportFailed(f"row {number}, field {field!r}: holds a NUL character")
    return text


def _rows_named(message):
    """The importer's line about the batch file, with rows and fields of the batch instead of file lines and
    columns (the header is line 1, so row n is line n + 1)."""
    message = message.removeprefix(f"{BATCH_FILE}: ")
    message = _LINE.sub(lambda match: f"row {int(match.group(1)) - 1}", message)
    return message.replace(", column ", ", field ").replace(" in the file", " in the batch")
