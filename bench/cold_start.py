"""Benchmark: which unsupervised score finds more frauds for the cold start, before any label.

    python bench/cold_start.py [--data data/creditcard_sample.csv.gz ../shared/data/creditcard.csv.gz]
                               [--seeds 3] [--out bench/results/cold_start.md]

Scores compared on each file (29 features: Time dropped, as ``manage.py demo`` imports it):
- robust: models.strategies.anomaly_scores, the robust-distance score the cold start uses today;
- autoencoder: the reconstruction error of the autoencoder as the worker fits it (labeler.worker.autoencoder:
  at most 50,000 rows, 10 epochs, seeds 0..K-1);
- rank average: the mean of both scores' ranks (as fractions of the file).
For each: frauds among the top 100 and top 500 by score, frauds among the 100 and 500 items the product's
cold start would queue with that score (models.strategies.cold_start: the top anomalies spread over k-means
clusters), and the average precision of the score over the whole file. The file's labels are used only to count.
Prints the figures and the machine and writes a Markdown table. Not a timed test.
"""
import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import rankdata  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labeler.worker.autoencoder import EPOCHS, FIT_ROWS, fit_autoencoder  # noqa: E402
from models.strategies import RobustScale, anomaly_scores, cold_start  # noqa: E402

TOPS = (100, 500)
SCORES = ("robust", "autoencoder", "rank average")


def load(path):
    frame = pd.read_csv(path)
    y = frame.pop("Class").to_numpy(dtype=np.int64)
    return frame.drop(columns=["Time"]).to_numpy(dtype=np.float32), y


def rank_average(first, second):
    """The mean of the ranks of two scores, each rank as a fraction in [0, 1]."""
    return ((rankdata(first) - 1) + (rankdata(second) - 1)) / (2 * max(len(first) - 1, 1))


def figures(score, y, z):
    """{'top100': frauds, ..., 'queue100': frauds, ..., 'ap': average precision} of one score."""
    order = np.argsort(-score, kind="stable")
    row = {f"top{k}": int(y[order[:k]].sum()) for k in TOPS}
    candidates = np.arange(len(y))
    for k in TOPS:
        row[f"queue{k}"] = int(y[cold_start(z, score, candidates, k, seed=0)].sum())
    row["ap"] = float(average_precision_score(y, score))
    return row


def run_file(path, seeds):
    X, y = load(path)
    print(f"\n{os.path.basename(path)}: {len(y):,} rows, {int(y.sum())} frauds, {X.shape[1]} features", flush=True)
    scale = RobustScale(X)
    z = scale.transform(X)
    robust = anomaly_scores(X, scale)
    per_seed = {name: [] for name in SCORES}
    robust_row = figures(robust, y, z)
    fit_seconds = []
    for seed in seeds:
        started = time.perf_counter()
        model = fit_autoencoder(X, seed=seed)
        error = model.anomaly_score(X)
        fit_seconds.append(time.perf_counter() - started)
        per_seed["robust"].append(robust_row)
        per_seed["autoencoder"].append(figures(error, y, z))
        per_seed["rank average"].append(figures(rank_average(error, robust), y, z))
        print(f"  seed {seed}: fit+score {fit_seconds[-1]:.1f} s on {model.device}; "
              + "; ".join(f"{name} {per_seed[name][-1]}" for name in SCORES[1:]), flush=True)
    return {"file": os.path.basename(path), "rows": len(y), "frauds": int(y.sum()), "per_seed": per_seed,
            "fit_seconds": fit_seconds}


def mean_row(rows):
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def markdown(results, seeds, machine, load_start, load_end):
    lines = ["# Cold start: robust distance vs autoencoder reconstruction error", "",
             f"Command: `python bench/cold_start.py --seeds {len(seeds)}`  ",
             f"Machine: {machine}  ",
             f"Load average at start / end: {load_start:.2f} / {load_end:.2f} (2 cores shared with other jobs; "
             "timings are under contention)", "",
             f"Autoencoder as the worker fits it: at most {FIT_ROWS:,} rows, {EPOCHS} epochs, seeds "
             f"{', '.join(map(str, seeds))} (figures are means over seeds; robust has no seed). "
             "top k: frauds among the k highest scores; queue k: frauds among the k items the product's cold "
             "start queues with that score (top anomalies spread over k-means clusters); AP: average precision "
             "of the score over the whole file.", ""]
    for result in results:
        lines += [f"## {result['file']}: {result['rows']:,} rows, {result['frauds']} frauds", "",
                  "| score | top 100 | top 500 | queue 100 | queue 500 | AP |",
                  "|---|---|---|---|---|---|"]
        for name in SCORES:
            row = mean_row(result["per_seed"][name])
            lines.append(f"| {name} | {row['top100']:.1f} | {row['top500']:.1f} | {row['queue100']:.1f} | "
                         f"{row['queue500']:.1f} | {row['ap']:.3f} |")
        means = {name: mean_row(result["per_seed"][name]) for name in SCORES}
        best = {key: max(SCORES, key=lambda name: means[name][key]) for key in ("top100", "top500", "ap")}
        lines += ["", f"Most frauds in the top 100: {best['top100']}; in the top 500: {best['top500']}; "
                      f"highest AP: {best['ap']}."]
        lines += ["", "Per seed (top 100 / top 500 / queue 100 / queue 500 / AP):", ""]
        for name in SCORES[1:]:
            cells = [f"{r['top100']}/{r['top500']}/{r['queue100']}/{r['queue500']}/{r['ap']:.3f}"
                     for r in result["per_seed"][name]]
            lines.append(f"- {name}: " + ", ".join(cells))
        lines += ["", f"Autoencoder fit + scoring of the file: "
                  f"{', '.join(f'{s:.1f}' for s in result['fit_seconds'])} s", ""]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[os.path.join(ROOT, "data", "creditcard_sample.csv.gz"),
                                                      os.path.join(ROOT, "..", "shared", "data",
                                                                   "creditcard.csv.gz")])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "cold_start.md"))
    args = parser.parse_args()
    import keras

    from models.keras_common import training_device

    machine = (f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} cpus, python "
               f"{platform.python_version()}, keras {keras.__version__} ({keras.backend.backend()}), "
               f"training device {training_device()}")
    load_start = os.getloadavg()[0]
    print(machine)
    print(f"load average at start: {load_start:.2f}")
    seeds = list(range(args.seeds))
    results = [run_file(path, seeds) for path in args.data if os.path.exists(path)]
    load_end = os.getloadavg()[0]
    print(f"load average at end: {load_end:.2f}")
    text = markdown(results, seeds, machine, load_start, load_end)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as out:
        out.write(text)
    print(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
