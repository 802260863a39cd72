"""Benchmark: raw transactions (issue 14). Imports the simulated transactions (scripts/make_transactions.py) into a
temporary store with their roles (time, card, merchant, categories), against a bare pandas read of the same file
in the same run; then runs the simulate protocol with a split by time (the pool is every day before the last
``--test-days``, the test those days, as a fraud team evaluates) with

  (a) the raw columns only: the amount and the categories one-hot;
  (b) the same plus the time and history features (the card's and the merchant's recent transactions);
  (c) (b) plus the merchant's share of frauds among the labels so far, taken from labels at each training;

the categories are native categorical features of the boosted model (models.weak.NativeCategories), and once
more one-hot, as before, for (b). The import is timed with the store's floor beside it: the same rows copied
inside SQLite into an empty table with the same indexes;

for the default loop and random picks, and as the ceiling a gradient-boosted model trained on every pool label
with (b)'s features. Prints test AUPRC and frauds shown at each budget, and the recall at the top 1% of test
scores per fraud scenario.

    python bench/transactions.py --data /tmp/transactions.csv.gz       # made first when missing (full size)
    python bench/transactions.py --data data/transactions_sample.csv.gz --budgets 100,250,500 --test-days 14
"""
import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labeler.store.settings import DEFAULTS  # noqa: E402  (after the path)

IMPORT_OPTIONS = ["--label-column", "is_fraud", "--id-column", "transaction_id", "--time-column", "timestamp",
                  "--entity-column", "card_id", "--entity-column", "merchant_id", "--ignore", "scenario"]
HISTORY_FROM = ("hour of day",)  # the first derived feature that (a) leaves out: time, then history


def import_timed(path, workdir):
    """Seconds of a bare pandas read of ``path``, of `manage.py import` (features included), and of the store's
    floor: the imported rows copied inside SQLite (no Python, no parsing) into an empty table with the same
    indexes, then committed."""
    started = time.perf_counter()
    pd.read_csv(path)
    bare = time.perf_counter() - started
    database = os.path.join(workdir, "labeler.sqlite3")
    env = {**os.environ, "LABELER_DATABASE": database, "LABELER_INSTANCE": workdir}
    started = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "import", path, "--dataset", "tx",
                    *IMPORT_OPTIONS], env=env, check=True, cwd=ROOT)
    imported = time.perf_counter() - started
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute(f"ATTACH DATABASE '{os.path.join(workdir, 'floor.sqlite3')}' AS floor")
    connection.execute("PRAGMA floor.cache_size = -64000")  # the store's own settings (labeler.store.db)
    connection.execute("PRAGMA floor.journal_mode = wal")
    connection.execute("PRAGMA floor.synchronous = normal")
    schema = connection.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'item' AND sql IS NOT NULL "
                                "ORDER BY type DESC").fetchall()  # the table, then its indexes
    for (statement,) in schema:
        connection.execute(statement.replace('CREATE TABLE "item"', 'CREATE TABLE floor."item"', 1)
                           .replace('CREATE UNIQUE INDEX "', 'CREATE UNIQUE INDEX floor."', 1)
                           .replace('CREATE INDEX "', 'CREATE INDEX floor."', 1))
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.execute('INSERT INTO floor."item" SELECT * FROM main."item" ORDER BY "id"')
    connection.execute("COMMIT")
    floor = time.perf_counter() - started
    connection.close()
    return bare, imported, floor


def load(workdir, path):
    """(X, y, feature names, scenario, epoch seconds, (merchant codes, seconds), one-hot blocks) of the imported
    pool, in item id order."""
    from labeler.store.db import Dataset, Item, database, open_database
    from labeler.worker.refill import categorical_blocks
    from labeler.worker.simulate import load_truth
    open_database(os.path.join(workdir, "labeler.sqlite3"))
    with database.connection_context():
        dataset = Dataset.get(Dataset.name == "tx")
        X, y, groups = load_truth(dataset)
        rows = list(Item.select(Item.external_id, Item.event_time).where(Item.dataset == dataset)
                    .order_by(Item.id).tuples())
        names = list(dataset.feature_columns)
        blocks = categorical_blocks(dataset)
    frame = pd.read_csv(path, usecols=["transaction_id", "scenario"]).set_index("transaction_id")
    scenario = frame.loc[[external_id for external_id, _ in rows], "scenario"].to_numpy()
    return X, y, names, scenario, np.array([seconds for _, seconds in rows]), groups, blocks


def recall_at_top(scores, y, scenario, share=0.01):
    """Per scenario (1-4, and all frauds): the share of its test frauds among the top ``share`` of scores."""
    top = np.argsort(-scores, kind="stable")[:max(1, int(round(share * len(scores))))]
    chosen = np.zeros(len(scores), dtype=bool)
    chosen[top] = True
    result = {"all": float(chosen[y == 1].mean())}
    for number in sorted(set(scenario[y == 1].tolist())):
        frauds = scenario == number
        result[str(number)] = float(chosen[frauds].mean())
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "transactions.csv.gz"),
                        help="simulated transactions; the full-size set is made there first when missing")
    parser.add_argument("--budgets", default="100,250,500,1000,2000", help="label counts to report")
    parser.add_argument("--batch", type=int, default=50, help="labels per simulated batch")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the loop (the split is by time)")
    parser.add_argument("--test-days", type=int, default=30, help="the last days, kept as the test set")
    parser.add_argument("--import-only", action="store_true", help="time the import and stop")
    args = parser.parse_args()
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score

    from labeler.worker import simulate
    from models.weak import NativeCategories

    if not os.path.exists(args.data):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_transactions.py"), "--out", args.data],
                       check=True)
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"# raw transactions, {time.strftime('%Y-%m-%d')}; machine: {platform.platform()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    workdir = tempfile.mkdtemp(prefix="bench-transactions-")
    bare, imported, floor = import_timed(args.data, workdir)
    X, y, names, scenario, seconds, groups, blocks = load(workdir, args.data)
    print(f"{len(y):,} transactions, {int(y.sum()):,} frauds; import with features {imported:.1f} s against a bare "
          f"pandas read {bare:.1f} s: {imported / bare:.1f}x; the store's floor (the same rows copied inside SQLite "
          f"into an empty table with the same indexes) {floor:.1f} s: {floor / bare:.1f}x")
    if args.import_only:
        return
    cutoff = seconds.max() - args.test_days * 86_400
    pool, test = np.flatnonzero(seconds < cutoff), np.flatnonzero(seconds >= cutoff)
    print(f"pool {len(pool):,} ({int(y[pool].sum()):,} frauds), test: the last {args.test_days} days, {len(test):,} "
          f"({int(y[test].sum()):,} frauds); batch {args.batch}; seeds {args.seeds}")
    derived = names.index(HISTORY_FROM[0]) if HISTORY_FROM[0] in names else len(names)
    everything = np.arange(len(names))
    variants = {"(a) raw columns": (np.arange(derived), None, blocks),
                "(b) + time and history": (everything, None, blocks),
                "(b) one-hot boosting": (everything, None, ()),
                "(c) + merchant label rates": (everything, groups, blocks)}
    settings = dict(DEFAULTS)
    for title, (columns, variant_groups, variant_blocks) in variants.items():
        for strategy in (simulate.DEFAULT, simulate.RANDOM):
            if strategy == simulate.RANDOM and (variant_groups is not None or not variant_blocks):
                continue  # random picks train logistic regression on the columns alone: the same as (b)
            runs, finals = [], []
            for seed in (int(s) for s in args.seeds.split(",")):
                final = {}
                started = time.perf_counter()
                runs.append(simulate.run(X[:, columns], y, strategy, max(budgets), args.batch, seed, settings,
                                         final=final, pool_and_test=(pool, test), groups=variant_groups,
                                         categorical=variant_blocks))
                finals.append((final, time.perf_counter() - started))
            curve = {row["labels"]: row for row in simulate.average(runs)}
            cells = [f"{b}: AUPRC {curve[b]['auprc']:.3f}, frauds {curve[b]['positives_found']:.0f}"
                     for b in budgets if b in curve]
            print(f"{title:24s} {strategy:8s} " + " | ".join(cells) + f"  ({finals[0][1]:.0f} s a run)")
            scores = finals[0][0].get("test_scores")
            if scores is not None:
                recall = recall_at_top(scores, y[test], scenario[test])
                print(f"{'':33s}recall at the top 1% after {max(budgets)} labels: "
                      + ", ".join(f"{key} {value:.2f}" for key, value in recall.items()))
    for how, make in (("native categories", lambda: NativeCategories(HistGradientBoostingClassifier(random_state=0),
                                                                     blocks)),
                      ("one-hot", lambda: HistGradientBoostingClassifier(random_state=0))):
        started = time.perf_counter()
        scores = make().fit(X[pool], y[pool]).predict_proba(X[test])[:, 1]
        recall = recall_at_top(scores, y[test], scenario[test])
        print(f"ceiling: gradient boosting ({how}) on all {len(pool):,} pool labels, features (b): test AUPRC "
              f"{average_precision_score(y[test], scores):.3f} ({time.perf_counter() - started:.0f} s); recall at "
              f"the top 1%: " + ", ".join(f"{key} {value:.2f}" for key, value in recall.items()))
    raw = variants["(a) raw columns"][0]
    ceiling_a = HistGradientBoostingClassifier(random_state=0).fit(X[pool][:, raw], y[pool])
    scores_a = ceiling_a.predict_proba(X[test][:, raw])[:, 1]
    print(f"ceiling with (a)'s features: test AUPRC {average_precision_score(y[test], scores_a):.3f}")
    if groups is not None:
        from models.features import label_rates
        codes, times = groups
        everyone = np.arange(len(pool))
        pool_rates = label_rates(codes[pool], everyone, y[pool], seconds=times[pool])  # strictly earlier labels
        test_rates = label_rates(codes[pool], everyone, y[pool], codes[test], seconds=times[pool],
                                 rows_seconds=times[test])
        ceiling_c = HistGradientBoostingClassifier(random_state=0).fit(np.hstack([X[pool], pool_rates]), y[pool])
        scores_c = ceiling_c.predict_proba(np.hstack([X[test], test_rates]))[:, 1]
        recall = recall_at_top(scores_c, y[test], scenario[test])
        print(f"ceiling with (c)'s features (merchant label rates from every pool label): test AUPRC "
              f"{average_precision_score(y[test], scores_c):.3f}; recall at the top 1%: "
              + ", ".join(f"{key} {value:.2f}" for key, value in recall.items()))


if __name__ == "__main__":
    main()
