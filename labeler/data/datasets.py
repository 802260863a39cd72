"""Dataset queries for pages and the CLI: summaries, standing labels, statistics (the item table:
labeler.data.item_table)."""
from peewee import JOIN, fn

from labeler.store.db import Dataset, GroundTruth, Item, Label, User


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


def standing_labels(dataset, include_machine=False, item_ids=None):
    """{item id: Label} of the labels that stand for ``dataset`` (only ``item_ids`` if given), each with an
    ``annotator_name`` (None for machine labels). A human label wins; with ``include_machine`` items without
    one get their latest pseudo or model label."""
    groups = [("human",), ("pseudo", "model")] if include_machine else [("human",)]
    standing = {}
    for sources in groups:
        query = (
            Label.effective(dataset, sources)
            .select(Label, User.name.alias("annotator_name"))
            .join(User, JOIN.LEFT_OUTER, on=(Label.annotator == User.id))
        )
        if item_ids is not None:
            query = query.where(Label.item.in_(item_ids))
        for label in query.objects():
            standing.setdefault(label.item_id, label)
    return standing


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
        "display_columns": [c for c in dataset.columns if c not in dataset.file_features],
        "roles": dataset.roles or {},
        "labels": dataset.labels,
        "positive_labels": dataset.positive_labels,
        "human_labels": human,
        "human_labeled": sum(human.values()),
        "pseudo_labels": pseudo,
        "ground_truth": truth,
    }
