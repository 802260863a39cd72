"""Benchmark: what the polled header and the review queue cost per request, from the label log by the rule's own
queries (Label.effective, Label.disputed: what every request ran before schema 15) against the kept tables
(StandingCount's rows); and the queue's "not labeled yet" check for its first 20 free entries, from the label
log with Label's schema-14 indexes (SQLite reads it through (source, kind, id): every human label, for each
entry) against Standing's primary key.

Builds a temporary SQLite store per pool size: the items inserted directly (8 float32 features each), 50,000
human answers by three analysts (one answer on each of 40,000 random items, a second, blind one by another
analyst on 10,000 of them that disagrees one time in five, 2% of the answers undone), a reviewer's adjudication
on half the disputed items, and a queue of 20,000 random items. Standing is filled from the log as migration 15
does (labeler.store.migrations.fill_standing) and checked against the rule. Each figure is the median of
``--repeat`` runs after one warm-up.

    python bench/request_counts.py                       # pools of 100,000 and 1,000,000 items
    python bench/request_counts.py --items 100000 --repeat 10
"""
import argparse
import contextlib
import datetime
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from peewee import SQL, fn  # noqa: E402  (after the path is set)

from labeler.data.datasets import label_counts  # noqa: E402
from labeler.labeling import review  # noqa: E402
from labeler.store.db import (Dataset, Item, Label, QueueEntry, Standing, StandingCount, User,  # noqa: E402
                              database, open_database)
from labeler.store.migrations import fill_standing, upgrade  # noqa: E402

FEATURES = 8
BATCH = 20_000
ANSWERED, SECOND, QUEUED = 40_000, 10_000, 20_000


def build(path, items, seed):
    """The store at ``path`` with ``items`` items and the labels and queue the module describes; returns the
    dataset and how long the inserts and the fill took (seconds)."""
    open_database(path)
    upgrade()
    rng = np.random.default_rng(seed)
    dataset = Dataset.create(name="bench", columns=[f"V{i}" for i in range(FEATURES)],
                             feature_columns=[f"V{i}" for i in range(FEATURES)], labels=["genuine", "fraud"],
                             positive_label="fraud")
    started = time.perf_counter()
    cursor = database.cursor()
    for start in range(0, items, BATCH):
        values = rng.normal(size=(min(BATCH, items - start), FEATURES))
        with database.atomic():
            cursor.executemany('INSERT INTO "item" ("dataset_id", "external_id", "row_number", "numbers", "features") '
                               'VALUES (?, ?, ?, ?, ?)',
                               [(dataset.id, f"T{start + n}", start + n, row.tobytes(),
                                 row.astype(np.float32).tobytes()) for n, row in enumerate(values)])
    ids = [item_id for (item_id,) in Item.select(Item.id).where(Item.dataset == dataset).order_by(Item.id).tuples()]
    pick = random.Random(seed)
    analysts = [User.create(name=name, password_hash="-", role="analyst").id for name in ("ana", "bob", "cy")]
    reviewer = User.create(name="rita", password_hash="-", role="reviewer").id
    answered = pick.sample(ids, min(ANSWERED, len(ids)))
    first = {item_id: (pick.choice(analysts), "fraud" if pick.random() < 0.05 else "genuine") for item_id in answered}
    rows = [(item_id, user, value) for item_id, (user, value) in first.items()]
    for item_id in answered[:SECOND]:
        user, value = first[item_id]
        other = pick.choice([a for a in analysts if a != user])
        rows.append((item_id, other, ("genuine" if value == "fraud" else "fraud") if pick.random() < 0.2 else value))
    with database.atomic():
        for start in range(0, len(rows), BATCH):
            Label.insert_many([{"item": item_id, "annotator": user, "value": value, "source": "human"}
                               for item_id, user, value in rows[start:start + BATCH]]).execute()
        labels = list(Label.select(Label.id, Label.item, Label.annotator).where(Label.source == "human").tuples())
        Label.insert_many([{"item": item_id, "kind": "undo", "retracts": label_id, "annotator": user, "source": "human"}
                           for label_id, item_id, user in pick.sample(labels, len(labels) // 50)]).execute()
        disputed = [item_id for (item_id,) in Label.disputed(dataset).tuples()]
        Label.insert_many([{"item": item_id, "annotator": reviewer, "value": pick.choice(["genuine", "fraud"]),
                            "source": "review"} for item_id in disputed[::2]]).execute()
        queued = pick.sample(ids, min(QUEUED, len(ids)))
        for start in range(0, len(queued), BATCH):
            QueueEntry.insert_many([{"dataset": dataset.id, "item": item_id, "priority": float(n + start),
                                     "strategy": "bench", "suggested": "genuine", "probability": 0.5}
                                    for n, item_id in enumerate(queued[start:start + BATCH])]).execute()
    inserted = time.perf_counter() - started
    started = time.perf_counter()
    with database.atomic():
        fill_standing(dataset)
    return dataset, inserted, time.perf_counter() - started


def counts_by_the_rule(dataset):
    """The header's counts as every request computed them before schema 15."""
    query = Label.effective(dataset).select(Label.value, fn.COUNT(Label.id)).group_by(Label.value).tuples()
    return dict(query)


def disputed_by_the_rule(dataset):
    return Label.disputed(dataset).count()


def disputed_kept(dataset):
    """The number of disputed items as the review queue reads it now: one StandingCount row."""
    return (StandingCount.select(StandingCount.items)
            .where((StandingCount.dataset == dataset) & (StandingCount.state == "disputed")).scalar() or 0)


def _free_entries(dataset, labeled):
    """The first 20 queue entries whose item has no standing human answer (the lease's check, without the
    leases), with ``labeled`` the SQL of that check."""
    return list(QueueEntry.select(QueueEntry.id).where((QueueEntry.dataset == dataset) & ~labeled(QueueEntry.item))
                .order_by(QueueEntry.priority, QueueEntry.id).limit(20).tuples())


def labeled_by_the_log(item_column):
    """Before schema 15 (labeler.labeling.leases): a standing human label on the item, from the label log."""
    label, undo = Label.alias("standing"), Label.alias("undo")
    return fn.EXISTS(label.select(SQL("1")).where(
        (label.item == item_column) & (label.kind == "label") & (label.source == "human")
        & ~fn.EXISTS(undo.select(SQL("1")).where(undo.retracts == label.id))))


def labeled_by_standing(item_column):
    return fn.EXISTS(Standing.select(SQL("1")).where((Standing.item == item_column) & Standing.answered))


@contextlib.contextmanager
def schema_14_label_indexes():
    """Label's indexes as schema 14 had them (item and annotator alone, not with source and kind), made in the
    order it made them ((source, kind, id) after the others: SQLite, without statistics, breaks a tie between
    two indexes in favour of the one made last), in a transaction that is rolled back afterwards."""
    with database.atomic() as transaction:
        for column in ("item_id", "annotator_id"):
            database.execute_sql(f'DROP INDEX "label_{column}_source_kind_id"')
            database.execute_sql(f'CREATE INDEX "label_{column}" ON "label" ("{column}")')
        database.execute_sql('DROP INDEX "label_source_kind_id"')
        database.execute_sql('CREATE INDEX "label_source_kind_id" ON "label" ("source", "kind", "id")')
        yield
        transaction.rollback()


def median_ms(run, repeat):
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(items, repeat, seed):
    with tempfile.TemporaryDirectory() as folder:
        dataset, inserted, filled = build(os.path.join(folder, "store.sqlite3"), items, seed)
        with database.connection_context():
            assert label_counts(dataset) == counts_by_the_rule(dataset)
            assert disputed_kept(dataset) == disputed_by_the_rule(dataset)
            assert _free_entries(dataset, labeled_by_the_log) == _free_entries(dataset, labeled_by_standing)
            log = Label.select().count()
            with schema_14_label_indexes():
                free_before = median_ms(lambda: _free_entries(dataset, labeled_by_the_log), repeat)
            figures = {
                "header counts": (median_ms(lambda: counts_by_the_rule(dataset), repeat),
                                  median_ms(lambda: label_counts(dataset), repeat)),
                "disputed count": (median_ms(lambda: disputed_by_the_rule(dataset), repeat),
                                   median_ms(lambda: disputed_kept(dataset), repeat)),
                "review queue count": (None, median_ms(lambda: review.waiting_count(dataset), repeat)),
                "first 20 free queue entries": (
                    free_before, median_ms(lambda: _free_entries(dataset, labeled_by_standing), repeat)),
            }
            standing = Standing.select().count()
            size = os.path.getsize(os.path.join(folder, "store.sqlite3"))
        database.close()
    return {"items": items, "log": log, "standing": standing, "inserted": inserted, "filled": filled, "size": size,
            "figures": figures}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "request_counts.txt"))
    args = parser.parse_args()
    lines = [f"command: python bench/request_counts.py {' '.join(sys.argv[1:])}".rstrip(),
             f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, Python "
             f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average at the start "
             f"{os.getloadavg()[0]:.1f} (other sessions' jobs share the machine)",
             f"data: items inserted directly ({FEATURES} float32 features); 50,000 human answers by 3 analysts "
             f"({ANSWERED:,} items answered once, {SECOND:,} of them twice, a fifth of those disagreeing), 2% undone, "
             f"half the disputed items adjudicated; a queue of {QUEUED:,} items; median of {args.repeat} runs, ms"]
    print("\n".join(lines), flush=True)
    results = [measure(items, args.repeat, args.seed) for items in args.items]
    for result in results:
        lines.append(f"pool {result['items']:,} items: label log {result['log']:,} rows, Standing "
                     f"{result['standing']:,} rows, built in {result['inserted']:.0f} s, Standing filled from the "
                     f"log in {result['filled']:.2f} s, store {result['size'] / 2**20:.0f} MiB")
        print(lines[-1], flush=True)
    header = f"{'query':32}"
    for result in results:
        header += f"{'log ' + format(result['items'], ','):>16}{'kept ' + format(result['items'], ','):>18}"
    lines.append(header)
    for name in results[0]["figures"]:
        cells = ""
        for result in results:
            before, after = result["figures"][name]
            cells += f"{'-' if before is None else f'{before:.2f}':>16}{after:>18.3f}"
        lines.append(f"{name:32}{cells}")
    print("\n".join(lines[-1 - len(results[0]['figures']):]))
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
