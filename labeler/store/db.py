"""The label store: one peewee database object, the tables, and schema migrations.

SQLite (WAL, foreign keys on) by default; any URL peewee's ``db_url`` understands, e.g.
``postgresql://user:pass@host/db``, for teams that outgrow one machine.
"""
import collections
import contextlib
import datetime
import errno
import json
import os
import threading

import numpy as np
from peewee import (
    SQL,
    BlobField,
    BooleanField,
    CharField,
    CompositeKey,
    EXCLUDED,
    DatabaseProxy,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    NodeList,
    OperationalError,
    PostgresqlDatabase,
    SqliteDatabase,
    TextField,
    fn,
)
from playhouse.db_url import connect as connect_url
from playhouse.pool import PooledDatabase, PooledSqliteDatabase

from labeler.store.prepared import Prepared, slot

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "busy_timeout": 10000,
    "cache_size": -64000,
}


# Connections are pooled: a request's close hands its connection back instead of reopening it next time (on
# SQLite the last close of a WAL database also checkpoints it, which cost more than the request's own work).
POOL_OPTIONS = {"max_connections": 64, "stale_timeout": 300, "timeout": 30}
POOLED_SCHEMES = ("postgres", "postgresql", "mysql")


def open_database(target):
    """Open the store at ``target`` (a file path or a database URL) and bind the models to it.

    Returns the peewee database. Raises ValueError for an unsupported URL scheme.
    """
    if "://" in target:
        if target.startswith("sqlite:///"):
            target = target[len("sqlite:///"):]
        else:
            scheme, rest = target.split("://", 1)
            if scheme in POOLED_SCHEMES:
                scheme += "+pool"
            db = connect_url(f"{scheme}://{rest}", **POOL_OPTIONS)
            database.initialize(db)
            return db
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    db = PooledSqliteDatabase(target, pragmas=SQLITE_PRAGMAS, check_same_thread=False, **POOL_OPTIONS)
    database.initialize(db)
    return db


# How a full disk shows: SQLite's SQLITE_FULL, PostgreSQL's "could not extend file ... No space left on device",
# a file write's ENOSPC (disk) or EDQUOT (quota).
_DISK_FULL_MESSAGES = ("database or disk is full", "no space left on device", "disk quota exceeded")


def full_disk_error(error):
    """The exception in ``error``'s chain (itself, its cause, the exception it was raised while handling) that
    says the disk is full, or None. The chain matters: when a commit fails on a full disk, SQLite has already
    rolled back, so peewee's own rollback then raises "cannot rollback - no transaction is active"."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return error
        if any(message in str(error).lower() for message in _DISK_FULL_MESSAGES):
            return error
        error = error.__cause__ or error.__context__
    return None


_sqlite_writer = threading.Lock()


@contextlib.contextmanager
def write_transaction():
    """``database.atomic()`` for a read-then-write transaction; on SQLite it takes the write lock at once.

    A deferred SQLite transaction that reads and then writes fails with "database is locked" when another
    connection commits in between; BEGIN IMMEDIATE waits instead. Threads of this process also queue on a lock
    first, because SQLite's busy handler waits by sleeping in growing steps (long tails under contention).
    Other processes still wait in the busy handler. PostgreSQL needs neither.
    """
    if isinstance(database.obj, SqliteDatabase) and database.transaction_depth() == 0:
        with _sqlite_writer, database.atomic(lock_type="IMMEDIATE") as transaction:
            yield transaction
    else:
        with database.atomic() as transaction:
            yield transaction


RETRIED_PGCODES = ("40P01", "40001")  # PostgreSQL's deadlock_detected and serialization_failure


def in_write_transaction(work, attempts=3):
    """``work()`` inside write_transaction, its label-count changes written last (standing_counts_last);
    returns its result. When PostgreSQL aborts the transaction as a deadlock's victim (two decisions each
    waiting on the other, one of them for a label-count row the other had just written, as
    tests/test_deployment.py once saw) or a serialization failure, it is rolled back whole and ``work()`` runs
    again, up to ``attempts`` times in all, as PostgreSQL's manual advises; a transaction nested in another is
    never retried. Raises what ``work`` raises, and the last OperationalError when every attempt was a victim."""
    for attempt in range(1, attempts + 1):
        nested = database.transaction_depth() > 0
        try:
            with write_transaction(), standing_counts_last():
                return work()
        except OperationalError as error:
            if nested or attempt == attempts or _pgcode(error) not in RETRIED_PGCODES:
                raise


_counts_pending = threading.local()  # .changes: the label-count changes standing_counts_last holds back


@contextlib.contextmanager
def standing_counts_last():
    """Within the block (the body of a transaction), Standing.refresh keeps its StandingCount changes and writes
    them when the block ends, in one order: the few count rows every decision updates are then locked only for
    the end of the transaction, after its leases and queue entries, instead of across them (on PostgreSQL a
    decision holding a count row while it waited for a lease another decision held was half of a deadlock).
    Nothing is written when the block raises; an inner block leaves the writing to the outer one."""
    if getattr(_counts_pending, "changes", None) is not None:
        yield
        return
    _counts_pending.changes = collections.Counter()
    try:
        yield
        changes = _counts_pending.changes
    finally:
        _counts_pending.changes = None
    _write_counts(changes)


def _pgcode(error):
    """The SQLSTATE of the driver's error under peewee's ``error`` (psycopg2's ``pgcode``), None for SQLite's."""
    for cause in (error.__cause__, error.__context__, *error.args):
        if getattr(cause, "pgcode", None):
            return cause.pgcode
    return None


def refresh_statistics(*models):
    """After a bulk write to the tables of ``models``: on PostgreSQL, ANALYZE them, so that the planner does not
    keep the row counts of the empty tables until autovacuum comes by (a fresh queue of 3,000 entries taken for
    one row turned the next item's lookup into a 40 ms nested loop per decision). SQLite keeps no statistics
    unless asked and plans by its rules (tests/test_query_plans.py holds them): nothing there."""
    if isinstance(database.obj, PostgresqlDatabase):
        for model in models:
            database.execute_sql(f'ANALYZE "{model._meta.table_name}"')


def advisory_lock(*names):
    """Inside a transaction: on PostgreSQL, wait for the transaction-level advisory lock named by ``names``
    (released at commit or rollback), so that the transactions of every process that take the same lock run one
    after another (a job's claim, a queue switch). On SQLite, write_transaction already lets one writer at a time."""
    if isinstance(database.obj, PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (":".join(map(str, names)),))


def hold_session_lock(name):
    """On PostgreSQL: take the session-level advisory lock ``name`` on a new connection outside the pool and
    return that connection: the lock is held until it is closed or the process ends (the server then releases
    it). None on SQLite. Raises peewee's OperationalError when the server cannot be reached."""
    if not isinstance(database.obj, PostgresqlDatabase):
        return None
    connection = super(PooledDatabase, database.obj)._connect()  # the pool's own way to open a fresh one
    _outside_pool.append(connection)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
    return connection


def session_lock_held(name):
    """On PostgreSQL: whether a session (hold_session_lock, in any process) holds the advisory lock ``name``.
    None on SQLite, which has no such locks."""
    if not isinstance(database.obj, PostgresqlDatabase):
        return None
    taken = database.execute_sql("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()[0]
    if taken:
        database.execute_sql("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
    return not taken


_outside_pool = []  # the connections hold_session_lock opened: a forked process must not use or end them
_inherited = []  # SQLite connections a forked process inherited in use: kept, never closed there


def _close_idle_before_fork():
    """Close the pool's idle connections, so that a forked process (a gunicorn worker) inherits none."""
    if isinstance(database.obj, PooledDatabase):
        database.obj.close_idle()


def _forget_connections_in_child():
    """In a forked process: forget the parent's connections (those its threads were using when it forked, and
    those outside the pool) and the pool's lock, so that this process opens connections of its own. A server
    connection's socket is pointed at /dev/null here first: closing it in this process then sends nothing on
    the parent's session (a close sends the server a goodbye that would end it)."""
    db = database.obj
    inherited = [entry.connection for entry in db._in_use.values()] if isinstance(db, PooledDatabase) else []
    inherited += _outside_pool
    _outside_pool.clear()
    for connection in inherited:
        if hasattr(connection, "fileno"):  # psycopg2's
            if not connection.closed:
                nowhere = os.open(os.devnull, os.O_RDWR)
                os.dup2(nowhere, connection.fileno())
                os.close(nowhere)
        else:
            _inherited.append(connection)
    if isinstance(db, PooledDatabase):
        db._in_use, db._connections = {}, []
        db._pool_lock = threading.RLock()
        db._pool_available = threading.Condition(db._pool_lock)
    if db is not None:
        db._state.reset()


os.register_at_fork(before=_close_idle_before_fork, after_in_child=_forget_connections_in_child)


def dataset_key(dataset):
    """What identifies ``dataset`` across stores in one process (for per-process caches): the store's name,
    the dataset's id and its creation time."""
    return (database.obj.database, dataset.id, str(dataset.created_at))


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def within(column, query, negate=False):
    """SQL: ``column IN (query)``, or NOT IN with ``negate``. (peewee's ``in_`` renders a subquery once more to
    see whether it is empty, so each level of nesting doubled the time to build the statement: 50 ms of a page
    with the label rule's four levels.)"""
    return NodeList((column, SQL("NOT IN" if negate else "IN"), query))


class JSONField(TextField):
    """A JSON document kept as text, so it works the same on SQLite and PostgreSQL."""

    def db_value(self, value):
        return None if value is None else json.dumps(value)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


ROLE_CHECK = "CHECK (role IN ('admin', 'reviewer', 'analyst'))"


class User(BaseModel):
    ROLES = ("admin", "reviewer", "analyst")  # a reviewer labels and settles disagreements; an admin does all

    name = CharField(unique=True, max_length=80)
    password_hash = CharField(max_length=256)
    role = CharField(max_length=16, constraints=[SQL(ROLE_CHECK)])
    created_at = DateTimeField(default=utcnow)
    # Sessions live in the signed cookie; each carries the version it was issued under, and bumping this
    # number (logout, password change, disabling) revokes every session issued before (labeler.data.users).
    session_version = IntegerField(default=0)
    disabled = BooleanField(default=False)  # a disabled user cannot log in and has no working session

    # The attributes Flask-Login reads, written here so the store stays free of Flask imports.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self):
        return not self.disabled

    def get_id(self):
        """What the session cookie keeps: the user's id and the session version at login ("12:3")."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_admin(self):
        return self.role == "admin"

    @property
    def can_review(self):
        """Reviewers and admins settle disagreements (labeler.labeling.review)."""
        return self.role in ("admin", "reviewer")


class Dataset(BaseModel):
    name = CharField(unique=True, max_length=120)
    columns = JSONField()  # every column kept for display, in file order (never the id or label column)
    text_columns = JSONField(default=list)  # the display columns that hold text rather than numbers
    feature_columns = JSONField()  # the feature vector's names, in order: file columns, then derived features
    labels = JSONField()  # the label set, e.g. ["genuine", "fraud"]
    positive_label = CharField(null=True, max_length=80)  # the label the model hunts (fraud)
    id_column = CharField(null=True, max_length=120)  # None: ids are row numbers
    label_column = CharField(null=True, max_length=120)  # ground truth column of the imported file
    settings = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)
    # column roles of raw transactions (labeler.data.transactions): time, entities, amount, categorical
    # vocabularies, id-like and numeric feature columns; None for a dataset imported before schema 8
    roles = JSONField(null=True)

    @property
    def positive_labels(self):
        """The labels that count as fraud (the model's high-risk picks, frauds found, reason codes): every fraud
        type of a typology label set; empty for a label set with no positive class (the digits)."""
        stored = (self.settings or {}).get("positive_labels")
        if stored is not None:
            return list(stored)
        return [self.positive_label] if self.positive_label else []

    @property
    def positive_name(self):
        """How the header names what counts as fraud: the positive label, "fraud" for several fraud types, None
        for a label set without a positive class."""
        positives = self.positive_labels
        return None if not positives else positives[0] if len(positives) == 1 else "fraud"

    @property
    def item_noun(self):
        """What the screens' messages call one item: "image" or "transaction"."""
        return "image" if self.image_shape else "transaction"

    @property
    def image_shape(self):
        """(height, width, channels) of an image dataset's items (features are their pixels in [0, 1], row-major),
        None for a dataset of transactions."""
        shape = ((self.roles or {}).get("image") or {}).get("shape")
        return tuple(shape) if shape else None

    @property
    def file_features(self):
        """The file's numeric columns that are features (the first part of the feature vector)."""
        return (self.roles or {}).get("numeric", self.feature_columns)

    @property
    def amount_column(self):
        """The numeric display column that holds the amount: the amount role, else a column named Amount (any
        case); None when there is none."""
        numeric = [column for column in self.columns if column not in self.text_columns]
        named = (self.roles or {}).get("amount")
        if named in numeric:
            return named
        return next((column for column in numeric if str(column).lower() == "amount"), None)

    @property
    def n_features(self):
        return len(self.feature_columns)

    def items(self):
        return Item.select().where(Item.dataset == self)


class Item(BaseModel):
    """One transaction: its original row for display and its feature vector.

    ``numbers`` holds the numeric display columns as float64 (exact), ``texts`` the text columns as JSON,
    ``features`` the feature vector as float32.
    """

    dataset = ForeignKeyField(Dataset, backref="item_set", on_delete="CASCADE")
    external_id = CharField(max_length=200)
    row_number = IntegerField()  # position in the dataset's import order, 0-based
    numbers = BlobField()
    texts = TextField(null=True)
    features = BlobField()
    event_time = FloatField(null=True)  # epoch seconds of the dataset's time column, if it has one
    entity = CharField(null=True, max_length=200)  # the first entity column's value (the card), if any
    second_entity = CharField(null=True, max_length=200)  # the second one's (the merchant), if any
    amount = FloatField(null=True)  # the dataset's amount column (Dataset.amount_column), for the item table

    class Meta:
        # (dataset, amount, id): the item table's pages sorted by amount (schema 13); the time and entity
        # indexes, partial, follow the class
        indexes = ((("dataset", "external_id"), True), (("dataset", "row_number"), True),
                   (("dataset", "amount", "id"), False))

    def typed_values(self, dataset):
        """The original row in ``dataset.columns`` order as JSON takes it: numbers as numbers (whole ones as
        integers, a missing one None), text as text (None where missing)."""
        numbers = iter(np.frombuffer(self.numbers, dtype=np.float64).tolist())
        texts = iter(json.loads(self.texts) if self.texts else [])
        text_columns = set(dataset.text_columns)
        values = []
        for column in dataset.columns:
            if column in text_columns:
                values.append(next(texts))
            else:
                number = next(numbers)
                values.append(None if number != number else int(number) if number.is_integer() and abs(number) < 1e15
                              else number)
        return values

    def display_values(self, dataset):
        """The original row as text, in ``dataset.columns`` order: typed_values written as a file has them (a
        number's shortest round-trip text, whole numbers without '.0', a missing value empty)."""
        return ["" if value is None else str(value) for value in self.typed_values(dataset)]

    @property
    def feature_vector(self):
        return np.frombuffer(self.features, dtype=np.float32)


# the item table's pages sorted by time (schema 13): partial (schema 17), so that a dataset without a time column
# (its items' event_time all null) costs an import no index entry; every query through it names a time or a time
# range, which implies the WHERE (a dataset with a time column has one on every item: the import refuses a gap)
Item.add_index(Item.index(Item.dataset, Item.event_time, Item.id).where(Item.event_time.is_null(False)))
# a card's and a merchant's history (labeler.labeling.history): partial, so that items without one (every item of
# a dataset with no entity column) cost no index entry; a query with "entity = ?" implies the WHERE (schema 16)
Item.add_index(Item.index(Item.dataset, Item.entity, Item.event_time).where(Item.entity.is_null(False)))
Item.add_index(Item.index(Item.dataset, Item.second_entity, Item.event_time).where(Item.second_entity.is_null(False)))


class GroundTruth(BaseModel):
    """The label column of an imported file: used for simulation and evaluation only, never shown."""

    item = ForeignKeyField(Item, primary_key=True, on_delete="CASCADE")
    value = CharField(max_length=80)


class Label(BaseModel):
    """Append-only label log. An undo writes a row of kind 'undo' that retracts an earlier row.

    Sources: 'human' (an analyst's answer), 'review' (a reviewer's adjudication), 'pseudo' and 'model'
    (machine labels). Which human label stands for an item is a rule (``effective``): the adjudication, else
    the answer every analyst who labeled the item agrees on, else none (the item is disputed); never silently
    the latest answer."""

    SOURCES = ("human", "review", "pseudo", "model")

    item = ForeignKeyField(Item, backref="label_set", on_delete="CASCADE", index=False)  # indexes below lead with it
    kind = CharField(max_length=8, default="label")  # 'label' or 'undo'
    value = CharField(null=True, max_length=80)  # None for an undo row
    retracts = ForeignKeyField("self", null=True, backref="retractions")
    annotator = ForeignKeyField(User, null=True, backref="labels", index=False)  # as item
    source = CharField(max_length=8, default="human")
    suggested = CharField(null=True, max_length=80)
    suggested_probability = FloatField(null=True)
    accepted = BooleanField(null=True)  # True: the suggestion was accepted, False: rejected
    note = TextField(null=True)
    reason = CharField(null=True, max_length=80)
    seconds_on_screen = FloatField(null=True)
    created_at = DateTimeField(default=utcnow, index=True)
    suggestion_shown = BooleanField(null=True)  # None: no suggestion existed (or a row older than schema 2)
    # a label given by one decision for a run of a card's transactions: the decision's own label (schema 8)
    bulk_of = ForeignKeyField("self", null=True, backref="bulk_labels", on_delete="CASCADE")
    # what put the item on screen (schema 11): the queue's strategy and the ModelVersion id whose suggestion it
    # carried (kept as a plain id: the record outlives the version's files)
    strategy = CharField(null=True, max_length=40)
    model_version = IntegerField(null=True)

    class Meta:
        # (source, kind, id): counts of a dataset's human labels walk the labels, not the dataset's items
        # (annotator or item, source, kind, id), schema 15: an analyst's or an item's human labels are read from
        # their own entries; with (source, kind, id) alone SQLite walked every human label for them. The item's
        # is made last: without statistics SQLite breaks a tie between indexes in favour of the newest, and a
        # lookup by item and annotator should read the item's few rows, not the analyst's many
        indexes = ((("item", "id"), False), (("source", "kind", "id"), False),
                   (("annotator", "source", "kind", "id"), False), (("item", "source", "kind", "id"), False))

    @classmethod
    def latest(cls, dataset, sources, by=(), items=None):
        """SQL: ids of the newest label row per item (and per ``by`` columns) of ``dataset`` from ``sources`` that
        no undo retracts; of the item ids ``items`` only, when given (their rows only are read)."""
        mine = (Item.dataset == dataset) & (Label.kind == "label") & Label.source.in_(sources)
        if items is None:
            retracted = Label.select(Label.retracts).where(Label.retracts.is_null(False))
            mine &= within(Label.id, retracted, negate=True)
        else:  # each row's undo looked up by its id: reading every undo row would not be bounded by the items
            undo = Label.alias("undo")
            mine &= Label.item.in_(items) & ~fn.EXISTS(undo.select(SQL("1")).where(undo.retracts == Label.id))
        return Label.select(fn.MAX(Label.id)).join(Item).where(mine).group_by(Label.item, *by)

    @classmethod
    def answers(cls, dataset):
        """SQL: ids of each analyst's own standing answer per item of ``dataset`` (source 'human')."""
        return cls.latest(dataset, ("human",), by=(Label.annotator,))

    @classmethod
    def effective(cls, dataset, sources=("human",)):
        """Label rows of ``dataset`` that stand, one per item.

        Human labels (``sources`` ('human',)) follow the rule: an item's standing adjudication (source 'review')
        stands; else, when every analyst's own standing answer on the item is the same label, the newest of
        those answers; else nothing (a disputed item: neither trained on nor exported as labeled). Machine
        sources: the newest standing row per item."""
        if tuple(sources) != ("human",):
            return Label.select().where(within(Label.id, cls.latest(dataset, sources)))
        reviewed = cls.latest(dataset, ("review",))
        answers = Label.alias("answer")
        settled = Label.select(Label.item).where(within(Label.id, reviewed))
        agreed = (answers.select(fn.MAX(answers.id))
                  .where(within(answers.id, cls.answers(dataset)) & within(answers.item, settled, negate=True))
                  .group_by(answers.item)
                  .having(fn.COUNT(answers.value.distinct()) == 1))
        return Label.select().where(within(Label.id, reviewed) | within(Label.id, agreed))

    @classmethod
    def disputed(cls, dataset):
        """SQL: ids of the items of ``dataset`` whose analysts' standing answers differ and that no standing
        adjudication settles."""
        answers = Label.alias("answer")
        reviewed = Label.select(Label.item).where(within(Label.id, cls.latest(dataset, ("review",))))
        return (answers.select(answers.item)
                .where(within(answers.id, cls.answers(dataset)) & within(answers.item, reviewed, negate=True))
                .group_by(answers.item)
                .having(fn.COUNT(answers.value.distinct()) > 1))


class Standing(BaseModel):
    """The human label that stands for each item by Label.effective's rule, kept row by row (``refresh``) in the
    transaction of every human or review label write and undo, with StandingCount, so that the header's counts,
    the review queue and the item table's label filters read a few rows or an index range instead of grouping
    the whole label log on every request. Items with no standing answer and no standing adjudication have no
    row. Label.effective stays the definition; the store's migration 15 filled this table from it."""

    STATES = ("adjudicated", "agreed", "disputed")
    LABELED = ("adjudicated", "agreed")  # the states in which a label stands

    item = ForeignKeyField(Item, primary_key=True, on_delete="CASCADE")
    dataset = ForeignKeyField(Dataset, on_delete="CASCADE", index=False)  # the index below starts with it
    state = CharField(max_length=12, constraints=[SQL("CHECK (state IN ('adjudicated', 'agreed', 'disputed'))")])
    value = CharField(null=True, max_length=80)  # None when disputed
    label = ForeignKeyField(Label, null=True, on_delete="CASCADE")  # the row that stands; None when disputed
    answered = BooleanField()  # some analyst's own answer stands (the queue never offers the item again)

    class Meta:
        # counts by label and the item table's label filters read a range of the first; the review queue's
        # disputed items, in item order, a range of the second
        indexes = ((("dataset", "state", "value"), False), (("dataset", "state", "item"), False))

    @classmethod
    def refresh(cls, item_ids):
        """Recompute the rows of ``item_ids`` from their human and review label rows by Label.effective's rule:
        the newest standing adjudication ('adjudicated'); else each analyst's newest standing answer, which
        stands when they all agree (the newest of them, 'agreed') and is 'disputed' when they do not; else no
        row; ``answered`` says whether any analyst's answer stands. StandingCount follows, at once or, within
        standing_counts_last, when that block ends. Call it inside the
        transaction that wrote the labels (on PostgreSQL it locks the items' rows, so that two transactions
        refreshing one item take turns and the second sees the first's labels).

        Item by item, with queries prepared once (labeler.store.prepared): three statements and a count per
        answer. An undo row is read with its item's labels: it carries the item of the label it retracts."""
        item_ids = sorted(set(item_ids))
        if not item_ids:
            return
        if isinstance(database.obj, PostgresqlDatabase):
            database.execute_sql(f'SELECT 1 FROM "item" WHERE "id" IN ({", ".join(["%s"] * len(item_ids))}) '
                                 f'ORDER BY "id" FOR NO KEY UPDATE', item_ids)
        change = collections.Counter()
        for item_id in item_ids:
            for dataset_id, state, value in _drop_standing(item=item_id):
                change[(dataset_id, state, value or "")] -= 1
            row = _standing_by_rule(item_id, list(_labels_for_standing(item=item_id)))
            if row is not None:
                _insert_standing(**row)
                change[(row["dataset"], row["state"], row["value"] or "")] += 1
        pending = getattr(_counts_pending, "changes", None)
        if pending is None:
            _write_counts(change)
        else:
            pending.update(change)


def _write_counts(change):
    """Add ``change`` ({(dataset id, state, value): items}) to StandingCount's rows, in one order (two
    transactions never take the same rows in opposite orders)."""
    for (dataset_id, state, value), items in sorted(change.items()):
        if items:
            _count_standing(dataset=dataset_id, state=state, value=value, items=items)


class StandingCount(BaseModel):
    """How many Standing rows a dataset has in each state and with each value (value "" for 'disputed'), kept
    by Standing.refresh in the same transaction: the header's counts and the number of disputed items read a
    few rows whatever the number of labels."""

    dataset = ForeignKeyField(Dataset, on_delete="CASCADE", index=False)  # the key starts with it
    state = CharField(max_length=12)
    value = CharField(max_length=80)
    items = IntegerField()

    class Meta:
        primary_key = CompositeKey("dataset", "state", "value")


def _standing_by_rule(item_id, rows):
    """Standing's row (a dict of its fields) of ``item_id`` from its label rows in id order (id, dataset, value,
    annotator, source, kind, label it retracts), by Label.effective's rule; None when nothing stands or waits."""
    retracted = {retracts for *_, retracts in rows if retracts is not None}
    review, answers = None, {}
    for label_id, _, value, annotator_id, source, kind, _ in rows:
        if kind != "label" or label_id in retracted:
            continue
        if source == "review":
            review = (label_id, value)  # in id order: the newest wins
        elif source == "human":
            answers[annotator_id] = (label_id, value)
    if review is None and not answers:
        return None
    row = {"item": item_id, "dataset": rows[0][1], "answered": bool(answers)}
    if review is not None:
        return {**row, "state": "adjudicated", "value": review[1], "label": review[0]}
    if len({value for _, value in answers.values()}) == 1:
        label_id, value = max(answers.values())
        return {**row, "state": "agreed", "value": value, "label": label_id}
    return {**row, "state": "disputed", "value": None, "label": None}


_labels_for_standing = Prepared(  # an item's human and review labels, and the undo rows among its labels
    Label.select(Label.id, Item.dataset, Label.value, Label.annotator, Label.source, Label.kind, Label.retracts)
    .join(Item)
    .where((Label.item == slot("item"))
           & (((Label.kind == "label") & Label.source.in_(("human", "review"))) | Label.retracts.is_null(False)))
    .order_by(Label.id).tuples())
_drop_standing = Prepared(Standing.delete().where(Standing.item == slot("item"))
                          .returning(Standing.dataset, Standing.state, Standing.value).tuples())
_insert_standing = Prepared(Standing.insert(
    item=slot("item"), dataset=slot("dataset"), state=slot("state"), value=slot("value"), label=slot("label"),
    answered=slot("answered")))
_count_standing = Prepared(
    StandingCount.insert(dataset=slot("dataset"), state=slot("state"), value=slot("value"), items=slot("items"))
    .on_conflict(conflict_target=[StandingCount.dataset, StandingCount.state, StandingCount.value],
                 update={StandingCount.items: StandingCount.items + EXCLUDED.items}))


class ModelVersion(BaseModel):
    """A trained model of a dataset. ``scores_path`` is its P(positive) for every pool item, or for K labels each
    item's K probabilities (float32 .npy in item id order; what serves: the model itself is not kept, and ``path`` is only set on versions trained before it
    was dropped), ``holdout_path`` the P(positive) of its twin trained without the
    holdout, on the pool's holdout items (NaN elsewhere), for later gates; ``counterpart_path``, of a binary blend
    or its logistic part, the pool's P(positive) under the other of the two (models.weak.WeakModel.counterpart;
    the prequential record, PrequentialScore, takes both from here); ``committee_path``, of a binary model whose
    mix has a committee share, the committee's disagreement per pool item (models.committee), which the refill
    picks the committee's share by; ``digests`` the sha256 of each file as written. ``gate`` holds the gate's
    figures and reason; a version that lost it never serves. ``served_at`` is when it began serving (None: never
    served)."""

    dataset = ForeignKeyField(Dataset, backref="model_versions", on_delete="CASCADE")
    kind = CharField(max_length=40)
    path = CharField(null=True, max_length=500)
    metrics = JSONField(default=dict)
    device = CharField(null=True, max_length=80)
    labels_used = IntegerField(default=0)
    serving = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    scores_path = CharField(null=True, max_length=500)
    holdout_path = CharField(null=True, max_length=500)
    digests = JSONField(null=True)
    gate = JSONField(null=True)
    served_at = DateTimeField(null=True)
    counterpart_path = CharField(null=True, max_length=500)
    committee_path = CharField(null=True, max_length=500)


class PrequentialScore(BaseModel):
    """An item's two scores before its first human label (models.prequential): from the version whose
    suggestion that label carried, P(positive) under the blend and under the blend's logistic part. Written by
    the retrain for the labels given since the last one; the truth is the label that stands now."""

    item = ForeignKeyField(Item, primary_key=True, on_delete="CASCADE")
    dataset = ForeignKeyField(Dataset, on_delete="CASCADE")
    model_version = IntegerField()  # a plain id, as Label.model_version: the record outlives the version's files
    blend = FloatField()
    logistic = FloatField()


class QueueEntry(BaseModel):
    """An item chosen ahead of time for analysts: by which strategy, with which suggestion.

    The queue of a dataset is rewritten as a whole by the worker (labeler.worker.refill); lower priority comes first.
    """

    dataset = ForeignKeyField(Dataset, backref="queue", on_delete="CASCADE")
    item = ForeignKeyField(Item, on_delete="CASCADE")
    priority = FloatField()
    strategy = CharField(max_length=40)  # e.g. "cold start", "uncertain", "high risk", "exploration"
    suggested = CharField(max_length=80)  # "" for no suggestion: K labels and no model has scored the item yet
    probability = FloatField()  # the model's probability of the suggested label
    probabilities = JSONField(default=dict)  # {label: probability} for every label
    model_version = ForeignKeyField(ModelVersion, null=True, on_delete="SET NULL")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("dataset", "item"), True), (("dataset", "priority"), False))


class Job(BaseModel):
    """One piece of work for the worker (labeler.worker.jobs): a retrain, a queue refill, the autoencoder.
    ``state`` goes queued -> running -> done or failed; ``stage`` and ``percent`` tell where a running job is;
    a job a dead worker left running is marked failed with stage "interrupted" when the next worker starts."""

    dataset = ForeignKeyField(Dataset, null=True, backref="jobs", on_delete="CASCADE")
    kind = CharField(max_length=40)
    state = CharField(max_length=16, default="queued")  # queued, running, done, failed
    stage = CharField(null=True, max_length=120)
    percent = FloatField(default=0.0)
    error = TextField(null=True)
    payload = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)


class Lease(BaseModel):
    """Who holds an item of the labeling queue now; ``item`` is unique, so one holder at a time.

    state 'active': on the holder's screen until ``expires_at`` (after that anyone may take it over);
    'deferred': skipped, or rejected in multi-class requeue mode, and held back from everyone until ``expires_at``;
    'second': labeled by ``user`` and waiting for a blind second look by another analyst.
    The suggestion is copied from the queue when the lease is taken, so a queue refresh cannot change it.
    """

    dataset = ForeignKeyField(Dataset, on_delete="CASCADE")
    item = ForeignKeyField(Item, unique=True, on_delete="CASCADE")
    user = ForeignKeyField(User, on_delete="CASCADE")
    state = CharField(max_length=8, default="active",
                      constraints=[SQL("CHECK (state IN ('active', 'deferred', 'second'))")])
    expires_at = DateTimeField()
    offered_at = DateTimeField(default=utcnow)  # when the holder first saw it
    strategy = CharField(max_length=40)
    suggested = CharField(null=True, max_length=80)
    probability = FloatField(null=True)
    probabilities = JSONField(default=dict)
    model_version = ForeignKeyField(ModelVersion, null=True, on_delete="SET NULL")
    show_suggestion = BooleanField(default=True)
    second_look = BooleanField(default=False)  # deliberately given to a second analyst, blind to the first
    rejected = JSONField(default=list)  # suggestions already rejected (multi-class requeue mode)

    class Meta:
        indexes = ((("dataset", "user", "state"), False), (("dataset", "expires_at"), False))


class GenerativeArtifacts(BaseModel):
    """A dataset's current autoencoder outputs, written by labeler.worker.autoencoder (one row per dataset,
    replaced whole). Row i of each ``.npy`` file belongs to the item ``ids_path`` holds at position i (item id order)."""

    dataset = ForeignKeyField(Dataset, unique=True, on_delete="CASCADE")
    ids_path = CharField(max_length=500)  # int64 item ids, sorted
    reconstruction_path = CharField(max_length=500)  # float32 (items, features), in the features' units
    anomaly_path = CharField(max_length=500)  # float32 per item: the autoencoder's reconstruction error
    latent_path = CharField(max_length=500)  # .npz: ids, x, y, labels of the latent map's points
    model_path = CharField(null=True, max_length=500)  # the fitted autoencoder (.keras)
    pool_rows = IntegerField()  # items in the pool when computed
    projection = CharField(max_length=16)  # "tsne" or "pca"
    scaling = JSONField(default=dict)  # {"minimum": [...], "maximum": [...]} per feature, as fitted
    device = CharField(max_length=80)
    seconds = FloatField()
    details = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)


class SequenceArtifacts(BaseModel):
    """A dataset's current sequence autoencoder outputs (raw transactions), written by labeler.worker.sequences
    (one row per dataset, replaced whole). Row i of each ``.npy`` file belongs to the item ``ids_path`` holds at
    position i (item id order); step j of a row is the j-th of the card's last ``steps`` transactions up to and
    including the item, oldest first."""

    dataset = ForeignKeyField(Dataset, unique=True, on_delete="CASCADE")
    ids_path = CharField(max_length=500)  # int64 item ids, sorted
    error_path = CharField(max_length=500)  # float32 per item: the sequence's reconstruction error
    step_error_path = CharField(max_length=500)  # float32 (items, steps): each step's error, NaN where padded
    latent_path = CharField(max_length=500)  # float32 (items, latent): the encoder's vector
    model_path = CharField(null=True, max_length=500)  # the fitted sequence autoencoder (.keras)
    pool_rows = IntegerField()  # items in the pool when computed
    steps = IntegerField()  # k, the sequence length
    step_names = JSONField(default=list)  # the per-step features
    device = CharField(max_length=80)
    seconds = FloatField()
    details = JSONField(default=dict)
    created_at = DateTimeField(default=utcnow)


class GeneratedSamples(BaseModel):
    """What the admin's generated-samples page draws for a dataset, written by labeler.worker.generated (one row
    per dataset, replaced whole): the chapter's VAE fitted on the pool, rows decoded from a walk through two
    latent dimensions and from the prior, and as many real rows; every file is float32 rows in the features'
    units (an image dataset's pixels)."""

    dataset = ForeignKeyField(Dataset, unique=True, on_delete="CASCADE")
    grid_path = CharField(max_length=500)  # (grid_steps ** 2, features): the latent walk's grid, row-major
    generated_path = CharField(max_length=500)  # (samples, features): decoded from draws of the prior
    real_path = CharField(max_length=500)  # (samples, features): a seeded sample of the pool
    real_ids_path = CharField(max_length=500)  # int64 item ids of the real rows, in their order
    pool_rows = IntegerField()  # items in the pool when computed
    fit_rows = IntegerField()  # the seeded sample of the pool the VAE was fitted on
    grid_steps = IntegerField()
    latent_dims = JSONField(default=list)  # the two latent dimensions walked
    device = CharField(max_length=80)
    seconds = FloatField()
    details = JSONField(default=dict)  # the VAE's settings and final loss; per-feature mean and std, real and generated
    created_at = DateTimeField(default=utcnow)


class FeatureStats(BaseModel):
    """Per-feature mean and standard deviation of a dataset's pool, computed by the worker's queue refill when
    the pool grew (labeler.worker.refill); the labeling screen's bars and similar items read them."""

    dataset = ForeignKeyField(Dataset, unique=True, on_delete="CASCADE")
    rows = IntegerField()  # items in the pool when computed
    mean = JSONField()
    std = JSONField()  # 1.0 where a feature is constant
    created_at = DateTimeField(default=utcnow)


class ReviewRequest(BaseModel):
    """An item sent to review although its analysts agree: a sampled share of fraud labels (the dataset's
    ``review_share`` setting). Disputed items need no request: they wait for review until adjudicated."""

    dataset = ForeignKeyField(Dataset, on_delete="CASCADE")
    item = ForeignKeyField(Item, unique=True, on_delete="CASCADE")
    label = ForeignKeyField(Label, null=True, on_delete="SET NULL")  # the answer that was sampled
    reason = CharField(max_length=40, default="sampled")
    created_at = DateTimeField(default=utcnow)


class AuditEntry(BaseModel):
    """Who did what an admin answers for: settings changed (old and new values), exports, adjudications, users
    managed. Append-only; ``details`` says what exactly."""

    at = DateTimeField(default=utcnow, index=True)
    user = ForeignKeyField(User, null=True, on_delete="SET NULL")  # None: a command run on the server
    action = CharField(max_length=40)
    dataset = ForeignKeyField(Dataset, null=True, on_delete="SET NULL")
    details = JSONField(default=dict)


class ApiToken(BaseModel):
    """A token for the JSON API (labeler.data.tokens): shown once when created, kept only as its sha256.
    ``scopes`` is a list of "read", "write", "admin"; a revoked token (``revoked_at`` set) no longer works."""

    user = ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = CharField(max_length=80)  # what it is for, e.g. "case system"
    token_hash = CharField(max_length=64, unique=True)
    prefix = CharField(max_length=12)  # the token's first characters, to tell tokens apart in lists
    scopes = JSONField(default=list)
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)


class PoolCopy(BaseModel):
    """The columnar copy of a dataset's pool (labeler.store.pool): item ids (int64) and feature vectors (float32)
    as memory-mappable ``.npy`` files in the model folder, covering the items whose row number is below
    ``rows``; ``digests`` the sha256 of each file as written. The database stays the source of truth: the
    importer bumps ``generation`` and sets ``stale`` when it rewrites stored rows' features, and the worker
    writes a copy only when the generation it read is still the one stored."""

    dataset = ForeignKeyField(Dataset, unique=True, on_delete="CASCADE")
    ids_path = CharField(null=True, max_length=500)
    features_path = CharField(null=True, max_length=500)
    digests = JSONField(default=dict)
    rows = IntegerField(default=0)
    generation = IntegerField(default=0)
    stale = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)


class LoginFailure(BaseModel):
    """One failed login: the user name typed and the client's address (labeler.data.users throttles on them).
    Kept in the store so that every server process sharing it sees the same count; old rows are pruned."""

    name = CharField(max_length=80, index=True)
    address = CharField(max_length=64, index=True)
    failed_at = DateTimeField(default=utcnow, index=True)


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    applied_at = DateTimeField(default=utcnow)


TABLES = [User, Dataset, Item, GroundTruth, Label, Standing, StandingCount, ModelVersion, QueueEntry, Job, Lease, GenerativeArtifacts,
          FeatureStats, LoginFailure, SequenceArtifacts, GeneratedSamples, ReviewRequest, AuditEntry, ApiToken, PoolCopy,
          PrequentialScore]
