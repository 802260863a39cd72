"""One dataset's item table, filtered and sorted, by keyset pages; and an item found by its id.

Filters: the label that stands (labeler.store.db.Label.effective; a label, "disputed" or "unlabeled"), its
source (human, review, pseudo), an annotator (items with a standing decision of theirs), an amount range (the
dataset's amount column, Item.amount), a time range (the time role, Item.event_time; whole UTC days) and a text
column that equals or contains a text (ignoring the case of A-Z). Sorted by row order, amount or time, either
way. A page starts after the last row of the one before, given as its sort key and id (``after``), so page N
reads an index range from there and never the N × 50 rows before it; rows without an amount come last whichever
the direction.
"""
import datetime
import json
import math
from dataclasses import dataclass, fields, replace

from peewee import SQL, NodeList, Tuple, fn

from labeler.data.datasets import standing_labels
from labeler.store.pool import pool_size
from labeler.store.db import Item, Label, Standing, User, within

HUMAN = ("human", "review")

SORTS = ("row", "amount", "time")
SOURCES = ("human", "review", "pseudo")
LABEL_STATES = ("disputed", "unlabeled")
TEXT_OPERATORS = ("equals", "contains")
MACHINE = ("pseudo", "model")
TEXT_BATCH = 500  # candidate rows read at a time when a text filter is checked row by row
COUNT_LIMIT = 10_000  # a filter's first page counts its matches up to this many ("more than 10,000 rows match")
DAY = 86_400
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class BadQuery(ValueError):
    """A filter, sort or page address the item table cannot take; the message says which, in one line."""


class ItemNotFound(LookupError):
    """No item of the dataset has the given id; the message is "no item X in dataset Y"."""


def find_item(dataset, external_id):
    """The item of ``dataset`` whose id (as imported) is ``external_id``. Raises ItemNotFound."""
    item = Item.get_or_none((Item.dataset == dataset) & (Item.external_id == external_id))
    if item is None:
        raise ItemNotFound(f"no item {external_id} in dataset {dataset.name}")
    return item


def annotators(dataset):
    """The names of the users who gave a human or review decision on an item of ``dataset``, sorted."""
    return [name for (name,) in User.select(User.name).distinct()
            .join(Label, on=(Label.annotator == User.id)).join(Item, on=(Label.item == Item.id))
            .where((Item.dataset == dataset) & Label.source.in_(HUMAN)).order_by(User.name).tuples()]


@dataclass(frozen=True)
class TableQuery:
    """What the table shows: filters (None: not filtered), the sort and the page's start (``after``: the sort
    key and id of the last row of the page before; a key of None for a row without one)."""

    label: str = None
    source: str = None
    annotator: str = None
    amount_min: float = None
    amount_max: float = None
    time_from: datetime.date = None
    time_to: datetime.date = None
    column: str = None
    op: str = "contains"
    text: str = None
    sort: str = "row"
    order: str = "asc"
    after: tuple = None

    @property
    def filtered(self):
        """Whether any filter is set."""
        return any(getattr(self, name) is not None for name in
                   ("label", "source", "annotator", "amount_min", "amount_max", "time_from", "time_to", "text"))

    def args(self, **changes):
        """The query string's parameters of this query with ``changes``, defaults left out (for links)."""
        query = replace(self, **changes)
        args = {}
        for spec in fields(query):
            value = getattr(query, spec.name)
            if value is None or value == spec.default or (spec.name == "op" and query.text is None):
                continue
            if spec.name == "after":
                value = f"{'' if value[0] is None else repr(value[0])},{value[1]}"
            args[spec.name] = value.isoformat() if isinstance(value, datetime.date) else value
        return args


def parse_query(dataset, args):
    """A TableQuery of ``dataset`` from the query string ``args`` (a mapping of text; empty values ignored).
    Raises BadQuery for an unknown label, source, annotator, column, operator, sort or order, an amount that is
    not a finite number, a date that is not YYYY-MM-DD, an amount or time filter or sort the dataset has no
    column for, or a malformed ``after``."""
    value = {name: (args.get(name) or "").strip() or None for name in
             ("label", "source", "annotator", "amount_min", "amount_max", "time_from", "time_to", "column", "op",
              "text", "sort", "order", "after")}
    label = value["label"]
    if label is not None and label not in dataset.labels and label not in LABEL_STATES:
        raise BadQuery(f"label: {label!r} is none of {', '.join([*dataset.labels, *LABEL_STATES])}")
    if value["source"] is not None and value["source"] not in SOURCES:
        raise BadQuery(f"source: {value['source']!r} is none of {', '.join(SOURCES)}")
    if value["annotator"] is not None and not User.select().where(User.name == value["annotator"]).exists():
        raise BadQuery(f"annotator: no user named {value['annotator']!r}")
    sort = value["sort"] or "row"
    if sort not in SORTS:
        raise BadQuery(f"sort: {sort!r} is none of {', '.join(SORTS)}")
    order = value["order"] or "asc"
    if order not in ("asc", "desc"):
        raise BadQuery(f"order: {order!r} is neither asc nor desc")
    if (sort == "amount" or value["amount_min"] or value["amount_max"]) and dataset.amount_column is None:
        raise BadQuery(f"amount: dataset {dataset.name} has no amount column")
    if (sort == "time" or value["time_from"] or value["time_to"]) and not (dataset.roles or {}).get("time"):
        raise BadQuery(f"time: dataset {dataset.name} has no time column")
    column, op, text = value["column"], value["op"] or "contains", value["text"]
    if text is not None:
        if column not in dataset.text_columns:
            raise BadQuery(f"column: {column!r} is not a text column of dataset {dataset.name} "
                           f"({', '.join(dataset.text_columns) or 'it has none'})")
        if op not in TEXT_OPERATORS:
            raise BadQuery(f"op: {op!r} is neither equals nor contains")
    return TableQuery(label=label, source=value["source"], annotator=value["annotator"],
                      amount_min=_number(value["amount_min"], "amount_min"),
                      amount_max=_number(value["amount_max"], "amount_max"),
                      time_from=_date(value["time_from"], "time_from"), time_to=_date(value["time_to"], "time_to"),
                      column=column if text is not None else None, op=op, text=text, sort=sort, order=order,
                      after=_after(value["after"], sort))


def _number(text, name):
    """``text`` as a finite float, None for None. Raises BadQuery."""
    if text is None:
        return None
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        raise BadQuery(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(number):
        raise BadQuery(f"{name}: {text!r} is not a finite number")
    return number


def _date(text, name):
    """``text`` (YYYY-MM-DD) as a date, None for None. Raises BadQuery."""
    if text is None:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None


def _after(text, sort):
    """(sort key, item id) from "KEY,ID" (an empty KEY: a row without one), None for None. Raises BadQuery."""
    if text is None:
        return None
    key, comma, item_id = text.rpartition(",")
    try:
        if not comma or not item_id.isdigit() or int(item_id) >= 2 ** 63:
            raise ValueError
        if sort == "row":
            return int(key), int(item_id)
        number = None if key == "" else float(key)
        if number is not None and not math.isfinite(number):
            raise ValueError
        return number, int(item_id)
    except ValueError:
        raise BadQuery(f"after: {text!r} is not a sort key and an item id") from None


def _sort_column(sort):
    return {"row": Item.row_number, "amount": Item.amount, "time": Item.event_time}[sort]


def _epoch(day):
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp()


def _unindexed(column):
    """``column`` written as +column: the same value, which SQLite does not look up in an index."""
    return NodeList((SQL("+"), column), glue="")


def _conditions(dataset, query, walk_rows=False):
    """The SQL conditions of ``query``'s filters on Item (the text filter only as a coarse LIKE that keeps every
    match: _matches_text decides). ``walk_rows``: the amount and time ranges are tested row by row on the way
    through another index (in row order) instead of read from their own."""
    amount, event_time = (_unindexed(Item.amount), _unindexed(Item.event_time)) if walk_rows \
        else (Item.amount, Item.event_time)
    where = [Item.dataset == dataset]
    standing = Standing.select(Standing.item).where(Standing.dataset == dataset)
    if query.label in dataset.labels:
        where.append(within(Item.id, standing.where(Standing.state.in_(Standing.LABELED)
                                                    & (Standing.value == query.label))))
    elif query.label == "disputed":
        where.append(within(Item.id, standing.where(Standing.state == "disputed")))
    elif query.label == "unlabeled":  # no Standing row (a probe of its key per row, not a list of every row)
        where.append(~fn.EXISTS(Standing.select(SQL("1")).where(Standing.item == Item.id)))
    if query.source == "pseudo":
        where.append(within(Item.id, Label.effective(dataset, MACHINE).select(Label.item)))
    elif query.source is not None:  # a standing review is an adjudication, a standing human answer an agreement
        state = "adjudicated" if query.source == "review" else "agreed"
        where.append(within(Item.id, standing.where(Standing.state == state)))
    if query.annotator is not None:
        decisions = Label.latest(dataset, HUMAN, by=(Label.annotator,))
        where.append(within(Item.id, Label.select(Label.item).join(User, on=(Label.annotator == User.id))
                            .where(within(Label.id, decisions) & (User.name == query.annotator))))
    if query.amount_min is not None:
        where.append(amount >= query.amount_min)
    if query.amount_max is not None:
        where.append(amount <= query.amount_max)
    if query.time_from is not None:
        where.append(event_time >= _epoch(query.time_from))
    if query.time_to is not None:
        where.append(event_time < _epoch(query.time_to) + DAY)
    if query.text is not None:
        encoded = json.dumps(query.text)  # texts is JSON as json.dumps writes it (labeler.data.importer)
        where.append(Item.texts.contains(encoded if query.op == "equals" else encoded[1:-1]))
    return where


def _may_lack_key(query):
    """Whether rows without a sort key (no amount) can match: they come after the others. Every item of a dataset
    with a time column has a time (the import refuses a gap), and the time index holds only those (schema 17)."""
    return query.sort == "amount" and query.amount_min is None and query.amount_max is None


def _rows_after(where, query, after, limit, row_order=Item.row_number):
    """Up to ``limit`` items matching ``where`` after the sort key and id ``after`` (None: from the start), in
    ``query``'s order: the rows with a key by (key, id), then those without one by id. ``row_order``: the row
    number, or the same value unindexed (table_page's plan)."""
    column = row_order if query.sort == "row" else _sort_column(query.sort)
    descending = query.order == "desc"
    select = Item.select().where(*where)
    if query.sort == "row":
        start = [] if after is None else [column < after[0] if descending else column > after[0]]
        return list(select.where(*start).order_by(column.desc() if descending else column).limit(limit))
    rows = []
    if after is None or after[0] is not None:
        start = [column.is_null(False)]
        if after is not None:
            key = Tuple(column, Item.id)
            start.append(key < Tuple(*after) if descending else key > Tuple(*after))
        order = [column.desc(), Item.id.desc()] if descending else [column, Item.id]
        rows = list(select.where(*start).order_by(*order).limit(limit))
    if len(rows) < limit and _may_lack_key(query):
        start = [column.is_null()]
        if after is not None and after[0] is None:
            start.append(Item.id < after[1] if descending else Item.id > after[1])
        rows += list(select.where(*start).order_by(Item.id.desc() if descending else Item.id)
                     .limit(limit - len(rows)))
    return rows


def _key(item, sort):
    """(sort key, id) of ``item`` for the next page's ``after``."""
    return {"row": item.row_number, "amount": item.amount, "time": item.event_time}[sort], item.id


def _matches_text(dataset, item, query):
    """Whether ``item``'s text column equals (exactly) or contains (ignoring the case of A-Z) ``query.text``."""
    value = (json.loads(item.texts) if item.texts else [])[dataset.text_columns.index(query.column)]
    if value is None:
        return False
    if query.op == "equals":
        return value == query.text
    return query.text.translate(_ASCII_LOWER) in value.translate(_ASCII_LOWER)


@dataclass
class Page:
    """A page of the table: its items (each with ``human_label``, ``disputed`` and ``pseudo_label``), the
    ``after`` of the next page (None on the last), and how many rows match: counted on the first page only (a
    count reads every matching index entry), and never with a text filter (checked row by row); else None.
    A filter's count stops at COUNT_LIMIT: ``more`` is then True and ``matching`` COUNT_LIMIT (a count of a
    million matches took 5.7 s at 10 million rows: bench/scale.py)."""

    items: list
    next_after: tuple
    matching: int
    more: bool = False


def _capped_count(where):
    """How many items match ``where``, counted up to COUNT_LIMIT + 1."""
    return Item.select(Item.id).where(*where).limit(COUNT_LIMIT + 1).count()


def _has_own_index(query):
    """Whether a filter of ``query`` can be read from an index of its own: a label, source or annotator (the
    standing labels, the label log), an amount or time range. Not "unlabeled" (no row says so) nor a text."""
    return (query.label not in (None, "unlabeled") or query.source is not None or query.annotator is not None
            or (query.amount_min, query.amount_max, query.time_from, query.time_to) != (None,) * 4)


def table_page(dataset, query, per_page):
    """The page of ``dataset``'s items that ``query`` asks for, at most ``per_page`` rows.

    In row order, a filter with an index of its own is counted first (up to COUNT_LIMIT + 1). Few matches are
    read through the filter's index and sorted (the row number unindexed in the order); many are found by
    walking row order and testing each row (an amount or time range unindexed), which fills a page after about
    ``per_page`` / (share of rows that match) rows. Left to itself SQLite did the reverse at 10 million rows:
    it read a million amount matches and sorted them (4.4 s), and walked two million rows for the first 20 of
    113 frauds (bench/scale.py)."""
    where, row_order, counted = _conditions(dataset, query), Item.row_number, None
    if query.sort == "row" and query.text is None and _has_own_index(query):
        counted = _capped_count(where)
        if counted > COUNT_LIMIT:
            where = _conditions(dataset, query, walk_rows=True)
        else:
            row_order = _unindexed(Item.row_number)
    wanted, found, after = per_page + 1, [], query.after
    while True:
        limit = TEXT_BATCH if query.text is not None else wanted - len(found)
        rows = _rows_after(where, query, after, limit, row_order)
        found += rows if query.text is None else [item for item in rows if _matches_text(dataset, item, query)]
        if query.text is None or len(rows) < limit or len(found) >= wanted:
            break
        after = _key(rows[-1], query.sort)
    items = found[:per_page]
    matching, more = None, False
    if query.text is None and query.after is None:  # unfiltered: the dataset's size, read from an index
        if query.filtered:
            matching = _capped_count(where) if counted is None else counted
            matching, more = min(matching, COUNT_LIMIT), matching > COUNT_LIMIT
        else:
            matching = pool_size(dataset)
    return Page(_decorated(dataset, items), _key(items[-1], query.sort) if len(found) > per_page else None,
                matching, more)


def _decorated(dataset, items):
    """``items`` with ``human_label`` (the standing human label or None), ``disputed`` (analysts answered but
    disagree, no review yet) and ``pseudo_label`` (the standing pseudo or model label, or None)."""
    if not items:
        return items
    ids = [item.id for item in items]
    human = standing_labels(ids)
    machine = {label.item_id: label for label in
               Label.select().where(within(Label.id, Label.latest(dataset, MACHINE, items=ids)))}
    disputed = {item_id for item_id, state in Standing.select(Standing.item, Standing.state)
                .where(Standing.item.in_(ids)).tuples() if state == "disputed"}
    for item in items:
        item.human_label = human.get(item.id)
        item.disputed = item.id in disputed
        item.pseudo_label = machine.get(item.id)
    return items
