"""The PostgreSQL backend: django-prometheus' instrumented one, with a health check that costs no query.

With CONN_HEALTH_CHECKS, Django checks a persistent connection on its first use in each request,
and its PostgreSQL check is a `SELECT 1` round trip: a query on every request that touches the
database. What the check has to catch is a connection the server has ended (a restart, a
failover, an idle timeout, `pg_terminate_backend`): the server's goodbye, or the end of the
stream, makes an idle connection's socket readable. So the check polls the socket without
waiting; only when something is there does it make the round trip, which tells a notice from a
dead connection. A connection that fails the check is closed and the request opens a new one, as
with Django's check.
"""

import select

from django.db.backends.postgresql.base import ServerBindingCursor
from django.utils.asyncio import async_unsafe
from django.utils.functional import cached_property
from django_prometheus.db.backends.postgresql import base
from django_prometheus.db.common import ExportingCursorWrapper

from jia_payments.core.ops import tracing


class DatabaseWrapper(base.DatabaseWrapper):
    @async_unsafe
    def server_binding_cursor(self):
        """A cursor whose parameters the server binds (Django's cursors bind them in Python, into
        the query text), opened and counted in the metrics like `cursor()`'s. psycopg prepares its
        statement once it has run OPTIONS["prepare_threshold"] times on a connection (None, Django's
        default: never). Traced, `cursor()` itself: psycopg's instrumentation spans the statements
        of the connection's own cursor class only."""
        if tracing.active():
            return self.cursor()
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            return self._prepare_cursor(self._server_binding_cursor_class(self.connection))

    @cached_property
    def _server_binding_cursor_class(self):
        return ExportingCursorWrapper(ServerBindingCursor, self.alias, self.vendor)

    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        return super().is_usable()
