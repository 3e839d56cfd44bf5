"""The entitlements benchmark: access checks under gunicorn (production settings) driven by wrk.

What it does, in order:
1. its own PostgreSQL database (`<DATABASE_URL's db>_bench`, created and migrated if missing,
   reused afterwards) and Redis db (REDIS_URL's + 10);
2. seeds 10,000 users with bulk inserts (`seed`, in a subprocess configured like the server):
   free, monthly, yearly and lifetime plans, add-ons, families with members, expired rows (some
   already swept, some not), revoked rows, older periods, and users with nothing;
3. starts gunicorn as production does (`gunicorn -c gunicorn.conf.py`: 2 x CPUs + 1 sync workers,
   access log, Prometheus multiprocess metrics; only worker recycling off) with DEBUG=false, a real-looking
   SECRET_KEY and Stripe key, an Ed25519 public key for tokens, and BENCH_ENDPOINTS=true (mounts
   /api/v1/_bench/constant/: the same DRF stack and auth, a constant answer: the ceiling);
4. mints a token per user and measures, in rounds, the ceiling interleaved with each scenario
   (warm single check, batch of 20, list, cold single check) with wrk, 16 connections;
   each scenario's ratio is to the mean of the ceilings measured just before and after it;
5. reads the cache hit/miss counters of all workers from /metrics around each run, so the table
   shows that warm was warm and cold was cold.

`python -m bench entitlements [--quick] [--write]`.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
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
TARGETS = {"warm": 0.80, "batch": 0.60, "cold": 0.50}
WARM_P99_MS = 10.0
COUNTERS = {  # /metrics samples (jia_payments.core.ops.metrics)
    "hits": 'jia_payments_entitlement_cache_lookups_total{result="hit"}',
    "misses": 'jia_payments_entitlement_cache_lookups_total{result="miss"}',
    "errors": "jia_payments_entitlement_cache_errors_total",
}
API = "/api/v1"


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
        cursor.execute(f"DELETE FROM {ent} WHERE user_id LIKE 'bench-%%'")  # noqa: S608
        cursor.execute(
            f"DELETE FROM {member} WHERE family_id IN "  # noqa: S608
            f"(SELECT id FROM {fam} WHERE owner_user_id LIKE 'bench-%%')"
        )
        cursor.execute(f"DELETE FROM {fam} WHERE owner_user_id LIKE 'bench-%%'")  # noqa: S608
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

    def ratio(self, scenario: str, cpu: bool = False) -> float:
        """req/s over the mean req/s of the ceilings just before and after; or (cpu) the
        ceiling's CPU per request over the scenario's."""
        index = next(i for i, r in enumerate(self.runs) if r.scenario == scenario)
        around = [
            r
            for r in self.runs[index - 1 : index] + self.runs[index + 1 : index + 2]
            if r.scenario == "ceiling"
        ]
        if cpu:
            return statistics.mean(r.cpu_ms for r in around) / self.runs[index].cpu_ms
        return self.runs[index].result.rps / statistics.mean(r.result.rps for r in around)


class Bench:
    def __init__(
        self, group: server.ProcessGroup, gunicorn: server.Gunicorn, redis_url: str, database_url: str
    ):
        self.group, self.gunicorn, self.redis_url, self.database_url = (
            group,
            gunicorn,
            redis_url,
            database_url,
        )

    def _cpu(self) -> tuple[float, list[int]]:
        """CPU so far of the workers and of the database backends serving them (those pids)."""
        backends = server.postgres_backend_pids(self.database_url)
        return self.gunicorn.cpu_seconds() + server.cpu_seconds(backends), backends

    def _totals(self) -> dict[str, int]:
        samples = self.gunicorn.metrics()
        return {name: int(samples.get(sample, 0)) for name, sample in COUNTERS.items()}

    def measure(
        self, scenario: str, requests_file: Path, *, duration: float, mode: str = "cycle", lookups: int = 0
    ) -> Run:
        """One wrk run. With `lookups`, it ends once the workers have made that many cache lookups
        (a `once` run over distinct users: every lookup a new user)."""
        before = self._totals()
        cpu_before, backends = self._cpu()

        def done() -> bool:
            now = self._totals()
            return now["hits"] + now["misses"] - before["hits"] - before["misses"] >= lookups

        result = wrk.run(
            self.group,
            self.gunicorn.base_url,
            requests_file,
            mode=mode,
            duration=duration,
            connections=CONNECTIONS,
            threads=THREADS,
            headers=server.PROXY_HEADERS,
            stop_when=done if lookups else None,
        )
        after = self._totals()
        cpu_after = self.gunicorn.cpu_seconds() + server.cpu_seconds(backends)
        load = os.getloadavg()[0]
        if result.errors.get("status"):
            raise RuntimeError(f"{scenario}: {result.errors['status']} answers were not 2xx/3xx")
        cpu_ms = (cpu_after - cpu_before) * 1000 / max(1, result.requests)
        run = Run(
            scenario, result, *(after[k] - before[k] for k in ("hits", "misses", "errors")), load, cpu_ms
        )
        log(
            f"  {scenario:8s} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms"
            f"  p99 {result.p99_ms:6.2f} ms  cpu {cpu_ms:5.2f} ms/req  hits {run.hits} misses {run.misses}"
            + (f"  socket errors {result.errors}" if result.errors else "")
            + f"  load {load:.2f}"
        )
        return run

    def drop_cached_entries(self, keep: frozenset[str] = frozenset()) -> int:
        """Delete bench users' cache entries but those of `keep` (generation tokens stay, as in
        production after an entry expired)."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        dropped = 0
        batch = []
        for key in client.scan_iter(match="*:ent:v1:e:bench-*", count=2000):
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


def _check_samples(base_url: str, files: dict[str, Path]) -> None:
    """One request of each scenario by hand: the right answer, not just a 200."""
    for scenario, path in files.items():
        method, url_path, token, body = path.read_text().splitlines()[0].split("\t")
        status, raw = server.request(
            base_url + url_path,
            method=method,
            headers={"better-auth-token": token, "Content-Type": "application/json"},
            body=body.encode() or None,
        )
        answer = json.loads(raw)
        if status != 200:
            raise RuntimeError(f"{scenario}: {method} {url_path} answered {status}: {answer}")
        expected = {
            "ceiling": lambda a: a == {"ok": True},
            "warm": lambda a: set(a) >= {"has_access", "reason", "source"},
            "cold": lambda a: set(a) >= {"has_access", "reason", "source"},
            "batch": lambda a: len(a["results"]) == len(BATCH),
            "list": lambda a: "count" in a and "results" in a,
        }[scenario]
        if not expected(answer):
            raise RuntimeError(f"{scenario}: unexpected answer {answer}")


def _median(values):
    return statistics.median(values) if values else float("nan")


def _report(rounds: list[Round], meta: dict) -> str:
    scenarios = ["ceiling", "warm", "batch", "cold", "list"]
    titles = {
        "ceiling": "ceiling: bare DRF view, same auth (`GET /api/v1/_bench/constant/`)",
        "warm": "single check, warm cache (`GET .../check/?feature_code=`)",
        "batch": "batch check of 20 features, warm cache (`POST .../check/`)",
        "cold": "single check, cold cache (every request a miss)",
        "list": "list (`GET /api/v1/entitlements/`)",
    }
    lines = [
        "## Entitlements: access checks under gunicorn + wrk",
        "",
        f"Command: `{meta['command']}` · {meta['when']} · commit `{meta['commit']}`",
        "",
        f"Machine: {meta['cores']} cores; load average before {meta['load_before']}, "
        f"after {meta['load_after']} (other work on the machine makes every figure noisy: "
        "read the ratios, each taken against the ceiling measured just before and after).",
        "",
        f"Setup: `gunicorn -c gunicorn.conf.py` as in production ({meta['workers']} sync workers, "
        "access log, Prometheus metrics; worker recycling off, its restarts would land on random runs), "
        "DEBUG=false, PostgreSQL "
        f"`{meta['database']}`, Redis db {meta['redis_db']}, Ed25519 tokens, one per request from "
        f"{WARM_USERS:,} users (cold: each of the other {USERS - WARM_USERS:,} once); "
        f"wrk {THREADS} threads, {CONNECTIONS} connections, {meta['duration']:g} s per run, "
        f"{len(rounds)} round(s) of ceiling/scenario interleaved; figures are medians over the rounds. "
        "CPU ms/request = CPU time of the gunicorn workers and their PostgreSQL backends per request "
        "(not wrk's, not Redis's): unlike req/s it hardly depends on what else the machine runs.",
        "",
        f"Data: {meta['seed']['users']:,} users, {meta['seed']['entitlements']:,} entitlement rows, "
        f"{meta['seed']['families']} families ({meta['seed']['family_members']} members); "
        + ", ".join(f"{k} {v}" for k, v in meta["seed"]["kinds"].items())
        + f". Seeded in {meta['seed_seconds']:.1f} s.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | ratio to ceiling | target | met "
        "| CPU ms/request | CPU ratio | cache hits / misses |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---|",
    ]
    verdicts = {}
    for scenario in scenarios:
        runs = [r for rnd in rounds for r in rnd.runs if r.scenario == scenario]
        if not runs:
            continue
        rps = _median([r.result.rps for r in runs])
        p50 = _median([r.result.p50_ms for r in runs])
        p99 = _median([r.result.p99_ms for r in runs])
        hits, misses = sum(r.hits for r in runs), sum(r.misses for r in runs)
        cpu_ms = _median([r.cpu_ms for r in runs])
        if scenario == "ceiling":
            ratio_text, cpu_text, target_text, met = "1.00", "1.00", "", ""
        else:
            having = [rnd for rnd in rounds if any(r.scenario == scenario for r in rnd.runs)]
            ratio = _median([rnd.ratio(scenario) for rnd in having])
            ratio_text = f"{ratio:.2f}"
            cpu_text = f"{_median([rnd.ratio(scenario, cpu=True) for rnd in having]):.2f}"
            target = TARGETS.get(scenario)
            if target is None:
                target_text, met = "(none)", ""
            else:
                ok = ratio >= target and (scenario != "warm" or p99 <= WARM_P99_MS)
                target_text = f"≥ {target:.2f}" + (
                    f", p99 ≤ {WARM_P99_MS:g} ms" if scenario == "warm" else ""
                )
                met = "yes" if ok else "**no**"
                verdicts[scenario] = ok
        socket_errors = sum(r.result.failed for r in runs)
        hits_text = "" if scenario == "ceiling" else f"{hits:,} / {misses:,}"
        lines.append(
            f"| {titles[scenario]} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio_text} | {target_text} "
            f"| {met} | {cpu_ms:.2f} | {cpu_text} "
            f"| {hits_text}{f' ({socket_errors} socket errors)' if socket_errors else ''} |"
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


def _git_commit() -> str:
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


def run(args) -> str:
    from testsupport.tokens import TokenIssuer

    started = time.monotonic()
    quick = getattr(args, "quick", False)
    duration, rounds_wanted = (2.0, 1) if quick else (6.0, 3)
    wrk.ensure_wrk()
    issuer = TokenIssuer()
    database_url, redis_url = server.bench_database_url(), server.bench_redis_url()
    env = server.production_env(
        database_url=database_url,
        redis_url=redis_url,
        public_key_pem=issuer.public_pem,
        BENCH_ENDPOINTS="true",
        DJANGO_SETTINGS_MODULE="jia_payments.settings",
        # Production recycles a worker after ~2,000 requests; each new worker's start (a second
        # or more of CPU) would land on whichever run is going: noise, not a property of it.
        GUNICORN_MAX_REQUESTS="0",
    )
    load_before = server.load_average()
    log(f"entitlements bench: load average {load_before}")
    server.ensure_database(database_url, env)

    seed_started = time.monotonic()
    seeded = subprocess.run(
        [
            server.PYTHON,
            "-c",
            "import django, json; django.setup(); from bench.entitlements import seed; "
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
    seed_info = json.loads(seed_line.removeprefix("SEED "))
    seed_seconds = time.monotonic() - seed_started
    log(f"seeded {seed_info['entitlements']:,} entitlements for {USERS:,} users in {seed_seconds:.1f} s")

    rng = random.Random(7)
    everyone = [user_id(n) for n in range(USERS)]
    tokens = {uid: issuer.token(uid, ttl=4 * 3600) for uid in everyone}
    issuer.issued.clear()
    warm_users = rng.sample(everyone, WARM_USERS)
    warm_set = frozenset(warm_users)
    cold_users = rng.sample(sorted(set(everyone) - warm_set), USERS - WARM_USERS)
    batch_body = json.dumps({"feature_codes": BATCH}, separators=(",", ":"))

    def check(uid):
        return ("GET", f"{API}/entitlements/check/?feature_code={rng.choice(CATALOG)}", tokens[uid], "")

    workdir = Path(tempfile.mkdtemp(prefix="bench-entitlements-"))
    files = {
        "ceiling": [("GET", f"{API}/_bench/constant/", tokens[u], "") for u in warm_users],
        "warm": [check(u) for u in warm_users],
        "batch": [("POST", f"{API}/entitlements/check/", tokens[u], batch_body) for u in warm_users],
        "cold": [check(u) for u in cold_users],
        "list": [("GET", f"{API}/entitlements/", tokens[u], "") for u in warm_users],
    }
    paths = {name: wrk.write_requests(workdir / f"{name}.tsv", lines) for name, lines in files.items()}
    warmup = wrk.write_requests(workdir / "warmup.tsv", [check(u) for u in warm_users])

    rounds: list[Round] = []
    workers_used = 0
    try:
        with server.ProcessGroup() as group:
            gunicorn = server.Gunicorn(group, env, workers=WORKERS)
            try:
                gunicorn.start()
                workers_used = gunicorn.workers
                log(f"gunicorn ready on {gunicorn.base_url} (workers {gunicorn.worker_pids()})")
                bench = Bench(group, gunicorn, redis_url, database_url)
                bench.drop_cached_entries()
                _check_samples(gunicorn.base_url, paths)
                # Each worker imports lazily on its first requests: a short untimed run first.
                wrk.run(group, gunicorn.base_url, paths["ceiling"], duration=1, headers=server.PROXY_HEADERS)
                # Fill the warm users' entries: each of them once. Cold runs drop only the others'.
                bench.measure("warm-up", warmup, duration=60, mode="once", lookups=WARM_USERS)
                for number in range(rounds_wanted):
                    log(f"round {number + 1}/{rounds_wanted}")
                    rnd = Round()
                    rnd.runs.append(bench.measure("ceiling", paths["ceiling"], duration=duration))
                    for scenario in ("warm", "batch", "list", "cold"):
                        if scenario == "cold":
                            dropped = bench.drop_cached_entries(keep=warm_set)
                            log(f"  dropped {dropped} cache entries")
                        if scenario == "cold":  # each user once; stop before the set runs out
                            run = bench.measure(
                                "cold",
                                paths["cold"],
                                duration=duration,
                                mode="once",
                                lookups=USERS * 95 // 100,
                            )
                        else:
                            run = bench.measure(scenario, paths[scenario], duration=duration)
                        rnd.runs.append(run)
                        rnd.runs.append(bench.measure("ceiling", paths["ceiling"], duration=duration))
                    rounds.append(rnd)
                if gunicorn.process.poll() is not None:
                    raise RuntimeError(f"gunicorn died:\n{gunicorn.tail()}")
            except BaseException:
                if gunicorn.process is not None:
                    print(f"gunicorn's last lines:\n{gunicorn.tail()}", file=sys.stderr)
                raise
            finally:
                gunicorn.cleanup()
    finally:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()

    command = (
        "python -m bench entitlements" + (" --quick" if quick else "") + (" --write" if args.write else "")
    )
    if os.environ.get("MAKELEVEL"):
        command = "make bench" + (
            f" BENCH_ARGS='{os.environ.get('BENCH_ARGS')}'" if os.environ.get("BENCH_ARGS") else ""
        )
    meta = {
        "command": command,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": server.load_average(),
        "database": urlsplit(database_url).path.lstrip("/"),
        "redis_db": urlsplit(redis_url).path.lstrip("/"),
        "duration": duration,
        "workers": workers_used,
        "seed": seed_info,
        "seed_seconds": seed_seconds,
    }
    log(f"entitlements bench done in {time.monotonic() - started:.0f} s")
    return _report(rounds, meta)
