"""PostgreSQL restarted (as a crash: every connection cut) during a burst of API writes, against a
throwaway cluster of this test's own (testsupport/private_postgres.py; the machine's PostgreSQL is
shared and never touched): every request either succeeds or fails cleanly (problem details, 503),
nothing is half-written, the server recovers without a restart, and a retry with the same
Idempotency-Key makes each failed write exactly once (after the key's lease, when the request
that held it was cut off)."""

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

from jia_payments.core.tests.test_serving import ISSUER, Gunicorn
from testsupport.private_postgres import PrivatePostgres

ROOT = Path(__file__).resolve().parents[3]
WRITES = 150
pytestmark = pytest.mark.e2e

ENV = {
    "DJANGO_SETTINGS_MODULE": "testsupport.image_settings",
    "EVENTS_PROVIDER": "outbox",
    "THROTTLE_WRITE": "100000/min",
    "THROTTLE_SERVICE": "100000/min",
    "CONN_MAX_AGE": "60",
    # The payments view claims its key in its own transaction (it may call Stripe): a request cut
    # off by the restart cannot release it, so its retry waits for the lease, shortened here.
    "IDEMPOTENCY_LEASE_SECONDS": "5",
}


def _payment(n: int) -> dict:
    return {
        "amount": 1000 + n, "currency": "USD", "payment_method": "bank_transfer",
        "customer_id": f"customer_{n}", "order_id": f"order-{n}", "description": "burst",
    }  # fmt: skip


def test_postgresql_restarted_during_a_burst_of_writes_loses_nothing(tmp_path):
    with PrivatePostgres() as pg:
        env = {**os.environ, **ENV, "DATABASE_URL": pg.url}
        production = {
            "DEBUG": "false", "SECRET_KEY": "m" * 50, "STRIPE_SECRET": "sk_test_" + "0" * 24,
            "AUTH_PUBLIC_KEY_PEM": ISSUER.public_pem, "ALLOWED_HOSTS": "127.0.0.1",
        }  # fmt: skip
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--run-syncdb", "--no-input", "-v0"],
            cwd=ROOT, env={**env, **production}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr
        server = Gunicorn(tmp_path, pg.url, **ENV, WEB_CONCURRENCY="2", GUNICORN_THREADS="2")
        try:
            server.wait_until_up()
            outcomes = _burst(server, pg)
            retried = _retry_failed(server, outcomes)
        finally:
            server.stop()
        with psycopg.connect(pg.url) as db:
            payments = db.execute(
                "SELECT count(*), count(DISTINCT order_id) FROM payments_payment"
            ).fetchone()
            events = db.execute(
                "SELECT count(*) FROM core_outboxevent WHERE type = 'payment.created'"
                " AND aggregate_id IN (SELECT id::text FROM payments_payment)"
            ).fetchone()[0]
            stray = db.execute(
                "SELECT count(*) FROM core_outboxevent WHERE type <> 'payment.created'"
            ).fetchone()[0]
            keys = db.execute("SELECT state, count(*) FROM core_idempotencykey GROUP BY state").fetchall()

    succeeded = sum(1 for status, _ in outcomes if status == 201)
    failed_cleanly = sum(
        1 for status, problem in outcomes if status == 503 and problem == "service_unavailable"
    )
    unclean = [o for o in outcomes if o[0] != 201 and o != (503, "service_unavailable")]
    print(
        f"\npostgres restart: {WRITES} writes, {succeeded} succeeded, {failed_cleanly} failed cleanly "
        f"(503), {len(unclean)} unclean {unclean[:5]}, {retried} retried with their key -> 201"
    )
    assert unclean == []
    assert failed_cleanly > 0  # the restart did cut requests off
    assert retried == failed_cleanly
    made, orders = payments
    assert orders == WRITES  # every write made: lost 0
    # Made twice: a write cut off after its payment committed but before its answer was stored
    # (the payments view claims its key in a transaction of its own, as it may call Stripe) left
    # its key in progress; after the lease its retry made the payment again. A known gap of
    # non-atomic idempotent views, bounded by the writes the restart cut off; measured here.
    print(f"postgres restart: {made - WRITES} of {failed_cleanly} cut-off writes made twice by their retry")
    assert 0 <= made - WRITES <= failed_cleanly
    assert events == made and stray == 0  # every payment has its event, no event without one
    assert keys == [("completed", WRITES)]


def _burst(server: Gunicorn, pg: PrivatePostgres) -> list[tuple[int, str | None]]:
    token = ISSUER.token("svc_burst", role="service")
    done = threading.Semaphore(0)
    outcomes: list[tuple[int, str | None]] = [(0, None)] * WRITES

    def write(n: int) -> None:
        try:
            response = requests.post(
                server.url("/api/v1/payments/"), json=_payment(n), timeout=60,
                headers={"better-auth-token": token, "Idempotency-Key": f"burst-{n}"},
            )  # fmt: skip
            problem = response.json().get("code") if response.status_code != 201 else None
            outcomes[n] = (response.status_code, problem)
        except (requests.RequestException, ValueError) as error:
            outcomes[n] = (-1, type(error).__name__)
        finally:
            done.release()

    def restart_after_a_third() -> None:
        for _ in range(WRITES // 3):
            done.acquire()
        pg.restart(down_for=1.5)

    restarter = threading.Thread(target=restart_after_a_third)
    restarter.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(WRITES)))
    restarter.join()
    return outcomes


def _retry_failed(server: Gunicorn, outcomes) -> int:
    """The app recovers by itself: each failed write, sent again with its key, is made once."""
    token = ISSUER.token("svc_burst", role="service")
    made = 0
    deadline = time.monotonic() + 60
    for n, (status, _) in enumerate(outcomes):
        if status == 201:
            continue
        while True:
            response = requests.post(
                server.url("/api/v1/payments/"), json=_payment(n), timeout=60,
                headers={"better-auth-token": token, "Idempotency-Key": f"burst-{n}"},
            )  # fmt: skip
            if response.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        made += response.status_code == 201
    return made
