"""Benchmark: the sequence autoencoder put to work on raw transactions (issue 15). Imports the simulated
transactions (scripts/make_transactions.py) with their roles as bench/transactions.py does, splits them by time
(the pool is every day before the last ``--test-days``), and

1. times the product's sequence job (labeler.worker.sequences.compute: step features, fit on a sample, every
   transaction's errors and latent vector) on the whole store, and names the device;
2. fits the same model on the pool's transactions only and scores every transaction (no look-ahead into the
   test weeks);
3. cold start: frauds among the pool's top 100 / 500 by each anomaly score (the robust distance the loop starts
   from, the tabular autoencoder's error, the sequence error: standardized or plain, over every transaction or
   over those whose card has k - 1 earlier transactions), per scenario, against a random draw;
4. the default loop with the time and history features, with and without the sequence features (the encoder's
   vector and the standardized error), and with its cold start taking the tops of the robust distance and of
   the full sequences' error (models.strategies.rank_union, as the queue refill does with stored sequence
   errors): test AUPRC at each budget and the recall at the top 1% of the test per scenario;
5. with ``--balance``, on each seed's labels of the default loop with (b) at the last budget: a model of the
   sequences alone (logistic regression on the encoder's vector and the error), without and with the sequence
   VAE's synthetic frauds (fitted on the labeled frauds' sequences, drawn until the classes are even but at least
   as many as the labeled frauds, encoded like real ones): the chapter's VAE balancing, in sequence space, against the loop's own model.

    python bench/sequence_loop.py --data /tmp/transactions.csv.gz --seeds 0,1,2
    python bench/sequence_loop.py --data data/transactions_sample.csv.gz --test-days 14 --seeds 0
"""
import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np
from sklearn.metrics import average_precision_score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.transactions import import_timed, load, recall_at_top  # noqa: E402  (after the path)
from labeler.store.settings import DEFAULTS  # noqa: E402

SCENARIOS = (1, 2, 3, 4)


def top_counts(score, y, scenario, rows, tops):
    """{top: (frauds, {scenario: frauds})} among ``rows`` ranked by ``score`` (highest first)."""
    order = rows[np.argsort(-score[rows], kind="stable")]
    result = {}
    for top in tops:
        chosen = order[:top]
        result[top] = (int(y[chosen].sum()), {s: int(np.sum(scenario[chosen] == s)) for s in SCENARIOS})
    return result


def describe_counts(name, counts):
    return f"{name:44s} " + " | ".join(
        f"top {top}: {total} ({', '.join(f'{s}: {n}' for s, n in per.items())})" for top, (total, per) in counts.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "transactions.csv.gz"),
                        help="simulated transactions (python scripts/make_transactions.py --out PATH)")
    parser.add_argument("--budgets", default="250,500,1000", help="label counts to report")
    parser.add_argument("--batch", type=int, default=50, help="labels per simulated batch")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the loop")
    parser.add_argument("--test-days", type=int, default=30, help="the last days, kept as the test set")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the sequence autoencoder "
                        "(default: the sequence job's)")
    parser.add_argument("--fit-rows", type=int, default=None, help="sequences it is fitted on (default: the job's)")
    parser.add_argument("--tops", default="100,500", help="cold-start list lengths")
    parser.add_argument("--skip-loop", action="store_true", help="stop after the cold-start rankings")
    parser.add_argument("--variants", default="", help="comma-separated loop variants to run (default: all)")
    parser.add_argument("--balance", action="store_true", help="measure the sequence VAE's synthetic frauds (5.)")
    args = parser.parse_args()
    from labeler.store.db import Dataset, database
    from labeler.store.pool import load_pool
    from labeler.worker import sequences as sequence_job
    from labeler.worker import simulate
    from labeler.worker.autoencoder import fit_autoencoder
    from models import sequences, strategies
    from models import weak
    from models.sequence_autoencoder import SequenceAutoencoder, SequenceVAE

    epochs = args.epochs or sequence_job.EPOCHS
    fit_rows = args.fit_rows or sequence_job.FIT_ROWS
    budgets = [int(b) for b in args.budgets.split(",")]
    tops = [int(t) for t in args.tops.split(",")]
    print(f"# sequence autoencoder on raw transactions, {time.strftime('%Y-%m-%d')}; machine: {platform.platform()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    workdir = tempfile.mkdtemp(prefix="bench-sequences-")
    import_timed(args.data, workdir)
    X, y, names, scenario, seconds, groups, blocks = load(workdir, args.data)
    cutoff = seconds.max() - args.test_days * 86_400
    pool, test = np.flatnonzero(seconds < cutoff), np.flatnonzero(seconds >= cutoff)
    print(f"{len(y):,} transactions, {int(y.sum()):,} frauds; pool {len(pool):,}, test the last {args.test_days} "
          f"days {len(test):,} ({int(y[test].sum()):,} frauds)")

    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "tx")
        started = time.perf_counter()
        record = sequence_job.compute(dataset, None, os.path.join(workdir, "models"), epochs=epochs,
                                      fit_rows=fit_rows)
        print(f"the sequence job on all {record.pool_rows:,} transactions: {time.perf_counter() - started:.0f} s "
              f"(training {record.details['train_seconds']:.0f} s on {record.details['fit_rows']:,} sequences, "
              f"{epochs} epochs) on {record.device}")
        ids, features = load_pool(dataset)
        steps, step_names, times, cards = sequence_job.transaction_steps(dataset, ids, features)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(pool, size=min(len(pool), fit_rows), replace=False))
    started = time.perf_counter()
    model = SequenceAutoencoder(seed=0).fit(*sequences.card_sequences(times, cards, steps, sequence_job.STEPS, sample),
                                            epochs=epochs, batch_size=sequence_job.BATCH)
    fitted = time.perf_counter() - started
    standardized, plain = np.empty(len(y), np.float32), np.empty(len(y), np.float32)
    latent, full = None, np.empty(len(y), bool)
    started = time.perf_counter()
    for start in range(0, len(y), sequence_job.CHUNK):
        rows = np.arange(start, min(start + sequence_job.CHUNK, len(y)))
        chunk, mask = sequences.card_sequences(times, cards, steps, sequence_job.STEPS, rows)
        standardized[rows] = model.errors(chunk, mask, standardized=True)[0]
        plain[rows] = model.errors(chunk, mask)[0]
        vectors = model.latent(chunk, mask)
        latent = np.empty((len(y), vectors.shape[1]), np.float32) if latent is None else latent
        latent[rows] = vectors
        full[rows] = mask.all(axis=1)
    print(f"fitted on {len(sample):,} pool sequences in {fitted:.0f} s, every transaction scored in "
          f"{time.perf_counter() - started:.0f} s; step features: {', '.join(step_names)}")

    print(f"\ncold start, the pool's {len(pool):,} transactions ({int(y[pool].sum()):,} frauds; random draw: "
          + ", ".join(f"top {top} {top * y[pool].mean():.1f}" for top in tops) + "):")
    robust = strategies.anomaly_scores(X[pool], strategies.RobustScale(X[pool]))
    pool_score = np.full(len(y), -np.inf)
    pool_score[pool] = robust
    print(describe_counts("robust distance (the loop's cold start)", top_counts(pool_score, y, scenario, pool, tops)))
    tabular = fit_autoencoder(X[pool]).anomaly_score(X[pool])
    pool_score[pool] = tabular
    print(describe_counts("tabular autoencoder error", top_counts(pool_score, y, scenario, pool, tops)))
    full_pool = pool[full[pool]]
    for title, score, rows in (("sequence error, standardized", standardized, pool),
                               ("sequence error, standardized, full sequences", standardized, full_pool),
                               ("sequence error, plain", plain, pool),
                               ("sequence error, plain, full sequences", plain, full_pool)):
        print(describe_counts(title, top_counts(score, y, scenario, rows, tops)))
    print(f"(full sequences: {len(full_pool):,} of the pool's transactions, {int(y[full_pool].sum()):,} frauds)")
    if args.skip_loop:
        return

    settings = dict(DEFAULTS)
    balance_lines = []

    def encoded(chunk, mask):
        """Rows of the sequence model: the encoder's vector and the standardized error."""
        return np.column_stack([model.latent(chunk, mask), model.errors(chunk, mask, standardized=True)[0]])

    def balance(labeled, seed, loop_scores):
        """One line: test AUPRC and card-testing recall of the sequence model without and with VAE frauds."""
        rows = np.column_stack([latent, standardized])
        frauds = labeled[y[labeled] == 1]
        chunk, mask = sequences.card_sequences(times, cards, steps, sequence_job.STEPS, frauds)
        vae = SequenceVAE(seed=seed).fit(chunk, mask, epochs=50, batch_size=64)
        drawn = max(len(frauds), len(labeled) - 2 * len(frauds))  # the loop's labels are often even already
        synthetic = vae.generate(drawn, seed=seed)
        synthetic_rows = encoded(synthetic, np.ones(synthetic.shape[:2], dtype=bool))
        cells = [f"loop's model {average_precision_score(y[test], loop_scores):.3f}"]
        for title, X_fit, y_fit in (("sequence model", rows[labeled], y[labeled]),
                                    (f"+ {drawn} VAE frauds", np.vstack([rows[labeled], synthetic_rows]),
                                     np.concatenate([y[labeled], np.ones(drawn, dtype=y.dtype)]))):
            scores = weak.fit(weak.LOGISTIC, X_fit, y_fit, seed=seed).raw(rows[test])
            recall = recall_at_top(scores, y[test], scenario[test])
            cells.append(f"{title} {average_precision_score(y[test], scores):.3f} (card testing at the top 1%: "
                         f"{recall.get('4', 0.0):.2f})")
        return f"seed {seed}, {len(labeled)} labels ({len(frauds)} frauds): test AUPRC " + ", ".join(cells)

    with_sequences = np.hstack([X, latent, standardized[:, None]])
    print(f"\nthe default loop, batch {args.batch}, seeds {args.seeds}:")
    robust_all = strategies.anomaly_scores(X, strategies.RobustScale(X[pool]))
    cold_start = strategies.rank_union(robust_all, np.where(full, standardized, np.nan))
    variants = {"(b) time and history": (X, None), "(b) + sequence vector and error": (with_sequences, None),
                "(b) cold start + sequence error": (X, cold_start)}
    chosen = args.variants.split(",") if args.variants else list(variants)
    for title in chosen:
        matrix, variant_cold_start = variants[title]
        runs, recalls = [], []
        started = time.perf_counter()
        for seed in (int(s) for s in args.seeds.split(",")):
            final = {}
            runs.append(simulate.run(matrix, y, simulate.DEFAULT, max(budgets), args.batch, seed, settings,
                                     final=final, pool_and_test=(pool, test), categorical=blocks,
                                     cold_start=variant_cold_start))
            recalls.append(recall_at_top(final["test_scores"], y[test], scenario[test]))
            if args.balance and matrix is X and variant_cold_start is None:
                balance_lines.append(balance(final["labeled"], seed, final["test_scores"]))
        curve = {row["labels"]: row for row in simulate.average(runs)}
        cells = [f"{b}: AUPRC {curve[b]['auprc']:.3f}, frauds {curve[b]['positives_found']:.0f}"
                 for b in budgets if b in curve]
        recall = {key: np.mean([r[key] for r in recalls]) for key in recalls[0]}
        print(f"{title:34s} " + " | ".join(cells) + f"  ({(time.perf_counter() - started) / len(runs):.0f} s a run)")
        print(f"{'':35s}recall at the top 1% after {max(budgets)} labels: "
              + ", ".join(f"{key} {value:.2f}" for key, value in recall.items()))

    if balance_lines:
        print("\nthe sequence VAE's synthetic frauds, on the default loop's labels (b):")
        for line in balance_lines:
            print(line)


if __name__ == "__main__":
    main()
