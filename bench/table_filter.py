"""Benchmark: the item table's pages, filtered and sorted, by keyset against what OFFSET would cost.

Imports a credit-card file into a temporary store, gives a seeded sample of items human labels (a share of them
frauds, some disputed by a second analyst), then asks the app (Flask's test client, logged in) for each case many
times and reads the app's own time from the Server-Timing header: page 1, page N (5,000 by default: 250,000 rows
in) by keyset in row order and sorted by amount, filtered pages (a label, an amount range sorted by amount, an
annotator, the unlabeled rows deep in). The server time includes what every page does besides its rows (the
standing labels of its 50 items, the annotators for the filter, the rendering; the count of matching rows on a
first page). Then the deep page's query alone, by keyset and by LIMIT/OFFSET, on the store directly.

    python bench/table_filter.py                                          # the bundled sample (28,481 rows)
    python bench/table_filter.py --data ../shared/data/creditcard.csv.gz  # the full file (284,807 rows)
"""
import argparse
import datetime
import os
import platform
import random
import re
import sqlite3
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labeler.data.importer import import_file  # noqa: E402  (after the path is set)
from labeler.data.users import create_user  # noqa: E402
from labeler.store.db import GroundTruth, Item, Label, database  # noqa: E402
from labeler.store.migrations import fill_standing  # noqa: E402
from labeler.web import create_app  # noqa: E402

PASSWORD = "benchmark password"
TIMING = re.compile(r"app;dur=([\d.]+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def label_sample(dataset, count, seed):
    """``count`` items labeled by ana (their ground truth), every tenth also by bob with the other label (disputed)."""
    ana, bob = create_user("ana", PASSWORD, "analyst"), create_user("bob", PASSWORD, "analyst")
    ids = [item_id for (item_id,) in dataset.items().select(Item.id).tuples()]
    chosen = random.Random(seed).sample(ids, min(count, len(ids)))
    truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).where(GroundTruth.item.in_(chosen)).tuples())
    frauds = [item_id for (item_id,) in GroundTruth.select(GroundTruth.item).join(Item)
              .where((Item.dataset == dataset) & (GroundTruth.value == "fraud")).tuples()]
    chosen = list(dict.fromkeys(chosen + frauds[:200]))  # every fraud label filter has some rows
    truth.update({item_id: "fraud" for item_id in frauds[:200]})
    rows = [{"item": item_id, "value": truth.get(item_id, "genuine"), "annotator": ana.id, "source": "human"}
            for item_id in chosen]
    rows += [{"item": item_id, "value": "fraud" if truth.get(item_id) != "fraud" else "genuine", "annotator": bob.id,
              "source": "human"} for item_id in chosen[::10]]
    with database.atomic():
        for start in range(0, len(rows), 500):
            Label.insert_many(rows[start:start + 500]).execute()
        fill_standing(dataset)  # the labels that stand, as the labeling code keeps them with each write
    return len(chosen)


def key_at(dataset, order, position):
    """The ``after`` of the page that starts after ``position`` rows in ``order`` (row or amount)."""
    if order == "row":
        item = dataset.items().order_by(Item.row_number).offset(position - 1).limit(1).get()
        return f"{item.row_number},{item.id}"
    item = dataset.items().where(Item.amount.is_null(False)).order_by(Item.amount, Item.id).offset(position - 1) \
        .limit(1).get()
    return f"{item.amount!r},{item.id}"


def time_requests(client, url, repeat):
    """Server-Timing milliseconds of ``repeat`` GETs of ``url`` (htmx partials), after one warm-up."""
    client.get(url, headers={"HX-Request": "true"})
    times = []
    for _ in range(repeat):
        response = client.get(url, headers={"HX-Request": "true"})
        assert response.status_code == 200, (url, response.status_code)
        times.append(float(TIMING.search(response.headers["Server-Timing"]).group(1)))
    return times


def time_offset(store, sql, params, repeat):
    """Milliseconds of ``repeat`` runs of an OFFSET query on its own connection."""
    connection = sqlite3.connect(store)
    connection.execute(sql, params).fetchall()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        connection.execute(sql, params).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    connection.close()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "creditcard_sample.csv.gz"))
    parser.add_argument("--page", type=int, default=5000, help="the deep page (50 rows a page)")
    parser.add_argument("--labels", type=int, default=2000, help="items given a human label")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "table_filter.txt"))
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="table_filter_")
    store = os.path.join(folder, "labeler.sqlite3")
    app = create_app({"DATABASE": store, "TASK_QUEUE": os.path.join(folder, "queue.sqlite3"),
                      "MODEL_FOLDER": os.path.join(folder, "models"), "SECRET_KEY": "benchmark-secret-" * 3,
                      "TESTING": True, "WTF_CSRF_ENABLED": False})
    lines = [f"command: python bench/table_filter.py {' '.join(sys.argv[1:])}".rstrip(),
             f"date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}, Python "
             f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average at the start "
             f"{os.getloadavg()[0]:.1f} (other sessions' jobs share the machine)"]
    with database.connection_context():
        started = time.perf_counter()
        dataset = import_file(args.data, "cc", label_column="Class").dataset
        rows = dataset.items().count()
        labeled = label_sample(dataset, args.labels, args.seed)
        lines.append(f"data: {os.path.basename(args.data)}, {rows:,} rows imported in "
                     f"{time.perf_counter() - started:.0f} s; {labeled:,} items labeled by ana, every tenth "
                     f"also by bob with the other label (disputed); {args.repeat} requests a case")
        page = min(args.page, rows // 50)
        position = (page - 1) * 50
        deep_row, deep_amount = key_at(dataset, "row", position), key_at(dataset, "amount", position)
    client = app.test_client()
    client.post("/login", data={"name": "ana", "password": PASSWORD})
    cases = [
        ("page 1, row order", "/datasets/cc"),
        (f"page {page:,} by keyset, row order", f"/datasets/cc?after={deep_row}"),
        (f"page {page:,} by keyset, sorted by amount", f"/datasets/cc?sort=amount&after={deep_amount}"),
        ("filtered: label fraud", "/datasets/cc?label=fraud"),
        ("filtered: label disputed", "/datasets/cc?label=disputed"),
        ("filtered: annotator bob", "/datasets/cc?annotator=bob"),
        ("filtered: amount 100-200, sorted by amount desc",
         "/datasets/cc?amount_min=100&amount_max=200&sort=amount&order=desc"),
        (f"filtered: unlabeled, page {page:,} by keyset", f"/datasets/cc?label=unlabeled&after={deep_row}"),
    ]
    lines.append("")
    lines.append(f"{'case':<52} {'p50 ms':>8} {'p99 ms':>8}   (server time, Server-Timing)")
    for name, url in cases:
        times = time_requests(client, url, args.repeat)
        lines.append(f"{name:<52} {percentile(times, .5):8.1f} {percentile(times, .99):8.1f}")
        print(lines[-1], flush=True)
    select = 'SELECT * FROM "item" WHERE "dataset_id" = ? ORDER BY {order} LIMIT 51 OFFSET ?'
    row_key, amount_key = deep_row.split(","), deep_amount.split(",")
    queries = [
        (f"page {page:,} by keyset, row order", 'SELECT * FROM "item" WHERE "dataset_id" = ? AND "row_number" > ? '
         'ORDER BY "row_number" LIMIT 51', (dataset.id, int(row_key[0]))),
        (f"page {page:,} by OFFSET, row order", select.format(order='"row_number"'), (dataset.id, position)),
        (f"page {page:,} by keyset, sorted by amount", 'SELECT * FROM "item" WHERE "dataset_id" = ? AND "amount" IS '
         'NOT NULL AND ("amount", "id") > (?, ?) ORDER BY "amount", "id" LIMIT 51',
         (dataset.id, float(amount_key[0]), int(amount_key[1]))),
        (f"page {page:,} by OFFSET, sorted by amount", select.format(order='"amount", "id"'), (dataset.id, position))]
    lines.append(f"{'the page query alone (SQL), keyset against OFFSET':<52} {'p50 ms':>8} {'p99 ms':>8}")
    for name, sql, params in queries:
        times = time_offset(store, sql, params, args.repeat)
        lines.append(f"{name:<52} {percentile(times, .5):8.1f} {percentile(times, .99):8.1f}")
        print(lines[-1], flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines[:4]))


if __name__ == "__main__":
    main()
