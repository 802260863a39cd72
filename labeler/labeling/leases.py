"""Leases on queued items: which item an analyst sees next, held so that no two analysts get the same one.

Items are handed out through Lease rows whose item column is unique, so the database itself guarantees that two
analysts never hold the same item, across threads and processes alike. The next item comes from the queue that
the worker wrote ahead of time (labeler.worker.refill); this module picks the first free entry, and asks the
worker for a refill (a job) when the queue is empty or runs low. Nothing here computes a score.
"""
import datetime
import random
import time

from peewee import JOIN, SQL, IntegrityError, PostgresqlDatabase, fn

from labeler.store.db import (Item, Label, Lease, QueueEntry, Standing, dataset_key, database, utcnow,
                              write_transaction)
from labeler.store.prepared import Prepared, PreparedCreate, slot
from labeler.store.settings import labeling_settings
from labeler.worker import jobs

CANDIDATES = 20  # queue entries tried per acquisition when others grab the first ones
REFILL_CHECK_SECONDS = 2.0  # free queue entries are counted at most this often per dataset and process
REFILL_COOLDOWN_SECONDS = 10.0  # the least time between the end of one refill and the request of the next


def has_queue(dataset):
    """Whether the worker has written a queue for ``dataset``."""
    return QueueEntry.select().where(QueueEntry.dataset == dataset).exists()


def ask_for_queue(dataset, reason, now=None):
    """Ask the worker for a queue refill of ``dataset`` unless one waits or runs, or one finished less than
    REFILL_COOLDOWN_SECONDS ago (a queue with nothing free would otherwise be refilled on every request);
    returns the refill Job that waits or runs, else None."""
    last = jobs.latest(dataset, jobs.REFILL)
    if last is not None and last.state not in jobs.FINISHED:
        return last
    now = now or utcnow()
    if last is not None and last.finished_at is not None and \
            (now - last.finished_at).total_seconds() < REFILL_COOLDOWN_SECONDS:
        return None
    return jobs.request(dataset, jobs.REFILL, reason)[0]


def preparing(dataset):
    """The refill job of ``dataset`` that waits or runs, or None."""
    job = jobs.latest(dataset, jobs.REFILL)
    return job if job is not None and job.state not in jobs.FINISHED else None


def refill_trouble(dataset):
    """The newest refill job of ``dataset`` when it failed (its error says why the queue is not there), else
    None."""
    job = jobs.latest(dataset, jobs.REFILL)
    return job if job is not None and job.state == "failed" else None


def retracted_subquery(label_alias):
    undo = Label.alias("undo")
    return fn.EXISTS(undo.select(SQL("1")).where(undo.retracts == label_alias.id))


def _answered(item):
    """SQL: Standing's row of ``item`` (an id or a column) when an analyst's answer to it stands (one that no undo
    took back): one primary-key probe (the label log's (source, kind) index would be walked whole)."""
    return Standing.select(SQL("1")).where((Standing.item == item) & Standing.answered)


_is_answered = Prepared(_answered(slot("item")).limit(1))


def is_answered(item_id):
    """Whether an analyst's answer to ``item_id`` stands (the queue never offers it again)."""
    return _is_answered.first(item=item_id) is not None


def _standing_label_exists(item_column):
    """SQL: the item in ``item_column`` has a standing human label (_answered)."""
    return fn.EXISTS(_answered(item_column))


_my_standing_label = Prepared(
    Label.select().where((Label.item == slot("item")) & (Label.annotator == slot("user")) & (Label.kind == "label")
                         & (Label.source == "human") & ~retracted_subquery(Label))
    .order_by(Label.id.desc()).limit(1))


def my_standing_label(item_id, user):
    """The standing human label ``user`` gave ``item_id``, or None."""
    return _my_standing_label.first(item=item_id, user=user.id)


def _suggestion_from(entry, rejected, labels):
    """(suggested, probability) from a queue entry, skipping labels rejected already; (None, None) when the
    entry has no suggestion (K labels before the first model) or every label it ranks was rejected."""
    if not entry.suggested:
        return None, None
    if not rejected:
        return entry.suggested, entry.probability
    ranked = sorted(((p, label) for label, p in (entry.probabilities or {}).items()
                     if label in labels and label not in rejected), reverse=True)
    if not ranked:
        return None, None
    return ranked[0][1], float(ranked[0][0])


_current_lease = Prepared(
    Lease.select().where((Lease.dataset == slot("dataset")) & (Lease.user == slot("user")) & (Lease.state == "active"))
    .order_by(Lease.offered_at.desc(), Lease.id.desc()).limit(1))


def current_lease(dataset, user):
    """The item on ``user``'s screen: their most recently offered active lease (an undone item comes first)."""
    return _current_lease.first(dataset=dataset.id, user=user.id)


def next_item(dataset, user, now=None):
    """The lease of the item ``user`` should see now: the one they hold, else a newly leased one, else None."""
    now = now or utcnow()
    with write_transaction():
        lease, available = next_lease(dataset, user, labeling_settings(dataset), now)
    refill_if_low(dataset, available)
    return lease


def next_lease(dataset, user, settings, now):
    """(lease or None, free queue entries seen or None); call inside write_transaction()."""
    lease = current_lease(dataset, user)
    if lease is not None:
        expires = now + datetime.timedelta(minutes=settings["lease_minutes"])
        Lease.update(expires_at=expires).where(Lease.id == lease.id).execute()
        lease.expires_at = expires
        return lease, None
    return _acquire(dataset, user, settings, now)


_queue_entry = Prepared(QueueEntry.select().where(QueueEntry.id == slot("id")).limit(1))


def _acquire(dataset, user, settings, now):
    """Lease the next item for ``user``: a blind second look, else the first free queue entry, else an item
    they skipped earlier. Returns (lease or None, free queue entries counted, or None when not counted)."""
    lease = _take_second_look(dataset, user, settings, now)
    if lease is not None:
        return lease, None
    candidates = _free_entries(dataset, now, CANDIDATES)
    for entry_id in candidates:
        entry = _queue_entry.first(id=entry_id)  # None: a refresh replaced the queue meanwhile
        lease = _take_entry(dataset, user, settings, now, entry) if entry is not None else None
        if lease is not None:
            return lease, _count_free_now_and_then(dataset, settings, now)
    if candidates and (dataset.roles or {}).get("entities"):  # perhaps every one was of a card another analyst holds
        for entry_id in _entries_of_cards_nobody_else_holds(dataset, user, now, CANDIDATES):
            entry = _queue_entry.first(id=entry_id)
            lease = _take_entry(dataset, user, settings, now, entry) if entry is not None else None
            if lease is not None:
                return lease, _count_free_now_and_then(dataset, settings, now)
    return _take_back_deferred(dataset, user, settings, now), 0


def _entries_of_cards_nobody_else_holds(dataset, user, now, limit):
    """Ids of up to ``limit`` free queue entries, first first, whose card no other analyst holds. Walks the queue
    from its head (not from _QueueFloors' floor, which these entries must not move): only asked when the first
    free entries were all of held cards."""
    held = (Item.select(Item.entity).join(Lease, on=(Lease.item == Item.id))
            .where((Lease.dataset == dataset) & (Lease.user != user.id) & (Lease.state == "active")
                   & (Lease.expires_at > now) & Item.entity.is_null(False)))
    query = (_unclaimed(QueueEntry.select(QueueEntry.id), dataset, now)
             .join(Item, on=(QueueEntry.item == Item.id))
             .where(Item.entity.is_null(True) | Item.entity.not_in(held)))
    return [entry_id for (entry_id,) in query.limit(limit).tuples()]


def _unclaimed(query, dataset, now):
    """``query`` over the dataset's queue entries, restricted to items nobody holds and nobody has labeled."""
    live = Lease.select(Lease.item).where((Lease.dataset == dataset) & (Lease.expires_at > now))
    return (query.where((QueueEntry.dataset == dataset) & QueueEntry.item.not_in(live)
                        & ~_standing_label_exists(QueueEntry.item))
            .order_by(QueueEntry.priority, QueueEntry.id))


_queue_head = Prepared(
    QueueEntry.select(QueueEntry.id, QueueEntry.item, QueueEntry.created_at)
    .where(QueueEntry.dataset == slot("dataset")).order_by(QueueEntry.priority, QueueEntry.id).limit(1).tuples())
_free_from_start = Prepared(
    _unclaimed(QueueEntry.select(QueueEntry.id, QueueEntry.priority), slot("dataset"), slot("now"))
    .limit(slot("limit")).tuples())
_free_from_floor = Prepared(
    _unclaimed(QueueEntry.select(QueueEntry.id, QueueEntry.priority), slot("dataset"), slot("now"))
    .where(QueueEntry.priority >= slot("floor")).limit(slot("limit")).tuples())
_returned_below_floor = Prepared(  # the few lapsed leases (CROSS JOIN keeps SQLite from walking the queue's head)
    Lease.select(QueueEntry.id, QueueEntry.priority)
    .join(QueueEntry, JOIN.CROSS)
    .where((QueueEntry.item == Lease.item) & (Lease.dataset == slot("dataset")) & (Lease.expires_at <= slot("now"))
           & Lease.state.in_(("active", "deferred")) & (QueueEntry.dataset == slot("dataset"))
           & (QueueEntry.priority < slot("floor"))
           & ~_standing_label_exists(QueueEntry.item))
    .limit(slot("limit")).tuples())


def _free_entries(dataset, now, limit):
    """Ids of up to ``limit`` queue entries, first first, whose item nobody holds and nobody has labeled.

    The labeled head of the queue is not walked again on every call: see _QueueFloors.
    """
    head = _queue_head.first(dataset=dataset.id)
    if head is None:
        return []
    floor = _floors.floor(dataset, head)
    if floor is None:
        found = scanned = list(_free_from_start(dataset=dataset.id, now=now, limit=limit))
    else:
        scanned = list(_free_from_floor(dataset=dataset.id, now=now, floor=floor, limit=limit))
        returned = list(_returned_below_floor(dataset=dataset.id, now=now, floor=floor, limit=limit))
        found = sorted(returned + scanned, key=lambda pair: pair[1])[:limit]
    if scanned:
        _floors.advance(dataset, head, scanned[0][1])
    return [entry_id for entry_id, _ in found]


class _QueueFloors:
    """Per dataset and process: a queue priority below which the last scan found every entry claimed (held or
    labeled), so that the next scan starts there instead of walking the labeled head of the queue again.

    A claimed entry comes free again only through its lease (it runs out, or a skip's hold ends; an undone
    label is leased straight back), and those are looked up in the small Lease table. A rewritten queue (a new
    head entry) starts from the bottom. Labels retracted by other code than this module's undo are seen at
    the next queue refresh.
    """

    def __init__(self):
        self._floors = {}

    def floor(self, dataset, head):
        """The floor for the queue whose first entry is ``head``, or None to scan from the start."""
        known_head, floor = self._floors.get(dataset_key(dataset), (None, None))
        return floor if known_head == head else None

    def advance(self, dataset, head, priority):
        """Every entry of the queue headed by ``head`` before ``priority`` was found claimed."""
        self._floors[dataset_key(dataset)] = (head, priority)


_floors = _QueueFloors()
_counted_at = {}


def _count_free_now_and_then(dataset, settings, now):
    """How many queue entries are free (up to refill_below), counted at most every REFILL_CHECK_SECONDS per
    dataset and process; None between counts."""
    key = dataset_key(dataset)
    if time.monotonic() - _counted_at.get(key, -1e9) < REFILL_CHECK_SECONDS:
        return None
    _counted_at[key] = time.monotonic()
    return len(_free_entries(dataset, now, settings["refill_below"]))


def _new_terms(settings, now):
    return {
        "expires_at": now + datetime.timedelta(minutes=settings["lease_minutes"]),
        "offered_at": now,
        "show_suggestion": random.random() >= settings["hide_suggestion_share"],
    }


_create_lease = PreparedCreate(Lease, "dataset", "item", "user", "state", "expires_at", "offered_at", "strategy",
                               "suggested", "probability", "probabilities", "model_version", "show_suggestion",
                               "second_look", "rejected")


def _take_entry(dataset, user, settings, now, entry):
    """Lease ``entry``'s item: insert a lease row, or take over an expired one; None when someone was faster or
    another analyst holds a transaction of the same card (raw transactions: one card, one analyst at a time)."""
    if card_held_by_another(dataset, user, now, entry.item_id):
        return None
    terms = dict(
        _new_terms(settings, now), user=user.id, state="active", strategy=entry.strategy,
        probabilities=entry.probabilities or {}, model_version=entry.model_version_id, second_look=False,
    )
    terms["suggested"], terms["probability"] = _suggestion_from(entry, (), dataset.labels)
    try:
        with database.atomic() as savepoint:
            lease = _create_lease(dataset=dataset.id, item=entry.item_id, rejected=[], **terms)
            # The entry was free when the candidates were read; on PostgreSQL another analyst may have leased
            # and labeled it since (and their label's commit let this insert through). Looked at again now that
            # the lease row is ours, the answer is seen.
            if is_answered(entry.item_id):
                savepoint.rollback()
                return None
            return lease
    except IntegrityError:
        pass
    old = Lease.get_or_none(Lease.item == entry.item_id)
    if old is None or old.state == "second" or old.expires_at > now:
        return None
    terms["suggested"], terms["probability"] = _suggestion_from(entry, old.rejected, dataset.labels)
    taken = (Lease.update(**terms)
             .where((Lease.id == old.id) & (Lease.expires_at <= now) & (Lease.state != "second"))
             .execute())
    return Lease.get_by_id(old.id) if taken else None


def card_held_by_another(dataset, user, now, item_id):
    """True when another analyst holds a live lease on a transaction of ``item_id``'s card (its first entity).

    Check and lease must be one step. On SQLite the write lock (write_transaction) makes them one; on PostgreSQL a
    lock on the card, held until the caller's transaction ends, makes a second analyst's check of the same card
    wait until the first one's lease is committed (and then see it)."""
    if not (dataset.roles or {}).get("entities"):
        return False
    entity = Item.select(Item.entity).where(Item.id == item_id).scalar()
    if entity is None:
        return False
    if isinstance(database.obj, PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (dataset.id, entity))
    return (Lease.select(Lease.id).join(Item, on=(Lease.item == Item.id))
            .where((Item.dataset == dataset) & (Item.entity == entity) & (Lease.dataset == dataset)
                   & (Lease.user != user.id) & (Lease.state == "active") & (Lease.expires_at > now))
            .exists())


_waiting_second_looks = Prepared(
    Lease.select(Lease.id, Lease.item)
    .where((Lease.dataset == slot("dataset")) & Lease.second_look
           & (((Lease.state == "second") & (Lease.user != slot("user")))
              | ((Lease.state == "active") & (Lease.expires_at <= slot("now")))))
    .order_by(Lease.id)
    .limit(CANDIDATES)
    .tuples())


def _take_second_look(dataset, user, settings, now):
    """Lease an item labeled by another analyst that waits for a blind second look, or return None."""
    for lease_id, item_id in list(_waiting_second_looks(dataset=dataset.id, user=user.id, now=now)):
        if my_standing_label(item_id, user) is not None:
            continue
        terms = dict(_new_terms(settings, now), user=user.id, state="active")
        taken = (Lease.update(**terms)
                 .where((Lease.id == lease_id) & ((Lease.state == "second") | (Lease.expires_at <= now)))
                 .execute())
        if taken:
            return Lease.get_by_id(lease_id)
    return None


def _take_back_deferred(dataset, user, settings, now):
    """When nothing else is free: the item ``user`` skipped longest ago, back before its time is up."""
    row = (Lease.select().where((Lease.dataset == dataset) & (Lease.user == user) & (Lease.state == "deferred"))
           .order_by(Lease.expires_at).first())
    if row is None:
        return None
    terms = dict(_new_terms(settings, now), state="active")
    taken = Lease.update(**terms).where((Lease.id == row.id) & (Lease.state == "deferred")).execute()
    return Lease.get_by_id(row.id) if taken else None


def refill_if_low(dataset, available):
    """Ask the worker for a refill when ``available`` (free entries counted, None: not counted) is below the
    dataset's ``refill_below``, or when the dataset has no queue at all (whatever ``refill_below`` says)."""
    if available is None:
        return
    if available < labeling_settings(dataset)["refill_below"]:
        ask_for_queue(dataset, f"{available} free entries left")
    elif available == 0 and not has_queue(dataset):
        ask_for_queue(dataset, "no queue yet")
