"""Dataset queries for pages and the CLI: summaries, standing labels, statistics (the item table:
labeler.data.item_table)."""
from peewee import JOIN, fn

from labeler.store.db import Dataset, GroundTruth, Item, Label, Standing, StandingCount, User, within
from labeler.store.prepared import Prepared, slot
from labeler.store.pool import pool_size


class DatasetNotFound(LookupError):
    """No dataset has the given name."""


_dataset_named = Prepared(Dataset.select().where(Dataset.name == slot("name")).limit(1))  # on every request


def get_dataset(name):
    """The dataset called ``name``. Raises DatasetNotFound."""
    dataset = _dataset_named.first(name=name)
    if dataset is None:
        known = ", ".join(d.name for d in Dataset.select(Dataset.name).order_by(Dataset.name)) or "none"
        raise DatasetNotFound(f"no dataset named {name!r} (known: {known})")
    return dataset


def label_counts(dataset, sources=("human",)):
    """{label value: count} of the labels that stand for ``dataset``: human ones from StandingCount (a few rows,
    whatever the number of labels), machine ones from the log."""
    if tuple(sources) == ("human",):
        counts = {}
        for value, items in (StandingCount.select(StandingCount.value, StandingCount.items)
                             .where((StandingCount.dataset == dataset) & StandingCount.state.in_(Standing.LABELED)
                                    & (StandingCount.items > 0)).tuples()):
            counts[value] = counts.get(value, 0) + items
        return counts
    query = (
        Label.effective(dataset, sources)
        .select(Label.value, fn.COUNT(Label.id).alias("n"))
        .group_by(Label.value)
    )
    return {row.value: row.n for row in query}


def standing_labels(item_ids):
    """{item id: Label} of the human labels that stand for ``item_ids`` (read from Standing), each with an
    ``annotator_name``; disputed and unlabeled items are left out."""
    rows = (Label.select(Label, User.name.alias("annotator_name"))
            .join(User, JOIN.LEFT_OUTER, on=(Label.annotator == User.id))
            .where(within(Label.id, Standing.select(Standing.label).where(Standing.item.in_(item_ids))))
            .objects())
    return {label.item_id: label for label in rows}


def summaries():
    """One dict per dataset: the dataset, its row count, its human label count (each read from an index or a few
    rows: no count of the items)."""
    return [{"dataset": dataset, "rows": pool_size(dataset), "labeled": sum(label_counts(dataset).values())}
            for dataset in Dataset.select().order_by(Dataset.name)]


def stats(dataset):
    """Counts of a dataset for the CLI and the admin: rows, features, labels by value and source."""
    rows = pool_size(dataset)
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
