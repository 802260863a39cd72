"""Decisions on the labeling screen: label, reject, skip, undo and edit, each recorded with the next item leased
in one transaction; and what the analyst did (recent decisions, session figures).

Every decision is a new Label row (source 'human'); an undo is a Label row of kind 'undo' that retracts one, so
the log keeps who decided what, when, with which suggestion on screen. After a label is committed, the retrain
trigger runs inline (two indexed counts) and queues a retrain job for the worker when enough labels arrived.
"""
import datetime
import random
from dataclasses import dataclass

from peewee import IntegrityError, fn

from labeler.labeling.history import card_run
from labeler.labeling.leases import (card_held_by_another, is_answered, my_standing_label, next_lease, refill_if_low,
                                     retracted_subquery)
from labeler.store.db import (Item, JSONField, Label, Lease, QueueEntry, ReviewRequest, Standing, database,
                              in_write_transaction, utcnow)
from labeler.store.prepared import Prepared, PreparedCreate, slot
from labeler.store.settings import (RETRAIN_POSITIVES, engine_settings, labeling_settings, retrain_due,
                                    retrain_step)
from labeler.worker import jobs

NOTE_LIMIT = 2000
RECENT_COUNT = 10
FOUND = "found by analyst"  # Label.strategy of a label given on an item's page, outside the queue (label_found)


class LabelingError(ValueError):
    """A decision, reason, note or item that cannot be accepted; the message says which and why."""


@dataclass
class Outcome:
    """What happened to the analyst's last action: kind is one of recorded, deferred, skipped, undone, edited,
    unchanged, duplicate, stale, nothing. ``label`` is the Label row written, if any."""

    kind: str
    message: str
    label: Label = None



_item_in_dataset = Prepared(Item.select().where((Item.id == slot("id")) & (Item.dataset == slot("dataset"))).limit(1))
_lease_of_item = Prepared(Lease.select().where(Lease.item == slot("item")).limit(1))


def _called(dataset, item, start=False):
    """How a message names ``item``: "transaction 17", or "image 5" in a dataset of images; capitalised at the
    ``start`` of a sentence."""
    noun = dataset.item_noun
    return f"{noun.capitalize() if start else noun} {item.external_id}"


def _item_of(dataset, item_id):
    item = _item_in_dataset.first(id=item_id, dataset=dataset.id)
    if item is None:
        raise LabelingError(f"dataset {dataset.name!r} has no item {item_id}")
    return item


def _held_by(dataset, user, item):
    """(lease, None) when ``user`` holds ``item`` on screen, else (None, Outcome saying why not)."""
    lease = _lease_of_item.first(item=item.id)
    if lease is not None and lease.user_id == user.id and lease.state == "active":
        return lease, None  # an active lease never coexists with the holder's own standing label
    mine = my_standing_label(item.id, user)
    if mine is not None:
        return None, Outcome("duplicate", f"You already labeled {_called(dataset, item)} as "
                                          f"{mine.value}; nothing was recorded twice.")
    # The store keeps no lease history: the user surely had the item when the lease row is theirs or they have
    # a label row on it (undone, or superseded); surely never when it has no lease row and no human label (a
    # lease row goes only when its label is recorded). Otherwise the message says both.
    had_it = (lease is not None and lease.user_id == user.id) or Label.select().where(
        (Label.item == item.id) & (Label.annotator == user.id)).exists()
    if Label.select().where((Label.item == item.id) & (Label.kind == "label") & (Label.source == "human")).exists():
        why = "was labeled by another analyst meanwhile" if had_it else "was labeled by another analyst"
    elif lease is None:
        why = "is no longer assigned to you" if had_it else "was never assigned to you"
    elif lease.state == "active" and lease.user_id != user.id:
        why = "went to another analyst after your lease ran out" + ("" if had_it else ", or was never assigned to you")
    elif had_it:
        why = "is no longer assigned to you"
    else:
        why = "is held by another analyst and was never assigned to you, or no longer is"
    return None, Outcome("stale", f"{_called(dataset, item, start=True)} {why}; your decision was not recorded.")


def _clean_note(note):
    note = (note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise LabelingError(f"note: at most {NOTE_LIMIT} characters, got {len(note)}")
    return note or None


def _clean_reason(dataset, settings, value, reason):
    reason = (reason or "").strip()
    if not reason:
        return None
    if value not in dataset.positive_labels:
        allowed = ", ".join(repr(label) for label in dataset.positive_labels) or "no label of this dataset"
        raise LabelingError(f"reason: a reason code goes with {allowed} only, not {value!r}")
    if reason not in settings["reason_codes"]:
        raise LabelingError(f"reason: {reason!r} is not one of {', '.join(settings['reason_codes'])}")
    return reason


def _clean_value_and_reason(dataset, settings, value, reason):
    """The reason to record with label ``value`` (see _clean_reason). Raises LabelingError for a value outside the
    dataset's labels, or a reason that cannot go with it."""
    if value not in dataset.labels:
        raise LabelingError(f"value: {value!r} is not a label of this dataset ({', '.join(dataset.labels)})")
    return _clean_reason(dataset, settings, value, reason)


def _resolve(dataset, settings, lease, decision):
    """(label value or None to defer, accepted) for a decision on ``lease``. Raises LabelingError."""
    decision = (decision or "").strip()
    shown = lease.suggested is not None and lease.show_suggestion
    labels = dataset.labels
    if decision == "accept":
        if not shown:
            raise LabelingError("decision: there is no suggestion on screen to accept; pick a label")
        return lease.suggested, True
    if decision == "reject" or decision.startswith("reject:"):
        if not shown:
            raise LabelingError("decision: there is no suggestion on screen to reject; pick a label")
        others = [label for label in labels if label != lease.suggested]
        if decision.startswith("reject:"):
            value = decision[len("reject:"):]
            if value not in others:
                raise LabelingError(f"decision: {value!r} is not a label other than the suggestion")
            return value, False
        if len(others) == 1:
            return others[0], False
        if settings["reject_mode"] == "requeue":
            return None, False
        raise LabelingError("decision: choose which label is right instead of the suggestion")
    if decision.startswith("label:"):
        value = decision[len("label:"):]
        if value not in labels:
            raise LabelingError(f"decision: {value!r} is not a label of this dataset ({', '.join(labels)})")
        return value, (value == lease.suggested) if shown else None
    raise LabelingError(f"decision: {decision!r} is not one of accept, reject, reject:LABEL, label:LABEL")


def decide(dataset, user, item_id, decision, reason=None, note=None, now=None):
    """Record ``user``'s decision on ``item_id`` and lease their next item, in one transaction.

    ``decision``: 'accept', 'reject', 'reject:LABEL' or 'label:LABEL'. Returns (Outcome, next lease or None).
    A form for an item the user no longer holds, or labeled already, records nothing (Outcome stale/duplicate).
    Raises LabelingError for an unknown item, decision, reason or an over-long note; the store is then unchanged.
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)
    note = _clean_note(note)
    item = _item_of(dataset, item_id)

    def work():
        lease, outcome = _held_by(dataset, user, item)
        if lease is not None:
            value, accepted = _resolve(dataset, settings, lease, decision)
            if value is None:
                outcome = _defer(dataset, lease, user, settings, now, item, Outcome(
                    "deferred", f"Rejected {lease.suggested} for {_called(dataset, item)}; "
                                f"it comes back later with the next most likely label."), [lease.suggested])
            else:
                outcome = _record(dataset, user, settings, lease, item, value, accepted,
                                  _clean_reason(dataset, settings, value, reason), note, now)
        return (outcome, *next_lease(dataset, user, settings, now))

    outcome, following, available = in_write_transaction(work)
    refill_if_low(dataset, available)
    _retrain_if_due(dataset, outcome)
    return outcome, following


def decide_run(dataset, user, item_id, decision, through_id, reason=None, note=None, now=None):
    """One decision for a run of a card's transactions: ``item_id`` (on ``user``'s screen) and the card's later
    transactions up to ``through_id`` (as the card's history showed them) that have no standing human label.

    ``decision`` is 'label:LABEL'. The item on screen gets its label as by decide; every other transaction of
    the run gets a label row of its own whose ``bulk_of`` is that label, so undo takes the run back at once.
    Returns (Outcome, next lease or None). Raises LabelingError for an unknown item, decision or reason, or a
    ``through_id`` that is not a later transaction of the same card; the store is then unchanged.
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)
    note = _clean_note(note)
    item = _item_of(dataset, item_id)
    if not (decision or "").startswith("label:"):
        raise LabelingError("decision: a run of transactions takes label:LABEL")

    def work():
        lease, outcome = _held_by(dataset, user, item)
        if lease is not None:
            value, accepted = _resolve(dataset, settings, lease, decision)
            run = card_run(dataset, item, _item_of(dataset, through_id))
            if run is None:
                raise LabelingError(f"through: transaction {through_id} is not a later transaction of the card of "
                                    f"{item.external_id}")
            cleaned = _clean_reason(dataset, settings, value, reason)
            outcome = _record(dataset, user, settings, lease, item, value, accepted, cleaned, note, now)
            if outcome.label is not None:
                Label.insert_many([
                    {"item": later.id, "kind": "label", "value": value, "annotator": user.id, "source": "human",
                     "reason": cleaned, "note": note, "bulk_of": outcome.label.id, "created_at": now}
                    for later in run]).execute()
                Standing.refresh([later.id for later in run])
                Lease.delete().where(Lease.item.in_([later.id for later in run]) & (Lease.user == user.id)).execute()
                outcome = Outcome("recorded", f"Labeled transaction {item.external_id} and the {len(run)} later "
                                              f"transaction(s) of its card as {value}.", outcome.label)
        return (outcome, *next_lease(dataset, user, settings, now))

    outcome, following, available = in_write_transaction(work)
    refill_if_low(dataset, available)
    _retrain_if_due(dataset, outcome)
    return outcome, following


def label_found(dataset, user, item_id, value, reason=None, note=None, now=None):
    """Label ``item_id``, which ``user`` found outside the queue (a known fraud looked up in the item table), in
    one transaction: a human label like any other, with no suggestion and the strategy FOUND, so that the
    prequential record and the adaptive loop's rewards, which judge the queue's picks, leave it out. An item on
    ``user``'s own screen is labeled as there, with the suggestion it shows.

    Returns an Outcome: recorded; duplicate when an analyst's answer to the item stands already (a change goes
    through edit or review); stale when another analyst has it, or a transaction of its card, on screen.
    Raises LabelingError for an unknown item, value or reason, or an over-long note; the store is then unchanged.
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)
    note = _clean_note(note)
    item = _item_of(dataset, item_id)
    reason = _clean_value_and_reason(dataset, settings, value, reason)

    def work():
        if is_answered(item.id):
            return Outcome("duplicate", f"{_called(dataset, item, start=True)} has an analyst's label already; nothing "
                                        f"was recorded (a reviewer settles a disagreement).")
        lease = _lease_of_item.first(item=item.id)
        if lease is not None and lease.state == "active" and lease.expires_at > now:
            if lease.user_id != user.id:
                return Outcome("stale", f"{_called(dataset, item, start=True)} is on another analyst's screen; your "
                                        f"label was not recorded.")
            shown = lease.suggested is not None and lease.show_suggestion
            return _record(dataset, user, settings, lease, item, value, (value == lease.suggested) if shown else None,
                           reason, note, now)
        if card_held_by_another(dataset, user, now, item.id):
            return Outcome("stale", f"Another analyst has a transaction of the card of {item.external_id} on "
                                    f"screen; your label was not recorded.")
        if lease is not None:  # run out, or put aside by a skip: the label takes the item
            Lease.delete().where(Lease.id == lease.id).execute()
        label = _create_answer(
            item=item.id, kind="label", value=value, annotator=user.id, source="human", suggested=None,
            suggested_probability=None, accepted=None, note=note, reason=reason, seconds_on_screen=None,
            suggestion_shown=None, created_at=now, strategy=FOUND, model_version=None)
        Standing.refresh([item.id])
        _maybe_review(dataset, settings, item, label)
        return Outcome("recorded", f"Labeled {_called(dataset, item)} as {value}.", label)

    outcome = in_write_transaction(work)
    _retrain_if_due(dataset, outcome)
    return outcome


def _retrain_if_due(dataset, outcome):
    """After a committed label: queue a retrain for the worker when the human labels since the last finished
    retrain call for one (labeler.store.settings.retrain_due: a tenth of the labeled items, from 10 up to
    ``retrain_every``, or 5 positives among 10 or more), or at once when the label is the only one that stands
    for its class while another class has labels too (the first fraud: a model takes over from the cold start).
    labeler.worker.jobs keeps it single-flight. Returns the queued job or None.

    Runs after every decision, so it is plain SQL on indexes: one look at the dataset's newest waiting or
    finished retrain (nothing more to do while one waits), then one statement with two counts of the labels
    since the finished one's watermark that stop at ``retrain_every`` and at RETRAIN_POSITIVES, and the few
    StandingCount rows of the dataset,
    so its cost does not grow when no worker retrains (well under a millisecond on the full credit-card file).
    """
    if outcome.label is None:
        return None
    param = database.param
    row = database.execute_sql(
        f'SELECT "state", "payload" FROM "job" WHERE "dataset_id" = {param} AND "kind" = {param} '
        f'AND "state" IN ({param}, {param}) ORDER BY "id" DESC LIMIT 1',
        (dataset.id, jobs.RETRAIN, "queued", "done")).fetchone()
    if row is not None and row[0] == "queued":
        return None
    watermark = (JSONField().python_value(row[1]) or {}).get("watermark", 0) if row else 0
    every = engine_settings(dataset)["retrain_every"]
    since = (f'FROM "label" JOIN "item" ON "item"."id" = "label"."item_id" WHERE "label"."id" > {param} '
             f'AND "item"."dataset_id" = {param} AND "label"."source" = {param} AND "label"."kind" = {param}')
    standing = f'FROM "standing_count" WHERE "dataset_id" = {param} AND "state" IN ({param}, {param})'
    positives = list(dataset.positive_labels)
    new_positives = (f'(SELECT COUNT(*) FROM (SELECT 1 {since} AND "label"."value" IN '
                     f'({", ".join([param] * len(positives))}) LIMIT {param}) AS "positives")' if positives else '0')
    new, fresh_positives, labeled, of_its_class, classes = database.execute_sql(
        f'SELECT (SELECT COUNT(*) FROM (SELECT 1 {since} LIMIT {param}) AS "new"), {new_positives}, '
        f'(SELECT COALESCE(SUM("items"), 0) {standing}), '
        f'(SELECT COALESCE(SUM("items"), 0) {standing} AND "value" = {param}), '
        f'(SELECT COUNT(DISTINCT "value") {standing} AND "items" > 0)',
        (watermark, dataset.id, "human", "label", int(every),
         *((watermark, dataset.id, "human", "label", *positives, RETRAIN_POSITIVES) if positives else ()),
         dataset.id, *Standing.LABELED, dataset.id, *Standing.LABELED, outcome.label.value,
         dataset.id, *Standing.LABELED)).fetchone()
    if retrain_due(labeled, new, fresh_positives, every):
        why = f"{new} new labels" if new >= retrain_step(labeled, every) else f"{fresh_positives} new positive labels"
        return jobs.request(dataset, jobs.RETRAIN, why)[0]
    if of_its_class == 1 and classes >= 2:
        return jobs.request(dataset, jobs.RETRAIN, f"the first {outcome.label.value} label")[0]
    return None


def _still_mine(lease, user):
    """SQL: ``lease`` is still ``user``'s active lease (re-checked in the write, for databases without
    SQLite's one-writer-at-a-time, where a double click could otherwise record twice)."""
    return (Lease.id == lease.id) & (Lease.user == user) & (Lease.state == "active")


def _stale(dataset, item):
    return Outcome("stale", f"{_called(dataset, item, start=True)} is no longer assigned to you; "
                            f"your decision was not recorded.")


_create_answer = PreparedCreate(Label, "item", "kind", "value", "annotator", "source", "suggested",
                                "suggested_probability", "accepted", "note", "reason", "seconds_on_screen",
                                "suggestion_shown", "created_at", "strategy", "model_version")


def _record(dataset, user, settings, lease, item, value, accepted, reason, note, now):
    if not lease.second_look and random.random() < settings["overlap_share"]:
        released = Lease.update(state="second", second_look=True, expires_at=now).where(_still_mine(lease, user))
    else:
        released = Lease.delete().where(_still_mine(lease, user))
    if not released.execute():
        return _stale(dataset, item)
    has_suggestion = lease.suggested is not None
    label = _create_answer(
        item=item.id, kind="label", value=value, annotator=user.id, source="human",
        suggested=lease.suggested, suggested_probability=lease.probability, accepted=accepted, note=note,
        reason=reason, seconds_on_screen=max(0.0, (now - lease.offered_at).total_seconds()),
        suggestion_shown=lease.show_suggestion if has_suggestion else None, created_at=now,
        strategy=lease.strategy, model_version=lease.model_version_id,
    )
    Standing.refresh([item.id])
    _maybe_review(dataset, settings, item, label)
    return Outcome("recorded", f"Labeled {_called(dataset, item)} as {value}.", label)


def _maybe_review(dataset, settings, item, label):
    """Send a positive ``label`` of ``item`` to review with the dataset's review_share."""
    if label.value in dataset.positive_labels and random.random() < settings["review_share"]:
        ReviewRequest.insert(dataset=dataset, item=item.id, label=label.id).on_conflict_ignore().execute()


def _defer(dataset, lease, user, settings, now, item, outcome, rejected=()):
    """Hold the item back from everyone for the skip time, ruling out the ``rejected`` suggestions when it
    comes back; returns ``outcome``, or a stale one when the lease is no longer the user's."""
    held = (Lease.update(state="deferred", rejected=list(lease.rejected or []) + list(rejected),
                         expires_at=now + datetime.timedelta(minutes=settings["skip_minutes"]))
            .where(_still_mine(lease, user)).execute())
    return outcome if held else _stale(dataset, item)


def skip(dataset, user, item_id, now=None):
    """Put ``item_id`` aside for the dataset's skip time (it comes back later) and lease the next item.

    Returns (Outcome, next lease or None). Raises LabelingError for an item not in the dataset.
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)
    item = _item_of(dataset, item_id)

    def work():
        lease, outcome = _held_by(dataset, user, item)
        if lease is not None:
            outcome = _defer(dataset, lease, user, settings, now, item, Outcome(
                "skipped", f"Skipped {_called(dataset, item)}; it comes back later."))
        return (outcome, *next_lease(dataset, user, settings, now))

    outcome, following, available = in_write_transaction(work)
    refill_if_low(dataset, available)
    return outcome, following


def undo(dataset, user, now=None):
    """Retract ``user``'s latest standing label in ``dataset`` and put its item back in front of them.

    Returns (Outcome, the lease now on their screen or None).
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)

    def work():
        target = (Label.select().join(Item)
                  .where((Item.dataset == dataset) & (Label.annotator == user) & (Label.kind == "label")
                         & (Label.source == "human") & ~retracted_subquery(Label))
                  .order_by(Label.id.desc()).first())
        if target is None:
            outcome = Outcome("nothing", "Nothing to undo.")
        else:
            if target.bulk_of_id is not None:  # a run's label: the whole run goes back, from its decision
                target = Label.get_by_id(target.bulk_of_id)
            run = list(Label.select().where((Label.bulk_of == target.id) & ~retracted_subquery(Label)))
            Label.insert_many([{"item": label.item_id, "kind": "undo", "retracts": label.id, "annotator": user.id,
                                "source": "human", "created_at": now} for label in [target, *run]]).execute()
            Standing.refresh([label.item_id for label in [target, *run]])
            called = _called(dataset, target.item)
            also = f" and on the {len(run)} later transaction(s) of its card" if run else ""
            if _lease_back(dataset, user, settings, target, now):
                outcome = Outcome("undone", f"Undid {target.value} on {called}{also}; it is back "
                                            f"on your screen.")
            else:
                outcome = Outcome("undone", f"Undid {target.value} on {called}{also}; another "
                                            f"analyst holds it now.")
        return (outcome, *next_lease(dataset, user, settings, now))

    outcome, following, available = in_write_transaction(work)
    refill_if_low(dataset, available)
    return outcome, following


def _lease_back(dataset, user, settings, label, now):
    """Put the item of an undone ``label`` on ``user``'s screen unless another analyst holds it; True if done."""
    entry = QueueEntry.get_or_none((QueueEntry.dataset == dataset) & (QueueEntry.item == label.item_id))
    probabilities = (entry.probabilities if entry is not None else None) or (
        {label.suggested: label.suggested_probability} if label.suggested else {})
    terms = dict(
        user=user.id, state="active", expires_at=now + datetime.timedelta(minutes=settings["lease_minutes"]),
        offered_at=now, strategy=entry.strategy if entry is not None else "undone", suggested=label.suggested,
        probability=label.suggested_probability, probabilities=probabilities,
        model_version=entry.model_version_id if entry is not None else None,
        show_suggestion=label.suggestion_shown is not False, second_look=False,
    )
    row = Lease.get_or_none(Lease.item == label.item_id)
    if row is None:
        try:
            with database.atomic():
                Lease.create(dataset=dataset, item=label.item_id, rejected=[], **terms)
            return True
        except IntegrityError:
            return False
    taken = (Lease.update(**terms)
             .where((Lease.id == row.id) & ((Lease.state != "active") | (Lease.expires_at <= now)
                                            | (Lease.user == user)))
             .execute())
    return bool(taken)


def edit(dataset, user, item_id, value, reason=None, now=None):
    """Change ``user``'s standing label on ``item_id`` to ``value``: an undo row retracting it plus a new label.

    Returns (Outcome, the lease on their screen). Raises LabelingError for an unknown item, value or reason.
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)
    item = _item_of(dataset, item_id)
    reason = _clean_value_and_reason(dataset, settings, value, reason)

    def work():
        old = my_standing_label(item.id, user)
        if old is None:
            outcome = Outcome("stale", f"You have no standing label on {_called(dataset, item)} to change.")
        elif old.value == value and (reason is None or reason == old.reason):
            outcome = Outcome("unchanged", f"{_called(dataset, item, start=True)} is already labeled {value}.")
        else:
            Label.create(item=item.id, kind="undo", retracts=old, annotator=user, source="human", created_at=now)
            shown = old.suggestion_shown
            label = Label.create(
                item=item.id, kind="label", value=value, annotator=user, source="human", suggested=old.suggested,
                suggested_probability=old.suggested_probability,
                accepted=(value == old.suggested) if shown else None, note=old.note,
                reason=reason if value in dataset.positive_labels else None, suggestion_shown=shown,
                created_at=now, strategy=old.strategy, model_version=old.model_version,
            )
            Standing.refresh([item.id])
            outcome = Outcome("edited", f"Changed {_called(dataset, item)} from {old.value} to {value}.",
                              label)
        return (outcome, *next_lease(dataset, user, settings, now))

    outcome, following, available = in_write_transaction(work)
    refill_if_low(dataset, available)
    _retrain_if_due(dataset, outcome)
    return outcome, following


def latest_label_id():
    """The id of the newest label row (0 when there is none): labels recorded later have higher ids."""
    return Label.select(fn.MAX(Label.id)).scalar() or 0


_recent_decisions = Prepared(
    Label.select(Label.id, Label.item, Label.value, Label.reason, Label.note, Item.id, Item.external_id)
    .join(Item)
    .where((Item.dataset == slot("dataset")) & (Label.annotator == slot("user")) & (Label.kind == "label")
           & (Label.source == "human") & ~retracted_subquery(Label))
    .order_by(Label.id.desc()).limit(slot("limit")))


def recent_decisions(dataset, user, limit=RECENT_COUNT):
    """``user``'s latest standing labels in ``dataset``, newest first, each with its item's id and external id
    joined (the columns the list of recent decisions shows)."""
    return list(_recent_decisions(dataset=dataset.id, user=user.id, limit=limit))


_session_counts = Prepared(
    Label.select(Label.value, fn.COUNT(Label.id)).join(Item)
    .where((Label.annotator == slot("user")) & (Label.source == "human") & (Label.kind == "label")
           & (Label.id > slot("after")) & (Item.dataset == slot("dataset")) & (Label.created_at >= slot("since"))
           & ~retracted_subquery(Label))
    .group_by(Label.value).tuples())


def session_stats(dataset, user, since, after=0, now=None):
    """Labels and frauds (any positive label) ``user`` gave in ``dataset`` since ``since`` (standing ones), and
    labels per minute. ``after``: a label id before the session's first label (latest_label_id when it began),
    so that only the session's labels are read, not the analyst's whole history."""
    now = now or utcnow()
    counts = dict(_session_counts(user=user.id, after=after, dataset=dataset.id, since=since))
    labels = sum(counts.values())
    minutes = max((now - since).total_seconds() / 60.0, 1.0)
    frauds = sum(counts.get(label, 0) for label in dataset.positive_labels)  # every fraud type counts
    return {"labels": labels, "frauds": frauds, "per_minute": labels / minutes}
