"""Benchmark: the retrain trigger that runs after every committed label (labeler.labeling.decisions: one look at
the newest retrain job, then one statement counting the labels since its watermark and reading the dataset's
StandingCount rows), on a real SQLite store holding a file and many labels. Prints the median and p99 per call for
a genuine label and for a fraud that is not the first of its class, with the machine.

    python bench/retrain_trigger.py                      # the full credit-card file, 5,000 labels
    python bench/retrain_trigger.py --data data/creditcard_sample.csv.gz --labels 1000
"""
import argparse
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labeler.data.importer import import_file  # noqa: E402  (after the path is set)
from labeler.data.users import create_user  # noqa: E402
from labeler.labeling import decisions  # noqa: E402
from labeler.store.db import Item, Job, Label, Standing, database, open_database, utcnow  # noqa: E402
from labeler.store.migrations import upgrade  # noqa: E402
from labeler.worker import jobs  # noqa: E402

FULL = os.path.join(ROOT, "..", "shared", "data", "creditcard.csv.gz")
SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=FULL if os.path.exists(FULL) else SAMPLE,
                        help="the credit-card file to import (default: ../shared's full file, else the sample)")
    parser.add_argument("--labels", type=int, default=5000, help="human labels written before timing")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        open_database(os.path.join(folder, "bench.sqlite3"))
        with database.connection_context():
            upgrade()
            dataset = import_file(args.data, "cc", label_column="Class").dataset
            user = create_user("ana", "benchmark password", "analyst")
            label_some(dataset, user, args.labels)
            # a finished retrain 10 labels back: the count reads those 10 and the StandingCount rows
            watermark = Label.select(Label.id).order_by(Label.id.desc()).offset(10).limit(1).scalar()
            Job.create(dataset=dataset, kind=jobs.RETRAIN, state="done", stage="done", finished_at=utcnow(),
                       payload={"watermark": watermark})
            rows = Item.select().where(Item.dataset == dataset).count()
            print(f"retrain trigger: {os.path.basename(args.data)}, {rows:,} items, {args.labels:,} human labels, "
                  f"retrain_every 50, {args.calls:,} calls per case")
            for value in ("genuine", "fraud"):
                label = Label.get((Label.value == value) & (Label.kind == "label"))
                outcome = decisions.Outcome("recorded", "", label)
                took = []
                for _ in range(args.calls):
                    start = time.perf_counter()
                    queued = decisions._retrain_if_due(dataset, outcome)
                    took.append((time.perf_counter() - start) * 1000)
                    assert queued is None  # nothing is due: every call does the whole check
                took.sort()
                print(f"  a {value} label: median {took[len(took) // 2]:.3f} ms, "
                      f"p99 {took[int(len(took) * 0.99)]:.3f} ms")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"load average {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


def label_some(dataset, user, count):
    """``count`` human labels by ``user`` on the first items, one in fifty 'fraud', with their Standing rows."""
    ids = [item_id for (item_id,) in Item.select(Item.id).where(Item.dataset == dataset).order_by(Item.id)
           .limit(count).tuples()]
    now = utcnow()
    with database.atomic():
        Label.insert_many([{"item": item_id, "kind": "label", "value": "fraud" if n % 50 == 0 else "genuine",
                            "annotator": user.id, "source": "human", "created_at": now}
                           for n, item_id in enumerate(ids)]).execute()
        Standing.refresh(ids)


if __name__ == "__main__":
    main()
