"""Benchmark: how many pseudo-labels the loop writes, and what a cap as a share of the pool does to it (issue 17).

The simulate protocol on the bundled credit-card sample (28,481 rows, a stratified 80/20 split per seed: a pool of
22,784), the default loop with batches of 10. For each cap (``pseudo_share``: at most this share of the pool, and
never more than ``pseudo_limit``, 20,000) it prints the pseudo-labels chosen after 50, 150 and 500 human labels as a
share of the pool, and the test AUPRC there. The old default is the share 1.0 (the number alone).

    python bench/pseudo_share.py [--shares 1,0.2,0.1,0.05] [--seeds 0,1,2] [--budget 500]
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labeler.store.settings import DEFAULTS  # noqa: E402  (after the path)
from labeler.worker import simulate  # noqa: E402
from models.learner import ActiveLearner  # noqa: E402

SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")
CHECKPOINTS = (50, 150, 500)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", default="1,0.2,0.1,0.05", help="Comma-separated caps (share of the pool).")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds.")
    parser.add_argument("--budget", type=int, default=500, help="Human labels per run.")
    args = parser.parse_args()
    frame = pd.read_csv(SAMPLE)
    y = frame.pop("Class").to_numpy().astype(np.int8)
    frame.pop("Time")
    X = frame.to_numpy(np.float32)
    print(f"# pseudo-label share, {time.strftime('%Y-%m-%d')}; {len(y):,} rows of the credit-card sample, "
          f"{int(y.sum())} frauds; {platform.platform()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}")
    chosen = []  # the pseudo-labels each training chose, in order
    original = ActiveLearner.pseudo

    def recording(learner, p_positive, unlabeled):
        result = original(learner, p_positive, unlabeled)
        chosen.append(0 if result is None else len(result[0]))
        return result

    ActiveLearner.pseudo = recording
    settings = {key: value for key, value in DEFAULTS.items() if key != "labeling"}
    print(f"{'share':>6s} {'seed':>4s} " + " ".join(f"{f'pseudo@{c}':>10s}" for c in CHECKPOINTS)
          + " " + " ".join(f"{f'AUPRC@{c}':>10s}" for c in CHECKPOINTS))
    for share in (float(value) for value in args.shares.split(",")):
        shares, figures = [], []
        for seed in (int(value) for value in args.seeds.split(",")):
            chosen.clear()
            rows = simulate.run(X, y, simulate.DEFAULT, args.budget, 10, seed, {**settings, "pseudo_share": share})
            pool = len(simulate.split(y, seed)[0])
            # a training happens after each batch once both classes are labeled: align from the end
            trained = [row["labels"] for row in rows][-len(chosen):]
            counts = dict(zip(trained, chosen))
            shares.append([counts.get(c, 0) / pool for c in CHECKPOINTS])
            figures.append([next(row["auprc"] for row in rows if row["labels"] == c) for c in CHECKPOINTS])
            print(f"{share:6.2f} {seed:4d} " + " ".join(f"{value:10.1%}" for value in shares[-1]) + " "
                  + " ".join(f"{value:10.3f}" for value in figures[-1]), flush=True)
        print(f"{share:6.2f} mean " + " ".join(f"{value:10.1%}" for value in np.mean(shares, axis=0)) + " "
              + " ".join(f"{value:10.3f}" for value in np.mean(figures, axis=0)), flush=True)


if __name__ == "__main__":
    main()
