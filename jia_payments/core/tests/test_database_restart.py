"""PostgreSQL faults under a live gunicorn, against a throwaway cluster of this module's own
(testsupport/private_postgres.py; the machine's PostgreSQL is shared and never touched).

- Restarted (as a crash: every connection cut) during a burst of API writes: every request either
  succeeds or fails cleanly (problem details, 503), nothing is half-written, the server recovers
  without a restart, and a retry with the same Idempotency-Key makes each failed write exactly once
  (after the key's lease, when the request that held it was cut off): no payment twice.
- A card payment's connection terminated at the worst moment, its PaymentIntent made at Stripe and
  its write (the payment, its event and the key's stored answer: one statement) not yet committed:
  the key stays in progress (409) for its lease, then the retry makes the payment with the
  PaymentIntent the first request made: nothing twice.
- The same moment for a create that only writes to the database (a plan grant): its claim, effect
  and answer are one transaction, so the cut undoes all three and the retry runs at once, once.
"""

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
from testsupport.localstripe import API_KEY as STRIPE_KEY
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
    "IDEMPOTENCY_LEASE_SECONDS": "10",
}


def _payment(n: int) -> dict:
    return {
        "amount": 1000 + n, "currency": "USD", "payment_method": "bank_transfer",
        "customer_id": f"customer_{n}", "order_id": f"order-{n}", "description": "burst",
    }  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
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
        loaded = subprocess.run(
            [sys.executable, "manage.py", "loaddata", "catalog", "-v0"],
            cwd=ROOT, env={**env, **production}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        yield pg


@pytest.fixture(scope="module")
def server(cluster, localstripe, tmp_path_factory):
    stripe = {
        "STRIPE_API_BASE": localstripe.url,
        "STRIPE_SECRET": STRIPE_KEY,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    running = Gunicorn(
        tmp_path_factory.mktemp("gunicorn"),
        DATABASE_URL=cluster.url,
        **ENV,
        **stripe,
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="2",
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_postgresql_restarted_during_a_burst_of_writes_loses_nothing(cluster, server):
    outcomes = _burst(server, cluster)
    retried = _retry_failed(server, outcomes)
    with psycopg.connect(cluster.url) as db:
        made, orders = db.execute(
            "SELECT count(*), count(DISTINCT order_id) FROM payments_payment WHERE description = 'burst'"
        ).fetchone()
        events = db.execute(
            "SELECT count(*) FROM core_outboxevent WHERE type = 'payment.created' AND aggregate_id IN"
            " (SELECT id::text FROM payments_payment WHERE description = 'burst')"
        ).fetchone()[0]
        stray = db.execute(
            "SELECT count(*) FROM core_outboxevent WHERE type <> 'payment.created'"
            " OR aggregate_id NOT IN (SELECT id::text FROM payments_payment)"
        ).fetchone()[0]
        keys = db.execute(
            "SELECT state, count(*) FROM core_idempotencykey WHERE key LIKE 'burst-%' GROUP BY state"
        ).fetchall()
        answered = db.execute(
            "SELECT count(*) FROM core_idempotencykey k JOIN payments_payment p"
            " ON p.id = k.effect_id AND k.response_body LIKE '%' || p.id::text || '%'"
            " WHERE k.key LIKE 'burst-%'"
        ).fetchone()[0]

    succeeded = sum(1 for status, _ in outcomes if status == 201)
    failed_cleanly = sum(
        1 for status, problem in outcomes if status == 503 and problem == "service_unavailable"
    )
    unclean = [o for o in outcomes if o[0] != 201 and o != (503, "service_unavailable")]
    print(
        f"\npostgres restart: {WRITES} writes, {succeeded} succeeded, {failed_cleanly} failed cleanly "
        f"(503), {len(unclean)} unclean {unclean[:5]}, {retried} retried with their key -> 201, "
        f"{WRITES - orders} lost, {made - orders} made twice"
    )
    assert unclean == []
    assert failed_cleanly > 0  # the restart did cut requests off
    assert retried == failed_cleanly
    assert orders == WRITES  # every write made: lost 0
    assert made == WRITES  # none made twice, whichever moment its request was cut off at
    assert events == made and stray == 0  # every payment has its event, no event without one
    assert keys == [("completed", WRITES)]
    assert answered == WRITES  # each key's stored answer is its own payment, made under its effect id


# The answer of a request whose key starts "cut-" waits, before it is stored, for an advisory lock
# the test holds (a payment's answer is stored by its write, so the whole write waits; a plan
# grant's by its transaction). A trigger of this test's own cluster; nothing in the app changes.
_HOLD_ANSWERS = """
CREATE OR REPLACE FUNCTION test_hold_answers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'completed' AND NEW.key LIKE 'cut-%' THEN
        PERFORM pg_advisory_xact_lock(4242);
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER test_hold_answers BEFORE UPDATE ON core_idempotencykey
    FOR EACH ROW EXECUTE FUNCTION test_hold_answers();
"""


def test_a_payment_cut_off_at_its_write_is_retried_into_one_payment_with_its_first_intent(
    cluster, server, localstripe
):
    token = ISSUER.token("svc_cut", role="service")
    headers = {"better-auth-token": token, "Idempotency-Key": "cut-1"}
    body = {**_payment(0), "payment_method": "credit_card", "order_id": "cut-1", "description": "cut"}
    with psycopg.connect(cluster.url, autocommit=True) as db:
        db.execute(_HOLD_ANSWERS)
        db.execute("SELECT pg_advisory_lock(4242)")
        with ThreadPoolExecutor(max_workers=1) as caller:
            first = caller.submit(
                requests.post, server.url + "/api/v1/payments/", json=body, headers=headers, timeout=60
            )
            backend = _backend_waiting_on_the_answer(db)
            # The stored answer is part of the payment's own statement: held, nothing committed yet.
            made = db.execute("SELECT count(*) FROM payments_payment WHERE order_id = 'cut-1'").fetchone()
            assert made == (0,)
            assert db.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone()[0]
            cut = first.result()
        db.execute("SELECT pg_advisory_unlock(4242)")
        db.execute("DROP TRIGGER test_hold_answers ON core_idempotencykey")
        assert (cut.status_code, cut.headers["Content-Type"]) == (503, "application/problem+json")
        assert cut.json()["code"] == "service_unavailable"
        [state] = db.execute("SELECT state FROM core_idempotencykey WHERE key = 'cut-1'").fetchone()
        assert state == "in_progress"  # no answer stored, and the dead request could not release it
        assert db.execute("SELECT count(*) FROM payments_payment WHERE order_id = 'cut-1'").fetchone() == (0,)

        during_lease = requests.post(server.url + "/api/v1/payments/", json=body, headers=headers, timeout=60)
        assert (during_lease.status_code, during_lease.json()["code"]) == (409, "idempotency_key_in_progress")
        retried = _post_until_not_in_progress(server, body, headers)
        assert retried.status_code == 201, retried.text
        assert "Idempotent-Replayed" not in retried.headers
        payment_id, intent_id = retried.json()["id"], retried.json()["external_payment_id"]
        shown = requests.get(server.url + f"/api/v1/payments/{payment_id}/", headers=headers, timeout=60)
        assert retried.json() == {**shown.json(), "client_secret": retried.json()["client_secret"]}
        intents = [  # made under the claim's effect id by the first request, asked again by the retry
            intent
            for intent in localstripe.get("/v1/payment_intents", limit=100)["data"]
            if intent["metadata"].get("payment_id") == payment_id
        ]
        assert [(i["id"], i["client_secret"]) for i in intents] == [
            (intent_id, retried.json()["client_secret"])
        ]
        assert db.execute("SELECT count(*) FROM payments_payment WHERE order_id = 'cut-1'").fetchone() == (1,)
        events = db.execute(
            "SELECT count(*) FROM core_outboxevent WHERE aggregate_id = %s", [payment_id]
        ).fetchone()
        assert events == (1,)
        replayed = requests.post(server.url + "/api/v1/payments/", json=body, headers=headers, timeout=60)
        assert (replayed.content, replayed.headers["Idempotent-Replayed"]) == (retried.content, "true")
    print("\ncut at a payment's write: 1 request cut off (503), its retry 201, payments 1, intents 1")


def test_a_plan_grant_cut_off_before_its_answer_is_undone_whole_and_its_retry_grants_once(cluster, server):
    headers = {"better-auth-token": ISSUER.token("svc_cut", role="service"), "Idempotency-Key": "cut-grant"}
    body = {"user_id": "user_cut", "plan_id": "premium_monthly", "reason": "cut"}
    url = server.url + "/api/v1/entitlements/grants/"
    with psycopg.connect(cluster.url, autocommit=True) as db:
        db.execute(_HOLD_ANSWERS)
        db.execute("SELECT pg_advisory_lock(4242)")
        with ThreadPoolExecutor(max_workers=1) as caller:
            first = caller.submit(requests.post, url, json=body, headers=headers, timeout=60)
            backend = _backend_waiting_on_the_answer(db)
            assert db.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone()[0]
            cut = first.result()
        db.execute("SELECT pg_advisory_unlock(4242)")
        db.execute("DROP TRIGGER test_hold_answers ON core_idempotencykey")
        assert (cut.status_code, cut.json()["code"]) == (503, "service_unavailable")
        granted = (
            "SELECT count(*), count(DISTINCT grant_id) FROM entitlements_entitlement"
            " WHERE user_id = 'user_cut'"
        )
        assert db.execute(granted).fetchone() == (0, 0)  # nothing half-written
        assert db.execute("SELECT count(*) FROM core_idempotencykey WHERE key = 'cut-grant'").fetchone() == (
            0,
        )

        retried = requests.post(url, json=body, headers=headers, timeout=60)  # no lease to wait for
        assert retried.status_code == 201, retried.text
        rows, grants = db.execute(granted).fetchone()
        assert (rows, grants) == (len(retried.json()["entitlements"]), 1)
        replayed = requests.post(url, json=body, headers=headers, timeout=60)
        assert (replayed.content, replayed.headers["Idempotent-Replayed"]) == (retried.content, "true")
        assert db.execute(granted).fetchone() == (rows, 1)
    print(
        f"\ncut plan grant before its answer: 1 request cut off (503), nothing left; retry 201, {rows} rows"
    )


def _backend_waiting_on_the_answer(db) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiting = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ).fetchall()
        if waiting:
            [(pid,)] = waiting
            return pid
        time.sleep(0.05)
    raise AssertionError("the request never reached its answer")


def _post_until_not_in_progress(server: Gunicorn, body: dict, headers: dict) -> requests.Response:
    deadline = time.monotonic() + 120
    while True:
        response = requests.post(server.url + "/api/v1/payments/", json=body, headers=headers, timeout=60)
        in_progress = response.status_code == 409 and response.json()["code"] == "idempotency_key_in_progress"
        if not in_progress or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def _burst(server: Gunicorn, pg: PrivatePostgres) -> list[tuple[int, str | None]]:
    token = ISSUER.token("svc_burst", role="service")
    done = threading.Semaphore(0)
    outcomes: list[tuple[int, str | None]] = [(0, None)] * WRITES

    def write(n: int) -> None:
        try:
            response = requests.post(
                server.url + "/api/v1/payments/", json=_payment(n), timeout=60,
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
                server.url + "/api/v1/payments/", json=_payment(n), timeout=60,
                headers={"better-auth-token": token, "Idempotency-Key": f"burst-{n}"},
            )  # fmt: skip
            if response.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        made += response.status_code == 201
    return made
