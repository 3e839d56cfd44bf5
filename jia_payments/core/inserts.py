"""New rows written together by one statement, for a write on a hot path (a payment, its audit
entry and its event): `insert_rows(NewRow(a), NewRow(b), ...)`; an existing row's update may join
them (`RowUpdate`: the request's stored answer, committed with the effect it answers).

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

    @staticmethod
    def sql(model: type[Model], fields: Sequence) -> str:
        return _insert_sql(model, fields)

    def written(self, key) -> None:
        meta = self.instance._meta
        if meta.auto_field is not None:
            setattr(self.instance, meta.auto_field.attname, key)
        self.instance._state.adding = False
        self.instance._state.db = connection.alias


class RowUpdate:
    """`changes` (field name -> value) to the saved row of `instance`, by primary key; the instance
    is not changed. `found` says, once written, whether the row was there to update."""

    def __init__(self, instance: Model, changes: dict):
        meta = instance._meta
        self.instance = instance
        self.fields = tuple(meta.get_field(name) for name in changes)
        values = (meta.get_field(name).get_db_prep_save(value, connection) for name, value in changes.items())
        self.values = [*values, meta.pk.get_db_prep_save(instance.pk, connection)]
        self.found = False

    @staticmethod
    def sql(model: type[Model], fields: Sequence) -> str:
        return _update_sql(model, fields)

    def written(self, key) -> None:
        self.found = key is not None


def _value(instance: Model, field):
    """The field's value, or where the instance holds none what `save()` would write (its
    `pre_save`: an `auto_now` time, also set on the instance)."""
    value = getattr(instance, field.attname)
    return field.pre_save(instance, add=True) if value is None else value


def insert_rows(*rows: NewRow | RowUpdate) -> None:
    """INSERT the rows (and make the updates), all or none; auto primary keys are read back onto
    the instances.

    On PostgreSQL one statement, atomic by itself (no BEGIN/COMMIT of its own outside a
    transaction): several rows are a `WITH` of INSERTs. A refused row (a constraint) fails the
    statement; inside the caller's transaction that aborts it, as any failed statement does.
    SQLite has no INSERT in a `WITH`: one INSERT each, in a transaction (a savepoint when nested).
    """
    shapes = tuple((type(row), type(row.instance), row.fields) for row in rows)
    values = [value for row in rows for value in row.values]
    with binding_cursor() as cursor:
        if connection.vendor == "postgresql" or len(rows) == 1:
            cursor.execute(_statement(shapes), values)
            keys = cursor.fetchone() or (None,)  # an UPDATE alone that found no row
        else:
            with transaction.atomic():
                keys = []
                for (kind, *shape), row in zip(shapes, rows, strict=True):
                    cursor.execute(kind.sql(*shape), row.values)
                    key = cursor.fetchone()
                    keys.append(None if key is None else key[0])
    for row, key in zip(rows, keys, strict=True):
        row.written(key)


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
def _update_sql(model: type[Model], fields: Sequence) -> str:
    meta = model._meta
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    pk = quote(meta.pk.column)
    # Only quoted identifiers from the model are interpolated; every value is a query parameter.
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {pk} = %s RETURNING {pk}"  # noqa: S608


@functools.cache
def _statement(shapes: tuple) -> str:
    """One INSERT (or UPDATE), or for several rows `WITH r0 AS (INSERT ...), r1 AS (...) SELECT`
    their keys (an update's key NULL when its row was not there)."""
    if len(shapes) == 1:
        kind, *shape = shapes[0]
        return kind.sql(*shape)
    quote = connection.ops.quote_name
    parts = ", ".join(f"r{n} AS ({kind.sql(*shape)})" for n, (kind, *shape) in enumerate(shapes))
    keys = ", ".join(
        f"(SELECT {quote(model._meta.pk.column)} FROM r{n})"  # noqa: S608 (identifiers only)
        for n, (_kind, model, _fields) in enumerate(shapes)
    )
    return f"WITH {parts} SELECT {keys}"
