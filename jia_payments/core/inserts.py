"""New rows written together by one statement, for a write on a hot path (a payment, its audit
entry and its event): `insert_rows(NewRow(a), NewRow(b), ...)`.

A `NewRow` holds an unsaved model instance's INSERT values as `save(force_insert=True)` makes them
(the `auto_now` times the instance does not hold yet are set on it as well), so what depends on
them (an audit entry's diff, an event's data) can be built from the instance before the write.
No model signal is sent: the caller writes what the receivers would have (e.g. the audit entry).
"""

import functools
from collections.abc import Sequence

from django.db import connection, transaction
from django.db.models import Model


class NewRow:
    def __init__(self, instance: Model):
        meta = instance._meta
        self.instance = instance
        self.fields = tuple(field for field in meta.concrete_fields if field is not meta.auto_field)
        self.values = [field.get_db_prep_save(_value(instance, field), connection) for field in self.fields]


def _value(instance: Model, field):
    """The field's value, or where the instance holds none what `save()` would write (its
    `pre_save`: an `auto_now` time, also set on the instance)."""
    value = getattr(instance, field.attname)
    return field.pre_save(instance, add=True) if value is None else value


def insert_rows(*rows: NewRow) -> None:
    """INSERT the rows, all or none; auto primary keys are read back onto the instances.

    On PostgreSQL one statement, atomic by itself (no BEGIN/COMMIT of its own outside a
    transaction): several rows are a `WITH` of INSERTs. A refused row (a constraint) fails the
    statement; inside the caller's transaction that aborts it, as any failed statement does.
    SQLite has no INSERT in a `WITH`: one INSERT each, in a transaction (a savepoint when nested).
    """
    shapes = tuple((type(row.instance), row.fields) for row in rows)
    values = [value for row in rows for value in row.values]
    with binding_cursor() as cursor:
        if connection.vendor == "postgresql" or len(rows) == 1:
            cursor.execute(_statement(shapes), values)
            keys = cursor.fetchone()
        else:
            with transaction.atomic():
                keys = []
                for shape, row in zip(shapes, rows, strict=True):
                    cursor.execute(_insert_sql(*shape), row.values)
                    keys.append(cursor.fetchone()[0])
    for row, key in zip(rows, keys, strict=True):
        meta = row.instance._meta
        if meta.auto_field is not None:
            setattr(row.instance, meta.auto_field.attname, key)
        row.instance._state.adding = False
        row.instance._state.db = connection.alias


def binding_cursor():
    """On PostgreSQL a cursor whose parameters the server binds (`server_binding_cursor`): no query
    text built and quoted in Python, and the statement, the same text every time, prepared once per
    connection when the settings allow; elsewhere Django's cursor."""
    return getattr(connection, "server_binding_cursor", connection.cursor)()


@functools.cache
def _insert_sql(model: type[Model], fields: Sequence) -> str:
    meta = model._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Only quoted identifiers from the model are interpolated; every value is a query parameter.
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) "  # noqa: S608
        f"RETURNING {quote(meta.pk.column)}"
    )


@functools.cache
def _statement(shapes: tuple) -> str:
    """One INSERT, or for several rows `WITH r0 AS (INSERT ...), r1 AS (...) SELECT` their keys."""
    if len(shapes) == 1:
        return _insert_sql(*shapes[0])
    quote = connection.ops.quote_name
    inserts = ", ".join(f"r{n} AS ({_insert_sql(*shape)})" for n, shape in enumerate(shapes))
    keys = ", ".join(
        f"(SELECT {quote(model._meta.pk.column)} FROM r{n})"  # noqa: S608 (identifiers only)
        for n, (model, _fields) in enumerate(shapes)
    )
    return f"WITH {inserts} SELECT {keys}"
