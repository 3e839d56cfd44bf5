"""The events benchmark: the outbox relay's throughput, and what the outbox adds to a payment create.

`python -m bench events [--quick] [--write]` (or `make bench`). What it does:

1. A database of its own, `<DATABASE_URL's name>_bench_events` (created if missing, reused
   otherwise; its tables are built from the models like the tests do, in seconds), and a tansu
   broker on a free port (testsupport/tansu.py), stopped at the end.
2. Relay throughput: 10,000 pending outbox rows (2,000 payments x 5 events, ~600-byte envelopes)
   relayed by one relay process, then (the same rows pending again, to a fresh topic) by two relay
   processes started at the same moment, as two Celery workers would run the relay task. Each
   relay calls `outbox_relay()` (the task's body) until nothing is pending. Afterwards the topic is
   read back: every row exactly once, per-key order kept.
3. Create cost: POST /api/v1/payments/ (bank_transfer, a service token) through the real DRF view in
   process, in three variants interleaved in random order within each round: `no events` (the
   bench replaces `payments.services._created_event` with no row in its own process: no switch exists in
   the product), `outbox` (the row only, EVENTS_PROVIDER=outbox), and `outbox + relay trigger`
   (production: EVENTS_PROVIDER=kafka, non-eager Celery on Redis, a real Celery worker relaying to
   the broker meanwhile). Medians and p90 of the request's wall time; afterwards every event of the
   run must have reached the topic.

Each measurement runs in a child process (`python -m bench.events PHASE`) with its own settings,
so this suite never depends on how another suite configured Django in the parent process.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
BACKLOG = 10_000
BACKLOG_QUICK = 5_000
EVENTS_PER_PAYMENT = 5
CREATE_ROUNDS = 500
CREATE_ROUNDS_QUICK = 150
WARMUP_ROUNDS = 50
VARIANTS = ("no events", "outbox", "outbox + relay trigger")


# --- the parent: orchestration and the report ------------------------------------------------


def run(args) -> str:
    from bench.server import bench_redis_url
    from testsupport.tansu import TansuBroker

    quick = bool(getattr(args, "quick", False))
    backlog = BACKLOG_QUICK if quick else BACKLOG
    rounds = CREATE_ROUNDS_QUICK if quick else CREATE_ROUNDS
    load_before = os.getloadavg()
    started = time.monotonic()
    database_url = bench_database_url()
    redis_url = bench_redis_url()  # not the tests' db: the queue is purged
    print(f"[events] database {urlparse(database_url).path[1:]}, redis {redis_url}", flush=True)
    base_env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "STRIPE_SECRET": "sk_test_000000000000000000000000benchevents",
        "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "STATIC_MANIFEST": "false",
        "THROTTLE_SERVICE": "1000000/min",
        "THROTTLE_WRITE": "1000000/min",
        "CONN_MAX_AGE": "600",
        "PYTHONWARNINGS": "ignore::UserWarning",  # no collected static files here
    }
    phase(base_env, "prepare")
    print(f"[events] database ready ({time.monotonic() - started:.0f} s)", flush=True)
    with TansuBroker() as broker:
        env = {**base_env, "EVENTS_BROKERS": broker.bootstrap_servers}
        relay = relay_throughput(env, broker, backlog)
        create = create_cost(env, broker, rounds)
    load_after = os.getloadavg()
    return report(quick, backlog, rounds, relay, create, load_before, load_after, time.monotonic() - started)


def bench_database_url() -> str:
    url = urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jia_payments"))
    if not url.scheme.startswith("postgres"):
        raise SystemExit("bench events needs PostgreSQL (DATABASE_URL)")
    name = (url.path.lstrip("/") or "jia_payments") + "_bench_events"
    return url._replace(path=f"/{name}").geturl()


def phase(env: dict, name: str, *args: str, wait: bool = True):
    """Run `python -m bench.events NAME ARGS` with env; its last stdout line is JSON."""
    command = [sys.executable, "-m", "bench.events", name, *args]
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    )
    if not wait:
        return process
    return finish(process)


def finish(process: subprocess.Popen, timeout: float = 600) -> dict:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{process.args[3:]} exited with {process.returncode}:\n{out[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def relay_throughput(env: dict, broker, backlog: int) -> dict:
    results = {}
    filled = phase(env, "fill", str(backlog))
    print(f"[events] {backlog} pending rows written ({filled['seconds']:.1f} s)", flush=True)
    for relays in (1, 2):
        topic = f"bench-relay-{relays}-{uuid.uuid4().hex[:8]}"
        broker.create_topic(topic)
        if relays == 2:
            phase(env, "repend")
        start_at = time.time() + 3.0  # each child has imported Django and connected by then
        children = [
            phase({**env, "EVENTS_TOPIC": topic}, "relay", str(start_at), wait=False) for _ in range(relays)
        ]
        try:
            shares = [finish(child) for child in children]
        finally:
            for child in children:  # none left behind when one failed
                if child.poll() is None:
                    child.kill()
                    child.wait()
        seconds = max(s["end"] for s in shares) - min(s["start"] for s in shares)
        published = [s["published"] for s in shares]
        check = phase({**env, "EVENTS_TOPIC": topic}, "verify", str(backlog))
        results[relays] = {
            "seconds": seconds,
            "rate": sum(published) / seconds,
            "published": published,
            "batches": [s["batches"] for s in shares],
            "check": check,
        }
        print(
            f"[events] {relays} relay(s): {sum(published)} rows in {seconds:.2f} s = "
            f"{sum(published) / seconds:,.0f} events/s, split {published}; topic: {check}",
            flush=True,
        )
    return results


def create_cost(env: dict, broker, rounds: int) -> dict:
    from testsupport.celery_worker import CeleryWorker
    from testsupport.tokens import TokenIssuer

    issuer = TokenIssuer()
    topic = f"bench-create-{uuid.uuid4().hex[:8]}"
    queue = f"bench-events-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic)
    env = {
        **env,
        "EVENTS_TOPIC": topic,
        "AUTH_PUBLIC_KEY_PEM": issuer.public_pem,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "BENCH_CELERY_QUEUE": queue,
    }
    worker = CeleryWorker(
        app="jia_payments", env=env, concurrency=1, queues=queue, log_path=Path("/dev/null")
    )
    token = issuer.token("svc_bench", role="service")
    with worker:
        result = phase({**env, "BENCH_TOKEN": token}, "create", str(rounds))
        # Every event of the run relayed by the worker, on commit (no beat runs here).
        result["relayed"] = phase(env, "verify", str(result["events"]), "--wait")
    purge_queue(env["REDIS_URL"], queue)
    for name in VARIANTS:
        stats = result["variants"][name]
        print(
            f"[events] create, {name}: median {stats['median']:.2f} ms, p90 {stats['p90']:.2f} ms, "
            f"paired {result['paired'][name] * 100:+.0f}%"
        )
    print(f"[events] relay tasks: {result['relay_tasks']}; on the topic: {result['relayed']}", flush=True)
    return result


def purge_queue(redis_url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = [queue, *client.scan_iter(match=f"*{queue}*")]
    client.delete(*keys)


def report(quick, backlog, rounds, relay, create, load_before, load_after, seconds) -> str:
    base = create["variants"]["no events"]

    def over(name: str, stat: str) -> str:
        return f"{(create['variants'][name][stat] / base[stat] - 1) * 100:+.0f}%"

    lines = [
        "## Events: outbox relay throughput and the outbox's cost on a payment create",
        "",
        f"`python -m bench events --write{' --quick' if quick else ''}` (part of `make bench`), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"load average {fmt_load(load_before)} before, {fmt_load(load_after)} after "
        f"(suite {seconds:.0f} s). Numbers on a shared 2-core machine are noisy.",
        "",
        f"### Relay: a backlog of {backlog:,} outbox rows to a local tansu broker",
        "",
        f"{backlog // EVENTS_PER_PAYMENT:,} payments x {EVENTS_PER_PAYMENT} events, ~600-byte CloudEvents "
        "envelopes, a 3-partition topic; each relay is a process running `outbox_relay()` (the "
        "Celery task's body) until nothing is pending; batches of EVENTS_BATCH_SIZE (500).",
        "",
        "| relays | time | events/s | rows per relay | on the topic afterwards |",
        "|---|---|---|---|---|",
    ]
    for relays, r in relay.items():
        check = r["check"]
        verdict = (
            f"{check['messages']:,} messages, {check['distinct']:,} distinct ids = the rows; "
            f"{'per-key order kept' if check['order_ok'] else 'ORDER BROKEN'}"
            if check["ok"]
            else f"MISMATCH: {check}"
        )
        lines.append(
            f"| {relays} | {r['seconds']:.2f} s | {r['rate']:,.0f} | "
            f"{' + '.join(f'{n:,}' for n in r['published'])} | {verdict} |"
        )
    lines += [
        "",
        "Target: at least 2,000 events/s. Two relays share the 2 cores with PostgreSQL, tansu "
        "and whatever else runs; here they show that splitting a backlog keeps every row once and "
        "each key's order, more than a speed-up.",
        "",
        f"### Payment create: with and without the outbox ({rounds:,} rounds, interleaved)",
        "",
        "POST /api/v1/payments/ (bank_transfer, a service token) through the DRF view in process "
        "(auth, rate limits, validation, the INSERT, the response). `no events`: the bench alone "
        "replaces `payments.services._created_event` with no row in its process; `outbox`: the outbox row, "
        "EVENTS_PROVIDER=outbox; `outbox + relay trigger`: production's setting, Kafka provider, the "
        "after-commit relay request (made by a thread of the process the commit wakes: a flag on "
        "Redis, and a Celery publish when no run is pending), a Celery worker relaying meanwhile.",
        "",
        "| variant | median | p90 | vs. no events: medians | p90s | paired (median of per-round ratios) |",
        "|---|---|---|---|---|---|",
    ]
    for name in VARIANTS:
        stats = create["variants"][name]
        base_line = name == "no events"
        lines.append(
            f"| {name} | {stats['median']:.2f} ms | {stats['p90']:.2f} ms | "
            f"{'' if base_line else over(name, 'median')} | {'' if base_line else over(name, 'p90')} | "
            f"{'' if base_line else format(create['paired'][name] * 100, '+.0f') + '%'} |"
        )
    relayed = create["relayed"]
    relayed_verdict = (
        "each event exactly once, per-key order kept"
        if relayed["ok"] and relayed["order_ok"]
        else "MISMATCH " + json.dumps(relayed)
    )
    lines += [
        "",
        f"Relay tasks enqueued by the {rounds:,} measured creates that asked for a relay: "
        f"{create['relay_tasks']:,} (debounced: a run starts EVENTS_RELAY_DELAY_SECONDS = "
        f"{create['relay_delay']} s after the commit that asked for it, and the commits until then "
        "share it). "
        f"Afterwards, all {create['events']:,} events of the phase (warm-up included) on "
        f"the topic: {relayed['messages']:,} messages, "
        f"{relayed_verdict}.",
        "",
        "Target: the outbox adds at most 15% to a create.",
    ]
    return "\n".join(lines)


def fmt_load(load: tuple) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


# --- the children: one measurement each, Django set up for this bench's database -------------


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jia_payments.settings")
    sys.path.insert(0, str(ROOT))
    from django.conf import settings

    if os.environ.get("BENCH_CELERY_QUEUE"):
        settings.CELERY_TASK_DEFAULT_QUEUE = os.environ["BENCH_CELERY_QUEUE"]
    import django

    django.setup()


def child_prepare() -> dict:
    import psycopg

    url = urlparse(os.environ["DATABASE_URL"])
    name = url.path.lstrip("/")
    admin_url = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    setup_django()
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    # As conftest.py does for the tests: every third-party app's tables straight from its models
    # (dj-stripe's migrations alone take ~4 min); our own apps through their migrations.
    ours = ("jia_payments", "pricing", "entitlements", "payments")
    settings.MIGRATION_MODULES = {
        config.label: None for config in apps.get_app_configs() if not config.name.startswith(ours)
    }
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    return {"database": name}


def child_fill(count: int) -> dict:
    """`count` pending rows, EVENTS_PER_PAYMENT per payment, interleaved across payments."""
    setup_django()
    from django.db import connection

    from jia_payments.core.models import OutboxEvent
    from jia_payments.core.outbox.events import build_envelope
    from payments.models import Payment
    from payments.services import payment_data

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE core_outboxevent")
    payments = [
        Payment(
            id=uuid.uuid4(),
            amount=random.randint(100, 99_999),
            currency="USD",
            payment_method="bank_transfer",
            customer_id=f"customer_{n}",
            order_id=f"order_{n}",
            description="Premium, one month",
            metadata={"source": "bench"},
        )
        for n in range(count // EVENTS_PER_PAYMENT)
    ]
    types = ["payment.created", "payment.status.updated", "payment.completed", "payment.status.updated",
             "payment.refunded"]  # fmt: skip
    from django.utils import timezone

    rows = []
    for seq in range(EVENTS_PER_PAYMENT):
        for payment in payments:
            payment.created_at = payment.updated_at = timezone.now()
            event_id, envelope = build_envelope(types[seq], f"payments/{payment.id}", payment_data(payment))
            rows.append(
                OutboxEvent(
                    event_id=event_id,
                    type=types[seq],
                    aggregate_id=str(payment.id),
                    subject=f"payments/{payment.id}",
                    envelope=json.loads(envelope),
                )
            )
    OutboxEvent.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE core_outboxevent")
    return {"rows": len(rows), "seconds": time.monotonic() - started}


def child_repend() -> dict:
    setup_django()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_outboxevent SET status = 'pending', sent_at = NULL, attempts = 0")
        cursor.execute("VACUUM ANALYZE core_outboxevent")
    return {}


def child_relay(start_at: float) -> dict:
    setup_django()
    from django.db import connection

    from jia_payments.core.outbox.publishers import kafka_publisher
    from jia_payments.core.outbox.services import outbox_relay

    connection.ensure_connection()
    kafka_publisher._get_producer()  # connected before the clock starts, as a running worker is
    time.sleep(max(0.0, start_at - time.time()))
    start = time.time()
    published = batches = 0
    while True:
        result = outbox_relay(max_batches=1)
        if result.failed or result.backing_off:
            raise RuntimeError(f"relay failed: {result}")
        if not result.published:
            # Nothing claimable: done, unless rows are still held by the other relay (or wait
            # behind a held row of their payment): then look again, as beat's sweep would.
            from jia_payments.core.models import OutboxEvent

            if not OutboxEvent.objects.filter(status="pending").exists():
                break
            time.sleep(0.005)
            continue
        published += result.published
        batches += 1
    end = time.time()
    kafka_publisher.reset()
    return {"published": published, "batches": batches, "start": start, "end": end}


def child_verify(expected: int, wait: bool) -> dict:
    """Read the topic back: every sent row once, nothing else, per-key order = row order."""
    setup_django()
    from django.conf import settings

    from jia_payments.core.models import OutboxEvent
    from jia_payments.core.outbox.reader import read_topic

    if wait:  # the relay runs in the Celery worker: give it time to drain
        deadline = time.monotonic() + 60
        while OutboxEvent.objects.filter(status="pending").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    records = list(
        read_topic(settings.EVENTS_BROKERS, settings.EVENTS_TOPIC, min_messages=expected, timeout=60)
    )
    records.sort(key=lambda r: (r.partition, r.offset))
    ids = [json.loads(r.value)["id"] for r in records]
    rows = list(OutboxEvent.objects.order_by("id").values_list("event_id", "aggregate_id", "status"))
    expected_ids = sorted(str(e) for e, _a, _s in rows)
    order: dict[str, list[str]] = {}
    for event_id, aggregate_id, _status in rows:
        order.setdefault(aggregate_id, []).append(str(event_id))
    published: dict[str, list[str]] = {}
    for record, event_id in zip(records, ids, strict=True):
        published.setdefault(record.key.decode(), []).append(event_id)
    pending = sum(1 for _e, _a, s in rows if s != "sent")
    return {
        "ok": sorted(ids) == expected_ids and len(ids) == len(set(ids)) == expected and not pending,
        "messages": len(ids),
        "distinct": len(set(ids)),
        "rows": len(rows),
        "pending": pending,
        "order_ok": published == order,
    }


def child_create(rounds: int) -> dict:
    setup_django()
    from django.conf import settings
    from django.test import override_settings
    from rest_framework.test import APIClient

    import payments.services
    from bench import api
    from jia_payments.core.models import OutboxEvent
    from jia_payments.core.outbox import tasks
    from payments.models import Payment

    OutboxEvent.objects.all().delete()
    Payment.objects.filter(customer_id="bench_customer").delete()
    client = APIClient()
    client.credentials(HTTP_BETTER_AUTH_TOKEN=os.environ["BENCH_TOKEN"])
    body = api.PAYMENT
    real_event = payments.services._created_event
    enqueued = 0
    real_apply_async = tasks.relay_events.apply_async

    def counting_apply_async(*args, **kwargs):
        nonlocal enqueued
        enqueued += 1
        return real_apply_async(*args, **kwargs)

    tasks.relay_events.apply_async = counting_apply_async
    outbox_only = override_settings(EVENTS_PROVIDER="outbox")

    def create(variant: str) -> float:
        no_event = lambda payment: contextlib.nullcontext([])  # noqa: E731
        payments.services._created_event = real_event if variant != "no events" else no_event
        if variant == "outbox":
            outbox_only.enable()
        try:
            began = time.perf_counter()
            response = client.post("/api/v1/payments/", body, format="json")
            elapsed = time.perf_counter() - began
        finally:
            if variant == "outbox":
                outbox_only.disable()
        if response.status_code != 201:
            raise RuntimeError(f"{variant}: {response.status_code} {response.content[:500]!r}")
        return elapsed * 1000

    for _ in range(WARMUP_ROUNDS):
        for variant in VARIANTS:
            create(variant)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    enqueued = 0
    order = list(VARIANTS)
    for _ in range(rounds):
        random.shuffle(order)
        for variant in order:
            samples[variant].append(create(variant))
    payments.services._created_event = real_event
    # The `outbox` variant's rows wait for a relay (the provider was "outbox" at their commit):
    # a sweep, as beat's, publishes them.
    tasks.relay_events.apply_async = real_apply_async
    time.sleep(1)
    tasks.relay_events.delay()
    return {
        "variants": {name: describe(values) for name, values in samples.items()},
        # Paired, robust to the load drifting during the run: each round's ratio to that
        # round's `no events` create, the median over the rounds.
        "paired": {
            name: statistics.median(
                v / base for v, base in zip(samples[name], samples["no events"], strict=True)
            )
            - 1
            for name in VARIANTS
        },
        "events": OutboxEvent.objects.count(),  # the warm-up's included: all go to the topic
        "measured_events": 2 * rounds,
        "relay_tasks": enqueued,
        "relay_delay": settings.EVENTS_RELAY_DELAY_SECONDS,
    }


def describe(values: list[float]) -> dict:
    values = sorted(values)
    return {
        "median": statistics.median(values),
        "p90": values[int(len(values) * 0.9)],
        "mean": statistics.fmean(values),
        "n": len(values),
    }


def main(argv: list[str]) -> None:
    name, *rest = argv
    if name == "prepare":
        result = child_prepare()
    elif name == "fill":
        result = child_fill(int(rest[0]))
    elif name == "repend":
        result = child_repend()
    elif name == "relay":
        result = child_relay(float(rest[0]))
    elif name == "verify":
        result = child_verify(int(rest[0]), wait="--wait" in rest)
    elif name == "create":
        result = child_create(int(rest[0]))
    else:
        raise SystemExit(f"unknown phase {name!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
