"""Queries whose SQL is built once: for the requests on the labeling screen's path, where peewee spent longer
writing each query's SQL (0.15-0.3 ms apiece, some 25 queries a decision) than SQLite spent running it.

A Prepared query is written in peewee as usual, with ``slot("name")`` where a value changes from call to call;
its SQL text is built on first use (per database) and each call only fills in the values. Rows come back as the
query would return them (models, tuples; the fields' conversions applied).
"""
from peewee import Model, SelectBase, Value


class _Slot:
    """A named value of a Prepared query, filled in at each call."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def slot(name):
    """A placeholder for the value ``name`` of a Prepared query: compared with a field (``Item.id == slot("id")``),
    it becomes one parameter. The value is passed to the database as given (the field's conversion is not
    applied), except that a model instance stands for its id; a list (``in_``) is not a value."""
    return Value(_Slot(name), converter=False)


class Prepared:
    """A peewee query built once with slot() placeholders, run with values for them. Thread-safe: the SQL text is
    only read after it is built (a race builds it twice, the same)."""

    def __init__(self, query):
        self.query = query
        self.database = query._database  # the models' database (labeler.store.db.database, a proxy)
        self._built = None  # (the database it was built for, SQL, parameters with their slots)

    def _sql(self, values):
        built = self._built
        if built is None or built[0] is not self.database.obj:  # tests open several stores in one process
            sql, params = self.query.sql()
            built = self._built = (self.database.obj, sql, params)
        try:
            params = [values[param.name] if isinstance(param, _Slot) else param for param in built[2]]
        except KeyError as missing:
            raise TypeError(f"prepared query: no value for slot {missing}") from None
        return built[1], [param.get_id() if isinstance(param, Model) else param for param in params]

    def __call__(self, **values):
        """Run the query with ``values`` for its slots. A select, or a write with ``returning()``, returns its rows
        (converted as the query's own execution would); another insert, update or delete, the number of rows it
        wrote (not a new id: on PostgreSQL peewee adds the RETURNING for that only when it runs the query
        itself). Raises TypeError for a slot left without a value."""
        cursor = self.database.execute_sql(*self._sql(values))
        if isinstance(self.query, SelectBase) or self.query._returning:
            return self.query._get_cursor_wrapper(cursor)  # peewee's own row conversion for this query
        return self.database.rows_affected(cursor)

    def first(self, **values):
        """The first row of a select (write it with ``.limit(1)``), or None."""
        for row in self(**values):
            return row
        return None

    def scalar(self, **values):
        """The first column of the first row of a select, or None."""
        row = self.database.execute_sql(*self._sql(values)).fetchone()
        return None if row is None else row[0]
