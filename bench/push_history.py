"""Appending raw transactions to a large pool: how many stored rows the card history reads, and how long it takes.

Writes a raw-transaction file (made by scripts/make_transactions.py) into a temporary SQLite store without its last
``--push`` rows, then appends those rows as a push does (labeler.data.importer.import_file on the dataset) and prints
the import, the append's seconds and how many stored rows the history pass read (the stored rows of the cards and
merchants the appended rows name; before 2026-12-02 every stored row).

    python scripts/make_transactions.py --customers 10000 --terminals 2000 --days 120 --seed 3 --out /tmp/tx.csv.gz
    python bench/push_history.py --data /tmp/tx.csv.gz --push 100
"""
import argparse
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ROLES = {"time_column": "timestamp", "entity_columns": ["card_id", "merchant_id"], "label_column": "is_fraud",
         "id_column": "transaction_id", "ignore": ["scenario"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a raw-transaction file of scripts/make_transactions.py")
    parser.add_argument("--push", type=int, default=100, help="transactions appended (the file's last ones)")
    args = parser.parse_args()

    import pandas as pd

    from labeler.data import importer
    from labeler.store.db import database, open_database
    from labeler.store.migrations import upgrade

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.2f}")
    folder = tempfile.mkdtemp(prefix="push-history-")
    frame = pd.read_csv(args.data, dtype=str)
    frame.iloc[:-args.push].to_csv(os.path.join(folder, "stored.csv"), index=False)
    frame.iloc[-args.push:].to_csv(os.path.join(folder, "pushed.csv"), index=False)
    read = []
    stored_history = importer._stored_history

    def counting(*call):
        rows = stored_history(*call)
        read.append(len(rows["ids"]))
        return rows

    importer._stored_history = counting
    open_database(os.path.join(folder, "labeler.sqlite3"))
    with database.connection_context():
        upgrade()
        started = time.perf_counter()
        importer.import_file(os.path.join(folder, "stored.csv"), "tx", **ROLES)
        print(f"import of {len(frame) - args.push:,} transactions: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        result = importer.import_file(os.path.join(folder, "pushed.csv"), "tx", ignore=["scenario"])
        print(f"append of {args.push:,} ({result.rows_added:,} added): {time.perf_counter() - started:.2f} s; the "
              f"history pass read {read[-1]:,} of {len(frame) - args.push:,} stored transactions")


if __name__ == "__main__":
    main()
