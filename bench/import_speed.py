"""Import speed: the full credit-card file through ``python manage.py import`` into a fresh temporary store.

Prints the import's wall time, rows per second and the peak RSS of the importing process, the start-up time of
``manage.py`` alone for comparison, and the machine. Target: under 10 s and under 1 GB.

    python bench/import_speed.py [PATH]   (default: ../shared/data/creditcard.csv.gz beside the repo)
"""
import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PATH = os.path.join("..", "shared", "data", "creditcard.csv.gz")
TARGET_SECONDS = 10.0
TARGET_RSS_MB = 1024.0


def run_child(args, env, log_path):
    """Run ``manage.py ARGS`` to the end; returns (exit code, wall seconds, peak RSS in MB of that process)."""
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH,
                        help=f"file to import, relative to the repository (default: {DEFAULT_PATH})")
    parser.add_argument("--label-column", default="Class", help="ground-truth column (default: Class)")
    args = parser.parse_args()
    path = os.path.abspath(os.path.join(ROOT, args.path))
    if not os.path.isfile(path):
        sys.exit(f"{path}: no such file")

    with tempfile.TemporaryDirectory(prefix="labeler-bench-") as folder:
        store = os.path.join(folder, "labeler.sqlite3")
        env = {**os.environ, "LABELER_DATABASE": store, "LABELER_INSTANCE": folder}
        log_path = os.path.join(folder, "out.log")
        code, startup, startup_rss = run_child(["--help"], env, log_path)
        if code:
            sys.exit(f"manage.py --help failed:\n{open(log_path).read()}")
        code, wall, rss = run_child(["import", path, "--dataset", "bench", "--label-column", args.label_column],
                                    env, log_path)
        output = open(log_path).read().strip()
        if code:
            sys.exit(f"import failed ({code}):\n{output}")
        with sqlite3.connect(store) as connection:
            rows = connection.execute("SELECT COUNT(*) FROM item").fetchone()[0]
            truth = connection.execute("SELECT COUNT(*) FROM ground_truth").fetchone()[0]
        store_mb = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)
                       if name.startswith("labeler.sqlite3")) / 2**20

    print(f"file:         {path} ({os.path.getsize(path) / 2**20:.1f} MB)")
    print(f"cli says:     {output}")
    print(f"rows:         {rows:,} items, {truth:,} ground-truth rows; store {store_mb:.0f} MB")
    print(f"wall time:    {wall:.2f} s  (target < {TARGET_SECONDS:.0f} s; manage.py start-up alone {startup:.2f} s)")
    print(f"rows/s:       {rows / wall:,.0f}  ({rows / max(wall - startup, 1e-9):,.0f} after start-up)")
    print(f"peak RSS:     {rss:.0f} MB  (target < {TARGET_RSS_MB:.0f} MB; start-up alone {startup_rss:.0f} MB)")
    print(f"machine:      {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    within = wall < TARGET_SECONDS and rss < TARGET_RSS_MB
    print(f"verdict:      {'within' if within else 'OUTSIDE'} target")


if __name__ == "__main__":
    main()
