"""Benchmark: the book chapter's digits exercise (issue 16). How few labeled images does each approach need to
pass 90% test accuracy?

scikit-learn's bundled digits (1,797 images of 8x8, ten classes; no download), pixels / 16, the simulate
protocol: a seeded stratified 80/20 split (1,437 images in the pool, 360 in the test set), batches of 10 labels
with the ground truth as the oracle. Compared:

- default: the product's loop for ten labels without a positive class (labeler.worker.simulate.run: the
  pool's representatives as the cold start, then margin uncertainty with some exploration, pseudo-labels, model
  selection between multinomial logistic regression and its blend with gradient boosting);
- random: random labels, multinomial logistic regression;
- sgan: the chapter's semi-supervised GAN (models.sgan, the convolutional models for 8x8 images, ten classes plus
  "fake", checkpoints and the collapse guard) trained on the default loop's labels at each checkpoint plus the
  rest of the pool unlabeled; it needs two labels of every class (one to validate its checkpoints with).

Prints test accuracy at 10, 20, 50, 100, 200 and 500 labels per seed and approach, and the fewest labels (to the
batch of 10) at which each reaches 90%.

    python bench/digits.py [--seeds 0,1,2] [--budget 500] [--sgan-steps 2000] [--no-sgan] [--out bench/results/digits.json]
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labeler.store.settings import DEFAULTS  # noqa: E402  (after the path)
from labeler.worker import simulate  # noqa: E402

CHECKPOINTS = (10, 20, 50, 100, 200, 500)
TARGET = 0.9
N_CLASSES = 10


def digits():
    """(pixels in [0, 1] float32, class indices) of scikit-learn's bundled digits."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def engine_settings():
    """The loop's settings of a ten-label dataset (labeler.store.settings.engine_settings: margin uncertainty)."""
    settings = {key: value for key, value in DEFAULTS.items() if key != "labeling"}
    return {**settings, "uncertainty": "margin"}


def first_reaching(rows, target=TARGET):
    """The fewest labels whose accuracy is at least ``target``, None when no row reaches it."""
    return next((row["labels"] for row in rows if row["accuracy"] >= target), None)


def sgan_accuracy(X, y, pool, test, labeled, steps, seed):
    """Test accuracy of the chapter's SGAN trained on the pool rows ``labeled`` (in labeling order) and the rest
    of the pool unlabeled; (None, why) when it cannot train."""
    from models import sgan as sgan_module

    counts = np.bincount(y[labeled], minlength=N_CLASSES)
    if counts.min() < 2:
        return None, f"a class has {counts.min()} label(s); the SGAN needs 2 of each"
    unlabeled = np.setdiff1d(pool, labeled)
    model = sgan_module.SGAN(n_classes=N_CLASSES, seed=seed, image_shape=(8, 8, 1))
    try:
        model.fit(X[labeled], y[labeled], X[unlabeled], steps=steps)
    except sgan_module.CollapsedError as error:
        return None, f"collapsed: {error}"
    return float(np.mean(model.predict(X[test]) == y[test])), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (settings were chosen on 10-12).")
    parser.add_argument("--budget", type=int, default=500, help="Labels per run.")
    parser.add_argument("--batch", type=int, default=10, help="Labels per batch.")
    parser.add_argument("--sgan-steps", type=int, default=2000, help="Training steps of each SGAN.")
    parser.add_argument("--no-sgan", action="store_true", help="Leave the SGAN out (it trains Keras models).")
    parser.add_argument("--out", default=None, help="Write every figure as JSON here.")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    X, y = digits()
    settings = engine_settings()
    print(f"digits: {len(y)} images of 8x8, {N_CLASSES} classes; budget {args.budget}, batch {args.batch}, "
          f"seeds {seeds}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    results = {"seeds": seeds, "checkpoints": list(CHECKPOINTS), "runs": {}}
    for seed in seeds:
        pool, test = simulate.split(y, seed)
        for strategy in (simulate.DEFAULT, simulate.RANDOM):
            final = {}
            started = time.perf_counter()
            rows = simulate.run(X, y, strategy, args.budget, args.batch, seed, settings, final=final,
                                n_classes=N_CLASSES, positives=())
            accuracy = {row["labels"]: round(row["accuracy"], 3) for row in rows if row["labels"] in CHECKPOINTS}
            results["runs"][f"{strategy}/{seed}"] = {"accuracy": accuracy, "first_90": first_reaching(rows),
                                                     "curve": [round(row["accuracy"], 4) for row in rows],
                                                     "seconds": round(time.perf_counter() - started, 1)}
            print(f"seed {seed} {strategy:8s} {accuracy} first >= 90%: {first_reaching(rows)} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            if strategy == simulate.DEFAULT and not args.no_sgan:
                labeled = final["labeled"]
                sgan_rows, notes = [], {}
                for labels in CHECKPOINTS:
                    if labels > len(labeled):
                        break
                    started = time.perf_counter()
                    accuracy_now, why = sgan_accuracy(X, y, pool, test, labeled[:labels], args.sgan_steps, seed)
                    sgan_rows.append({"labels": labels, "accuracy": accuracy_now if why is None else 0.0})
                    notes[labels] = why or round(accuracy_now, 3)
                    print(f"seed {seed} sgan     {labels} labels: {notes[labels]} "
                          f"({time.perf_counter() - started:.0f} s)", flush=True)
                results["runs"][f"sgan/{seed}"] = {"accuracy": notes, "first_90": first_reaching(sgan_rows)}
    print("\nfewest labels reaching 90% test accuracy (checkpoint resolution for the SGAN):")
    for strategy in ("default", "random", "sgan"):
        found = [results["runs"].get(f"{strategy}/{seed}", {}).get("first_90") for seed in seeds]
        if any(f"{strategy}/{seed}" in results["runs"] for seed in seeds):
            print(f"  {strategy:8s} " + "  ".join(f"seed {seed}: {value}" for seed, value in zip(seeds, found)))
    if args.out:
        with open(args.out, "w") as stream:
            json.dump(results, stream, indent=1)


if __name__ == "__main__":
    main()
