"""An item's values as people read them: the time column as a UTC date and time, the amount with two decimals
and thousands separators, other numbers to at most four decimals; the value as stored goes in a title where the
text shown differs from it."""
from dataclasses import dataclass

from labeler.labeling.history import readable_amount, readable_time

DECIMALS = 4


@dataclass
class Cell:
    """One value of an item: the ``text`` shown, the ``full`` value as stored when it differs (else None) and
    whether it is a ``number`` (right-aligned)."""

    text: str
    full: str
    number: bool


def short_number(value):
    """A number to at most DECIMALS decimals (trailing zeros dropped); whole numbers as they are, and tiny ones
    (below 0.001) to three significant digits so that they do not read as 0."""
    if isinstance(value, int):
        return str(value)
    if value != 0 and abs(value) < 10 ** -3:
        return f"{value:.3g}"
    text = f"{value:.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def cells(dataset, item):
    """One Cell per column of ``dataset.columns`` for ``item``."""
    roles = dataset.roles or {}
    amount = dataset.amount_column
    text_columns = set(dataset.text_columns)
    result = []
    for column, value in zip(dataset.columns, item.typed_values(dataset)):
        full = "" if value is None else str(value)
        if value is None:
            shown = ""
        elif column == roles.get("time") and item.event_time is not None:
            shown = readable_time(item.event_time)
        elif column in text_columns:
            shown = value
        elif column == amount:
            shown = readable_amount(value)
        else:
            shown = short_number(value)
        result.append(Cell(shown, full if shown != full else None, column not in text_columns))
    return result
