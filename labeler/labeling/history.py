"""A card's other transactions around the one on screen, and its merchant's latest ones (raw-transaction
datasets): readable times, the gap to this one, amount, merchant or card, categories, and the standing human
label of each. Reads the store through the (dataset, entity or second_entity, event_time) indexes; nothing here
grows with the pool."""
import datetime

import numpy as np

from labeler.store.artifacts import sequence_of as stored_sequence
from labeler.store.db import Item, Label
from models.names import FIRST_AT, MEAN_AMOUNT_IN, SINCE_PREVIOUS, TRANSACTIONS_IN

AROUND = 6  # transactions shown before and after the one on screen (a run decision reaches at most the later ones)
MERCHANT_COUNT = 12  # the merchant's latest transactions, one key away
UNUSUAL_SEQUENCE = 0.99  # a sequence error above this quantile of the pool's is said in words
AMOUNT_FACTOR = 5  # an amount this many times the card's 30-day mean (or this fraction of it) is said in words
QUICK_SECONDS = 120  # a transaction this soon after the card's previous one is said in words
BURST_SECONDS = 600  # merchants new to the card within this time up to the transaction are counted
BURST_LIMIT = 200  # the card's transactions read for that count, at most


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
    table = _table_rows(dataset, item, rows, columns, standing)
    sequence = stored_sequence(dataset, item.id)
    marked = _worst_steps(item, before, sequence)
    for row, shown in zip(table, rows):
        row["unusual"] = shown.id in marked
    return {"entity": roles["entities"][0], "value": item.entity, "columns": columns, "rows": table,
            "run": len(run), "through": after[-1].id if after else None,
            "until": readable_time(after[-1].event_time) if after else None,
            "unusual": unusual_in_words(dataset, item, sequence)}


def _worst_steps(item, before, sequence):
    """Ids of the shown transactions whose step of ``item``'s stored sequence (labeler.store.artifacts
    .sequence_of) reconstructs worse than 99% of the pool's steps. The sequence's steps are the card's
    transactions strictly before ``item`` in time, newest last, then ``item``; ``before`` is newest first."""
    if sequence is None:
        return set()
    steps = sequence["steps"]
    earlier = [row for row in before if row.event_time < item.event_time]  # ties at one second are not steps
    candidates = [item, *earlier][:len(steps)]
    return {row.id for row, error in zip(candidates, steps[::-1]) if error > sequence["step_high"]}


def unusual_in_words(dataset, item, sequence=None):
    """Short sentences on what is unusual about ``item`` in its card's history (from its history features and,
    when given, its stored sequence error): an amount far from the card's usual, merchants new to the card in
    a burst, a quick succession, a card without history. An empty list when nothing stands out."""
    roles = dataset.roles or {}
    card, others = roles["entities"][0], roles["entities"][1:]
    value = _feature_reader(dataset, item)
    words = []
    if sequence is not None and sequence["worse_than"] is not None and sequence["worse_than"] >= UNUSUAL_SEQUENCE:
        words.append(f"Its {card}'s last transactions, as a sequence, reconstruct worse than "
                     f"{sequence['worse_than']:.1%} of the pool's.")
    seen_before = value(TRANSACTIONS_IN.format(entity=card, window="30d"))
    amount = value(roles.get("amount")) if roles.get("amount") else None
    usual = value(MEAN_AMOUNT_IN.format(card=card, window="30d"))
    if seen_before == 0:
        words.append(f"The {card}'s first transaction in 30 days.")
    elif amount is not None and usual and usual > 0:
        ratio = abs(amount) / usual
        if ratio >= AMOUNT_FACTOR:
            words.append(f"Amount {ratio:,.0f}x this {card}'s usual ({readable_amount(usual)} on average over 30 days).")
        elif ratio <= 1 / AMOUNT_FACTOR:
            words.append(f"Amount {readable_amount(amount)}, a small fraction of this {card}'s usual "
                         f"{readable_amount(usual)}.")
    gap = value(SINCE_PREVIOUS.format(card=card))
    if seen_before and gap is not None and np.expm1(gap) < QUICK_SECONDS:
        words.append(f"{readable_gap(float(np.expm1(gap)))} after this {card}'s previous transaction.")
    if others:
        first_at = FIRST_AT.format(other=others[0], card=card)
        if first_at in dataset.feature_columns:
            burst = (Item.select(Item.id, Item.features)
                     .where((Item.dataset == dataset) & (Item.entity == item.entity)
                            & (Item.event_time >= item.event_time - BURST_SECONDS)
                            & (Item.event_time <= item.event_time)).limit(BURST_LIMIT))
            position = dataset.feature_columns.index(first_at)
            new = sum(1 for row in burst if np.frombuffer(row.features, dtype=np.float32)[position] == 1)
            if new >= 2:
                words.append(f"{new} transactions at {others[0]}s new to this {card} within "
                             f"{readable_gap(BURST_SECONDS)}.")
    return words


def _feature_reader(dataset, item):
    """A function giving ``item``'s feature of a name, or None when the dataset has no such feature."""
    vector = item.feature_vector
    positions = {name: position for position, name in enumerate(dataset.feature_columns)}

    def value(name):
        return float(vector[positions[name]]) if name in positions else None
    return value


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
