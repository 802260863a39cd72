"""Review: the items whose analysts disagree, and the fraud labels sampled for review (the ``review_share``
setting), wait for a reviewer. The reviewer sees every answer and decides; that decision is a label row of
source 'review' and stands (labeler.store.db.Label.effective states the rule), and the audit log records it.

Nothing is leased: two reviewers may open the same item, and the second decision is refused with who settled
it first.
"""
from dataclasses import dataclass

from peewee import JOIN

from labeler.data import audit
from labeler.labeling.leases import retracted_subquery
from labeler.store.db import (Item, Label, QueueEntry, ReviewRequest, Standing, StandingCount, User, utcnow, within,
                              write_transaction)

DISPUTED = "analysts disagree"
SAMPLED = "fraud label sampled for review"
WAITING_SHOWN = 200


class ReviewError(ValueError):
    """A review decision that cannot be accepted (unknown item or label, a user who may not review); the
    message says which."""


@dataclass
class Answer:
    """One decision on an item as the review screen and the export show it."""

    label: Label
    annotator: str
    retracted: bool


def _disputed(dataset):
    """SQL: ids of the disputed items of ``dataset`` (a range of Standing's (dataset, state, item) index)."""
    return Standing.select(Standing.item).where((Standing.dataset == dataset) & (Standing.state == "disputed"))


def _sampled(dataset):
    """SQL: ids of the items of ``dataset``'s review requests that are neither adjudicated nor disputed (those
    wait as sampled), in the order they were sampled."""
    settled_or_disputed = Standing.select(Standing.item).where(
        (Standing.dataset == dataset) & Standing.state.in_(("adjudicated", "disputed")))
    return (ReviewRequest.select(ReviewRequest.item)
            .where((ReviewRequest.dataset == dataset) & within(ReviewRequest.item, settled_or_disputed, negate=True))
            .order_by(ReviewRequest.id))


def waiting(dataset, limit=WAITING_SHOWN):
    """(item id, why) of the items waiting for review, disputed ones first in item order, then the sampled ones
    as they were sampled; at most ``limit`` (all with None)."""
    disputed, sampled = _disputed(dataset).order_by(Standing.item), _sampled(dataset)
    if limit is not None:
        disputed, sampled = disputed.limit(limit), sampled.limit(limit)
    rows = [(item_id, DISPUTED) for (item_id,) in disputed.tuples()]
    rows += [(item_id, SAMPLED) for (item_id,) in sampled.tuples()]
    return rows[:limit]


def waiting_count(dataset):
    """How many items wait for review: the disputed ones (StandingCount, one row) and the dataset's review
    requests that are neither adjudicated nor disputed."""
    disputed = (StandingCount.select(StandingCount.items)
                .where((StandingCount.dataset == dataset) & (StandingCount.state == "disputed")).scalar() or 0)
    return disputed + _sampled(dataset).order_by().count()


def _why(dataset, item_id):
    """Why ``item_id`` waits for review (DISPUTED or SAMPLED), None when it does not."""
    state = Standing.select(Standing.state).where(Standing.item == item_id).scalar()
    if state in ("disputed", "adjudicated"):
        return DISPUTED if state == "disputed" else None
    requested = ReviewRequest.select().where((ReviewRequest.dataset == dataset) & (ReviewRequest.item == item_id))
    return SAMPLED if requested.exists() else None


def next_waiting(dataset, after=None):
    """The id of the first item waiting for review, after item ``after`` in the waiting order when given (a
    skip), wrapping round to the first; None when nothing waits."""
    rows = [item_id for item_id, _ in waiting(dataset)]
    if not rows:
        return None
    if after in rows and rows.index(after) + 1 < len(rows):
        return rows[rows.index(after) + 1]
    return rows[0] if rows[0] != after or len(rows) == 1 else rows[1]


def answers(item_id):
    """Every human and review decision on ``item_id``, oldest first, undone ones marked retracted."""
    rows = (Label.select(Label, User.name.alias("annotator_name"))
            .join(User, JOIN.LEFT_OUTER, on=(Label.annotator == User.id))
            .where((Label.item == item_id) & (Label.kind == "label") & Label.source.in_(("human", "review")))
            .order_by(Label.id).objects())
    retracted = {row.retracts_id for row in Label.select(Label.retracts)
                 .where((Label.item == item_id) & Label.retracts.is_null(False))}
    return [Answer(row, row.annotator_name, row.id in retracted) for row in rows]


def item_review(dataset, item_id):
    """What the review screen shows for ``item_id``: the item, why it waits (None when it does not), every
    answer, the standing adjudication (or None) and the suggestion: (label, probability, model version id) from
    the queue when the item is queued, else as an analyst last saw it; probability and version None for the
    cold start's pick; None when nothing was suggested. Raises ReviewError for an item not in ``dataset``."""
    item = Item.get_or_none((Item.id == item_id) & (Item.dataset == dataset))
    if item is None:
        raise ReviewError(f"dataset {dataset.name!r} has no item {item_id}")
    every = answers(item.id)
    adjudication = next((answer for answer in reversed(every)
                         if answer.label.source == "review" and not answer.retracted), None)
    reason = _why(dataset, item.id)
    entry = QueueEntry.get_or_none((QueueEntry.dataset == dataset) & (QueueEntry.item == item.id))
    seen = next((answer.label for answer in reversed(every) if answer.label.suggested), None)
    if entry is not None and entry.suggested:
        suggestion = _suggestion(entry.suggested, entry.probability, entry.model_version_id)
    elif seen is not None:
        suggestion = _suggestion(seen.suggested, seen.suggested_probability, seen.model_version)
    else:
        suggestion = None
    return {"item": item, "why": reason, "answers": every, "adjudication": adjudication, "suggestion": suggestion}


def _suggestion(label, probability, version):
    """(label, probability, model version id); a pick of the cold start (no version) has no probability."""
    return (label, probability, version) if version is not None else (label, None, None)


def adjudicate(dataset, reviewer, item_id, value, note=None):
    """Record ``reviewer``'s decision ``value`` on ``item_id``: it stands (source 'review') and the audit log
    says who settled what, with the answers it settled. Returns (the Label, None), or (None, one line saying
    who settled the item already) when a standing adjudication exists: nothing is recorded then. Raises
    ReviewError for a user who may not review, an unknown item or label, or a note over 2,000 characters."""
    if not reviewer.can_review:
        raise ReviewError(f"user {reviewer.name!r} is an {reviewer.role} and may not review")
    if value not in dataset.labels:
        raise ReviewError(f"decision: {value!r} is not a label of this dataset ({', '.join(dataset.labels)})")
    note = (note or "").strip() or None
    if note is not None and len(note) > 2000:
        raise ReviewError(f"note: at most 2000 characters, got {len(note)}")
    with write_transaction():
        view = item_review(dataset, item_id)
        if view["adjudication"] is not None:
            settled = view["adjudication"]
            return None, (f"{dataset.item_noun.capitalize()} {view['item'].external_id} was settled as "
                          f"{settled.label.value} by {settled.annotator} already; your decision was not recorded.")
        label = Label.create(item=view["item"].id, kind="label", value=value, annotator=reviewer, source="review",
                             note=note, created_at=utcnow(),
                             suggested=view["suggestion"][0] if view["suggestion"] else None,
                             suggested_probability=view["suggestion"][1] if view["suggestion"] else None,
                             model_version=view["suggestion"][2] if view["suggestion"] else None,
                             accepted=(value == view["suggestion"][0]) if view["suggestion"] else None,
                             suggestion_shown=True if view["suggestion"] else None, strategy="review")
        Standing.refresh([label.item_id])
        settled_answers = [{"annotator": answer.annotator, "label": answer.label.value}
                           for answer in view["answers"] if not answer.retracted]
        audit.record(reviewer, audit.ADJUDICATED, dataset, item=view["item"].external_id, label=value,
                     why=view["why"], answers=settled_answers)
    return label, None


def undo(dataset, reviewer):
    """Retract ``reviewer``'s latest standing adjudication in ``dataset``; returns its item id, or None when
    there is none (the item then waits for review again if its analysts disagree)."""
    with write_transaction():
        target = (Label.select().join(Item)
                  .where((Item.dataset == dataset) & (Label.annotator == reviewer) & (Label.kind == "label")
                         & (Label.source == "review") & ~retracted_subquery(Label))
                  .order_by(Label.id.desc()).first())
        if target is None:
            return None
        Label.create(item=target.item_id, kind="undo", retracts=target, annotator=reviewer, source="review",
                     created_at=utcnow())
        Standing.refresh([target.item_id])
        audit.record(reviewer, audit.ADJUDICATED, dataset, item=target.item.external_id, undone=target.value)
    return target.item_id
