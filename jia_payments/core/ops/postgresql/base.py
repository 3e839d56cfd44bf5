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

from django_prometheus.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
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
