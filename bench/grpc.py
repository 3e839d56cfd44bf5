"""The gRPC bench: the warm entitlement check through gRPC (`manage.py grpcserver`) beside the same
check through REST (gunicorn as in production), in one run: the same seeded database and users,
the same cache entries (warmed once through REST), the same machine, rounds interleaved.

REST is driven by wrk (16 connections), gRPC by `bench.grpc_load` (grpc.aio, 16 calls in flight).
CPU ms/request counts the server's processes (gunicorn's workers, or the gRPC server) and their
PostgreSQL backends: the fairer figure, since the two servers differ in processes (gunicorn forks
2 x CPUs + 1 workers; the gRPC server is one process with a thread pool, so one core at most).

`python -m bench grpc [--quick] [--write]`.
"""

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import api, server, wrk
from bench.server import log

CONCURRENCY = 16
GRPC_WORKERS = 16


@dataclass(frozen=True)
class Run:
    transport: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    failed: int
    load: float


class GrpcServer(server.Server):
    """`manage.py grpcserver`: one process (a thread pool), ready once its port accepts."""

    name = "grpc"

    def __init__(self, group: server.ProcessGroup, env: dict[str, str]):
        super().__init__(group, env)
        for key in ("PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN"):  # one process: metrics in memory
            self.env.pop(key)
        self.address = f"127.0.0.1:{self.port}"
        self.env.update(GRPC_ADDRESS=self.address, GRPC_MAX_WORKERS=str(GRPC_WORKERS))

    def command(self) -> list[str]:
        return [server.PYTHON, "manage.py", "grpcserver"]

    def ready(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def cpu_seconds(self) -> float:
        return server.cpu_seconds([self.process.pid])


def _grpc_load(group, address: str, path: Path, duration: float) -> dict:
    process = group.popen(
        [server.PYTHON, "-m", "bench.grpc_load", address, str(path), str(duration), str(CONCURRENCY)],
        cwd=server.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=duration + 120)
    line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"grpc_load failed ({process.returncode}): {err[-2000:]}")
    return json.loads(line.removeprefix("BENCH_RESULT "))


def _sample_answers_agree(base_url: str, address: str, token: str, feature: str) -> None:
    """One check both ways: the same answer (not just an OK)."""
    import grpc
    from google.protobuf import json_format

    from jia_payments.protos.entitlement.v1 import entitlement_pb2 as pb
    from jia_payments.protos.entitlement.v1.entitlement_pb2_grpc import EntitlementServiceStub

    status, raw = server.request(
        f"{base_url}{api.API}/entitlements/check/?feature_code={feature}",
        headers={"better-auth-token": token},
    )
    rest = json.loads(raw)
    with grpc.insecure_channel(address) as channel:
        answer = EntitlementServiceStub(channel).CheckEntitlement(
            pb.CheckEntitlementRequest(feature_code=feature),
            metadata=(("better-auth-token", token),),
            timeout=10,
        )
    got = json_format.MessageToDict(answer, preserving_proto_field_name=True)
    if status != 200 or (rest["has_access"], rest["reason"]) != (answer.has_access, answer.reason):
        raise RuntimeError(f"REST {status} {rest} and gRPC {got} disagree")


def _median(values) -> float:
    return statistics.median(values) if values else float("nan")


def run(args) -> str:
    started = time.monotonic()
    quick = getattr(args, "quick", False)
    duration, rounds_wanted = (2.0, 1) if quick else (4.0, 3)
    setup = server.suite_setup("grpc bench")
    issuer, database_url, redis_url, env = setup.issuer, setup.database_url, setup.redis_url, setup.env
    seed_info, _ = api.seed_in_subprocess(env)

    rng = random.Random(7)
    everyone = [api.user_id(n) for n in range(api.USERS)]
    warm_users = rng.sample(everyone, api.WARM_USERS)  # the entitlements bench's warm users
    checks = [(issuer.token(uid, ttl=4 * 3600), uid, rng.choice(api.CATALOG)) for uid in warm_users]
    issuer.issued.clear()
    workdir = Path(tempfile.mkdtemp(prefix="bench-grpc-"))
    rest_path = wrk.write_requests(
        workdir / "rest.tsv",
        [
            ("GET", f"{api.API}/entitlements/check/?feature_code={code}", token, "")
            for token, _, code in checks
        ],
    )
    grpc_path = workdir / "grpc.tsv"
    grpc_path.write_text("".join("\t".join(line) + "\n" for line in checks))

    runs: list[Run] = []
    workers_used = 0
    try:
        with server.ProcessGroup() as group:
            gunicorn = server.Gunicorn(group, env)
            grpc_server = GrpcServer(group, env)
            try:
                gunicorn.start()
                grpc_server.start()
                workers_used = gunicorn.workers
                bench = api.Bench(group, {"app": gunicorn}, redis_url, database_url)
                bench.drop_cached_entries()
                # Every warm user's entry cached once (the cache both transports read).
                api.fill_cache(env, warm_users)
                token, _, code = checks[0]
                _sample_answers_agree(gunicorn.base_url, grpc_server.address, token, code)
                # Untimed: each gunicorn worker and the gRPC thread pool import lazily on first calls.
                wrk.run(group, gunicorn.base_url, rest_path, duration=1, headers=server.PROXY_HEADERS)
                _grpc_load(group, grpc_server.address, grpc_path, 1.0)
                for number in range(rounds_wanted):
                    log(f"round {number + 1}/{rounds_wanted}")
                    for transport in server.rotated(("rest", "grpc"), number):
                        backends = server.postgres_backend_pids(database_url)
                        load = os.getloadavg()[0]
                        if transport == "rest":
                            cpu_before = gunicorn.cpu_seconds() + server.cpu_seconds(backends)
                            result = wrk.run(
                                group,
                                gunicorn.base_url,
                                rest_path,
                                duration=duration,
                                connections=CONCURRENCY,
                                headers=server.PROXY_HEADERS,
                            )
                            cpu = gunicorn.cpu_seconds() + server.cpu_seconds(backends) - cpu_before
                            requests, rps, p50, p99, failed = (
                                result.requests,
                                result.rps,
                                result.p50_ms,
                                result.p99_ms,
                                result.failed,
                            )
                        else:
                            cpu_before = grpc_server.cpu_seconds() + server.cpu_seconds(backends)
                            result = _grpc_load(group, grpc_server.address, grpc_path, duration)
                            cpu = grpc_server.cpu_seconds() + server.cpu_seconds(backends) - cpu_before
                            requests = result["requests"]
                            rps, p50, p99 = requests / result["seconds"], result["p50_ms"], result["p99_ms"]
                            failed = sum(result["errors"].values())
                        run_ = Run(transport, rps, p50, p99, cpu * 1000 / max(requests, 1), failed, load)
                        log(
                            f"  {transport}: {rps:,.0f} req/s, p99 {p99:.1f} ms, {run_.cpu_ms:.2f} CPU ms/req"
                        )
                        runs.append(run_)
            finally:
                gunicorn.cleanup()
                grpc_server.cleanup()
    finally:
        shutil.rmtree(workdir)

    log(f"grpc bench done in {time.monotonic() - started:.0f} s")
    return _report(
        runs,
        {
            "command": "python -m bench grpc" + (" --quick" if quick else ""),
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": api.git_commit(),
            "cores": os.cpu_count(),
            "load_before": setup.load_before,
            "load_after": server.load_average(),
            "duration": duration,
            "workers": workers_used,
            "seed": seed_info,
        },
    )


def _report(runs: list[Run], meta: dict) -> str:
    def of(transport: str) -> list[Run]:
        return [r for r in runs if r.transport == transport]

    rest, grpc_runs = of("rest"), of("grpc")  # in round order, one of each per round
    pairs = list(zip(rest, grpc_runs, strict=True))
    rps_ratio = _median([g.rps / r.rps for r, g in pairs])
    cpu_ratio = _median([g.cpu_ms / r.cpu_ms for r, g in pairs])
    lines = [
        "## gRPC: the warm entitlement check through gRPC beside REST",
        "",
        f"Command: `{meta['command']}` · {meta['when']} · commit `{meta['commit']}`",
        "",
        f"Machine: {meta['cores']} cores; load average before {meta['load_before']}, "
        f"after {meta['load_after']}.",
        "",
        f"Setup: the entitlements bench's data ({meta['seed']['users']:,} users, "
        f"{meta['seed']['entitlements']:,} rows) and its {api.WARM_USERS:,} warm users, each "
        "with one feature, cached once through REST; both transports then answer from that cache. "
        f"REST: `gunicorn -c gunicorn.conf.py` ({meta['workers']} sync workers), wrk {CONCURRENCY} "
        f"connections. gRPC: `manage.py grpcserver` (one process, {GRPC_WORKERS} threads), "
        f"`bench.grpc_load` with {CONCURRENCY} calls in flight. {meta['duration']:g} s per run, "
        f"{len(pairs)} round(s) of REST and gRPC (alternating which runs first); medians over the "
        "rounds. CPU ms/request: the server's processes and their PostgreSQL backends (not the load "
        "generators').",
        "",
        "| transport | req/s | p50 ms | p99 ms | CPU ms/request | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, group in (
        ("REST `GET /api/v1/entitlements/check/`", rest),
        ("gRPC `CheckEntitlement`", grpc_runs),
    ):
        lines.append(
            f"| {name} | {_median([r.rps for r in group]):,.0f} | {_median([r.p50_ms for r in group]):.2f} "
            f"| {_median([r.p99_ms for r in group]):.2f} | {_median([r.cpu_ms for r in group]):.2f} "
            f"| {sum(r.failed for r in group)} |"
        )
    lines += [
        "",
        f"gRPC / REST: req/s {rps_ratio:.2f}, CPU per request {cpu_ratio:.2f}.",
        "",
        "Each round (req/s, p99 ms, CPU ms/request, load average): "
        + "; ".join(
            f"{r.transport} {r.rps:,.0f} ({r.p99_ms:.1f}, {r.cpu_ms:.2f}, {r.load:.2f})" for r in runs
        ),
    ]
    return "\n".join(lines)
