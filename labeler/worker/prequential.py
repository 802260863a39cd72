"""The prequential record of a binary dataset (models.prequential): each labeled item's P(positive) under the
blend and under its logistic part, from the version whose suggestion its first human label carried, kept in the
PrequentialScore table. The retrain adds the labels given since the last one (``record_labels``) and gives the
whole record, with the labels that stand now, to the learner (``record_of``).
"""
import numpy as np
from peewee import fn

from labeler.store.db import Item, Label, ModelVersion, PrequentialScore, within, write_transaction
from labeler.store.files import load_scores
from models import prequential, weak


def record_labels(dataset, ids):
    """Write the PrequentialScore of every item of ``dataset`` (``ids``: the pool's sorted item ids) whose first
    human label carried a version that stored its counterpart scores (a binary blend or its logistic part) and
    that has none yet; returns the number written. A version whose files are missing or corrupt records
    nothing: its labels are left out of the record."""
    pending = _pending(dataset)
    versions = (ModelVersion.select().where((ModelVersion.id.in_(list(pending))) & (ModelVersion.dataset == dataset)
                                            & ModelVersion.counterpart_path.is_null(False)))
    rows = []
    for version in versions:
        scores = _pair_of(version)
        if scores is None:
            continue
        items = np.array(sorted(pending[version.id]), dtype=np.int64)
        positions = np.searchsorted(ids, items)
        known = positions < min(len(ids), len(scores))  # an item imported after the version has no score of it
        known[known] &= ids[positions[known]] == items[known]
        rows.extend((int(item), dataset.id, version.id, float(blend), float(logistic))
                    for item, (blend, logistic) in zip(items[known], scores[positions[known]]))
    if rows:
        with write_transaction():
            PrequentialScore.insert_many(rows, fields=[PrequentialScore.item, PrequentialScore.dataset,
                                                       PrequentialScore.model_version, PrequentialScore.blend,
                                                       PrequentialScore.logistic]).execute()
    return len(rows)


def _pending(dataset):
    """{version id: [item ids]} of ``dataset``'s items whose first human label carried that version and that have
    no PrequentialScore yet."""
    firsts = (Label.select(fn.MIN(Label.id)).join(Item, on=(Label.item == Item.id))
              .where((Item.dataset == dataset) & (Label.source == "human") & (Label.kind == "label"))
              .group_by(Label.item))
    recorded = PrequentialScore.select(PrequentialScore.item).where(PrequentialScore.dataset == dataset)
    pending = {}
    for item_id, version_id in (Label.select(Label.item, Label.model_version)
                                .where(within(Label.id, firsts) & Label.model_version.is_null(False)
                                       & within(Label.item, recorded, negate=True)).tuples()):
        pending.setdefault(version_id, []).append(item_id)
    return pending


def pending_versions(dataset):
    """The ids of the versions whose scores a label of ``dataset`` still waits for, to join the record at the next
    retrain (those that stored a counterpart: no other version's label ever joins it)."""
    pending = list(_pending(dataset))
    return {version_id for (version_id,) in ModelVersion.select(ModelVersion.id).where(
        ModelVersion.id.in_(pending) & ModelVersion.counterpart_path.is_null(False)).tuples()} if pending else set()


def _pair_of(version):
    """(pool rows, 2) float32 array of ``version``'s scores as (blend, logistic part), or None when a file is
    unusable."""
    digests = version.digests or {}
    try:
        served = load_scores(version.scores_path, digests.get("scores"))
        other = load_scores(version.counterpart_path, digests.get("counterpart"))
    except (OSError, ValueError):
        return None
    if served.ndim != 1 or served.shape != other.shape:
        return None
    return np.column_stack([served, other] if version.kind == weak.BLEND else [other, served])


def record_of(dataset, ids, labeled, y):
    """The models.prequential.Record of ``dataset``: its PrequentialScore rows of the items among pool indices
    ``labeled`` (``ids``: the pool's sorted item ids), with their labels ``y`` (binary) as truth."""
    rows = list(PrequentialScore.select(PrequentialScore.item, PrequentialScore.blend, PrequentialScore.logistic)
                .where(PrequentialScore.dataset == dataset).order_by(PrequentialScore.item).tuples())
    record = prequential.Record()
    if not rows:
        return record
    items, blend, logistic = (np.array(column) for column in zip(*rows))
    truth = dict(zip(ids[np.asarray(labeled, dtype=np.int64)].tolist(), np.asarray(y).tolist()))
    keep = np.array([item in truth for item in items.tolist()], dtype=bool)
    record.add([truth[item] for item in items[keep].tolist()], blend[keep], logistic[keep])
    return record
