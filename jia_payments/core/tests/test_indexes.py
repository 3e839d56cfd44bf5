"""The migrations build no index twice: two indexes on the same columns (same operator classes, same
expressions, same predicate) cost every write twice and help no read."""

import pytest
from django.apps import apps
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's catalog"),
]

OUR_APPS = ["core", "pricing", "entitlements", "payments", "backoffice"]

SAME_INDEXES = """
    SELECT t.relname, array_agg(i.relname ORDER BY i.relname)
    FROM pg_index x
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_class i ON i.oid = x.indexrelid
    WHERE t.relname = ANY(%s)
    GROUP BY t.relname, x.indkey::text, x.indclass::text,
        coalesce(pg_get_expr(x.indexprs, x.indrelid), ''),
        coalesce(pg_get_expr(x.indpred, x.indrelid), '')
    HAVING count(*) > 1
    ORDER BY t.relname
"""


def test_no_table_of_ours_has_two_indexes_on_the_same_columns():
    tables = [model._meta.db_table for label in OUR_APPS for model in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute(SAME_INDEXES, [tables])
        assert cursor.fetchall() == []
