"""Servers (`python -m bench servers`): the floor and the warm entitlement check under three WSGI
servers in one run, so that the choice of server is measured, not assumed.

- **sync**: `gunicorn -c gunicorn.conf.py` as production runs it (sync workers: one request at a
  time, the connection closed after each answer);
- **gthread**: the same, GUNICORN_THREADS=THREADS (gunicorn.conf.py then uses the gthread worker:
  keep-alive, THREADS requests at a time per worker);
- **granian**: granian's WSGI server (Rust HTTP/1.1, keep-alive), the same worker count, THREADS
  blocking threads per worker running the app.

Each server serves production's app and the floor (`bench/floor.py`), six servers up for the whole
run. The api suite's data, warm users and cache entries, its `Bench.measure` (wrk 2 threads, 16
connections; CPU of the workers and their PostgreSQL backends per request; cache lookups read on
/metrics around each run); rounds rotate which server goes first, and within a server the floor
and the warm check alternate which goes first: the ratio warm / floor is taken within the round.

Then, on each product server, what gunicorn.conf.py sets up is checked where a request can show
it (`_properties`): one JSON `request_finished` line per request, the workers' metrics summed on
/metrics, the answer to a request line over gunicorn's limit.

`python -m bench servers [--quick] [--write]`.
"""

import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import api, server, wrk
from bench.server import log

SERVERS = ("sync", "gthread", "granian")
THREADS = 2
SCENARIOS = ("floor", "warm")
TITLES = {
    "sync": "gunicorn sync (production's gunicorn.conf.py)",
    "gthread": f"gunicorn gthread ({THREADS} threads a worker)",
    "granian": f"granian WSGI ({THREADS} blocking threads a worker)",
}
PROBE_REQUESTS = 20  # requests sent by hand to count the log lines they make
LONG_LINE = 5_000  # bytes of request line: over gunicorn.conf.py's limit_request_line (4094)


def _make(kind: str, group: server.ProcessGroup, env: dict, workers: int, app: str | None) -> server.Server:
    if kind == "sync":
        return server.Gunicorn(group, env, workers=workers, app=app)
    if kind == "gthread":
        return server.Gunicorn(group, env, workers=workers, threads=THREADS, app=app)
    return server.Granian(group, env, workers=workers, threads=THREADS, app=app)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def run(args) -> str:
    started = time.monotonic()
    quick = getattr(args, "quick", False)
    duration, rounds_wanted = (2.0, 1) if quick else (3.0, 3)
    setup = server.suite_setup("servers bench", BENCH_ENDPOINTS="true", **api.THROTTLES)
    env = setup.env
    seed_info, _ = api.seed_in_subprocess(env)
    warm_users = api.warm_user_ids()
    tokens = {uid: setup.issuer.token(uid, ttl=4 * 3600) for uid in warm_users}
    setup.issuer.issued.clear()
    workers = api.WORKERS or server.default_workers()

    workdir = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    codes = [api.CATALOG[n % len(api.CATALOG)] for n in range(len(warm_users))]
    paths = {
        "floor": wrk.write_requests(workdir / "floor.tsv", [("GET", f"{api.API}/_bench/constant/", "", "")]),
        "warm": wrk.write_requests(
            workdir / "warm.tsv",
            [
                ("GET", f"{api.API}/entitlements/check/?feature_code={code}", tokens[uid], "")
                for uid, code in zip(warm_users, codes, strict=True)
            ],
        ),
    }
    rounds: list[dict[tuple[str, str], api.Run]] = []
    properties: dict[str, dict] = {}
    servers: dict[str, server.Server] = {}
    try:
        with server.ProcessGroup() as group, server.serving(servers):
            for kind in SERVERS:  # all six starting at once, the cache entries filled meanwhile
                servers[f"{kind}:floor"] = _make(kind, group, env, workers, api.FLOOR_APP).launch()
                servers[f"{kind}:warm"] = _make(kind, group, env, workers, None).launch()
            seconds = api.fill_cache(env, warm_users)
            log(f"cache entries of the {len(warm_users):,} warm users filled in {seconds:.1f} s")
            for target in servers.values():
                target.wait_ready(timeout=120)
            log(f"servers ready: {', '.join(f'{k} {v.base_url}' for k, v in servers.items())}")
            bench = api.Bench(group, servers, setup.redis_url, setup.database_url)
            for kind in SERVERS:  # untimed: each worker imports lazily on its first requests
                for scenario in SCENARIOS:
                    wrk.run(group, servers[f"{kind}:{scenario}"].base_url, paths[scenario], duration=1,
                            headers=server.PROXY_HEADERS)  # fmt: skip
            for number in range(rounds_wanted):
                order = server.rotated(SERVERS, number)
                log(f"round {number + 1}/{rounds_wanted}: {', '.join(order)}")
                runs = {}
                for kind in order:
                    log(f"  {kind}:")
                    for scenario in server.rotated(SCENARIOS, number):
                        runs[kind, scenario] = bench.measure(
                            scenario, paths[scenario], duration=duration, target=f"{kind}:{scenario}"
                        )
                rounds.append(runs)
            for kind in SERVERS:
                properties[kind] = _properties(servers[f"{kind}:warm"], paths["warm"])
    finally:
        shutil.rmtree(workdir)
    log(f"servers bench done in {time.monotonic() - started:.0f} s")
    return _report(
        rounds,
        properties,
        {
            "command": api.command_text("servers", args),
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": api.git_commit(),
            "cores": os.cpu_count(),
            "load_before": setup.load_before,
            "load_after": server.load_average(),
            "duration": duration,
            "workers": workers,
            "seed": seed_info,
            "seconds": time.monotonic() - started,
        },
    )


def _request_lines(target: server.Server) -> int:
    """The app's `request_finished` JSON lines in the server's output so far."""
    count = 0
    for line in target.log_text().splitlines():
        if '"request_finished"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "request_finished" and {"request_id", "status", "path"} <= set(record):
            count += 1
    return count


def _lookups(target: server.Server) -> float:
    samples = target.metrics()
    return samples.get(api.COUNTERS["hits"], 0) + samples.get(api.COUNTERS["misses"], 0)


def _properties(target: server.Server, warm_path: Path) -> dict:
    """What a request can show of gunicorn.conf.py's set-up under this server."""
    _, url_path, token, _ = warm_path.read_text().splitlines()[0].split("\t")
    time.sleep(1.0)  # requests still queued when the last wrk run stopped: answered and logged by now
    lines_before = _request_lines(target)
    lookups_before = _lookups(target)
    for _ in range(PROBE_REQUESTS):
        status, _body = server.request(target.base_url + url_path, headers={"better-auth-token": token})
        if status != 200:
            raise RuntimeError(f"{url_path} answered {status}")
    time.sleep(0.5)  # the last lines written
    lookups = _lookups(target)
    log_lines = _request_lines(target) - lines_before  # before the long line: Django may answer it
    long_status, long_body = server.request(
        target.base_url + f"{api.API}/entitlements/check/?feature_code=" + "x" * LONG_LINE,
        headers={"better-auth-token": token},
    )
    try:
        long_answer = json.loads(long_body).get("status")
    except ValueError:
        long_answer = None
    return {
        "log_lines": log_lines,
        "lookups": int(lookups - lookups_before),
        "long_status": long_status,
        "long_problem": long_answer == long_status,
    }


def _figures(runs: list[api.Run]) -> str:
    """req/s | p50 | p99 | CPU ms/request: medians over the runs."""
    return (
        f"{_median([r.result.rps for r in runs]):,.0f} | {_median([r.result.p50_ms for r in runs]):.2f} "
        f"| {_median([r.result.p99_ms for r in runs]):.2f} | {_median([r.cpu_ms for r in runs]):.2f}"
    )


def _report(rounds: list[dict], properties: dict, meta: dict) -> str:
    def runs(kind: str, scenario: str) -> list[api.Run]:
        return [rnd[kind, scenario] for rnd in rounds]

    def ratios(kind: str) -> list[float]:
        return [rnd[kind, "warm"].result.rps / rnd[kind, "floor"].result.rps for rnd in rounds]

    def to_sync(kind: str, scenario: str) -> float:
        return _median([rnd[kind, scenario].result.rps / rnd["sync", scenario].result.rps for rnd in rounds])

    lines = [
        "## Servers: the floor and the warm check under gunicorn sync, gunicorn gthread and granian",
        "",
        f"Command: `{meta['command']}` · {meta['when']} · commit `{meta['commit']}` · "
        f"{meta['seconds']:.0f} s",
        "",
        f"Machine: {meta['cores']} cores; load average before {meta['load_before']}, after "
        f"{meta['load_after']}.",
        "",
        f"Setup: six servers up for the whole run, each of the three with {meta['workers']} workers, "
        "serving the floor (`bench/floor.py`) and the product (production's settings, recycling off); "
        f"the api suite's data ({meta['seed']['entitlements']:,} rows) and its {api.WARM_USERS:,} warm "
        f"users, whose cache entries the app's own code filled first. wrk {api.THREADS} threads, "
        f"{api.CONNECTIONS} connections, keep-alive wherever the server keeps the connection (gunicorn's "
        f"sync worker closes it after each answer); {meta['duration']:g} s a run, {len(rounds)} "
        "round(s), each rotating which server goes first, the floor and the warm check alternating "
        "which goes first; medians over the rounds. CPU ms/request: the workers and their PostgreSQL "
        "backends (not wrk's, not Redis's).",
        "",
        "| server | floor req/s | p50 ms | p99 ms | CPU ms/req | warm check req/s | p50 ms | p99 ms "
        "| CPU ms/req | warm ÷ floor (rounds' range) | floor ÷ sync's | warm ÷ sync's | lookups / checks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for kind in SERVERS:
        floor, warm = runs(kind, "floor"), runs(kind, "warm")
        spread = ratios(kind)
        requests = sum(r.result.requests for r in warm)
        lines.append(
            f"| {TITLES[kind]} | {_figures(floor)} | {_figures(warm)} "
            f"| {_median(spread):.2f} ({min(spread):.2f}-{max(spread):.2f}) "
            f"| {to_sync(kind, 'floor'):.2f} | {to_sync(kind, 'warm'):.2f} "
            f"| {sum(r.hits + r.misses for r in warm):,} / {requests:,} |"
        )
    lines += [
        "",
        "Each round, in order (req/s, p99 ms, CPU ms/request): "
        + "; ".join(
            f"round {n}: "
            + ", ".join(
                f"{kind} {scenario} {run.result.rps:,.0f} ({run.result.p99_ms:.1f}, {run.cpu_ms:.2f})"
                for (kind, scenario), run in rnd.items()
            )
            for n, rnd in enumerate(rounds, 1)
        ),
        "",
        "What gunicorn.conf.py sets up, under each server (measured: the first three rows, on the "
        f"product server after the rounds; {PROBE_REQUESTS} warm checks sent one by one):",
        "",
        "| property | " + " | ".join(TITLES[k] for k in SERVERS) + " |",
        "|---|" + "---|" * len(SERVERS),
        "| one JSON `request_finished` line per request (lines for "
        f"{PROBE_REQUESTS} requests) | "
        + " | ".join(str(properties[k]["log_lines"]) for k in SERVERS)
        + " |",
        f"| metrics of all workers summed on /metrics (cache lookups counted for {PROBE_REQUESTS} "
        "checks) | " + " | ".join(str(properties[k]["lookups"]) for k in SERVERS) + " |",
        f"| request line over 4094 bytes ({LONG_LINE:,}-byte query): answer | "
        + " | ".join(
            f"{properties[k]['long_status']}" + (" problem details" if properties[k]["long_problem"] else "")
            for k in SERVERS
        )
        + " |",
    ]
    return "\n".join(lines)
