"""Persistent database connections: one the server ended is replaced before a request uses it, and
checking a live one costs no query (the backend of jia_payments.core.ops.postgresql)."""

import select
import time

import pytest
from django.db import connection, connections
from django_prometheus.db.backends.postgresql import base as instrumented

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's connections"),
]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def _between_requests() -> None:
    """What Django does when a request ends (request_finished): the next use checks the connection."""
    connection.close_if_unusable_or_obsolete()
    assert connection.connection is not None and not connection.health_check_done


def test_a_connection_the_server_ended_is_replaced_before_the_next_request_uses_it():
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    ended = _backend_pid()
    _between_requests()
    _terminate(ended)
    deadline = time.monotonic() + 10
    while not select.select([connection.connection.pgconn.socket], [], [], 0.1)[0]:
        assert time.monotonic() < deadline, "the server's goodbye never arrived"
    assert _backend_pid() != ended  # no error: a new connection answered


def test_checking_a_live_connection_sends_no_query(monkeypatch):
    first = _backend_pid()
    _between_requests()

    def round_trip(self):
        raise AssertionError("the health check of a live, idle connection made a round trip")

    monkeypatch.setattr(instrumented.DatabaseWrapper, "is_usable", round_trip)
    assert _backend_pid() == first  # the same connection, kept
    assert connection.health_check_done
