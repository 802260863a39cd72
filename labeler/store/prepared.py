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


class PreparedCreate:
    """``model.create(**values)`` for one fixed set of fields, its INSERT built once. Every call gives each field
    named at construction; the model's other fields with a default get it, as in ``create``. Each value goes
    through its field's conversion (JSON, a model for a foreign key); returns the new row as a model instance with
    its id (the INSERT's RETURNING)."""

    def __init__(self, model, *names):
        self.model = model
        self.names = set(names)
        key = model._meta.primary_key
        self.defaults = [field for field in model._meta.sorted_fields
                         if field.default is not None and field.name not in self.names and field is not key]
        self.fields = [model._meta.fields[name] for name in names] + self.defaults
        self.insert = Prepared(model.insert({field: slot(field.name) for field in self.fields}).returning(key))

    def __call__(self, **values):
        """Insert the row; raises TypeError when ``values`` does not name exactly the fields, and what the
        database raises (peewee.IntegrityError for a broken constraint)."""
        if set(values) != self.names:
            raise TypeError(f"{self.model.__name__}: give exactly {', '.join(sorted(self.names))}")
        values = {**{field.name: field.default() if callable(field.default) else field.default
                     for field in self.defaults}, **values}
        new_id = self.insert.scalar(**{field.name: field.db_value(values[field.name]) for field in self.fields})
        return self.model(**{self.model._meta.primary_key.name: new_id}, **values)
