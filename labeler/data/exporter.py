"""Export labeled items whole: the original columns, the label that stands and how it was reached, and (JSONL)
every decision on the item.

The label that stands (labeler.store.db.Label.effective): a reviewer's decision ("adjudicated"); else the answer
every analyst who labeled the item agrees on ("agreed" when two or more did, "single" for one answer); else
none: the item is "disputed" and exported without a label. With ``include_pseudo``, items without a human
answer export their machine label ("pseudo" or "model"). Never silently the latest answer.

CSV: one row per item, the standing label and its provenance columns. JSONL: the same, plus ``decisions``,
every decision on the item oldest first (undone ones too, marked), each with its annotator, time, label, source,
reason code, note, the suggestion on screen and its probability, whether it was shown and accepted, the
strategy that put the item on screen, the seconds on screen and the model version. Numbers stay numbers.
"""
import csv
import json
import os

from peewee import JOIN

from labeler.data import audit
from labeler.store.db import Item, Label, Standing, User, database

RULE = ("the label that stands: a reviewer's decision (adjudicated); else the answer every analyst who labeled "
        "the item agrees on (agreed, or single for one answer); else none (disputed)")
PROVENANCE = ["label", "standing", "decided_by", "decided_at", "answers", "source", "reason", "note", "suggested",
              "suggested_probability", "accepted", "strategy", "seconds_on_screen", "model_version"]
DECISION_FIELDS = ["annotator", "at", "label", "source", "retracted", "card_run", "reason", "note", "suggested",
                   "suggested_probability", "suggestion_shown", "accepted", "strategy", "seconds_on_screen",
                   "model_version"]
HUMAN = ("human", "review")
MACHINE = ("pseudo", "model")
ITEM_BATCH = 500


def _stamp(moment):
    return moment.isoformat(timespec="seconds") + "Z"


def decision(label, retracted):
    """One decision (a label row with its ``annotator_name``) as JSON takes it; ``retracted``: an undo took it
    back."""
    return {"annotator": label.annotator_name, "at": _stamp(label.created_at), "label": label.value,
            "source": label.source, "retracted": retracted, "card_run": label.bulk_of_id is not None,
            "reason": label.reason, "note": label.note, "suggested": label.suggested,
            "suggested_probability": label.suggested_probability, "suggestion_shown": label.suggestion_shown,
            "accepted": label.accepted, "strategy": label.strategy, "seconds_on_screen": label.seconds_on_screen,
            "model_version": label.model_version}


def _labels_by_item(dataset, sources, item_ids=None):
    """({item id: [Label with annotator_name, oldest first]}, {retracted label id}) of ``dataset``'s label rows
    from ``sources`` (of the items ``item_ids`` only, when given)."""
    condition = (Item.dataset == dataset) & Label.source.in_(sources)
    if item_ids is not None:
        condition &= Label.item.in_(list(item_ids))
    rows = (Label.select(Label, User.name.alias("annotator_name")).join(Item, on=(Label.item == Item.id))
            .join(User, JOIN.LEFT_OUTER, on=(Label.annotator == User.id))
            .where(condition).order_by(Label.item, Label.id).objects())
    by_item, retracted = {}, set()
    for label in rows:
        if label.kind == "undo":
            retracted.add(label.retracts_id)
        else:
            by_item.setdefault(label.item_id, []).append(label)
    return by_item, retracted


def provenance(labels, retracted, standing_ids):
    """(standing Label or None, how it stands) of one item from its label rows ``labels`` (oldest first), the
    ``retracted`` row ids and the ids of the rows that stand by the rule (``standing_ids``): adjudicated, agreed,
    single or disputed for human answers, else the machine label's source."""
    standing = next((label for label in reversed(labels) if label.id in standing_ids), None)
    human = [label for label in labels if label.source in HUMAN and label.id not in retracted]
    if standing is None:
        return None, "disputed" if human else None
    if standing.source == "review":
        return standing, "adjudicated"
    if standing.source in MACHINE:
        return standing, standing.source
    analysts = {label.annotator_id for label in human if label.source == "human"}
    return standing, "agreed" if len(analysts) > 1 else "single"


def _standing_ids(dataset, include_pseudo=False):
    """Ids of the label rows of ``dataset`` that stand by the rule (with ``include_pseudo``, machine labels'
    too)."""
    queries = [Label.effective(dataset)] + ([Label.effective(dataset, MACHINE)] if include_pseudo else [])
    return {label_id for query in queries for (label_id,) in query.select(Label.id).tuples()}


def standing_ids_of(item_ids):
    """Ids of the human label rows that stand for ``item_ids`` (read from Standing: no walk of the log)."""
    rows = Standing.select(Standing.label).where(Standing.item.in_(list(item_ids))).tuples()
    return {label_id for (label_id,) in rows if label_id is not None}  # a disputed item's is None


def item_labels(dataset, item_ids, sources=HUMAN):
    """{item id: (now, history)} for each of ``item_ids`` (item row ids) of ``dataset``: ``now``, the label that
    stands by the rule from human answers, as the PROVENANCE fields the export writes (every field None and
    no answers for an item no analyst answered, or whose answers were all undone); ``history``, its label rows
    from ``sources`` oldest first (undo rows left out) as [(Label with annotator_name, retracted)]."""
    item_ids = list(item_ids)
    by_item, retracted = _labels_by_item(dataset, tuple(set(sources) | set(HUMAN)), item_ids)
    standing_ids = standing_ids_of(item_ids)
    result = {}
    for item_id in item_ids:
        labels = by_item.get(item_id, [])
        human = [label for label in labels if label.source in HUMAN]
        standing, how = provenance(human, retracted, standing_ids)
        now = {**dict.fromkeys(PROVENANCE), "answers": 0} if how is None else \
            dict(zip(PROVENANCE, _provenance_fields(human, retracted, standing, how)))
        history = [(label, label.id in retracted) for label in labels if label.source in sources]
        result[item_id] = (now, history)
    return result


def export(dataset, out_path, fmt="csv", include_pseudo=False, user=None):
    """Write ``dataset``'s labeled items to ``out_path`` as csv or jsonl (see the module's rule) and record the
    export in the audit log (``user``: who asked; None for the command line); returns the number of items
    written, disputed ones included.

    The ground-truth column is never exported. Raises ValueError for another ``fmt``, OSError when the file
    cannot be written (nothing is left at ``out_path`` then).
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")
    sources = HUMAN + MACHINE if include_pseudo else HUMAN
    by_item, retracted = _labels_by_item(dataset, sources)
    standing_ids = _standing_ids(dataset, include_pseudo)
    header = ["id", *dataset.columns, *PROVENANCE]
    temporary = out_path + ".part"
    count = 0
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle) if fmt == "csv" else None
            if writer:
                writer.writerow(header)
            ids = sorted(by_item)
            for start in range(0, len(ids), ITEM_BATCH):
                items = Item.select().where(Item.id.in_(ids[start:start + ITEM_BATCH])).order_by(Item.row_number)
                for item in items:
                    labels = by_item[item.id]
                    if not include_pseudo or any(label.source in HUMAN for label in labels):
                        labels = [label for label in labels if label.source in HUMAN]  # a human answer wins
                    standing, how = provenance(labels, retracted, standing_ids)
                    if how is None:
                        continue  # every answer was undone
                    fields = _provenance_fields(labels, retracted, standing, how)
                    if writer:
                        writer.writerow([item.external_id, *item.display_values(dataset),
                                         *("" if value is None else value for value in fields)])
                    else:
                        record = dict(zip(header, [item.external_id, *item.typed_values(dataset), *fields]))
                        record["decisions"] = [decision(label, label.id in retracted) for label in labels]
                        handle.write(json.dumps(record, allow_nan=False) + "\n")
                    count += 1
        with database.atomic():  # the entry is taken back when the file cannot be put in place
            audit.record(user, audit.EXPORTED, dataset, format=fmt, items=count, include_pseudo=include_pseudo,
                         file=os.path.basename(out_path))
            os.replace(temporary, out_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return count


def _provenance_fields(labels, retracted, standing, how):
    """The PROVENANCE values of one item: its standing label (None when disputed) and how it was reached; the
    decision fields are the standing row's."""
    answers = sum(label.id not in retracted for label in labels if label.source in HUMAN)
    if standing is None:
        deciders = sorted({label.annotator_name for label in labels
                           if label.id not in retracted and label.annotator_name})
        return [None, how, ";".join(deciders), None, answers, None, None, None, None, None, None, None, None, None]
    if how == "agreed":
        deciders = ";".join(sorted({label.annotator_name for label in labels
                                    if label.id not in retracted and label.source == "human"}))
    else:
        deciders = standing.annotator_name
    source = "bulk" if standing.bulk_of_id is not None else standing.source
    return [standing.value, how, deciders, _stamp(standing.created_at), answers, source, standing.reason,
            standing.note, standing.suggested, standing.suggested_probability, standing.accepted, standing.strategy,
            standing.seconds_on_screen, standing.model_version]
