"""Benchmark: fraud typologies (issue 16). The simulated transactions (scripts/make_transactions.py) with their
scenario column as the label set: genuine plus four fraud types (1 large amount, 2 compromised terminal,
3 compromised card, 4 card testing), every type positive. Imports the file as bench/transactions.py does (time,
card, merchant, categories; features (b): the raw columns with the time and history features), splits by time
(the last ``--test-days`` are the test set) and runs, with the ground truth as the oracle:

- binary: the product's loop on fraud against genuine (is_fraud), as bench/transactions.py's (b);
- typologies: the product's loop over the five labels (models.learner.ActiveLearner with five classes, the
  four types positive: high risk is the highest probability of any type, pseudo-labels per class, model
  selection by macro average precision).

For each, after ``--budget`` labels: the recall at the top 1% of the test set's fraud scores per type (binary:
P(fraud); typologies: the highest probability of any type), and for the typology loop the share of each type's
test frauds whose most likely label is their own type (what the analyst is suggested).

    python bench/typologies.py --data /tmp/transactions.csv.gz [--budget 1000] [--batch 100] [--seeds 0,1,2]
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import transactions as transactions_bench  # noqa: E402  (after the path)

from labeler.store.settings import DEFAULTS  # noqa: E402

TYPES = ("genuine", "large amount", "compromised terminal", "compromised card", "card testing")


def type_recall(risk, scenario, share=0.01):
    """{type number: share of its test frauds among the top ``share`` of ``risk``}, and "all"."""
    top = np.argsort(-risk, kind="stable")[:max(1, int(round(share * len(risk))))]
    chosen = np.zeros(len(risk), dtype=bool)
    chosen[top] = True
    recall = {"all": float(chosen[scenario > 0].mean())}
    for number in range(1, len(TYPES)):
        if (scenario == number).any():
            recall[number] = float(chosen[scenario == number].mean())
    return recall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "transactions.csv.gz"),
                        help="simulated transactions; the full-size set is made there first when missing")
    parser.add_argument("--budget", type=int, default=1000, help="labels per run")
    parser.add_argument("--batch", type=int, default=100, help="labels per simulated batch")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the loop (the split is by time)")
    parser.add_argument("--test-days", type=int, default=30, help="the last days, kept as the test set")
    args = parser.parse_args()
    from labeler.worker import simulate

    if not os.path.exists(args.data):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_transactions.py"), "--out", args.data],
                       check=True)
    print(f"# fraud typologies, {time.strftime('%Y-%m-%d')}; machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    workdir = tempfile.mkdtemp(prefix="bench-typologies-")
    transactions_bench.import_timed(args.data, workdir)
    X, y, _, scenario, seconds, _, blocks = transactions_bench.load(workdir, args.data)
    scenario = scenario.astype(np.int64)
    cutoff = seconds.max() - args.test_days * 86_400
    pool, test = np.flatnonzero(seconds < cutoff), np.flatnonzero(seconds >= cutoff)
    counts = np.bincount(scenario[test], minlength=len(TYPES))
    print(f"{len(y):,} transactions; pool {len(pool):,}, test (last {args.test_days} days) {len(test):,} with "
          + ", ".join(f"{TYPES[k]} {counts[k]:,}" for k in range(1, len(TYPES)))
          + f"; budget {args.budget}, batch {args.batch}, seeds {args.seeds}")
    settings = dict(DEFAULTS)
    header = "".join(f"{TYPES[k]:>22s}" for k in range(1, len(TYPES)))
    print(f"{'':34s}{'all frauds':>12s}{header}")
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, labels, options in (("binary", y, {}),
                                      ("typologies", scenario, {"n_classes": len(TYPES), "positives": (1, 2, 3, 4)})):
            final = {}
            started = time.perf_counter()
            rows = simulate.run(X, labels, simulate.DEFAULT, args.budget, args.batch, seed, settings, final=final,
                                pool_and_test=(pool, test), categorical=blocks, **options)
            scores = final["test_scores"]
            risk = scores if scores.ndim == 1 else scores[:, 1:].max(axis=1)
            recall = type_recall(risk, scenario[test])
            found = rows[-1]["positives_found"]
            cells = "".join(f"{recall.get(k, float('nan')):>22.2f}" for k in range(1, len(TYPES)))
            print(f"seed {seed} {name:11s} top-1% recall   {recall['all']:>12.2f}{cells}   "
                  f"(frauds shown {found}, {time.perf_counter() - started:.0f} s)", flush=True)
            if scores.ndim == 2:
                predicted = scores.argmax(axis=1)
                own = "".join(f"{np.mean(predicted[scenario[test] == k] == k):>22.2f}"
                              if (scenario[test] == k).any() else f"{'-':>22s}" for k in range(1, len(TYPES)))
                per_type = rows[-1]["found"]
                print(f"seed {seed} {name:11s} labeled as its type{'':9s}{own}   (labels per type "
                      f"{per_type[1:]}, macro AP {rows[-1]['auprc']:.3f})", flush=True)


if __name__ == "__main__":
    main()
