"""Import speed against a bare pandas read of the same file, and the importer's peak memory.

For each file (default: the full credit-card file and the bundled sample) and each repeat, one child process
times a bare ``pandas.read_csv(PATH)`` and the next imports the file with ``labeler.data.importer.import_file``
(``--label-column Class``) into a fresh store (a temporary SQLite file; with ``--postgres URL`` also a fresh
PostgreSQL database on that server), so the two are measured back to back under the same load. Prints each
pair, the median ratio import / read (target <= 2.0 on the full file), rows per second, and each child's peak
RSS: the read's, and the importer's with what it held before the import began (Python, pandas, the store), so
the import's own share is visible. Each file is imported once more at a second chunk size: the peak follows
the chunk size (and the chunks in flight: the one imported, the one read ahead), not the file. Finally one ``manage.py import`` of the first file, start-up
included, as a user sees it.

    python bench/import_speed.py [PATH ...] [--repeats 3] [--chunk-rows 50000 10000] [--postgres URL]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PATHS = [os.path.join("..", "shared", "data", "creditcard.csv.gz"),
                 os.path.join("data", "creditcard_sample.csv.gz")]
TARGET_RATIO = 2.0


def peak_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_read(path):
    """Time a bare pandas read of ``path``; print JSON."""
    import pandas as pd
    before = peak_mb()
    start = time.perf_counter()
    frame = pd.read_csv(path)
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(frame), "before_mb": before,
                      "peak_mb": peak_mb()}))


def child_import(path, store, chunk_rows, label_column):
    """Import ``path`` into a fresh store at ``store`` (a file or a database URL) and time it; print JSON."""
    sys.path.insert(0, ROOT)
    from labeler.data.importer import import_file
    from labeler.store.db import database, open_database
    from labeler.store.migrations import upgrade
    open_database(store)
    with database.connection_context():
        upgrade()
        before = peak_mb()
        start = time.perf_counter()
        result = import_file(path, "bench", label_column=label_column, chunk_rows=chunk_rows)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rows": result.rows_added, "before_mb": before, "peak_mb": peak_mb()}))


def run_child(*args):
    """Run this script as a child with ``args``; returns its JSON. Raises RuntimeError when it fails."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"child {args[0]} failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Postgres:
    """Fresh databases on the server at ``url``, one per import."""

    def __init__(self, url):
        import psycopg2
        self.url, self.count = url, 0
        self.connection = psycopg2.connect(url)
        self.connection.autocommit = True

    def fresh(self):
        self.count += 1
        name = f"labeler_bench_{os.getpid()}_{self.count}"
        with self.connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        return name, self.url.rsplit("/", 1)[0] + "/" + name

    def drop(self, name):
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name}")


def load():
    return os.getloadavg()[0]


def measure(path, store_kind, chunk_rows, args, postgres):
    """(read figures, import figures) of one back-to-back pair."""
    read = run_child("read", path)
    with tempfile.TemporaryDirectory(prefix="labeler-bench-") as folder:
        if store_kind == "sqlite":
            imported = run_child("import", path, os.path.join(folder, "labeler.sqlite3"), chunk_rows,
                                 args.label_column)
        else:
            name, url = postgres.fresh()
            try:
                imported = run_child("import", path, url, chunk_rows, args.label_column)
            finally:
                postgres.drop(name)
    return read, imported


def line(label, read, imported):
    return (f"  {label:34s} read {read['seconds']:5.2f} s   import {imported['seconds']:6.2f} s   "
            f"ratio {imported['seconds'] / read['seconds']:5.2f}   "
            f"{imported['rows'] / imported['seconds']:9,.0f} rows/s"
            f"   peak RSS: read {read['peak_mb']:4.0f} MB, import {imported['peak_mb']:4.0f} MB "
            f"({imported['before_mb']:.0f} MB before it, +{imported['peak_mb'] - imported['before_mb']:.0f} MB)"
            f"   load {load():.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=DEFAULT_PATHS,
                        help="files to import, relative to the repository (default: the full credit-card file "
                             "beside the repository and the bundled sample)")
    parser.add_argument("--label-column", default="Class", help="ground-truth column (default: Class)")
    parser.add_argument("--repeats", type=int, default=3, help="back-to-back pairs per file and store (default 3)")
    parser.add_argument("--chunk-rows", type=int, nargs=2, default=[50_000, 10_000], metavar=("DEFAULT", "OTHER"),
                        help="the importer's chunk size, and a second one each file is imported at once more "
                             "(default: 50000 10000)")
    parser.add_argument("--postgres", metavar="URL", help="also import into fresh databases on this PostgreSQL "
                                                          "server (the URL of a database there to connect to)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "read":
            child_read(rest[0])
        else:
            child_import(rest[0], rest[1], int(rest[2]), rest[3])
        return

    paths = [os.path.abspath(os.path.join(ROOT, path)) for path in args.paths]
    for path in paths:
        if not os.path.isfile(path):
            sys.exit(f"{path}: no such file")
    postgres = Postgres(args.postgres) if args.postgres else None
    stores = ["sqlite"] + (["postgresql"] if postgres else [])
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {load():.2f} at the start")
    default_rows, other_rows = args.chunk_rows
    verdicts = []
    for path in paths:
        print(f"{os.path.relpath(path, ROOT)} ({os.path.getsize(path) / 2**20:.1f} MB):")
        for store in stores:
            ratios = []
            for repeat in range(args.repeats):
                read, imported = measure(path, store, default_rows, args, postgres)
                ratios.append(imported["seconds"] / read["seconds"])
                print(line(f"{store}, chunks of {default_rows:,}, run {repeat + 1}", read, imported), flush=True)
            print(f"  {store}: {imported['rows']:,} rows; import / read median {statistics.median(ratios):.2f} "
                  f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
            if path == paths[0]:
                verdicts.append((store, statistics.median(ratios)))
        read, imported = measure(path, "sqlite", other_rows, args, postgres)
        print(line(f"sqlite, chunks of {other_rows:,}", read, imported), flush=True)

    with tempfile.TemporaryDirectory(prefix="labeler-bench-") as folder:
        env = {**os.environ, "LABELER_DATABASE": os.path.join(folder, "labeler.sqlite3"), "LABELER_INSTANCE": folder}
        start = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "import", paths[0], "--dataset", "bench", "--label-column",
                        args.label_column], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"manage.py import {os.path.relpath(paths[0], ROOT)}: {time.perf_counter() - start:.2f} s wall, "
              f"start-up included (load {load():.1f})")
    for store, ratio in verdicts:
        print(f"verdict ({store}, {os.path.basename(paths[0])}): import / read median {ratio:.2f}, "
              f"{'within' if ratio <= TARGET_RATIO else 'OUTSIDE'} the target of {TARGET_RATIO}")


if __name__ == "__main__":
    main()
