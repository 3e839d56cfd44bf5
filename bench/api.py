"""The HTTP API under gunicorn (production settings) driven by wrk: what a request costs.

What it does, in order:
1. its own PostgreSQL database (`<DATABASE_URL's db>_bench`, created and migrated if missing,
   reused afterwards) and Redis db (REDIS_URL's + 10);
2. seeds 10,000 users with bulk inserts (`seed`, in a subprocess configured like the server):
   free, monthly, yearly and lifetime plans, add-ons, families with members, expired rows (some
   already swept, some not), revoked rows, older periods, and users with nothing;
3. starts three servers, each `gunicorn -c gunicorn.conf.py` with the same settings (2 x CPUs + 1
   sync workers, access log; only worker recycling off):
   - the product with DEBUG=false, a real-looking SECRET_KEY and Stripe key, an Ed25519 public key
     for tokens, and BENCH_ENDPOINTS=true (mounts /api/v1/_bench/constant/: the same DRF stack and
     auth, a constant answer: the ceiling);
   - the floor (`bench/floor.py`): plain Django, no middleware, no auth, the same constant answer;
   - the product with dj-stripe's default webhook handling (`bench/inline_settings.py`: the event
     verified and processed in the request), to compare our acknowledgement with;
   and localstripe, which dj-stripe's inline processing asks for the objects of each event;
4. measures, in rounds, each scenario between two blocks of references (floor, then ceiling):
   warm single check, batch of 20, list, cold single check, payment create, webhook
   acknowledgement, webhook processed inline; each ratio is to the mean of that reference's runs
   just before and after the scenario;
5. reads the cache hit/miss counters of all workers from /metrics around each run, so the table
   shows that warm was warm and cold was cold.

Memory (one worker over 100,000 checks) is its own suite, bench/memory.py.

`python -m bench api [--quick] [--write]`.
"""

import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from bench import server, wrk
from bench.server import log

USERS = 10_000
WARM_USERS = 1_000  # the warm scenarios rotate over these (cached once, before the rounds)
CONNECTIONS = 16
THREADS = 2
WORKERS = int(os.environ.get("BENCH_WORKERS", "0")) or None  # None: gunicorn.conf.py's default
CATALOG = [
    "family_calendar",
    "shared_lists",
    "location_sharing",
    "photo_vault",
    "chore_tracker",
    "meal_planner",
    "ai_assistant",
    "cloud_storage",
    "ad_free",
    "priority_support",
]
ADDONS = [f"bench_addon_{n:02d}" for n in range(1, 11)]  # a 2nd plan, so a batch of 20 is real
BATCH = CATALOG + ADDONS
REFERENCES = ("floor", "ceiling")
SCENARIOS = ("warm", "batch", "list", "cold", "create", "webhook", "webhook_inline")
# Targets: (reference, least ratio to it). `cold` is held against the warm check of its round,
# `webhook` against the same events processed inline.
TARGETS = {
    "warm": ("floor", 0.50),
    "batch": ("floor", 0.35),
    "cold": ("warm", 0.50),
    "list": ("floor", 0.15),
    "create": ("floor", 0.20),
    "webhook": ("webhook_inline", 5.0),
}
WARM_P99_MS = 10.0
COUNTERS = {  # /metrics samples of the entitlement cache
    "hits": 'jia_payments_entitlement_cache_lookups_total{result="hit"}',
    "misses": 'jia_payments_entitlement_cache_lookups_total{result="miss"}',
    "errors": "jia_payments_entitlement_cache_errors_total",
}
API = "/api/v1"
FLOOR_APP = "bench.floor:application"
# Requests written for a scenario that sends each one once (creates, webhooks): more than any run
# can send at this rate cap, so a run never runs out.
ONCE_RATE_CAP = 1200
# Rate limits counted as in production, but high enough that the bench's few callers pass.
THROTTLES = {"THROTTLE_SERVICE": "1000000/min", "THROTTLE_WRITE": "1000000/min"}

# --- seeding (runs in a subprocess with the server's settings) --------------------------------


def user_id(n: int) -> str:
    return f"bench-u{n:05d}"


def seed(users: int = USERS, random_seed: int = 4) -> dict:
    """Replace the bench users' data with a realistic mix; bulk inserts. Returns counts."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from entitlements.models import Entitlement, Family, FamilyMember
    from pricing.models import Feature, Plan

    rng = random.Random(random_seed)
    now = datetime.now(UTC)
    days = lambda n: now + timedelta(days=n)  # noqa: E731

    call_command("loaddata", "catalog", verbosity=0)
    for code in ADDONS:
        Feature.objects.update_or_create(code=code, defaults={"name": code.replace("_", " ").title()})
    addons, _ = Plan.objects.update_or_create(
        id="bench_addons",
        defaults={
            "name": "Bench add-ons",
            "billing_cycle": "monthly",
            "price_cents": 199,
            "usage_limits": {"exports_per_day": 10},
        },
    )
    addons.features.set(ADDONS)
    plans = {p.id: p for p in Plan.objects.prefetch_related("features")}
    features = {pid: sorted(f.code for f in p.features.all()) for pid, p in plans.items()}

    rows: list[Entitlement] = []
    kinds: dict[str, int] = {}
    serial = iter(range(10**9))

    def grant(uid, plan_id, *, status="active", expires=None, family=None, keyed="sub", reason=""):
        plan, number = plans[plan_id], next(serial)
        payment = None
        sub = ""
        if keyed == "sub":
            sub = f"sub_bench_{number}"
        elif keyed == "payment":
            payment = __import__("uuid").UUID(int=rng.getrandbits(128))
        granted = (expires or now) - timedelta(days=30)
        for code in features[plan_id]:
            rows.append(
                Entitlement(
                    user_id=uid,
                    family=family,
                    feature_id=code,
                    plan_id=plan_id,
                    subscription_id=sub,
                    payment_id=payment,
                    origin="plan",
                    status=status,
                    status_reason=reason,
                    granted_at=granted,
                    expires_at=expires,
                    usage_limits=plan.usage_limits,
                    metadata={"seed": "bench"},
                )
            )

    families: list[Family] = []
    members: list[FamilyMember] = []
    n = 0
    # ~12% of users are in 600 families (owner + 0..5 members) on family_monthly.
    while n < users and len(families) < max(1, users * 6 // 100):
        owner = user_id(n)
        size = min(1 + rng.randint(0, 5), users - n)
        roll = rng.random()
        family = Family(
            id=__import__("uuid").UUID(int=rng.getrandbits(128)),
            owner_user_id=owner,
            plan_id="family_monthly",
            member_count=size,
        )
        families.append(family)
        if roll < 0.85:
            grant(owner, "family_monthly", expires=days(rng.uniform(1, 30)), family=family)
            kind = "family_active"
        elif roll < 0.95:
            grant(owner, "family_monthly", status="expired", expires=days(-rng.uniform(1, 60)), family=family)
            kind = "family_expired"
        else:
            grant(
                owner,
                "family_monthly",
                status="cancelled",
                expires=days(rng.uniform(1, 30)),
                family=family,
                reason="refund",
            )
            kind = "family_revoked"
        for k in range(size):
            members.append(
                FamilyMember(family=family, user_id=user_id(n + k), role="owner" if k == 0 else "member")
            )
        kinds[kind] = kinds.get(kind, 0) + size
        n += size
    for k in range(n, users):
        uid, roll = user_id(k), rng.random()
        if roll < 0.30:
            grant(uid, "free", keyed="none")
            kind = "free"
        elif roll < 0.60:
            grant(uid, "premium_monthly", expires=days(rng.uniform(1, 30)))
            kind = "monthly"
        elif roll < 0.70:
            grant(uid, "premium_yearly", expires=days(rng.uniform(1, 365)))
            kind = "yearly"
        elif roll < 0.75:
            grant(uid, "lifetime", keyed="payment")
            kind = "lifetime"
        elif roll < 0.81:
            grant(uid, "premium_monthly", status="expired", expires=days(-rng.uniform(1, 90)))
            kind = "expired"
        elif roll < 0.83:  # past expiry, not yet swept: must not grant
            grant(uid, "premium_monthly", expires=days(-rng.uniform(0.01, 1)))
            kind = "expired_unswept"
        elif roll < 0.87:
            grant(
                uid, "premium_monthly", status="cancelled", expires=days(rng.uniform(1, 30)), reason="refund"
            )
            kind = "revoked"
        else:
            kind = "nothing"
        if kind in ("monthly", "yearly", "lifetime"):
            if rng.random() < 0.3:  # an older period of another subscription
                grant(uid, "premium_monthly", status="expired", expires=days(-rng.uniform(30, 400)))
            if rng.random() < 0.25:
                grant(uid, "bench_addons", expires=days(rng.uniform(1, 30)))
        kinds[kind] = kinds.get(kind, 0) + 1

    # Table names come from the models, nothing from outside: plain SQL is safe here.
    ent, member, fam = (m._meta.db_table for m in (Entitlement, FamilyMember, Family))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ent} WHERE user_id LIKE 'bench-u%%'")  # noqa: S608
        cursor.execute(
            f"DELETE FROM {member} WHERE family_id IN "  # noqa: S608
            f"(SELECT id FROM {fam} WHERE owner_user_id LIKE 'bench-u%%')"
        )
        cursor.execute(f"DELETE FROM {fam} WHERE owner_user_id LIKE 'bench-u%%'")  # noqa: S608
        Family.objects.bulk_create(families, batch_size=2000)
        FamilyMember.objects.bulk_create(members, batch_size=5000)
        Entitlement.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ent}, {member}, {fam}")
    return {
        "users": users,
        "entitlements": len(rows),
        "families": len(families),
        "family_members": len(members),
        "kinds": dict(sorted(kinds.items())),
    }


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Run:
    scenario: str
    result: wrk.Result
    hits: int
    misses: int
    errors: int
    load: float
    cpu_ms: float  # CPU of the workers and their database backends per request


@dataclass
class Round:
    runs: list[Run] = field(default_factory=list)

    def run_of(self, scenario: str) -> Run | None:
        return next((r for r in self.runs if r.scenario == scenario), None)

    def references(self, scenario: str, reference: str) -> list[Run]:
        """The `reference` runs of the blocks of references just before and just after `scenario`."""
        index = next(i for i, r in enumerate(self.runs) if r.scenario == scenario)
        found = []
        for step in (-1, 1):
            i = index + step
            while 0 <= i < len(self.runs) and self.runs[i].scenario in REFERENCES:
                if self.runs[i].scenario == reference:
                    found.append(self.runs[i])
                    break
                i += step
        return found

    def ratio(self, scenario: str, reference: str, cpu: bool = False) -> float | None:
        """req/s over the reference's (the mean of its runs around); with `cpu`, the reference's
        CPU per request over the scenario's. Against another scenario: the two ratios to the floor."""
        run = self.run_of(scenario)
        if run is None:
            return None
        if reference not in REFERENCES:
            mine, theirs = self.ratio(scenario, "floor", cpu), self.ratio(reference, "floor", cpu)
            return mine / theirs if mine and theirs else None
        around = self.references(scenario, reference)
        if not around:
            return None
        if cpu:
            return statistics.mean(r.cpu_ms for r in around) / run.cpu_ms if run.cpu_ms else None
        return run.result.rps / statistics.mean(r.result.rps for r in around)


class Bench:
    def __init__(self, group: server.ProcessGroup, servers: dict, redis_url: str, database_url: str):
        self.group, self.servers, self.redis_url, self.database_url = group, servers, redis_url, database_url

    def _backends_cpu(self, with_database: bool) -> dict[int, float]:
        """CPU so far of each database backend of the bench database (pid -> seconds)."""
        if not with_database:
            return {}
        return {pid: server.cpu_seconds([pid]) for pid in server.postgres_backend_pids(self.database_url)}

    @staticmethod
    def _backends_delta(before: dict[int, float], after: dict[int, float]) -> float:
        """The backends' CPU between the two readings: those alive at both, plus all of those that
        started in between (a backend gone before the second reading is not counted: its last
        CPU figure went with it)."""
        return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())

    @staticmethod
    def _totals(target: server.Server, counted: bool) -> dict[str, int]:
        if not counted:
            return dict.fromkeys(COUNTERS, 0)
        samples = target.metrics()
        return {name: int(samples.get(sample, 0)) for name, sample in COUNTERS.items()}

    def measure(
        self,
        scenario: str,
        requests_file: Path,
        *,
        duration: float,
        target: str = "app",
        mode: str = "cycle",
        lookups: int = 0,
        connections: int = CONNECTIONS,
        threads: int = THREADS,
    ) -> Run:
        """One wrk run against `target`. With `lookups`, it ends once the workers have made that many
        cache lookups (a `once` run over distinct users: every lookup a new user)."""
        gunicorn = self.servers[target]
        counted = gunicorn.app != FLOOR_APP  # the floor has no metrics and no database
        before = self._totals(gunicorn, counted)
        workers_before, backends_before = gunicorn.cpu_seconds(), self._backends_cpu(counted)

        def done() -> bool:
            now = self._totals(gunicorn, counted)
            return now["hits"] + now["misses"] - before["hits"] - before["misses"] >= lookups

        result = wrk.run(
            self.group,
            gunicorn.base_url,
            requests_file,
            mode=mode,
            duration=duration,
            connections=connections,
            threads=threads,
            headers=server.PROXY_HEADERS,
            stop_when=done if lookups else None,
        )
        after = self._totals(gunicorn, counted)
        cpu = gunicorn.cpu_seconds() - workers_before
        cpu += self._backends_delta(backends_before, self._backends_cpu(counted))
        load = os.getloadavg()[0]
        if result.errors.get("status"):
            raise RuntimeError(f"{scenario}: {result.errors['status']} answers were not 2xx/3xx")
        cpu_ms = cpu * 1000 / max(1, result.requests)
        run = Run(
            scenario, result, *(after[k] - before[k] for k in ("hits", "misses", "errors")), load, cpu_ms
        )
        log(
            f"  {scenario:14s} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms"
            f"  p99 {result.p99_ms:6.2f} ms  cpu {cpu_ms:5.2f} ms/req  hits {run.hits} misses {run.misses}"
            + (f"  socket errors {result.errors}" if result.errors else "")
            + f"  load {load:.2f}"
        )
        return run

    def drop_cached_entries(self, keep: frozenset[str] = frozenset()) -> int:
        return drop_cached_entries(self.redis_url, keep)

    def drop_task_queue(self) -> None:
        """The webhook tasks the acknowledgements enqueued: no worker runs here to take them."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        client.delete("celery")
        client.close()


def drop_cached_entries(redis_url: str, keep: frozenset[str] = frozenset()) -> int:
    """Delete bench users' cache entries but those of `keep` (generation tokens stay, as in
    production after an entry expired)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    dropped = 0
    batch = []
    for key in client.scan_iter(match="*:ent:*:e:bench-u*", count=2000):
        if key.decode().rsplit(":", 1)[1] in keep:
            continue
        batch.append(key)
        if len(batch) >= 1000:
            dropped += client.unlink(*batch)
            batch = []
    if batch:
        dropped += client.unlink(*batch)
    client.close()
    return dropped


# --- Stripe's side: objects in localstripe, events signed as Stripe signs them -----------------


def stripe_objects(stripe_fake, count: int) -> list[dict]:
    """`count` succeeded payment intents in localstripe, as Stripe's API shows them."""
    import stripe

    from testsupport.localstripe import API_KEY

    client = stripe.StripeClient(API_KEY, base_addresses={"api": stripe_fake.url})
    intents = []
    for n in range(count):
        intent = client.payment_intents.create(
            params={"amount": 1000 + n, "currency": "usd", "payment_method": "pm_card_visa"}
        )
        client.payment_intents.confirm(intent.id)
        intents.append(stripe_fake.get(f"/v1/payment_intents/{intent.id}"))
    return intents


def webhook_lines(uuid_path: str, secret: str, intents: list[dict], count: int) -> list[tuple]:
    """`count` distinct `payment_intent.succeeded` events, each signed now with the endpoint's secret."""
    from testsupport.localstripe import signature_header

    stamp = int(time.time())
    lines = []
    for n in range(count):
        event = {
            "id": f"evt_bench_{uuid.uuid4().hex}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": stamp,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": "payment_intent.succeeded",
            "data": {"object": intents[n % len(intents)]},
        }
        body = json.dumps(event, separators=(",", ":"))
        signature = signature_header(body.encode(), secret, stamp)
        lines.append(("POST", uuid_path, "", body, f"Stripe-Signature: {signature}"))
    return lines


# The payment the create scenarios make (the events suite's too).
PAYMENT = {
    "amount": 1999,
    "currency": "USD",
    "payment_method": "bank_transfer",
    "customer_id": "bench_customer",
    "order_id": "order_bench",
    "description": "Premium, one month",
    "metadata": {"source": "bench"},
}


def create_lines(token: str, count: int) -> list[tuple]:
    body = json.dumps(PAYMENT, separators=(",", ":"))
    return [
        ("POST", f"{API}/payments/", token, body, f"Idempotency-Key: bench-{uuid.uuid4()}")
        for _ in range(count)
    ]


def _check_samples(servers: dict, files: dict[str, Path]) -> None:
    """One request of each scenario by hand: the right answer, not just a 2xx."""
    targets = {"floor": "floor", "webhook_inline": "inline"}
    for scenario, path in files.items():
        method, url_path, token, body, *extra = path.read_text().splitlines()[-1].split("\t")
        headers = {"Content-Type": "application/json", **dict(h.split(": ", 1) for h in extra)}
        if token:
            headers["better-auth-token"] = token
        status, raw = server.request(
            servers[targets.get(scenario, "app")].base_url + url_path,
            method=method,
            headers=headers,
            body=body.encode() or None,
        )
        if status not in (200, 201):
            raise RuntimeError(f"{scenario}: {method} {url_path} answered {status}: {raw[:500]!r}")
        if scenario.startswith("webhook"):
            continue  # dj-stripe answers the trigger's id as text
        answer = json.loads(raw)
        expected = {
            "floor": lambda a: a == {"ok": True},
            "ceiling": lambda a: a == {"ok": True},
            "warm": lambda a: set(a) >= {"has_access", "reason", "source"},
            "cold": lambda a: set(a) >= {"has_access", "reason", "source"},
            "batch": lambda a: len(a["results"]) == len(BATCH),
            "list": lambda a: "count" in a and "results" in a,
            "create": lambda a: a.get("status") == "pending" and a.get("id"),
        }[scenario]
        if not expected(answer):
            raise RuntimeError(f"{scenario}: unexpected answer {answer}")


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


TITLES = {
    "floor": "floor: plain Django, no middleware, no auth (`bench/floor.py`)",
    "ceiling": "ceiling: bare DRF view, same auth (`GET /api/v1/_bench/constant/`)",
    "warm": "single check, warm cache (`GET .../check/?feature_code=`)",
    "batch": "batch check of 20 features, warm cache (`POST .../check/`)",
    "list": "list (`GET /api/v1/entitlements/`)",
    "cold": "single check, cold cache (every request a miss)",
    "create": "payment create (`POST /api/v1/payments/`, service token, unique Idempotency-Key)",
    "webhook": "Stripe webhook acknowledged: verified, stored, task enqueued (ours)",
    "webhook_inline": "Stripe webhook processed inline, dj-stripe's default",
}


def _target_text(scenario: str) -> str:
    if scenario not in TARGETS:
        return ""
    reference, least = TARGETS[scenario]
    name = {"webhook_inline": "inline"}.get(reference, reference)
    text = f"≥ {least:g}x {name}" if least >= 1 else f"≥ {least:.2f} of {name}"
    return text + (f", p99 ≤ {WARM_P99_MS:g} ms" if scenario == "warm" else "")


def _report(rounds: list[Round], meta: dict) -> str:
    lines = [
        "## HTTP API under gunicorn + wrk: the floor, the ceiling, checks, creates, webhooks",
        "",
        f"Command: `{meta['command']}` · {meta['when']} · commit `{meta['commit']}`",
        "",
        f"Machine: {meta['cores']} cores; load average before {meta['load_before']}, "
        f"after {meta['load_after']} (other work on the machine makes every figure noisy: "
        "read the ratios, each taken against the references measured just before and after).",
        "",
        f"Setup: three servers, each `gunicorn -c gunicorn.conf.py` ({meta['workers']} sync workers, "
        "its defaults but worker recycling, off: its restarts would land on random runs): the product "
        "(DEBUG=false, Prometheus metrics, PostgreSQL "
        f"`{meta['database']}`, Redis db {meta['redis_db']}, Ed25519 tokens, rate limits counted in "
        "Redis with the service and write limits raised so the bench's one service caller passes), "
        "the floor (`bench/floor.py`), and the product with dj-stripe's default webhook handling "
        "(`bench/inline_settings.py`; it fetches each event's object from localstripe). Checks: one "
        f"token per request from {WARM_USERS:,} users, whose cache entries the app's own code filled "
        "before the rounds (cold: each of the other "
        f"{USERS - WARM_USERS:,} once); creates: one service token, a new Idempotency-Key each; "
        "webhooks: distinct `payment_intent.succeeded` events signed just before the run. "
        f"wrk {THREADS} threads, {CONNECTIONS} connections, {meta['duration']:g} s per scenario run and "
        f"{meta['ref_duration']:g} s per reference run, {len(rounds)} round(s); each scenario sits "
        "between two blocks of references (floor, ceiling) and its ratio is to the mean of each "
        "reference's two runs around it; figures are medians over the rounds. CPU ms/request = CPU "
        "time of the gunicorn workers and their PostgreSQL backends per request (not wrk's, not "
        "Redis's): unlike req/s it hardly depends on what else the machine runs. Under `make bench` "
        "nothing else of the bench runs beside these rounds (the memory run starts after them).",
        "",
        f"Data: {meta['seed']['users']:,} users, {meta['seed']['entitlements']:,} entitlement rows, "
        f"{meta['seed']['families']} families ({meta['seed']['family_members']} members); "
        + ", ".join(f"{k} {v}" for k, v in meta["seed"]["kinds"].items())
        + (
            f". Seeded in {meta['seed_seconds']:.1f} s."
            if meta["seed_seconds"]
            else f". Seeded at {meta['seed'].get('seeded_at', '?')[:16]} by an earlier run of the same "
            f"seeding, reused (less than {SEED_REUSE_HOURS} h old)."
        ),
        "",
        "| scenario | req/s | p50 ms | p99 ms | ÷ floor | ÷ floor, rounds' range | ÷ ceiling | target | met "
        "| CPU ms/request | CPU ÷ floor's | cache hits / misses |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|",
    ]
    verdicts = {}
    for scenario in (*REFERENCES, *SCENARIOS):
        runs = [r for rnd in rounds for r in rnd.runs if r.scenario == scenario]
        if not runs:
            continue
        having = [rnd for rnd in rounds if rnd.run_of(scenario)]
        rps = _median([r.result.rps for r in runs])
        p50 = _median([r.result.p50_ms for r in runs])
        p99 = _median([r.result.p99_ms for r in runs])
        cpu_ms = _median([r.cpu_ms for r in runs])
        hits, misses = sum(r.hits for r in runs), sum(r.misses for r in runs)
        to_floors = [] if scenario == "floor" else [rnd.ratio(scenario, "floor") for rnd in having]
        to_floor = 1.0 if scenario == "floor" else _median(to_floors)
        spread = [r for r in to_floors if r is not None]
        floor_range = f"{min(spread):.2f}-{max(spread):.2f}" if spread else ""
        to_ceiling = (
            1.0 if scenario == "ceiling" else _median([rnd.ratio(scenario, "ceiling") for rnd in having])
        )
        cpu_floor = (
            None if scenario == "floor" else _median([rnd.ratio(scenario, "floor", True) for rnd in having])
        )
        met = ""
        if scenario in TARGETS:
            reference, least = TARGETS[scenario]
            ratio = _median([rnd.ratio(scenario, reference) for rnd in having])
            ok = ratio is not None and ratio >= least and (scenario != "warm" or p99 <= WARM_P99_MS)
            verdicts[scenario] = ok
            met = ("yes" if ok else "**no**") + f" ({ratio:.2f})" if ratio is not None else "**no**"
        socket_errors = sum(r.result.failed for r in runs)
        counted = scenario in ("warm", "batch", "list", "cold")
        lines.append(
            f"| {TITLES[scenario]} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {_fmt(to_floor)} | {floor_range} "
            f"| {_fmt(to_ceiling)} | {_target_text(scenario)} | {met} | {cpu_ms:.2f} | {_fmt(cpu_floor)} "
            f"| {f'{hits:,} / {misses:,}' if counted else ''}"
            f"{f' ({socket_errors} socket errors)' if socket_errors else ''} |"
        )
    lines += ["", "Each round, in order (req/s, p99 ms, CPU ms/request, load average):", ""]
    for number, rnd in enumerate(rounds, 1):
        lines.append(
            f"- round {number}: "
            + "; ".join(
                f"{r.scenario} {r.result.rps:,.0f} ({r.result.p99_ms:.1f}, {r.cpu_ms:.2f}, {r.load:.2f})"
                for r in rnd.runs
            )
        )
    missed = [s for s, ok in verdicts.items() if not ok]
    lines += ["", "Targets met." if not missed else f"Targets missed: {', '.join(missed)}."]
    return "\n".join(lines)


def command_text(suite: str, args) -> str:
    """The command that ran the suite, as a report shows it."""
    if os.environ.get("MAKELEVEL"):
        extra = os.environ.get("BENCH_ARGS")
        return "make bench" + (f" BENCH_ARGS='{extra}'" if extra else "")
    quick, write = getattr(args, "quick", False), getattr(args, "write", False)
    return f"python -m bench {suite}" + (" --quick" if quick else "") + (" --write" if write else "")


def git_commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=server.ROOT, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=server.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


_seeded: dict[str, tuple[dict, float]] = {}  # database URL -> seed_in_subprocess's answer
# Data seeded by this very code less than SEED_REUSE_HOURS ago is used again (a marker in the bench
# Redis db, checked against the rows in the database): on this machine seeding takes 20-100 s.
SEED_REUSE_HOURS = 12
SEED_TABLE = "entitlements_entitlement"


def _seed_marker_key() -> str:
    import hashlib
    import inspect

    code = inspect.getsource(seed) + repr((USERS, ADDONS, CATALOG))
    return "bench:api:seed:" + hashlib.sha256(code.encode()).hexdigest()[:16]


def _reusable_seed(env: dict) -> dict | None:
    """The summary of a seeding of this code still in the database, if recent enough."""
    import psycopg
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        marker = client.get(_seed_marker_key())
    finally:
        client.close()
    if marker is None:
        return None
    summary = json.loads(marker)
    dsn = env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        (rows,) = conn.execute(
            f"SELECT count(*) FROM {SEED_TABLE} WHERE user_id LIKE 'bench-u%%'"  # noqa: S608 (a constant)
        ).fetchone()
    return summary if rows == summary["entitlements"] else None


def seed_in_subprocess(env: dict) -> tuple[dict, float]:
    """`seed()` in a process configured like the server; (its counts, seconds it took; 0 when the
    data of an earlier run of the same seeding, less than SEED_REUSE_HOURS old, was reused: its
    counts then say when it was seeded). Once per database in a process: the suites that follow
    (gRPC) reuse it."""
    if env["DATABASE_URL"] in _seeded:
        return _seeded[env["DATABASE_URL"]]
    reused = _reusable_seed(env)
    if reused is not None:
        _seeded[env["DATABASE_URL"]] = reused, 0.0
        return _seeded[env["DATABASE_URL"]]
    started = time.monotonic()
    seeded = subprocess.run(
        [
            server.PYTHON,
            "-c",
            "import django, json; django.setup(); from bench.api import seed; "
            "print('SEED ' + json.dumps(seed()))",
        ],
        cwd=server.ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seed_line = next((x for x in seeded.stdout.splitlines() if x.startswith("SEED ")), None)
    if seeded.returncode != 0 or seed_line is None:
        raise RuntimeError(f"seeding failed:\n{seeded.stderr[-3000:]}")
    summary = {**json.loads(seed_line.removeprefix("SEED ")), "seeded_at": datetime.now(UTC).isoformat()}
    _seeded[env["DATABASE_URL"]] = summary, time.monotonic() - started
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        client.set(_seed_marker_key(), json.dumps(summary), ex=SEED_REUSE_HOURS * 3600)
    finally:
        client.close()
    return _seeded[env["DATABASE_URL"]]


def _manage(env: dict, *args: str) -> None:
    subprocess.run(
        [server.PYTHON, "manage.py", *args], cwd=server.ROOT, env=env, check=True, capture_output=True
    )


def warm_user_ids() -> list[str]:
    """The users of the warm scenarios (the gRPC suite's too): the same every run."""
    return random.Random(7).sample([user_id(n) for n in range(USERS)], WARM_USERS)


def fill_cache(env: dict, users: list[str], processes: int = 4) -> float:
    """Each user's cache entry filled by the app's own code (`access_rows`, as a first check does),
    in `processes` processes configured like the server: the warm scenarios start warm, without a
    minute of HTTP warm-up on a loaded machine. Returns the seconds it took."""
    started = time.monotonic()
    code = (
        "import django, sys; django.setup(); from entitlements.selectors import access_rows; "
        "[access_rows(user_id=u) for u in sys.stdin.read().split()]"
    )
    fillers = [
        subprocess.Popen(
            [server.PYTHON, "-c", code],
            cwd=server.ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for number, filler in enumerate(fillers):  # a few KB each: within the pipe's buffer
        filler.stdin.write("\n".join(users[number::processes]))
        filler.stdin.close()
    for filler in fillers:
        if filler.wait() != 0:
            raise RuntimeError(f"filling the cache failed:\n{filler.stderr.read()[-3000:]}")
    return time.monotonic() - started


def run(args) -> str:
    from testsupport.localstripe import LocalStripe

    started = time.monotonic()
    quick = getattr(args, "quick", False)
    duration, ref_duration, rounds_wanted = (2.0, 2.0, 1) if quick else (3.0, 2.0, 3)
    stripe_fake = LocalStripe().start()
    try:
        setup = server.suite_setup(
            "api bench",
            BENCH_ENDPOINTS="true",
            STRIPE_API_BASE=stripe_fake.url,
            STRIPE_WEBHOOK_UUID=str(uuid.uuid4()),
            **THROTTLES,
        )
        issuer, database_url, redis_url, env = setup.issuer, setup.database_url, setup.redis_url, setup.env
        load_before = setup.load_before

        # The seeding and the webhook endpoint's row (tables of their own) while the servers start.
        # Then the warm users' cache entries, filled once (cold runs drop only the others').
        def prepare_data() -> tuple[dict, float]:
            seeded = seed_in_subprocess(env)
            drop_cached_entries(redis_url)
            seconds = fill_cache(env, warm_user_ids())
            log(f"cache entries of the {WARM_USERS:,} warm users filled in {seconds:.1f} s")
            return seeded

        with ThreadPoolExecutor(2) as pool:
            seeding = pool.submit(prepare_data)
            endpoint = pool.submit(_manage, env, "stripe_webhook_endpoint")

            def data_ready() -> None:
                endpoint.result()
                info, seconds = seeding.result()
                log(
                    f"seeded {info['entitlements']:,} entitlements for {USERS:,} users in {seconds:.1f} s"
                    if seconds
                    else f"reused the {info['entitlements']:,} entitlements seeded {info['seeded_at'][:16]}"
                )

            intents = stripe_objects(stripe_fake, 20)
            rounds, workers_used = _measure(
                env, issuer, intents, database_url, redis_url, duration, ref_duration, rounds_wanted, quick,
                data_ready,
            )  # fmt: skip
        seed_info, seed_seconds = seeding.result()
    finally:
        stripe_fake.stop()

    meta = {
        "command": command_text("api", args),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": server.load_average(),
        "database": urlsplit(database_url).path.lstrip("/"),
        "redis_db": urlsplit(redis_url).path.lstrip("/"),
        "duration": duration,
        "ref_duration": ref_duration,
        "workers": workers_used,
        "seed": seed_info,
        "seed_seconds": seed_seconds,
    }
    log(f"api bench done in {time.monotonic() - started:.0f} s")
    return _report(rounds, meta)


def _measure(
    env, issuer, intents, database_url, redis_url, duration, ref_duration, rounds_wanted, quick, data_ready
):
    rng = random.Random(7)
    everyone = [user_id(n) for n in range(USERS)]
    tokens = {uid: issuer.token(uid, ttl=4 * 3600) for uid in everyone}
    service_token = issuer.token("svc_bench", role="service", ttl=4 * 3600)
    issuer.issued.clear()
    warm_users = rng.sample(everyone, WARM_USERS)
    if warm_users != warm_user_ids():
        raise RuntimeError("the warm users differ from those whose entries were filled")
    warm_set = frozenset(warm_users)
    cold_users = rng.sample(sorted(set(everyone) - warm_set), USERS - WARM_USERS)
    batch_body = json.dumps({"feature_codes": BATCH}, separators=(",", ":"))
    secret = env["STRIPE_WEBHOOK_SECRET"]
    webhook_path = f"/stripe/webhook/{env['STRIPE_WEBHOOK_UUID']}/"
    once_count = int(ONCE_RATE_CAP * duration)

    def check(uid):
        return ("GET", f"{API}/entitlements/check/?feature_code={rng.choice(CATALOG)}", tokens[uid], "")

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))

    def write(name: str, lines) -> Path:
        return wrk.write_requests(workdir / f"{name}.tsv", lines)

    paths = {
        "floor": write("floor", [("GET", f"{API}/_bench/constant/", "", "")]),
        "ceiling": write("ceiling", [("GET", f"{API}/_bench/constant/", tokens[u], "") for u in warm_users]),
        "warm": write("warm", [check(u) for u in warm_users]),
        "batch": write(
            "batch", [("POST", f"{API}/entitlements/check/", tokens[u], batch_body) for u in warm_users]
        ),
        "cold": write("cold", [check(u) for u in cold_users]),
        "list": write("list", [("GET", f"{API}/entitlements/", tokens[u], "") for u in warm_users]),
    }
    fresh = {  # written anew before each run: each request once (keys, event ids, fresh signatures)
        "create": lambda: write("create", create_lines(service_token, once_count)),
        "webhook": lambda: write("webhook", webhook_lines(webhook_path, secret, intents, once_count)),
        "webhook_inline": lambda: write(
            "webhook_inline", webhook_lines(webhook_path, secret, intents, once_count // 6)
        ),
    }
    inline_env = {**env, "DJANGO_SETTINGS_MODULE": "bench.inline_settings"}

    rounds: list[Round] = []
    servers: dict[str, server.Server] = {}
    try:
        with server.ProcessGroup() as group, server.serving(servers, "gunicorn ({})"):
            servers["app"] = server.Gunicorn(group, env, workers=WORKERS).start()
            servers["floor"] = server.Gunicorn(group, env, workers=WORKERS, app=FLOOR_APP).start()
            servers["inline"] = server.Gunicorn(group, inline_env, workers=WORKERS).start()
            log(f"servers ready: {', '.join(f'{k} {v.base_url}' for k, v in servers.items())}")
            bench = Bench(group, servers, redis_url, database_url)
            data_ready()
            _check_samples(servers, {**paths, **{name: make() for name, make in fresh.items()}})
            # Each worker imports lazily on its first requests: a short untimed run first.
            for name, target in (("ceiling", "app"), ("floor", "floor"), ("webhook_inline", "inline")):
                path, mode = (paths[name], "cycle") if name in paths else (fresh[name](), "once")
                wrk.run(
                    group,
                    servers[target].base_url,
                    path,
                    duration=1,
                    mode=mode,
                    headers=server.PROXY_HEADERS,
                )

            def references(rnd: Round) -> None:
                rnd.runs.append(bench.measure("floor", paths["floor"], duration=ref_duration, target="floor"))
                rnd.runs.append(bench.measure("ceiling", paths["ceiling"], duration=ref_duration))

            for number in range(rounds_wanted):
                log(f"round {number + 1}/{rounds_wanted}")
                rnd = Round()
                references(rnd)
                for scenario in SCENARIOS:
                    if scenario == "cold":  # each user once; stop before the set runs out
                        log(f"  dropped {bench.drop_cached_entries(keep=warm_set)} cache entries")
                        run = bench.measure(
                            "cold",
                            paths["cold"],
                            duration=duration,
                            mode="once",
                            lookups=USERS * 95 // 100,
                        )
                    elif scenario in fresh:
                        path = fresh[scenario]()
                        target = "inline" if scenario == "webhook_inline" else "app"
                        run = bench.measure(scenario, path, duration=duration, target=target, mode="once")
                        if run.result.requests >= sum(1 for _ in path.open()) - CONNECTIONS:
                            raise RuntimeError(
                                f"{scenario}: the run used up its requests; raise ONCE_RATE_CAP"
                            )
                        bench.drop_task_queue()
                    else:
                        run = bench.measure(scenario, paths[scenario], duration=duration)
                    rnd.runs.append(run)
                    references(rnd)
                rounds.append(rnd)
    finally:
        shutil.rmtree(workdir)
    workers = servers["app"].workers if "app" in servers else 0
    return rounds, workers
