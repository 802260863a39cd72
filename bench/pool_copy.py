"""The pool's columnar copy: what a retrain, a refill or a generative job pays to load the pool, read from the
database's feature blobs row by row against the copy in the model folder, and after an append of new rows.

Imports the file (default: the full credit-card file beside the repository, else the bundled sample) into a
fresh temporary SQLite store, then times, in the same run, ``load_pool`` without the copy (every blob decoded),
building the copy, loading it, and loading it again after appending ``--append`` rows (only those read from the
database). Prints each time, the ratio to the database read and the machine.

    python bench/pool_copy.py [--data PATH] [--repeat 5] [--append 1000]
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
FULL = os.path.join(ROOT, "..", "shared", "data", "creditcard.csv.gz")
SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")


def timed(function, repeat):
    """(median seconds over ``repeat`` calls, the last result)."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=FULL if os.path.exists(FULL) else SAMPLE,
                        help="credit-card CSV(.gz) to import (default: the full file when present, else the sample)")
    parser.add_argument("--repeat", type=int, default=5, help="calls timed per case; the median is printed")
    parser.add_argument("--append", type=int, default=1000, help="rows appended before the last case")
    args = parser.parse_args()

    from labeler.data.importer import import_file
    from labeler.store.db import database, open_database
    from labeler.store.migrations import upgrade
    from labeler.store import files
    from labeler.store.pool import load_pool

    workdir = tempfile.mkdtemp(prefix="pool-copy-bench-")
    folder = os.path.join(workdir, "models")
    print(f"# python bench/pool_copy.py --data {os.path.relpath(args.data, ROOT)} --repeat {args.repeat} "
          f"--append {args.append}   ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    frame = pd.read_csv(args.data)
    frame.insert(0, "tx", [f"t{i}" for i in range(len(frame))])
    first, extra = frame.iloc[:len(frame) - args.append], frame.iloc[len(frame) - args.append:]
    first.to_csv(os.path.join(workdir, "first.csv"), index=False)
    frame.to_csv(os.path.join(workdir, "all.csv"), index=False)
    open_database(os.path.join(workdir, "labeler.sqlite3"))
    with database.connection_context():
        upgrade()
        dataset = import_file(os.path.join(workdir, "first.csv"), "cc", label_column="Class", id_column="tx").dataset
        print(f"pool: {len(first):,} rows × {dataset.n_features} features; then {len(extra):,} appended")
        database_read, _ = timed(lambda: load_pool(dataset), args.repeat)
        build, _ = timed(lambda: load_pool(dataset, folder), 1)
        copy_read, (ids, _) = timed(lambda: load_pool(dataset, folder), args.repeat)
        assert len(ids) == len(first)
        fresh, _ = timed(lambda: files._digest_cache.clear() or load_pool(dataset, folder), args.repeat)
        import_file(os.path.join(workdir, "all.csv"), "cc")
        appended, (ids, _) = timed(lambda: load_pool(dataset, folder), 1)
        assert len(ids) == len(frame)
        after, _ = timed(lambda: load_pool(dataset, folder), args.repeat)
    rows = [("every blob from the database (no copy)", database_read), ("first load: database, copy written", build),
            ("the copy (memory-mapped; checksums known to this process)", copy_read),
            ("the copy in a new process (both files' checksums computed)", fresh),
            (f"after {len(extra):,} appended: the copy + the new rows, copy rewritten", appended),
            ("the copy again", after)]
    print(f"{'case':<72} {'seconds':>8} {'vs database':>12}")
    for name, seconds in rows:
        print(f"{name:<72} {seconds:8.3f} {seconds / database_read:11.2f}×")


if __name__ == "__main__":
    main()
