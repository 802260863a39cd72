"""Benchmark: the simulate protocol on the full credit-card file, the product's loop against the baselines,
and the time of one query step (rescore + pick a batch of 10) on the whole 284,807-row file.

    python bench/active_learning.py [--data ../shared/data/creditcard.csv.gz] [--budget 1000] [--seeds 3]
                                    [--out bench/results/creditcard]

Reads the CSV with pandas straight into the in-memory simulation (labeler.worker.simulate.run, the code path of
``manage.py simulate``); 29 features (Time excluded) unless --with-time. Prints a table and the machine.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import real_tables  # noqa: E402

from labeler.store.settings import DEFAULTS as DEFAULT_SETTINGS  # noqa: E402
from labeler.worker import simulate  # noqa: E402
from models.learner import ActiveLearner  # noqa: E402

CHECKPOINTS = (100, 250, 500, 1000)


def load(path, with_time):
    """(features float32, binary truth) of the credit-card file at ``path`` (Time dropped unless ``with_time``)
    or, for ``path`` "caravan", of Caravan (bench/real_tables.py)."""
    if path == "caravan":
        return real_tables.caravan()
    return real_tables.creditcard(path, with_time)


def time_query_step(X, y, settings, model, threads, repeats=5):
    """Median seconds of one query step on all rows of ``X`` with ``threads`` OpenMP/BLAS threads: score them
    with ``model``, pick a batch of 10."""
    learner = ActiveLearner(X, np.arange(len(y)), settings, seed=0)
    unlabeled = np.arange(len(y))
    times = []
    with threadpool_limits(threads):
        for _ in range(repeats):
            started = time.perf_counter()
            learner.pick(learner.score(model), unlabeled, 10)
            times.append(time.perf_counter() - started)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "creditcard.csv.gz"),
                        help="The credit-card CSV (default: ../shared/data/creditcard.csv.gz), or 'caravan'.")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strategies", default="default,random,uncertainty")
    parser.add_argument("--with-time", action="store_true", help="Keep Time as a feature (30 features).")
    parser.add_argument("--set", action="append", default=[], help="Override a setting: KEY=JSON. Repeatable.")
    parser.add_argument("--out", default=None, help="Folder for results.json and curve.png.")
    parser.add_argument("--threads", type=int, default=None,
                        help="Limit OpenMP/BLAS threads of the simulation (default: the libraries' own choice, all cores).")
    args = parser.parse_args()

    if args.threads:
        threadpool_limits(args.threads)  # the simulation's threads; the query step is timed with 1 and all
    settings = {**DEFAULT_SETTINGS}
    for item in args.set:
        key, value = item.split("=", 1)
        settings[key] = json.loads(value)
    X, y = load(args.data, args.with_time)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, python {platform.python_version()}, threads: {args.threads or 'library default'}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"data: {args.data}: {X.shape[0]:,} rows, {X.shape[1]} features, {int(y.sum())} positives; budget {args.budget}, "
          f"batch {args.batch}, seeds 0..{args.seeds - 1}")
    print(f"settings: {json.dumps({k: v for k, v in settings.items() if DEFAULT_SETTINGS.get(k) != v}) or 'defaults'}")
    seeds = list(range(args.seeds))
    names = args.strategies.split(",")
    curves = {}
    final = {}
    for name in names:
        started = time.perf_counter()
        runs = []
        for seed in seeds:
            runs.append(simulate.run(X, y, name, args.budget, args.batch, seed, settings,
                                     final=final if name == simulate.DEFAULT and seed == 0 else None))
            last = runs[-1][-1]
            print(f"    {name} seed {seed}: AUPRC {last['auprc']:.3f}, found {last['positives_found']} "
                  f"({time.perf_counter() - started:.0f} s so far)", flush=True)
        curves[name] = simulate.average(runs)
        print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
    pool_positives = int(round(y.sum() * (1 - simulate.TEST_SHARE)))
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    header = " ".join(f"AUPRC@{c:<5}" for c in checkpoints)
    print(f"\n{'strategy':<12} {header} {'min@last':>8} {'found@last':>10} {'s/batch':>8}")
    for name, curve in curves.items():
        by_labels = {row["labels"]: row for row in curve}
        cells = " ".join(f"{by_labels[c]['auprc']:<10.3f}" if c in by_labels else f"{'-':<10}" for c in checkpoints)
        last = curve[-1]
        print(f"{name:<12} {cells} {last['auprc_min']:>8.3f} {last['positives_found']:>6.1f}/{pool_positives} "
              f"{np.mean([row['seconds'] for row in curve]):>8.2f}")
    if final.get("model") is not None:
        print(f"\nquery step (score {len(y):,} rows with the default loop's last model, seed 0, "
              f"{final['model'].kind}, + pick a batch of 10), median of 5, load average {os.getloadavg()[0]:.1f}:")
        for threads in sorted({1, os.cpu_count() or 1}):
            print(f"  {threads} thread(s): {time_query_step(X, y, settings, final['model'], threads):.3f} s")
    if args.out:
        main_name = names[0]
        results = {"dataset": os.path.basename(args.data), "strategy": main_name, "budget": args.budget,
                   "batch": args.batch, "seeds": seeds, "curve": curves[main_name],
                   "baselines": {name: curves[name] for name in names[1:]}}
        print("wrote", *simulate.write_outputs(results, args.out))


if __name__ == "__main__":
    main()
