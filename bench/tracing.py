"""What tracing costs (`python -m bench tracing`): the warm entitlement check and a payment create,
under gunicorn (production settings) driven by wrk, with tracing on, off, and not there at all.

Three servers, started once and all up for the whole run, on the same database, Redis and cache:
- `off`: the product with no OTEL_* variable, as `make run` and today's deployments;
- `untraced`: the product as it was before tracing (`bench/untraced.py`: the project compiled
  without its tracing hooks, OpenTelemetry not importable): what "no cost when off" is held to;
- `on`: every request sampled (OTEL_TRACES_SAMPLER_ARG=1.0) and exported over OTLP/HTTP, in
  batches as in production, to a receiver on loopback that answers and drops what it gets.

Each round runs the warm check as `off, A, off, B, off, C, off` (A, B, C: untraced, off itself,
and on, in an order that rotates with the rounds): each middle run's ratio is to the mean of the
two `off` runs around it, so the machine's drift cancels, and `off` in the middle (an A/A round of
the same server) measures the noise the same way the other two are measured. The payment create
runs `off, on, off`. Reported: medians over the rounds and each round's ratio.
"""

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import server, wrk
from bench.server import log

USERS = 200
FEATURE = "ai_assistant"
CONNECTIONS = 8
API = "/api/v1"
MIDDLES = ("untraced", "off", "on")  # the warm check's runs between two `off` runs
UNTRACED_APP = "bench.untraced:application"
WARM_UP_SECONDS = (5, 2)  # per server, untimed: the warm check, the create (a worker's first
# requests import and connect lazily: a few seconds of them run at a third of the speed after)
# Its PYTHONPATH: a sitecustomize that installs bench/untraced.py's import hook at start-up (not
# imported here: the hook would go into this process).
UNTRACED_SITE = Path(__file__).with_name("untraced_site")


def seed(users: int = USERS) -> dict:
    """In a subprocess with the server's settings: the catalog, and the premium plan for the
    bench users (so that a check answers `active`)."""
    from django.core.management import call_command

    from entitlements.models import Entitlement
    from pricing.models import Plan

    call_command("loaddata", "catalog", verbosity=0)
    plan = Plan.objects.get(pk="premium_monthly")
    Entitlement.objects.filter(user_id__startswith="bench-trace-").delete()
    rows = [
        Entitlement(
            user_id=f"bench-trace-{n:04d}", feature_id=feature.code, plan=plan, subscription_id=f"sub_{n}"
        )
        for n in range(users)
        for feature in plan.features.all()
    ]
    Entitlement.objects.bulk_create(rows)
    return {"entitlements": len(rows)}


class DiscardingReceiver:
    """An OTLP/HTTP endpoint that reads each export and answers 200, keeping nothing."""

    def __init__(self) -> None:
        self.exports = 0

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.exports += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def untraced_hooks(env: dict) -> dict[str, int]:
    """What bench/untraced.py takes out of the app (module -> hooks removed), read in a process
    configured like its server; fails when it takes nothing out of the hot path's modules."""
    found = subprocess.run(
        [server.PYTHON, "-W", "ignore", "-c",
         "import json, sys, bench.untraced as u; u.application; from django.urls import resolve; "
         "resolve('/api/v1/entitlements/check/'); import payments.services; "
         "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'OpenTelemetry imported'; "
         "print('HOOKS ' + json.dumps(u.rewritten))"],
        cwd=server.ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    line = next((x for x in found.stdout.splitlines() if x.startswith("HOOKS ")), None)
    if found.returncode != 0 or line is None:
        raise RuntimeError(f"bench.untraced did not load:\n{found.stderr[-3000:]}")
    hooks = json.loads(line.removeprefix("HOOKS "))
    for module in ("entitlements.selectors", "jia_payments.core.ops.logs", "payments.services"):
        if not hooks.get(module):
            raise RuntimeError(f"bench.untraced removed no tracing hook from {module}: {hooks}")
    return hooks


# In a fresh process: `import redis` (CPU ms), then redis-py's per-command observability hook
# (CPU µs a call; it runs after every command whether or not anything observes), with
# OpenTelemetry importable or not (argv[1] == "blocked"): redis-py imports the SDK's metrics
# module at start-up when it can.
_REDIS_PROBE = """
import sys, time
if sys.argv[1] == "blocked":
    import importlib.abc
    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(name, name=name)
    sys.meta_path.insert(0, Blocked())
started = time.process_time()
import redis
from redis.observability import recorder
imported = time.process_time() - started
calls = 200_000
started = time.process_time()
for _ in range(calls):
    recorder.record_operation_duration(
        command_name="GET", duration_seconds=0.001, server_address="127.0.0.1", server_port=6379,
        db_namespace="0", error=None)
per_call = (time.process_time() - started) / calls
sdk = sum(1 for m in sys.modules if m.startswith("opentelemetry"))
rss = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS:"))
print(f"PROBE {imported * 1000:.2f} {per_call * 1e6:.3f} {sdk} {rss}")
"""


def redis_otel_cost(rounds: int = 5) -> dict[str, dict[str, float]]:
    """What redis-py's optional OpenTelemetry import costs with tracing off: medians over `rounds`
    fresh processes each way, alternating."""
    found: dict[str, list[tuple[float, ...]]] = {"importable": [], "blocked": []}
    for _ in range(rounds):
        for mode in found:
            out = subprocess.run(
                [server.PYTHON, "-c", _REDIS_PROBE, mode], capture_output=True, text=True, check=True
            ).stdout
            line = next(x for x in out.splitlines() if x.startswith("PROBE "))
            found[mode].append(tuple(float(v) for v in line.split()[1:]))
    return {
        mode: {
            key: statistics.median(v[i] for v in values)
            for i, key in enumerate(("import_ms", "call_us", "modules", "rss_kib"))
        }
        for mode, values in found.items()
    }


class _Runner:
    def __init__(self, group, servers: dict, paths: dict, duration: float) -> None:
        self.group, self.servers, self.paths, self.duration = group, servers, paths, duration

    def run(self, target: str, scenario: str, duration: float | None = None) -> dict:
        gunicorn = self.servers[target]
        cpu_before = gunicorn.cpu_seconds()
        result = wrk.run(
            self.group,
            gunicorn.base_url,
            self.paths[scenario],
            duration=duration or self.duration,
            connections=CONNECTIONS,
            headers=server.PROXY_HEADERS,
        )
        cpu_ms = (gunicorn.cpu_seconds() - cpu_before) * 1000 / max(1, result.requests)
        if result.failed:
            raise RuntimeError(f"{target} {scenario}: {result.errors}\n{gunicorn.tail()}")
        log(
            f"    {scenario} {target:8s} {result.rps:7,.0f} req/s  p99 {result.p99_ms:6.1f} ms"
            f"  {cpu_ms:5.2f} ms CPU  load {os.getloadavg()[0]:.2f}"
        )
        return {"target": target, "rps": result.rps, "p99": result.p99_ms, "cpu": cpu_ms}


def _same_answers(servers: dict, path: Path) -> None:
    """One warm check by hand on each server: the same answer from all three."""
    _, url_path, token, _ = path.read_text().splitlines()[0].split("\t")
    answers = {}
    for name, gunicorn in servers.items():
        status, body = server.request(gunicorn.base_url + url_path, headers={"better-auth-token": token})
        answers[name] = (status, json.loads(body))
    if len({json.dumps(a, sort_keys=True) for a in answers.values()}) != 1 or answers["off"][0] != 200:
        raise RuntimeError(f"the servers answer the same check differently: {answers}")


def _ratios(runs: list[dict]) -> dict[str, dict]:
    """For a sequence `off, X, off, Y, off, ...`: each middle run over the mean of the `off` runs
    around it (req/s), and the mean of their CPU per request over its (CPU)."""
    found = {}
    for i in range(1, len(runs) - 1, 2):
        before, middle, after = runs[i - 1], runs[i], runs[i + 1]
        found[middle["target"]] = {
            "rps": middle["rps"] / statistics.mean([before["rps"], after["rps"]]),
            "cpu": middle["cpu"] / statistics.mean([before["cpu"], after["cpu"]]),
            "run": middle,
        }
    return found


def run(args) -> str:
    started = time.monotonic()
    quick = getattr(args, "quick", False)
    duration, rounds = (2.0, 1) if quick else (2.0, 4)
    setup = server.suite_setup(
        "tracing bench",
        THROTTLE_SERVICE="100000000/min",
        THROTTLE_USER="100000000/min",
        EVENTS_PROVIDER="outbox",  # the relay is not what is measured here
    )
    issuer, load_before = setup.issuer, setup.load_before
    off_env = {k: v for k, v in setup.env.items() if not k.startswith("OTEL_")}
    seeded = subprocess.run(
        [server.PYTHON, "-c", "import django, json; django.setup(); from bench.tracing import seed; "
         "print('SEED ' + json.dumps(seed()))"],
        cwd=server.ROOT, env=off_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if seeded.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{seeded.stderr[-3000:]}")
    untraced_env = {**off_env, "PYTHONPATH": str(UNTRACED_SITE)}
    hooks = untraced_hooks(untraced_env)
    redis_cost = redis_otel_cost(2 if quick else 5)

    users = [f"bench-trace-{n:04d}" for n in range(USERS)]
    service = issuer.token("svc_bench", role="service", ttl=4 * 3600)
    tokens = {u: issuer.token(u, ttl=4 * 3600) for u in users}
    issuer.issued.clear()
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    payment = {"amount": 1999, "currency": "USD", "payment_method": "bank_transfer", "order_id": "o"}
    paths = {
        "warm check": wrk.write_requests(
            workdir / "check.tsv",
            [("GET", f"{API}/entitlements/check/?feature_code={FEATURE}", tokens[u], "") for u in users],
        ),
        "payment create": wrk.write_requests(
            workdir / "create.tsv",
            [
                (
                    "POST",
                    f"{API}/payments/",
                    service,
                    json.dumps({**payment, "customer_id": u}, separators=(",", ":")),
                )
                for u in users
            ],
        ),
    }
    receiver = DiscardingReceiver()
    on_env = {
        **off_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_SERVICE_NAME": "jia-payments-bench",
    }
    checks: list[dict] = []  # per round: {target: ratios}
    creates: list[dict] = []
    workers = 0
    try:
        with server.ProcessGroup() as group:
            servers = {
                "off": server.Gunicorn(group, off_env),
                "untraced": server.Gunicorn(group, untraced_env, app=UNTRACED_APP),
                "on": server.Gunicorn(group, on_env),
            }
            try:
                for gunicorn in servers.values():
                    gunicorn.start()
                workers = servers["off"].workers
                _same_answers(servers, paths["warm check"])
                runner = _Runner(group, servers, paths, duration)
                for target in servers:  # workers import lazily; the check's cache entries fill
                    for scenario, seconds in zip(paths, WARM_UP_SECONDS, strict=True):
                        runner.run(target, scenario, duration=seconds)
                for number in range(rounds):
                    middles = server.rotated(MIDDLES, number)
                    log(f"round {number + 1}/{rounds}: warm check off, {', off, '.join(middles)}, off")
                    sequence = ["off"]
                    for middle in middles:
                        sequence += [middle, "off"]
                    checks.append(_ratios([runner.run(t, "warm check") for t in sequence]))
                    creates.append(_ratios([runner.run(t, "payment create") for t in ("off", "on", "off")]))
                for name, gunicorn in servers.items():
                    if gunicorn.process.poll() is not None:
                        raise RuntimeError(f"gunicorn ({name}) died:\n{gunicorn.tail()}")
            finally:
                for gunicorn in servers.values():
                    gunicorn.cleanup()
    finally:
        receiver.close()
        shutil.rmtree(workdir)
    if not receiver.exports:
        raise RuntimeError("tracing on exported nothing: the 'on' server did not trace")
    seconds = time.monotonic() - started
    log(f"tracing bench done in {seconds:.0f} s ({receiver.exports} OTLP exports received)")
    meta = {
        "quick": quick,
        "rounds": rounds,
        "duration": duration,
        "workers": workers,
        "load_before": load_before,
        "load_after": server.load_average(),
        "exports": receiver.exports,
        "hooks": hooks,
        "seconds": seconds,
        "redis": redis_cost,
        "rounds_redis": 2 if quick else 5,
    }
    return _report(checks, creates, meta)


def _band(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else ""


def _report(checks: list[dict], creates: list[dict], meta: dict) -> str:
    median = statistics.median

    def of(rounds: list[dict], target: str, key: str) -> list[float]:
        return [rnd[target][key] for rnd in rounds if target in rnd]

    def absolute(rounds: list[dict], target: str, key: str) -> float:
        return median([rnd[target]["run"][key] for rnd in rounds if target in rnd])

    noise_rps = max(abs(1 - r) for r in of(checks, "off", "rps"))
    noise_cpu = max(abs(1 - r) for r in of(checks, "off", "cpu"))
    # off / untraced: the inverse of untraced's ratio to the `off` runs around it.
    off_vs_none_rps = [1 / r for r in of(checks, "untraced", "rps")]
    off_vs_none_cpu = [1 / r for r in of(checks, "untraced", "cpu")]
    x_rps, x_cpu = median(off_vs_none_rps), median(off_vs_none_cpu)
    within = abs(1 - x_cpu) <= noise_cpu
    hooks = meta["hooks"]
    lines = [
        "## Tracing: off, on, and not there at all",
        "",
        f"`python -m bench tracing{' --quick' if meta['quick'] else ''}` (part of `make bench`), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}, {os.cpu_count()} cores, load {meta['load_before']} "
        f"before, {meta['load_after']} after (suite {meta['seconds']:.0f} s). Three servers up for the "
        f"whole run, each `gunicorn -c gunicorn.conf.py` ({meta['workers']} sync workers, recycling "
        "off), same database, Redis and cache entries: **off** (no OTEL_* variable: production's "
        "default), **untraced** (`bench/untraced.py`: the app as before tracing, compiled without "
        f"its {sum(hooks.values())} tracing hooks in {len(hooks)} modules "
        f"({', '.join(f'{m} {n}' for m, n in sorted(hooks.items()))}), OpenTelemetry not "
        "importable), **on** (every request sampled, exported over OTLP/HTTP in batches to a local "
        f"receiver that drops it: {meta['exports']} exports received). wrk {CONNECTIONS} "
        f"connections, {meta['duration']:g} s a run, {meta['rounds']} round(s) after an untimed warm-up "
        f"of each server ({WARM_UP_SECONDS[0]} s of checks, {WARM_UP_SECONDS[1]} s of creates); "
        "each round runs the warm check `off, A, off, B, off, C, off` with A, B, C = untraced, off, "
        "on (rotating), and the "
        "create `off, on, off`; a middle run's ratio is to the mean of the two `off` runs around it. "
        "`off` in the middle is the A/A round: the same server, measured the same way, so its spread "
        "is the noise band. CPU ms/request: the workers' CPU (export threads included) per request.",
        "",
        f"**Tracing off / no tracing (warm check), CPU per request: {x_cpu:.2f}, noise band "
        f"±{noise_cpu:.2f}**: "
        + ("within noise" if within else "**outside the noise band**")
        + f"; req/s: {x_rps:.2f}, noise band ±{noise_rps:.2f}. (X = median over the rounds of off / "
        "untraced; ±Y = the largest distance from 1 of the A/A rounds' off / off, measured the same "
        "way. CPU per request is the verdict's figure: req/s of 2 s runs swing with the machine's "
        "load far more than what is compared here.)",
        "",
        "| scenario | server | req/s | p99 ms | CPU ms/req | req/s ÷ off around | CPU ÷ off around "
        "| per round (req/s ratio) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for scenario, rounds, targets in (
        ("warm check", checks, MIDDLES),
        ("payment create", creates, ("on",)),
    ):
        for target in targets:
            rps = of(rounds, target, "rps")
            lines.append(
                f"| {scenario} | {target}{' (A/A)' if target == 'off' else ''} "
                f"| {absolute(rounds, target, 'rps'):,.0f} | {absolute(rounds, target, 'p99'):.1f} "
                f"| {absolute(rounds, target, 'cpu'):.2f} | {median(rps):.2f} "
                f"| {median(of(rounds, target, 'cpu')):.2f} | {', '.join(f'{r:.2f}' for r in rps)} |"
            )
    lines += [
        "",
        f"Tracing on / off: warm check req/s {median(of(checks, 'on', 'rps')):.2f} (rounds "
        f"{_band(of(checks, 'on', 'rps'))}), CPU {median(of(checks, 'on', 'cpu')):.2f}; payment create "
        f"req/s {median(of(creates, 'on', 'rps')):.2f} (rounds {_band(of(creates, 'on', 'rps'))}), "
        f"CPU {median(of(creates, 'on', 'cpu')):.2f}.",
    ]
    with_sdk, without = meta["redis"]["importable"], meta["redis"]["blocked"]
    lines += [
        "",
        "redis-py 8 imports the OpenTelemetry SDK's metrics module at start-up when it is installed "
        "(`redis.observability.providers`; it stays unused unless an app initialises redis-py's "
        "observability, which this one does not). Measured in fresh processes (medians of "
        f"{meta['rounds_redis']} each way, CPU time): `import redis` {with_sdk['import_ms']:.0f} ms "
        f"with the SDK importable ({with_sdk['modules']:.0f} opentelemetry modules loaded, RSS "
        f"{with_sdk['rss_kib'] / 1024:.1f} MB) vs {without['import_ms']:.0f} ms without (0 modules, RSS "
        f"{without['rss_kib'] / 1024:.1f} MB); its per-command hook `record_operation_duration` "
        f"{with_sdk['call_us']:.2f} µs vs {without['call_us']:.2f} µs a call: the same code either "
        "way (it returns once it finds no observability configured). So the cost is once per process "
        "at start-up (under gunicorn, once in the master: workers are forks of it) and nothing per "
        "request; the untraced server above runs without it, so the A/B includes it.",
    ]
    return "\n".join(lines)
