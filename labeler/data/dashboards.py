"""Dashboards: per analyst and for the team, over a time window, what the label log says about the work done.

Every figure is grouped in the database (per analyst and clock hour, per analyst and tenth of a second on screen,
per pair of analysts and labels), so Python reads a row per group, never one per label. Times are UTC; a window
is whole buckets up to now's: 24 hours (the current hour and the 23 before), 7 or 30 days (today and the days
before), or all time (from the first label's day). What counts:

- a label: an analyst's answer (source 'human') that no undo retracts (an edit retracts the old answer, so
  each analyst has one per item); a bulk decision gives one per transaction of the run;
- active hours: the clock hours in which the analyst gave at least one label; labels per hour is labels over
  active hours (the team's: all labels over the sum of the analysts' active hours, i.e. per analyst-hour);
- frauds found: labels with one of the dataset's positive labels (the team's: distinct items so marked);
- accept rate: among labels given with the suggestion shown, the share equal to the suggestion;
- seconds on screen: the median and 90th percentile (nearest rank, to a tenth of a second) over the labels that
  carry it;
- agreement: Cohen's kappa between an analyst's labels and the other analysts' labels on the same items
  (pooled over the others; the team's over every pair of analysts), counting a pair in the window when either
  of its two labels falls in it;
- reviews: reviewers' decisions (source 'review') that no undo retracts.
"""
import datetime
import itertools

from peewee import SQL, Case, Select, SqliteDatabase, fn

from labeler.data.agreement import table_kappa
from labeler.store.db import Item, Label, User, database, utcnow

HOUR, DAY = datetime.timedelta(hours=1), datetime.timedelta(days=1)
# name: (description, bucket, number of buckets; None: from the first label's day)
WINDOWS = {
    "24h": ("the last 24 hours", HOUR, 24),
    "7d": ("the last 7 days", DAY, 7),
    "30d": ("the last 30 days", DAY, 30),
    "all": ("all time", DAY, None),
}
DEFAULT_WINDOW = "7d"
QUANTILES = (50, 90)  # percent: the median and the 90th percentile of seconds on screen


class UnknownWindow(ValueError):
    """A window that is not one of WINDOWS."""


def dashboard(dataset, viewer, window=DEFAULT_WINDOW, now=None):
    """The figures of ``dataset`` over ``window`` (a key of WINDOWS) up to ``now`` (default: the present), as
    ``viewer`` may see them: reviewers and admins see every analyst's row and line, an analyst the team's
    figures and their own row only.

    Returns a dict: window, description, unit ('hour' or 'day'), start (None for all time), buckets (their
    start times), rows (one dict per person with a label or review in the window, by name: user_id, name,
    role, labels, active_hours, per_hour, frauds, shown, followed, accept_rate, median_seconds, p90_seconds,
    pairs, agreement, kappa, reviews, series: labels per bucket), team (the same figures for all analysts,
    with frauds_series: items first marked as fraud per bucket) and everyone (how many rows there are before
    hiding others' from an analyst). Raises UnknownWindow for a window not in WINDOWS.
    """
    if window not in WINDOWS:
        raise UnknownWindow(f"window: {window!r} is not one of {', '.join(WINDOWS)}")
    description, step, count = WINDOWS[window]
    now = now or utcnow()
    last = now.replace(minute=0, second=0, microsecond=0)
    if step == DAY:
        last = last.replace(hour=0)
    start = None if count is None else last - (count - 1) * step
    span = (start, last + step)  # a label after ``now``'s bucket (a clock set wrong) is in no window
    hourly = _hourly(dataset, span)
    if start is None:
        first = min((row[1] for row in hourly), default=None)
        first = last if first is None else _parse_hour(first).replace(hour=0)
        buckets = _bucket_times(first, last, step)
    else:
        buckets = _bucket_times(start, last, step)
    key = _key_of(step)
    position = {key(bucket): index for index, bucket in enumerate(buckets)}

    people, team = {}, _empty(len(buckets))
    for who, hour, labels, frauds, shown, followed in hourly:
        row = people.setdefault(who, _empty(len(buckets)))
        index = position[key(_parse_hour(hour))]
        for figures in (row, team):
            figures["labels"] += labels
            figures["active_hours"] += 1
            figures["series"][index] += labels
            figures["shown"] += shown
            figures["followed"] += followed
        row["frauds"] += frauds
    for at, items in _first_frauds(dataset, span):
        team["frauds"] += items
        team["frauds_series"][position[key(_parse_hour(at))]] += items
    for who, quantiles in _seconds(dataset, span).items():
        figures = team if who is None else people.setdefault(who, _empty(len(buckets)))
        figures["median_seconds"], figures["p90_seconds"] = quantiles
    for who, table in _agreement_tables(dataset, span).items():
        figures = team if who is None else people.setdefault(who, _empty(len(buckets)))
        figures["pairs"], figures["agreement"], figures["kappa"] = table_kappa(table)
    for who, reviews in _reviews(dataset, span):
        people.setdefault(who, _empty(len(buckets)))["reviews"] = reviews
        team["reviews"] += reviews

    users = {user.id: user for user in User.select(User.id, User.name, User.role).where(User.id.in_(list(people)))}
    rows = []
    for who, figures in people.items():
        figures.update(user_id=who, name=users[who].name, role=users[who].role)
        rows.append(_rates(figures))
    rows.sort(key=lambda row: (row["name"].casefold(), row["user_id"]))
    everyone = len(rows)
    if not viewer.can_review:
        rows = [row for row in rows if row["user_id"] == viewer.id]
    return {"window": window, "description": description, "unit": "hour" if step == HOUR else "day",
            "start": start, "buckets": buckets, "rows": rows, "team": _rates(team), "everyone": everyone}


def _empty(buckets):
    return {"labels": 0, "active_hours": 0, "frauds": 0, "shown": 0, "followed": 0, "median_seconds": None,
            "p90_seconds": None, "pairs": 0, "agreement": None, "kappa": None, "reviews": 0,
            "series": [0] * buckets, "frauds_series": [0] * buckets}


def _rates(figures):
    figures["per_hour"] = figures["labels"] / figures["active_hours"] if figures["active_hours"] else None
    figures["accept_rate"] = figures["followed"] / figures["shown"] if figures["shown"] else None
    return figures


def _bucket_times(first, last, step):
    buckets, at = [], first
    while at <= last:
        buckets.append(at)
        at += step
    return buckets


def _key_of(step):
    """The function that maps a time to its bucket's key: the hour's start or the day's."""
    if step == HOUR:
        return lambda at: at.replace(minute=0, second=0, microsecond=0)
    return lambda at: at.replace(hour=0, minute=0, second=0, microsecond=0)


def _parse_hour(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H")


def _hour_of(column):
    """SQL: the clock hour of the time in ``column`` as text 'YYYY-MM-DD HH' (SQLite keeps times as ISO text)."""
    if isinstance(database.obj, SqliteDatabase):
        return fn.SUBSTR(column, 1, 13).coerce(False)
    return fn.TO_CHAR(column, "YYYY-MM-DD HH24").coerce(False)


def _standing(dataset, source, span, label=Label):
    """SQL: ``label`` is a row of ``dataset``'s log from ``source`` with an annotator, given in ``span`` (start,
    end: from start, None for any time, to before end), that no undo retracts. The query must join Item on
    ``label``.

    A window also bounds the row's id from below by the first id given in it (found on the time's index): the
    log is appended in time order, so the (source, kind, id) index then reads the window's rows only."""
    undo = Label.alias("undo")
    condition = ((Item.dataset == dataset) & (label.kind == "label") & (label.source == source)
                 & label.annotator.is_null(False)
                 & ~fn.EXISTS(undo.select(SQL("1")).where(undo.retracts == label.id)))
    start, end = span
    condition &= label.created_at < end
    if start is None:
        return condition
    since = Label.alias("since")
    first_id = since.select(fn.MIN(since.id)).where(since.created_at >= start)
    return condition & (label.id >= first_id) & (label.created_at >= start)


def _positive(dataset, label=Label):
    return label.value.in_(dataset.positive_labels)


def _hourly(dataset, span):
    """(annotator id, hour text, labels, frauds, labels given with the suggestion shown, of those the ones equal
    to the suggestion) per analyst and clock hour with labels."""
    hour = _hour_of(Label.created_at)
    shown = (Label.suggestion_shown == True) & Label.suggested.is_null(False)  # noqa: E712 (SQL)
    return list(Label.select(Label.annotator, hour, fn.COUNT(Label.id), _count(_positive(dataset)), _count(shown),
                             _count(shown & (Label.value == Label.suggested)))
                .join(Item).where(_standing(dataset, "human", span)).group_by(Label.annotator, hour).tuples())


def _count(condition):
    """SQL: how many rows of the group meet ``condition``."""
    return fn.SUM(Case(None, [(condition, 1)], 0))


def _first_frauds(dataset, span):
    """(hour text, items) per clock hour: the items marked as fraud in the window, at their first such label."""
    first = (Label.select(Label.item, fn.MIN(Label.created_at).alias("at")).join(Item)
             .where(_standing(dataset, "human", span) & _positive(dataset)).group_by(Label.item))
    hour = _hour_of(first.c.at)
    return list(Select([first], [hour, fn.COUNT(SQL("*"))]).group_by(hour).tuples().bind(database))


def _seconds(dataset, span):
    """{annotator id, None for the team: (median, p90)} of seconds on screen to a tenth of a second, nearest
    rank (the value at rank ceil(q * n / 100) in ascending order), from counts per analyst and tenth of a second
    grouped in the database."""
    tenths = fn.ROUND(Label.seconds_on_screen * 10)
    counts = {}
    for who, value, count in (Label.select(Label.annotator, tenths, fn.COUNT(Label.id)).join(Item)
                              .where(_standing(dataset, "human", span) & Label.seconds_on_screen.is_null(False))
                              .group_by(Label.annotator, tenths).tuples()):
        for key in (who, None):
            histogram = counts.setdefault(key, {})
            histogram[value] = histogram.get(value, 0) + count
    return {who: tuple(_nearest_rank(histogram, q) / 10 for q in QUANTILES) for who, histogram in counts.items()}


def _nearest_rank(histogram, percent):
    """The value at rank ceil(percent * n / 100) of the values counted in ``histogram`` {value: count}."""
    rank = -(-sum(histogram.values()) * percent // 100)
    values = sorted(histogram)
    return next(value for value, seen in zip(values, itertools.accumulate(histogram[value] for value in values))
                if seen >= rank)


def _agreement_tables(dataset, span):
    """{annotator id: {(their label, another analyst's label): pairs}} over the items they both labeled, and
    under None the team's table over every pair of analysts (the one with the lower user id first); a pair
    counts when either of its labels falls in the window. One query joining the standing labels to those of
    other analysts on the same item (of the window's items only), grouped by both analysts and labels."""
    first, second = Label.alias("first"), Label.alias("second")
    columns = [first.annotator, second.annotator, first.value, second.value]
    start, end = span
    condition = _standing(dataset, "human", (None, end), first) & _standing(dataset, "human", (None, end), second)
    if start is not None:  # first (it rejects most rows cheaply): the items labeled in the window, a set built once
        recent = Label.select(Label.item).join(Item).where(_standing(dataset, "human", span))
        condition = (first.item.in_(recent) & ((first.created_at >= start) | (second.created_at >= start))
                     & condition)
    pairs = (first.select(*columns, fn.COUNT(SQL("*")))
             .join(Item, on=(first.item == Item.id))
             .join(second, on=(second.item == first.item) & (second.annotator != first.annotator))
             .where(condition).group_by(*columns).tuples())
    tables = {}
    for who, other, mine, theirs, count in pairs:
        for key in (who, None) if who < other else (who,):
            table = tables.setdefault(key, {})
            table[(mine, theirs)] = table.get((mine, theirs), 0) + count
    return tables


def _reviews(dataset, span):
    """(reviewer id, decisions that stand) per reviewer."""
    return list(Label.select(Label.annotator, fn.COUNT(Label.id)).join(Item)
                .where(_standing(dataset, "review", span)).group_by(Label.annotator).tuples())
