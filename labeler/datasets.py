"""Dataset queries for pages and the CLI: summaries, paged items, statistics."""
from peewee import fn

from labeler.db import Dataset, GroundTruth, Item, Label


class DatasetNotFound(LookupError):
    """No dataset has the given name."""


def get_dataset(name):
    """The dataset called ``name``. Raises DatasetNotFound."""
    dataset = Dataset.get_or_none(Dataset.name == name)
    if dataset is None:
        known = ", ".join(d.name for d in Dataset.select(Dataset.name).order_by(Dataset.name)) or "none"
        raise DatasetNotFound(f"no dataset named {name!r} (known: {known})")
    return dataset


def label_counts(dataset, sources=("human",)):
    """{label value: count} of the labels that stand for ``dataset``."""
    query = (
        Label.effective(dataset, sources)
        .select(Label.value, fn.COUNT(Label.id).alias("n"))
        .group_by(Label.value)
    )
    return {row.value: row.n for row in query}


def summaries():
    """One dict per dataset: the dataset, its row count, its human label count."""
    rows = dict(
        Item.select(Item.dataset, fn.COUNT(Item.id)).group_by(Item.dataset).tuples()
    )
    result = []
    for dataset in Dataset.select().order_by(Dataset.name):
        counts = label_counts(dataset)
        result.append({"dataset": dataset, "rows": rows.get(dataset.id, 0), "labeled": sum(counts.values())})
    return result


def item_page(dataset, page, per_page):
    """(items with a ``current_label`` attribute, page count) for 1-based ``page``."""
    total = dataset.items().count()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    items = list(
        dataset.items()
        .where((Item.row_number >= start) & (Item.row_number < start + per_page))
        .order_by(Item.row_number)
    )
    current = {}
    if items:
        effective = Label.effective(dataset, ("human", "pseudo")).where(Label.item.in_([i.id for i in items]))
        current = {label.item_id: label for label in effective}
    for item in items:
        item.current_label = current.get(item.id)
    return items, pages, page, total


def stats(dataset):
    """Counts of a dataset for the CLI and the admin: rows, features, labels by value and source."""
    rows = dataset.items().count()
    human = label_counts(dataset, ("human",))
    pseudo = label_counts(dataset, ("pseudo",))
    truth = dict(
        GroundTruth.select(GroundTruth.value, fn.COUNT(GroundTruth.item))
        .join(Item)
        .where(Item.dataset == dataset)
        .group_by(GroundTruth.value)
        .tuples()
    )
    return {
        "dataset": dataset.name,
        "rows": rows,
        "features": len(dataset.feature_columns),
        "display_columns": [c for c in dataset.columns if c not in dataset.feature_columns],
        "labels": dataset.labels,
        "human_labels": human,
        "human_labeled": sum(human.values()),
        "pseudo_labels": pseudo,
        "ground_truth": truth,
    }
