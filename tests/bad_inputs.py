"""The bad import files found so far, as one table: tests/test_import.py tries each through the service and the
CLI, and tests/probe.py (the probe of issue 13) reruns them with the rest of the bad-input set."""

HEADER = '"tx","V1","V2","Class"\n'


def csv_rows(n, start=0):
    return "".join(f'T{i},{i}.5,{-i},"{i % 2}"\n' for i in range(start, start + n))


BAD_INPUTS = {
    # name: (file text or None for a missing file, import options, fragments of the one-line message)
    "missing file": (None, {}, ["nosuch.csv", "no such file"]),
    "empty file": ("", {}, ["bad.csv", "empty"]),
    "header only": (HEADER, {}, ["bad.csv", "no data rows"]),
    "unknown label column": (HEADER + csv_rows(3), {"label_column": "Klass"}, ["bad.csv", "label column 'Klass'"]),
    "unknown id column": (HEADER + csv_rows(3), {"id_column": "txid"}, ["bad.csv", "id column 'txid'"]),
    "ragged row": (HEADER + csv_rows(3) + 'T3,1,2,"0",9\n', {}, ["bad.csv", "line 5", "5 fields", "expected 4"]),
    "short row": (HEADER + csv_rows(3) + 'T3,1\n' + csv_rows(2, 4), {}, ["bad.csv", "line 5: 2 fields, expected 4"]),
    "short row after a blank line": (HEADER + csv_rows(2) + '\nT3,1,2\n', {}, ["bad.csv", "line 5: 3 fields, expected 4"]),
    "empty last cell": (HEADER + csv_rows(3) + 'T3,1,2,\n', {}, ["bad.csv", "line 5", "'Class'", "value is missing"]),
    "duplicate column": ('"tx","V1","V2","V1"\n' + csv_rows(3), {},
                         ["bad.csv", "line 1", "column 'V1' appears more than once"]),
    "NUL bytes": ("\x00" * 5000, {}, ["bad.csv", "line 1", "NUL bytes"]),
    "NUL bytes after the header": (HEADER + csv_rows(3) + "\x00" * 5000, {}, ["bad.csv", "line 5 holds NUL bytes"]),
    "empty dataset name": (HEADER + csv_rows(3), {"dataset": ""}, ["dataset name is empty"]),
    "dataset name with a slash": (HEADER + csv_rows(3), {"dataset": "a/b"}, ["dataset name 'a/b'", "'/'"]),
    "dataset name starting with a dot": (HEADER + csv_rows(3), {"dataset": ".."}, ["dataset name '..'", "'.'"]),
    "dataset name too long": (HEADER + csv_rows(3), {"dataset": "d" * 121}, ["longer than 120 characters"]),
    "dataset name with a newline": (HEADER + csv_rows(3), {"dataset": "a\nb"}, ["control character"]),
    "text in a feature column": (HEADER + csv_rows(3) + 'T3,1,abc,"0"\n', {},
                                 ["bad.csv", "line 5", "'V2'", "'abc' is not a number"]),
    "empty cell in a feature column": (HEADER + csv_rows(2) + 'T2,,1,"0"\n' + csv_rows(2, 3), {},
                                       ["bad.csv", "line 4", "'V1'", "missing"]),
    "NaN in a feature column": (HEADER + csv_rows(2) + 'T2,NaN,1,"0"\n' + csv_rows(2, 3), {},
                                ["bad.csv", "line 4", "'V1'", "'NaN' is not a number"]),
    "inf in a feature column": (HEADER + csv_rows(3) + 'T3,1,inf,"0"\n', {},
                                ["bad.csv", "line 5", "'V2'", "inf"]),
    "-inf in a feature column": (HEADER + csv_rows(3) + 'T3,-inf,1,"0"\n', {},
                                 ["bad.csv", "line 5", "'V1'", "inf"]),
    "too large for float32": (HEADER + csv_rows(3) + 'T3,1e300,1,"0"\n', {},
                              ["bad.csv", "line 5", "'V1'", "32-bit"]),
    "duplicate id": (HEADER + csv_rows(3) + 'T1,1,2,"0"\n', {"id_column": "tx"},
                     ["bad.csv", "line 5", "'tx'", "duplicate id 'T1'"]),
    "missing id": (HEADER + csv_rows(3) + ',1,2,"0"\n', {"id_column": "tx"}, ["bad.csv", "line 5", "'tx'", "missing"]),
    "unknown truth value": (HEADER + csv_rows(3) + 'T3,1,2,"maybe"\n',
                            {"label_column": "Class", "labels": ["genuine", "fraud"]},
                            ["bad.csv", "column 'Class'", "maybe", "not in the label set genuine, fraud"]),
}
