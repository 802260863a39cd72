"""Export labeled items: the original columns plus the label that stands, who gave it, when, its source (human,
pseudo, model, or bulk: given by one decision for a run of a card's transactions), the reason code and note the
analyst recorded, the suggestion on screen with its probability, whether it was accepted, and the seconds the
item was on screen. JSONL keeps numbers as numbers."""
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
    header = ["id", *dataset.columns, "label", "annotator", "labeled_at", "source", "reason", "note", "suggested",
              "suggested_probability", "accepted", "seconds_on_screen"]
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
                decision = [label.value, label.annotator_name, label.created_at.isoformat(timespec="seconds") + "Z",
                            "bulk" if label.bulk_of_id is not None else label.source, label.reason, label.note,
                            label.suggested, label.suggested_probability, label.accepted, label.seconds_on_screen]
                if writer:
                    writer.writerow([item.external_id, *item.display_values(dataset),
                                     *("" if value is None else value for value in decision)])
                else:
                    row = [item.external_id, *item.typed_values(dataset), *decision]
                    handle.write(json.dumps(dict(zip(header, row)), allow_nan=False) + "\n")
                count += 1
        os.replace(temporary, out_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count
