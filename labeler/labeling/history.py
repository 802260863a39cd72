"""A card's other transactions around the one on screen, and its merchant's latest ones (raw-transaction
datasets): readable times, the gap to this one, amount, merchant or card, categories, and the standing human
label of each. Reads the store through the (dataset, entity or second_entity, event_time) indexes; nothing here
grows with the pool."""
import datetime

from labeler.store.db import Item, Label

AROUND = 6  # transactions shown before and after the one on screen (a run decision reaches at most the later ones)
MERCHANT_COUNT = 12  # the merchant's latest transactions, one key away


def readable_time(seconds):
    """Epoch seconds as 'YYYY-MM-DD HH:MM:SS UTC'."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def readable_gap(seconds):
    """A gap in the largest units that read well: '40 s', '3 min', '2 h 5 min', '4 days'."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86_400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours:.0f} h" + (f" {minutes:.0f} min" if minutes else "")
    days = seconds / 86_400
    return f"{days:.0f} day{'s' if round(days) != 1 else ''}"


def readable_amount(value):
    """An amount with two decimals and thousands separators."""
    try:
        return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return value


def card_history(dataset, item, around=AROUND):
    """The first entity's (the card's) transactions around ``item``, in time order, or None when the dataset has
    no time and entity roles. A dict: ``entity`` (the column), ``value`` (this card), ``columns`` (headers) and
    ``rows`` (dicts: id, when, gap, card, cells, label, current), and the run a ``b`` decision would label."""
    roles = dataset.roles or {}
    if not (roles.get("time") and roles.get("entities")) or item.entity is None or item.event_time is None:
        return None
    same = (Item.dataset == dataset) & (Item.entity == item.entity)
    before = list(Item.select().where(same & (Item.event_time <= item.event_time) & (Item.id != item.id))
                  .order_by(Item.event_time.desc(), Item.id.desc()).limit(around))
    after = list(Item.select().where(same & (Item.event_time > item.event_time))
                 .order_by(Item.event_time, Item.id).limit(around))
    rows = [*reversed(before), item, *after]
    standing = _standing_labels([row.id for row in rows])
    shown = [c for c in (roles.get("amount"), *roles["entities"][1:], *roles.get("categorical", {})) if c]
    columns = [c for c in dataset.columns if c in shown]
    run = [row for row in after if row.id not in standing]
    return {"entity": roles["entities"][0], "value": item.entity, "columns": columns,
            "rows": _table_rows(dataset, item, rows, columns, standing),
            "run": len(run), "through": after[-1].id if after else None,
            "until": readable_time(after[-1].event_time) if after else None}


def merchant_history(dataset, item, count=MERCHANT_COUNT):
    """The second entity's (the merchant's) latest transactions up to ``item``, newest first, or None when the
    dataset has no second entity: a dict with ``entity``, ``card_entity``, ``value``, ``columns`` and ``rows``
    (as card_history's)."""
    roles = dataset.roles or {}
    entities = roles.get("entities") or []
    if len(entities) < 2 or item.second_entity is None or item.event_time is None:
        return None
    rows = list(Item.select().where((Item.dataset == dataset) & (Item.second_entity == item.second_entity)
                                    & (Item.event_time <= item.event_time))
                .order_by(Item.event_time.desc(), Item.id.desc()).limit(count))
    standing = _standing_labels([row.id for row in rows])
    shown = [c for c in (roles.get("amount"), *roles.get("categorical", {})) if c]
    columns = [c for c in dataset.columns if c in shown]
    return {"entity": entities[1], "card_entity": entities[0], "value": item.second_entity, "columns": columns,
            "rows": _table_rows(dataset, item, rows, columns, standing)}


def _table_rows(dataset, item, rows, columns, standing):
    """One dict per transaction of ``rows`` as the history tables show it beside ``item``: id, when, gap to
    ``item``, card, ``columns``' values (the amount readable), the standing label, whether it is ``item``."""
    amount = (dataset.roles or {}).get("amount")
    result = []
    for row in rows:
        values = dict(zip(dataset.columns, row.display_values(dataset)))
        gap = row.event_time - item.event_time
        result.append({
            "id": row.external_id,
            "when": readable_time(row.event_time),
            "gap": "this one" if row.id == item.id else
                   f"{readable_gap(gap)} {'later' if gap > 0 else 'earlier'}" if gap else "same second",
            "card": row.entity,
            "cells": [readable_amount(values[c]) if c == amount else values[c] for c in columns],
            "label": standing.get(row.id),
            "current": row.id == item.id,
        })
    return result


def card_run(dataset, item, last):
    """The transactions of ``item``'s card after it, up to and including ``last`` (in time, then id order), at
    most AROUND of them, that have no standing human label; None when ``last`` is not one of the AROUND later
    transactions of the card (those its history shows)."""
    if item.entity is None or last.entity != item.entity or last.dataset_id != dataset.id:
        return None
    if (last.event_time, last.id) <= (item.event_time, item.id):
        return None
    later = list(Item.select().where((Item.dataset == dataset) & (Item.entity == item.entity)
                                     & (Item.event_time > item.event_time) & (Item.event_time <= last.event_time))
                 .order_by(Item.event_time, Item.id).limit(AROUND))
    if last.id not in {row.id for row in later}:
        return None  # not among the later transactions the card's history shows
    standing = _standing_labels([row.id for row in later])
    return [row for row in later if row.id not in standing and (row.event_time, row.id) <= (last.event_time, last.id)]


def _standing_labels(item_ids):
    """{item id: the latest human label not undone} of ``item_ids``."""
    retracted = Label.select(Label.retracts).where(Label.retracts.is_null(False) & Label.item.in_(item_ids))
    rows = (Label.select(Label.item, Label.value)
            .where(Label.item.in_(item_ids) & (Label.kind == "label") & (Label.source == "human")
                   & Label.id.not_in(retracted))
            .order_by(Label.id).tuples())
    return {item_id: value for item_id, value in rows}
