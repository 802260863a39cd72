"""Benchmark: the LSTM sequence autoencoder over each card's last k transactions, on simulated transactions.

    python bench/sequences.py [--data data/transactions_sample.csv.gz /tmp/transactions.csv.gz] [--k 10]
                              [--train-size 200000] [--epochs 5] [--batch-size 1024] [--latent 16]
                              [--seeds 0,1,2] [--no-category] [--vae]

Per file: the step features (models.sequences.step_features: log amount, log seconds since the card's previous,
hour of day, first use of the merchant, channel and merchant category one-hot) and the sequences' row index of
every transaction (the seconds each takes). Then, once per seed of ``--seeds``: a SequenceAutoencoder trained,
without labels, on the sequences of ``--train-size`` transactions drawn at random (all of them when the file has
fewer); every transaction's sequence scored in chunks of ``--chunk`` (the seconds it takes); and how well the
per-sequence error alone ranks frauds: the frauds among the ``--top`` highest errors, per scenario (1-4; 4 is
card testing), against what a random draw of as many transactions finds on average, how many of the top hold a
card-testing step anywhere in their sequence, and the average precision of the error. Four rankings: the plain
error and the standardized one (``errors(..., standardized=True)``), over every transaction and over those whose
sequence has k valid steps (a card with k - 1 earlier transactions in the file; the others rank last).
``--vae`` also trains a SequenceVAE on the same sample and times ``generate``. Nothing is written: the figures
are printed, with the machine and the date.
"""
import argparse
import datetime
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402

from models.features import codes_of  # noqa: E402
from models.sequence_autoencoder import SequenceAutoencoder, SequenceVAE  # noqa: E402
from models.sequences import gather_sequences, sequence_rows, step_features  # noqa: E402

SAMPLE = os.path.join(ROOT, "data", "transactions_sample.csv.gz")
SCENARIOS = (1, 2, 3, 4)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data", nargs="+", default=[SAMPLE],
                        help="simulated transaction files (scripts/make_transactions.py's columns), each measured "
                             "on its own (default: the bundled sample)")
    parser.add_argument("--k", type=int, default=10, help="steps per sequence: the transaction and up to k - 1 "
                                                          "earlier ones of its card (default 10)")
    parser.add_argument("--train-size", type=int, default=200_000,
                        help="transactions whose sequences train the model, drawn at random (default 200,000)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--batch-size", type=int, default=1024, help="training batch size (default 1024)")
    parser.add_argument("--latent", type=int, default=16, help="the encoder LSTM's units (default 16)")
    parser.add_argument("--chunk", type=int, default=262_144,
                        help="transactions scored at a time: their sequences are built, then scored (default 262,144)")
    parser.add_argument("--top", default="100,500", help="comma-separated sizes of the top of the ranking (default "
                                                         "100,500)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds: one training sample and model each "
                                                      "(default 0)")
    parser.add_argument("--no-category", action="store_true", help="leave the merchant category out of the step "
                                                                   "features")
    parser.add_argument("--vae", action="store_true", help="also train a SequenceVAE on the same sample and time "
                                                           "generating as many sequences")
    return parser.parse_args()


def read(path):
    """The file's columns as arrays: epoch seconds, card, merchant, amount, channel and category codes, scenario."""
    frame = pd.read_csv(path, dtype={"card_id": str, "merchant_id": str})
    stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return {"seconds": seconds, "card": frame["card_id"].to_numpy(), "merchant": frame["merchant_id"].to_numpy(),
            "amount": frame["amount"].to_numpy(np.float64), "channel": codes_of(frame["channel"].to_numpy()),
            "category": codes_of(frame["merchant_category"].to_numpy()),
            "scenario": frame["scenario"].to_numpy(np.int64)}


def ranking(score, scenario, holds_testing, tops):
    """Lines: per top size, the frauds found in total and per scenario against a random draw's expectation, and
    the top's sequences that hold a card-testing step; then the average precision of ``score``."""
    order = np.argsort(-score, kind="stable")
    n = len(score)
    lines = []
    for top in tops:
        chosen = order[:top]
        found = ", ".join(f"s{s} {int(np.sum(scenario[chosen] == s))} ({top * np.sum(scenario == s) / n:.2f})"
                          for s in SCENARIOS)
        lines.append(f"    top {top}: frauds {int(np.sum(scenario[chosen] > 0))} (random "
                     f"{top * np.mean(scenario > 0):.2f}); by scenario (random): {found}; sequences holding a "
                     f"card-testing step {int(holds_testing[chosen].sum())} ({top * holds_testing.mean():.2f})")
    testing_or_genuine = np.isin(scenario, (0, 4))
    lines.append(f"    average precision {average_precision_score(scenario > 0, score):.4f} (random "
                 f"{np.mean(scenario > 0):.4f}); card testing (scenario 4) among genuine and card testing "
                 f"{average_precision_score(scenario[testing_or_genuine] == 4, score[testing_or_genuine]):.4f} "
                 f"(random {np.mean(scenario[testing_or_genuine] == 4):.4f})")
    return lines


def measure(path, args, tops, seeds):
    started = time.perf_counter()
    data = read(path)
    n = len(data["seconds"])
    print(f"\n== {path}: {n:,} transactions, {len(np.unique(data['card'])):,} cards, frauds by scenario "
          f"{ {s: int(np.sum(data['scenario'] == s)) for s in SCENARIOS} } (read in {time.perf_counter() - started:.1f} s)")
    started = time.perf_counter()
    categories = [("channel", data["channel"], None)] + ([] if args.no_category else
                                                         [("category", data["category"], None)])
    steps, names = step_features(data["seconds"], data["card"], data["merchant"], data["amount"], categories)
    features_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index = sequence_rows(data["seconds"], data["card"], args.k)
    index_seconds = time.perf_counter() - started
    full = index[:, 0] >= 0
    holds_testing = ((index >= 0) & (data["scenario"][np.maximum(index, 0)] == 4)).any(axis=1)
    print(f"step features: {steps.shape[1]} ({', '.join(names)}) in {features_seconds:.2f} s; row index of "
          f"{n:,} sequences of k={args.k} in {index_seconds:.2f} s; sequences with k valid steps: {full.mean():.2%}; "
          f"all sequences at once would take {n * args.k * steps.shape[1] * 4 / 1e9:.2f} GB")
    for seed in seeds:
        rng = np.random.default_rng(seed)
        train_rows = np.sort(rng.choice(n, min(args.train_size, n), replace=False))
        started = time.perf_counter()
        train_sequences, train_mask = gather_sequences(steps, index[train_rows])
        gather_seconds = time.perf_counter() - started
        model = SequenceAutoencoder(latent_dim=args.latent, seed=seed)
        model.fit(train_sequences, train_mask, epochs=args.epochs, batch_size=args.batch_size)
        losses = ", ".join(f"{v:.5f}" for v in model.meta["history"]["loss"])
        print(f"seed {seed}: training on {len(train_rows):,} sequences (gathered in {gather_seconds:.2f} s), "
              f"{args.epochs} epochs, batch {args.batch_size}, latent {args.latent}: "
              f"{model.meta['train_seconds']:.1f} s on {model.device} "
              f"({model.meta['train_seconds'] / args.epochs:.1f} s an epoch); loss by epoch {losses}")
        started = time.perf_counter()
        plain, standardized = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
        for start in range(0, n, args.chunk):
            sequences, mask = gather_sequences(steps, index[start:start + args.chunk])
            plain[start:start + len(mask)] = model.errors(sequences, mask)[0]
        scoring_seconds = time.perf_counter() - started
        for start in range(0, n, args.chunk):
            sequences, mask = gather_sequences(steps, index[start:start + args.chunk])
            standardized[start:start + len(mask)] = model.errors(sequences, mask, standardized=True)[0]
        print(f"  scoring {n:,} sequences in chunks of {args.chunk:,} (built and scored): {scoring_seconds:.1f} s")
        for label, score in (("plain", plain), ("standardized", standardized)):
            print(f"  {label} per-sequence error, every transaction:")
            print("\n".join(ranking(score, data["scenario"], holds_testing, tops)))
            print(f"  {label} per-sequence error, sequences with k valid steps first:")
            print("\n".join(ranking(np.where(full, score, score.min() - 1.0), data["scenario"], holds_testing, tops[:1] + tops[1:])))
        if args.vae:
            vae = SequenceVAE(latent_dim=args.latent, seed=seed)
            vae.fit(train_sequences, train_mask, epochs=args.epochs, batch_size=args.batch_size)
            started = time.perf_counter()
            generated = vae.generate(len(train_rows), seed=seed)
            print(f"  VAE: trained in {vae.meta['train_seconds']:.1f} s, generated {len(generated):,} sequences in "
                  f"{time.perf_counter() - started:.1f} s, all finite: {bool(np.isfinite(generated).all())}")


def main():
    args = parse_args()
    tops = [int(top) for top in args.top.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, keras {keras.__version__} ({keras.backend.backend()}), load "
          f"average at start {os.getloadavg()[0]:.2f}")
    for path in args.data:
        measure(path, args, tops, seeds)


if __name__ == "__main__":
    main()
