"""Locks the database holds for a transaction, for rules no row can carry."""

from django.db import connection


def advisory_lock(key: str) -> None:
    """A transaction-scoped advisory lock on `key` (PostgreSQL; SQLite serialises writers itself):
    held until the transaction ends, so callers locking one key run one after the other."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
