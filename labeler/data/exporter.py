"""Export labeled items: the original columns plus the label that stands, who gave it, when, and its source
(human, pseudo, model, or bulk: given by one decision for a run of a card's transactions)."""
import csv
import json
import os

from labeler.data.datasets import standing_labels
from labeler.store.db import Item, Label


def export(dataset, out_path, fmt="csv", include_pseudo=False):
    """Write ``dataset``'s labeled items to ``out_path`` as csv or jsonl; returns the number written.

    Human labels only unless ``include_pseudo``; a human label always wins over a pseudo or model one.
    The ground-truth column is never exported. Raises ValueError for another ``fmt``, OSError when the file
    cannot be written.
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")
    standing = standing_labels(dataset, include_machine=include_pseudo)
    sources = ("human", "pseudo", "model") if include_pseudo else ("human",)
    labeled = Label.effective(dataset, sources).select(Label.item)
    header = ["id", *dataset.columns, "label", "annotator", "labeled_at", "source"]
    temporary = out_path + ".part"
    count = 0
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle) if fmt == "csv" else None
            if writer:
                writer.writerow(header)
            items = dataset.items().where(Item.id.in_(labeled)).order_by(Item.row_number)
            for item in items.iterator():
                label = standing[item.id]
                row = [item.external_id, *item.display_values(dataset), label.value, label.annotator_name or "",
                       label.created_at.isoformat(timespec="seconds") + "Z",
                       "bulk" if label.bulk_of_id is not None else label.source]
                if writer:
                    writer.writerow(row)
                else:
                    handle.write(json.dumps(dict(zip(header, row))) + "\n")
                count += 1
        os.replace(temporary, out_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count
