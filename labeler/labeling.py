"""The labeling screen's service: leases on queued items, decisions, skip, undo, edits, and what the screen shows.

Every decision is a new Label row (source 'human'); an undo is a Label row of kind 'undo' that retracts one.
Items are handed out through Lease rows whose item column is unique, so the database itself guarantees that two
analysts never hold the same item, across threads and processes alike. The next item comes from the queue that
labeler.queue.refresh_queue wrote ahead of time; this module only picks the first free entry and refills the
queue in a background thread when it runs low.
"""
import datetime
import logging
import random
import threading
import time
from dataclasses import dataclass

from peewee import JOIN, SQL, IntegrityError, fn

from labeler import features_view, retraining
from labeler.datasets import label_counts
from labeler.db import (
    Dataset,
    Item,
    Job,
    Label,
    Lease,
    ModelVersion,
    QueueEntry,
    database,
    utcnow,
    write_transaction,
)
from labeler.queue import refresh_queue, serving_scores
from labeler.tasks import enqueue_retrain

log = logging.getLogger(__name__)

DEFAULT_SETTINGS = {
    "lease_minutes": 10.0,  # an item on screen is held this long; after that another analyst may take it
    "skip_minutes": 5.0,  # a skipped item is held back this long before it is offered again
    "reject_mode": "pick",  # more than two labels: "pick" (choose the right one) or "requeue" (next guess later)
    "reason_codes": ["card not present", "account takeover", "card testing", "friendly fraud", "other"],
    "overlap_share": 0.0,  # share of labeled items given to a second analyst, blind to the first answer
    "hide_suggestion_share": 0.0,  # share of items shown without the suggestion (follow-the-model check)
    "refill_below": 100,  # refresh the queue in the background when fewer free entries remain
}
REJECT_MODES = ("pick", "requeue")
NOTE_LIMIT = 2000
SIMILAR_COUNT = 5
RECENT_COUNT = 10
CANDIDATES = 20  # queue entries tried per acquisition when others grab the first ones
REFILL_COOLDOWN_SECONDS = 10.0
REFILL_CHECK_SECONDS = 2.0
RETRAIN_CHECK_SECONDS = 1.0  # the retrain trigger counts new labels at most this often per dataset
HEADLINE_NAMES = ("amount", "time")


class LabelingError(ValueError):
    """A decision, reason, note or item that cannot be accepted; the message says which and why."""


class SettingsError(ValueError):
    """A labeling setting that is not valid; the message names it."""


@dataclass
class Outcome:
    """What happened to the analyst's last action: kind is one of recorded, deferred, skipped, undone, edited,
    unchanged, duplicate, stale, nothing. ``label`` is the Label row written, if any."""

    kind: str
    message: str
    label: Label = None


def labeling_settings(dataset):
    """The dataset's labeling settings (Dataset.settings['labeling']) over the defaults."""
    stored = (dataset.settings or {}).get("labeling") or {}
    return {**DEFAULT_SETTINGS, **{key: value for key, value in stored.items() if key in DEFAULT_SETTINGS}}


def update_labeling_settings(dataset, changes):
    """Validate ``changes`` (a dict of setting name -> value, strings allowed) and store them.

    Returns the new settings. Raises SettingsError naming the first bad setting; nothing is stored then.
    """
    clean = {}
    for key, raw in changes.items():
        if key not in DEFAULT_SETTINGS:
            raise SettingsError(f"unknown labeling setting {key!r}")
        clean[key] = _parse_setting(key, raw)
    with write_transaction():
        fresh = Dataset.get_by_id(dataset.id)
        settings = fresh.settings or {}
        settings["labeling"] = {**(settings.get("labeling") or {}), **clean}
        Dataset.update(settings=settings).where(Dataset.id == dataset.id).execute()
    dataset.settings = settings
    return labeling_settings(dataset)


def _parse_setting(key, raw):
    if key == "reject_mode":
        if raw not in REJECT_MODES:
            raise SettingsError(f"reject_mode must be one of {', '.join(REJECT_MODES)}, not {raw!r}")
        return raw
    if key == "reason_codes":
        codes = [c.strip() for c in raw.split(",")] if isinstance(raw, str) else [str(c).strip() for c in raw]
        codes = [c for c in codes if c]
        if any(len(code) > 80 for code in codes):
            raise SettingsError("reason_codes: each code must have at most 80 characters")
        if len(codes) > 9:
            raise SettingsError("reason_codes: at most 9 codes (one per digit key)")
        return codes
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{key} must be a number, not {raw!r}") from None
    if key.endswith("_share"):
        if not 0.0 <= number <= 1.0:
            raise SettingsError(f"{key} must lie between 0 and 1, not {number:g}")
        return number
    if key == "refill_below":
        if number < 0 or number != int(number):
            raise SettingsError(f"{key} must be a whole number of at least 0")
        return int(number)
    if not number > 0:
        raise SettingsError(f"{key} must be more than 0 minutes")
    return number


# ---------------------------------------------------------------------------------------------------------------
# Work off the request path


class BackgroundRunner:
    """Runs ``work(dataset)`` for a dataset in a background thread of this process, one run per dataset at a
    time, so that the request that asked for it does not wait.

    ``cooldown``: the least time in seconds between the starts of two runs. ``again``: a request that arrives
    while a run is going, or within the cooldown, gets one more run as soon as the cooldown allows (so nothing
    asked for is missed); without it such requests are dropped.
    """

    def __init__(self, name, work, cooldown=0.0, again=False):
        self.name, self.work, self.cooldown, self.again = name, work, cooldown, again
        self._threads = {}
        self._started = {}
        self._pending = set()
        self._delayed = set()  # runs scheduled but not begun: a request now is served by them
        self._lock = threading.Lock()

    def request(self, dataset_id):
        """Start a run for ``dataset_id`` unless one runs (then, with ``again``, one more follows) or one
        started within the cooldown (then, with ``again``, one starts when it ends). Returns True when a run
        was started or scheduled."""
        with self._lock:
            running = self._threads.get(dataset_id)
            if running is not None and running.is_alive():
                if self.again and dataset_id not in self._delayed:
                    self._pending.add(dataset_id)
                return False
            if self._cooling(dataset_id) > 0 and not self.again:
                return False
            self._start(dataset_id)
            return True

    def _cooling(self, dataset_id):
        """Seconds until the cooldown after the latest run's start is over (<= 0: over)."""
        return self.cooldown - (time.monotonic() - self._started.get(dataset_id, -1e9))

    def _start(self, dataset_id):
        delay = max(0.0, self._cooling(dataset_id))
        thread = threading.Thread(target=self._run, args=(dataset_id, delay), daemon=True,
                                  name=f"{self.name}-{dataset_id}")
        self._threads[dataset_id] = thread
        self._started[dataset_id] = time.monotonic() + delay
        self._delayed.add(dataset_id)
        thread.start()

    def _run(self, dataset_id, delay):
        time.sleep(delay)
        with self._lock:
            self._delayed.discard(dataset_id)
        try:
            with database.connection_context():
                dataset = Dataset.get_or_none(Dataset.id == dataset_id)
                if dataset is not None:
                    self.work(dataset)
        except Exception:  # a background thread has nobody to raise to: log it, the next request retries
            log.exception("%s of dataset %s failed", self.name, dataset_id)
        finally:
            with self._lock:
                if dataset_id in self._pending:
                    self._pending.discard(dataset_id)
                    self._start(dataset_id)

    def wait(self, timeout=None):
        """Wait until no run is going (tests and benchmarks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                alive = [thread for thread in self._threads.values() if thread.is_alive()]
            if not alive:
                return
            for thread in alive:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                return


# Queue refills, ahead of time and off the request path; the retrain trigger (a count of the labels since the
# last retrain, and a job when enough arrived), likewise checked after decisions without delaying them.
refiller = BackgroundRunner("queue-refill", refresh_queue, cooldown=REFILL_COOLDOWN_SECONDS)
retrain_watch = BackgroundRunner("retrain-check",
                                 lambda dataset: retraining.note_new_labels(dataset, enqueue_retrain),
                                 cooldown=RETRAIN_CHECK_SECONDS, again=True)


def ensure_queue(dataset):
    """Fill an empty queue now (after an import, before anyone labels); returns the number of entries written.

    A dataset that already has a queue is left alone: refills happen in the background. The queue's size is
    the engine's setting (labeler.queue.refresh_queue).
    """
    if QueueEntry.select().where(QueueEntry.dataset == dataset).exists():
        return 0
    return refresh_queue(dataset)


# ---------------------------------------------------------------------------------------------------------------
# Leases


def _retracted_subquery(label_alias):
    undo = Label.alias("undo")
    return fn.EXISTS(undo.select(SQL("1")).where(undo.retracts == label_alias.id))


def _standing_label_exists(item_column, annotator=None):
    """SQL: the item in ``item_column`` has a standing human label (by ``annotator`` when given)."""
    label = Label.alias("standing")
    condition = ((label.item == item_column) & (label.kind == "label") & (label.source == "human")
                 & ~_retracted_subquery(label))
    if annotator is not None:
        condition &= label.annotator == annotator
    return fn.EXISTS(label.select(SQL("1")).where(condition))


def my_standing_label(item_id, user):
    """The standing human label ``user`` gave ``item_id``, or None."""
    return (Label.select().where((Label.item == item_id) & (Label.annotator == user) & (Label.kind == "label")
                                 & (Label.source == "human") & ~_retracted_subquery(Label))
            .order_by(Label.id.desc()).first())


def _suggestion_from(entry, rejected, labels):
    """(suggested, probability) from a queue entry, skipping labels rejected already."""
    if not rejected:
        return entry.suggested, entry.probability
    ranked = sorted(((p, label) for label, p in (entry.probabilities or {}).items()
                     if label in labels and label not in rejected), reverse=True)
    if not ranked:
        return None, None
    return ranked[0][1], float(ranked[0][0])


def current_lease(dataset, user):
    """The item on ``user``'s screen: their most recently offered active lease (an undone item comes first)."""
    return (Lease.select().where((Lease.dataset == dataset) & (Lease.user == user) & (Lease.state == "active"))
            .order_by(Lease.offered_at.desc(), Lease.id.desc()).first())


def next_item(dataset, user, now=None):
    """The lease of the item ``user`` should see now: the one they hold, else a newly leased one, else None."""
    now = now or utcnow()
    with write_transaction():
        lease, available = _next_lease(dataset, user, labeling_settings(dataset), now)
    _refill_if_low(dataset, available)
    return lease


def _next_lease(dataset, user, settings, now):
    """(lease or None, free queue entries seen or None); call inside write_transaction()."""
    lease = current_lease(dataset, user)
    if lease is not None:
        expires = now + datetime.timedelta(minutes=settings["lease_minutes"])
        Lease.update(expires_at=expires).where(Lease.id == lease.id).execute()
        lease.expires_at = expires
        return lease, None
    return _acquire(dataset, user, settings, now)


def _acquire(dataset, user, settings, now):
    """Lease the next item for ``user``: a blind second look, else the first free queue entry, else an item
    they skipped earlier. Returns (lease or None, free queue entries counted, or None when not counted)."""
    lease = _take_second_look(dataset, user, settings, now)
    if lease is not None:
        return lease, None
    for entry_id in _free_entries(dataset, now, CANDIDATES):
        entry = QueueEntry.get_or_none(QueueEntry.id == entry_id)  # None: a refresh replaced the queue meanwhile
        lease = _take_entry(dataset, user, settings, now, entry) if entry is not None else None
        if lease is not None:
            return lease, _count_free_now_and_then(dataset, settings, now)
    return _take_back_deferred(dataset, user, settings, now), 0


def _free_entries(dataset, now, limit):
    """Ids of up to ``limit`` queue entries, first first, whose item nobody holds and nobody has labeled.

    The labeled head of the queue is not walked again on every call: see _QueueFloors.
    """
    head = (QueueEntry.select(QueueEntry.id, QueueEntry.item, QueueEntry.created_at)
            .where(QueueEntry.dataset == dataset).order_by(QueueEntry.priority, QueueEntry.id).tuples().first())
    if head is None:
        return []
    floor = _floors.floor(dataset, head)
    free = _unclaimed(QueueEntry.select(QueueEntry.id, QueueEntry.priority), dataset, now)
    if floor is None:
        found = scanned = list(free.limit(limit).tuples())
    else:
        scanned = list(free.where(QueueEntry.priority >= floor).limit(limit).tuples())
        returned = list(  # from the few lapsed leases (CROSS JOIN keeps SQLite from walking the queue's head)
            Lease.select(QueueEntry.id, QueueEntry.priority)
            .join(QueueEntry, JOIN.CROSS)
            .where((QueueEntry.item == Lease.item) & (Lease.dataset == dataset) & (Lease.expires_at <= now)
                   & Lease.state.in_(("active", "deferred")) & (QueueEntry.dataset == dataset)
                   & (QueueEntry.priority < floor)
                   & ~_standing_label_exists(QueueEntry.item))
            .limit(limit).tuples())
        found = sorted(returned + scanned, key=lambda pair: pair[1])[:limit]
    if scanned:
        _floors.advance(dataset, head, scanned[0][1])
    return [entry_id for entry_id, _ in found]


def _unclaimed(query, dataset, now):
    """``query`` over the dataset's queue entries, restricted to items nobody holds and nobody has labeled."""
    live = Lease.select(Lease.item).where((Lease.dataset == dataset) & (Lease.expires_at > now))
    return (query.where((QueueEntry.dataset == dataset) & QueueEntry.item.not_in(live)
                        & ~_standing_label_exists(QueueEntry.item))
            .order_by(QueueEntry.priority, QueueEntry.id))


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
        known_head, floor = self._floors.get(features_view.cache_key(dataset), (None, None))
        return floor if known_head == head else None

    def advance(self, dataset, head, priority):
        """Every entry of the queue headed by ``head`` before ``priority`` was found claimed."""
        self._floors[features_view.cache_key(dataset)] = (head, priority)


_floors = _QueueFloors()
_counted_at = {}


def _count_free_now_and_then(dataset, settings, now):
    """How many queue entries are free (up to refill_below), counted at most every REFILL_CHECK_SECONDS per
    dataset and process; None between counts."""
    key = features_view.cache_key(dataset)
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


def _take_entry(dataset, user, settings, now, entry):
    """Lease ``entry``'s item: insert a lease row, or take over an expired one; None when someone was faster."""
    terms = dict(
        _new_terms(settings, now), user=user.id, state="active", strategy=entry.strategy,
        suggested=entry.suggested, probability=entry.probability, probabilities=entry.probabilities or {},
        model_version=entry.model_version_id, second_look=False,
    )
    try:
        with database.atomic():
            return Lease.create(dataset=dataset, item=entry.item_id, rejected=[], **terms)
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


def _take_second_look(dataset, user, settings, now):
    """Lease an item labeled by another analyst that waits for a blind second look, or return None."""
    waiting = (
        Lease.select(Lease.id, Lease.item)
        .where((Lease.dataset == dataset) & Lease.second_look
               & (((Lease.state == "second") & (Lease.user != user))
                  | ((Lease.state == "active") & (Lease.expires_at <= now))))
        .order_by(Lease.id)
        .limit(CANDIDATES)
        .tuples()
    )
    for lease_id, item_id in list(waiting):
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


def _refill_if_low(dataset, available):
    if available is not None and available < labeling_settings(dataset)["refill_below"]:
        refiller.request(dataset.id)


# ---------------------------------------------------------------------------------------------------------------
# Decisions


def _item_of(dataset, item_id):
    item = Item.get_or_none((Item.id == item_id) & (Item.dataset == dataset))
    if item is None:
        raise LabelingError(f"dataset {dataset.name!r} has no item {item_id}")
    return item


def _held_by(dataset, user, item):
    """(lease, None) when ``user`` holds ``item`` on screen, else (None, Outcome saying why not)."""
    lease = Lease.get_or_none(Lease.item == item.id)
    if lease is not None and lease.user_id == user.id and lease.state == "active":
        return lease, None  # an active lease never coexists with the holder's own standing label
    mine = my_standing_label(item.id, user)
    if mine is not None:
        return None, Outcome("duplicate", f"You already labeled transaction {item.external_id} as "
                                          f"{mine.value}; nothing was recorded twice.")
    if Label.select().where((Label.item == item.id) & (Label.kind == "label") & (Label.source == "human")).exists():
        why = "was labeled by another analyst meanwhile"
    elif lease is not None and lease.state == "active":
        why = "went to another analyst after your lease ran out"
    else:
        why = "is no longer assigned to you"
    return None, Outcome("stale", f"Transaction {item.external_id} {why}; your decision was not recorded.")


def _clean_note(note):
    note = (note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise LabelingError(f"note: at most {NOTE_LIMIT} characters, got {len(note)}")
    return note or None


def _clean_reason(dataset, settings, value, reason):
    reason = (reason or "").strip()
    if not reason:
        return None
    if value != dataset.positive_label:
        raise LabelingError(f"reason: a reason code goes with {dataset.positive_label!r} only, not {value!r}")
    if reason not in settings["reason_codes"]:
        raise LabelingError(f"reason: {reason!r} is not one of {', '.join(settings['reason_codes'])}")
    return reason


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
    with write_transaction():
        lease, outcome = _held_by(dataset, user, item)
        if lease is not None:
            value, accepted = _resolve(dataset, settings, lease, decision)
            if value is None:
                outcome = _defer(lease, user, settings, now, item, Outcome(
                    "deferred", f"Rejected {lease.suggested} for transaction {item.external_id}; "
                                f"it comes back later with the next most likely label."), [lease.suggested])
            else:
                outcome = _record(dataset, user, settings, lease, item, value, accepted,
                                  _clean_reason(dataset, settings, value, reason), note, now)
        following, available = _next_lease(dataset, user, settings, now)
    _refill_if_low(dataset, available)
    _retrain_if_due(dataset, outcome)
    return outcome, following


def _retrain_if_due(dataset, outcome):
    """Have the background check queue a retrain for the worker once enough new labels arrived
    (labeler.retraining debounces it)."""
    if outcome.label is not None:
        retrain_watch.request(dataset.id)


def _still_mine(lease, user):
    """SQL: ``lease`` is still ``user``'s active lease (re-checked in the write, for databases without
    SQLite's one-writer-at-a-time, where a double click could otherwise record twice)."""
    return (Lease.id == lease.id) & (Lease.user == user) & (Lease.state == "active")


def _stale(item):
    return Outcome("stale", f"Transaction {item.external_id} is no longer assigned to you; "
                            f"your decision was not recorded.")


def _record(dataset, user, settings, lease, item, value, accepted, reason, note, now):
    if not lease.second_look and random.random() < settings["overlap_share"]:
        released = Lease.update(state="second", second_look=True, expires_at=now).where(_still_mine(lease, user))
    else:
        released = Lease.delete().where(_still_mine(lease, user))
    if not released.execute():
        return _stale(item)
    has_suggestion = lease.suggested is not None
    label = Label.create(
        item=item.id, kind="label", value=value, annotator=user, source="human",
        suggested=lease.suggested, suggested_probability=lease.probability, accepted=accepted, note=note,
        reason=reason, seconds_on_screen=max(0.0, (now - lease.offered_at).total_seconds()),
        suggestion_shown=lease.show_suggestion if has_suggestion else None, created_at=now,
    )
    return Outcome("recorded", f"Labeled transaction {item.external_id} as {value}.", label)


def _defer(lease, user, settings, now, item, outcome, rejected=()):
    """Hold the item back from everyone for the skip time, ruling out the ``rejected`` suggestions when it
    comes back; returns ``outcome``, or a stale one when the lease is no longer the user's."""
    held = (Lease.update(state="deferred", rejected=list(lease.rejected or []) + list(rejected),
                         expires_at=now + datetime.timedelta(minutes=settings["skip_minutes"]))
            .where(_still_mine(lease, user)).execute())
    return outcome if held else _stale(item)


def skip(dataset, user, item_id, now=None):
    """Put ``item_id`` aside for the dataset's skip time (it comes back later) and lease the next item.

    Returns (Outcome, next lease or None). Raises LabelingError for an item not in the dataset.
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)
    item = _item_of(dataset, item_id)
    with write_transaction():
        lease, outcome = _held_by(dataset, user, item)
        if lease is not None:
            outcome = _defer(lease, user, settings, now, item, Outcome(
                "skipped", f"Skipped transaction {item.external_id}; it comes back later."))
        following, available = _next_lease(dataset, user, settings, now)
    _refill_if_low(dataset, available)
    return outcome, following


def undo(dataset, user, now=None):
    """Retract ``user``'s latest standing label in ``dataset`` and put its item back in front of them.

    Returns (Outcome, the lease now on their screen or None).
    """
    now = now or utcnow()
    settings = labeling_settings(dataset)
    with write_transaction():
        target = (Label.select().join(Item)
                  .where((Item.dataset == dataset) & (Label.annotator == user) & (Label.kind == "label")
                         & (Label.source == "human") & ~_retracted_subquery(Label))
                  .order_by(Label.id.desc()).first())
        if target is None:
            outcome = Outcome("nothing", "Nothing to undo.")
        else:
            Label.create(item=target.item_id, kind="undo", retracts=target, annotator=user, source="human",
                         created_at=now)
            external_id = target.item.external_id
            if _lease_back(dataset, user, settings, target, now):
                outcome = Outcome("undone", f"Undid {target.value} on transaction {external_id}; it is back "
                                            f"on your screen.")
            else:
                outcome = Outcome("undone", f"Undid {target.value} on transaction {external_id}; another "
                                            f"analyst holds it now.")
        following, available = _next_lease(dataset, user, settings, now)
    _refill_if_low(dataset, available)
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
    if value not in dataset.labels:
        raise LabelingError(f"value: {value!r} is not a label of this dataset ({', '.join(dataset.labels)})")
    reason = _clean_reason(dataset, settings, value, reason)
    with write_transaction():
        old = my_standing_label(item.id, user)
        if old is None:
            outcome = Outcome("stale", f"You have no standing label on transaction {item.external_id} to change.")
        elif old.value == value and (reason is None or reason == old.reason):
            outcome = Outcome("unchanged", f"Transaction {item.external_id} is already labeled {value}.")
        else:
            Label.create(item=item.id, kind="undo", retracts=old, annotator=user, source="human", created_at=now)
            shown = old.suggestion_shown
            label = Label.create(
                item=item.id, kind="label", value=value, annotator=user, source="human", suggested=old.suggested,
                suggested_probability=old.suggested_probability,
                accepted=(value == old.suggested) if shown else None, note=old.note,
                reason=reason if value == dataset.positive_label else None, suggestion_shown=shown,
                created_at=now,
            )
            outcome = Outcome("edited", f"Changed transaction {item.external_id} from {old.value} to {value}.",
                              label)
        following, available = _next_lease(dataset, user, settings, now)
    _refill_if_low(dataset, available)
    _retrain_if_due(dataset, outcome)
    return outcome, following


# ---------------------------------------------------------------------------------------------------------------
# What the screen shows


def recent_decisions(dataset, user, limit=RECENT_COUNT):
    """``user``'s latest standing labels in ``dataset``, newest first, each with its item's id and external id
    joined (the columns the list of recent decisions shows)."""
    return list(
        Label.select(Label.id, Label.item, Label.value, Label.reason, Label.note, Item.id, Item.external_id)
        .join(Item)
        .where((Item.dataset == dataset) & (Label.annotator == user) & (Label.kind == "label")
               & (Label.source == "human") & ~_retracted_subquery(Label))
        .order_by(Label.id.desc()).limit(limit)
    )


def session_stats(dataset, user, since, now=None):
    """Labels and frauds ``user`` gave in ``dataset`` since ``since`` (standing ones), and labels per minute."""
    now = now or utcnow()
    mine = (Label.select(Label.value, fn.COUNT(Label.id)).join(Item)
            .where((Item.dataset == dataset) & (Label.annotator == user) & (Label.kind == "label")
                   & (Label.source == "human") & (Label.created_at >= since) & ~_retracted_subquery(Label))
            .group_by(Label.value).tuples())
    counts = dict(mine)
    labels = sum(counts.values())
    minutes = max((now - since).total_seconds() / 60.0, 1.0)
    return {"labels": labels, "frauds": counts.get(dataset.positive_label, 0), "per_minute": labels / minutes}


def dataset_status(dataset):
    """Totals, the serving model, the latest job, why the newest model lost the gate (if it did) and which file
    is unusable (if one is), of ``dataset``, for the polled header component."""
    counts = label_counts(dataset)
    model = (ModelVersion.select().where((ModelVersion.dataset == dataset) & ModelVersion.serving)
             .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).first())
    job = Job.select().where(Job.dataset == dataset).order_by(Job.created_at.desc(), Job.id.desc()).first()
    quality = None
    if model is not None and model.metrics:
        for key in ("auprc", "average_precision", "roc_auc", "f1"):
            if isinstance(model.metrics.get(key), (int, float)):
                quality = (key, float(model.metrics[key]))
                break
    newest = (ModelVersion.select().where(ModelVersion.dataset == dataset).order_by(ModelVersion.id.desc()).first())
    lost = newest is not None and not newest.serving and (newest.gate or {}).get("passed") is False
    return {"labeled": sum(counts.values()), "frauds": counts.get(dataset.positive_label, 0),
            "model": model, "quality": quality, "job": job,
            "gate": newest.gate.get("line") if lost else None,  # why the newest model does not serve
            "notice": serving_scores(dataset).notice}  # an unusable model or scores file and what serves instead


def headline_columns(dataset):
    """Columns shown first: the display-only ones and any feature called Amount or Time, in file order."""
    features = set(dataset.feature_columns)
    return [c for c in dataset.columns if c not in features or c.lower() in HEADLINE_NAMES]


def screen(dataset, lease, settings=None):
    """Everything the item panel shows for ``lease``: item, headline values, feature bars, suggestion,
    alternatives for a reject (most likely first), reason codes and similar labeled items."""
    settings = settings or labeling_settings(dataset)
    item = Item.get_by_id(lease.item_id)
    values = dict(zip(dataset.columns, item.display_values(dataset)))
    vector = item.feature_vector
    shown = lease.suggested is not None and lease.show_suggestion
    probabilities = lease.probabilities or {}
    alternatives = sorted((label for label in dataset.labels if label != lease.suggested),
                          key=lambda label: -float(probabilities.get(label, 0.0)))
    stats = features_view.feature_stats(dataset)
    bars = features_view.feature_bars(vector, stats, dataset.feature_columns)
    return {
        "lease": lease,
        "item": item,
        "headline": [(column, values[column]) for column in headline_columns(dataset)],
        "bars": bars,
        "chart": features_view.chart_geometry(len(bars)),
        "reconstruction": features_view.reconstruction_bars(dataset, item.id, vector, dataset.feature_columns),
        "shown": shown,
        "suggested": lease.suggested if shown else None,
        "probability": lease.probability if shown else None,
        "strategy": lease.strategy if shown else None,
        "alternatives": [(label, probabilities.get(label)) for label in alternatives],
        "reasons": settings["reason_codes"],
        "reject_mode": settings["reject_mode"],
        "similar": features_view.similar_labeled(dataset, item.id, vector, stats, SIMILAR_COUNT),
    }
