"""What tracing costs (`python -m bench tracing`): the warm entitlement check and a payment create,
under gunicorn (production settings) driven by wrk, with tracing off and on, in one run.

On: every request sampled (OTEL_TRACES_SAMPLER_ARG=1.0) and exported over OTLP/HTTP, in batches
as in production, to a receiver on loopback that answers and drops what it gets (a collector's
cost is not ours). Off: no OTEL_* variable, as `make run` and today's deployments. The two
servers run one after the other, rounds alternating off/on so that the machine's load drifts
over both; each ratio is on / off of the median requests per second of its rounds.
"""

import json
import os
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


def _measure(env: dict, paths: dict, duration: float) -> dict[str, tuple[wrk.Result, float]]:
    """One server (gunicorn as production starts it, in a process group of its own with its wrk
    runs), warmed, then each scenario once: (wrk's result, the workers' CPU ms per request)."""
    with server.ProcessGroup() as group:
        gunicorn = server.Gunicorn(group, env)
        try:
            gunicorn.start()
            for path in paths.values():  # workers import lazily; the check's cache entries fill
                _wrk(group, gunicorn, path, 2)
            results = {}
            for name, path in paths.items():
                cpu_before = gunicorn.cpu_seconds()
                result = _wrk(group, gunicorn, path, duration)
                cpu_ms = (gunicorn.cpu_seconds() - cpu_before) * 1000 / max(1, result.requests)
                if result.failed:
                    raise RuntimeError(f"{name}: {result.errors}\n{gunicorn.tail()}")
                results[name] = (result, cpu_ms)
                log(f"    {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, {cpu_ms:.2f} ms CPU")
            return results
        finally:
            gunicorn.cleanup()


def _wrk(group, gunicorn, path: Path, duration: float) -> wrk.Result:
    return wrk.run(
        group,
        gunicorn.base_url,
        path,
        duration=duration,
        connections=CONNECTIONS,
        headers=server.PROXY_HEADERS,
    )


def run(args) -> str:
    from testsupport.tokens import TokenIssuer

    started = time.monotonic()
    quick = getattr(args, "quick", False)
    duration, rounds = (3.0, 1) if quick else (8.0, 3)
    wrk.ensure_wrk()
    issuer = TokenIssuer()
    database_url, redis_url = server.bench_database_url(), server.bench_redis_url()
    off_env = server.production_env(
        database_url=database_url,
        redis_url=redis_url,
        public_key_pem=issuer.public_pem,
        DJANGO_SETTINGS_MODULE="jia_payments.settings",
        GUNICORN_MAX_REQUESTS="0",
        THROTTLE_SERVICE="100000000/min",
        THROTTLE_USER="100000000/min",
        EVENTS_PROVIDER="outbox",  # the relay is not what is measured here
    )
    off_env = {k: v for k, v in off_env.items() if not k.startswith("OTEL_")}
    load_before = server.load_average()
    log(f"tracing bench: load average {load_before}")
    server.ensure_database(database_url, off_env)
    seeded = subprocess.run(
        [server.PYTHON, "-c", "import django, json; django.setup(); from bench.tracing import seed; "
         "print('SEED ' + json.dumps(seed()))"],
        cwd=server.ROOT, env=off_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if seeded.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{seeded.stderr[-3000:]}")

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
    measured: dict[str, dict[str, list[float]]] = {"off": {}, "on": {}}
    p99: dict[str, dict[str, list[float]]] = {"off": {}, "on": {}}
    cpu: dict[str, dict[str, list[float]]] = {"off": {}, "on": {}}
    try:
        for number in range(rounds):
            order = [("off", off_env), ("on", on_env)]
            for mode, env in order if number % 2 == 0 else order[::-1]:
                log(f"round {number + 1}/{rounds}: tracing {mode}")
                for name, (result, cpu_ms) in _measure(env, paths, duration).items():
                    measured[mode].setdefault(name, []).append(result.rps)
                    p99[mode].setdefault(name, []).append(result.p99_ms)
                    cpu[mode].setdefault(name, []).append(cpu_ms)
    finally:
        receiver.close()
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    if not receiver.exports:
        raise RuntimeError("tracing on exported nothing: the 'on' server did not trace")
    log(
        f"tracing bench done in {time.monotonic() - started:.0f} s ({receiver.exports} OTLP exports received)"
    )
    load_after = server.load_average()
    return _report(measured, p99, cpu, rounds, duration, load_before, load_after, receiver.exports, quick)


def _report(measured, p99, cpu, rounds, duration, load_before, load_after, exports, quick) -> str:
    lines = [
        "## Tracing: off vs on",
        "",
        f"`python -m bench tracing{' --quick' if quick else ''}`, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, "
        f"{os.cpu_count()} cores, load {load_before} before, {load_after} after. gunicorn as production "
        f"starts it (gunicorn.conf.py defaults), wrk {CONNECTIONS} connections, {duration:g} s a run, "
        f"{rounds} rounds alternating off/on (a fresh server each); on = every request sampled and "
        f"exported over OTLP/HTTP to a local receiver that drops it ({exports} exports received).",
        "",
        "CPU ms/request is the gunicorn workers' CPU (export threads included) over the requests "
        "served: what tracing costs, and less disturbed than req/s by what else the machine runs.",
        "",
        "| scenario | off req/s | on req/s | req/s on / off | off CPU ms/req | on CPU ms/req | CPU on / off "
        "| off p99 ms | on p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    median = statistics.median
    for name in measured["off"]:
        off, on = median(measured["off"][name]), median(measured["on"][name])
        cpu_off, cpu_on = median(cpu["off"][name]), median(cpu["on"][name])
        lines.append(
            f"| {name} | {off:,.0f} | {on:,.0f} | {on / off:.2f} | {cpu_off:.2f} | {cpu_on:.2f} | "
            f"{cpu_on / cpu_off:.2f} | {median(p99['off'][name]):.1f} | {median(p99['on'][name]):.1f} |"
        )
    lines += [
        "",
        "Rounds (req/s): "
        + "; ".join(
            f"{name} off {', '.join(f'{v:,.0f}' for v in measured['off'][name])} / "
            f"on {', '.join(f'{v:,.0f}' for v in measured['on'][name])} "
            f"(CPU ms/req off {', '.join(f'{v:.2f}' for v in cpu['off'][name])} / "
            f"on {', '.join(f'{v:.2f}' for v in cpu['on'][name])})"
            for name in measured["off"]
        ),
    ]
    return "\n".join(lines)
