"""Where a request's CPU goes under gunicorn: gunicorn's parts and the app's, measured in the workers.

`python -m bench split [--quick] [--write]` (asked for by name; a few minutes). The api suite's
database, seed and warm users; the floor and the product, each under gunicorn.conf.py with a clock
in each worker (bench/split_gunicorn.conf.py says what each part is), driven by wrk as the api
suite drives them (16 connections, 2 threads), the floor, the ceiling and the warm check in rounds
that rotate their order. A part's figure is its CPU over all workers per request, the median of
the rounds; `app` is the figure to hold against `python -m bench stack`, the same app called in one
process with nothing else running between its requests.
"""

import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import api, server, wrk
from bench.server import log

CONF = Path(__file__).with_name("split_gunicorn.conf.py")
SCENARIOS = ("floor", "ceiling", "warm")
PARTS = ("outside", "environ", "app", "written", "close", "gc")


class ClockedGunicorn(server.Gunicorn):
    name = "gunicorn-split"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.split_dir = tempfile.mkdtemp(prefix="bench-split-")
        self.env["BENCH_SPLIT_DIR"] = self.split_dir

    def command(self) -> list[str]:
        args = [server.PYTHON, "-m", "gunicorn", "-c", str(CONF), "--backlog", "2048"]
        return [*args, self.app] if self.app else args

    def sums(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for path in Path(self.split_dir).glob("*.json"):
            for key, value in json.loads(path.read_text()).items():
                total[key] = total.get(key, 0.0) + value
        return total

    def cleanup(self) -> None:
        super().cleanup()
        shutil.rmtree(self.split_dir, ignore_errors=True)


def parts(before: dict, after: dict) -> dict[str, float]:
    """ms per request of each part between two readings of the workers' sums."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    n = delta.get("requests") or 1
    per = {key: value * 1000 / n for key, value in delta.items()}
    return {
        "outside": per["worker"] - per["held"],
        "environ": per["environ"],
        "app": per["app"],
        "written": per["held"] - per["environ"] - per["app"] - per["close"],
        "close": per["close"],
        "gc": per["gc"],
        "total": per["worker"],
        "requests": delta.get("requests", 0),
    }


def run(args) -> str:
    quick = getattr(args, "quick", False)
    duration, rounds_wanted = (3.0, 2) if quick else (5.0, 5)
    setup = server.suite_setup("split bench", BENCH_ENDPOINTS="true", **api.THROTTLES)
    env = setup.env
    api.seed_in_subprocess(env)
    api.drop_cached_entries(setup.redis_url)
    api.fill_cache(env, api.warm_user_ids())
    warm = api.warm_user_ids()
    tokens = {u: setup.issuer.token(u, ttl=4 * 3600) for u in warm}
    rng = random.Random(7)
    check = f"{api.API}/entitlements/check/?feature_code="
    workdir = Path(tempfile.mkdtemp(prefix="bench-split-"))
    paths = {
        "floor": wrk.write_requests(workdir / "floor.tsv", [("GET", f"{api.API}/_bench/constant/", "", "")]),
        "ceiling": wrk.write_requests(
            workdir / "ceiling.tsv", [("GET", f"{api.API}/_bench/constant/", tokens[u], "") for u in warm]
        ),
        "warm": wrk.write_requests(
            workdir / "warm.tsv",
            [("GET", check + rng.choice(api.CATALOG), tokens[u], "") for u in warm],
        ),
    }
    figures: dict[str, list[dict]] = {name: [] for name in SCENARIOS}
    servers: dict[str, server.Server] = {}
    try:
        with server.ProcessGroup() as group, server.serving(servers, "gunicorn ({})"):
            servers["app"] = ClockedGunicorn(group, env, workers=api.WORKERS).start()
            servers["floor"] = ClockedGunicorn(group, env, workers=api.WORKERS, app=api.FLOOR_APP).start()
            # Every worker verifies each token once and imports lazily on its first requests.
            for name in ("ceiling", "warm", "floor"):
                target = servers["floor" if name == "floor" else "app"]
                wrk.run(group, target.base_url, paths[name], duration=4, headers=server.PROXY_HEADERS)
            for number in range(rounds_wanted):
                log(f"round {number + 1}/{rounds_wanted}")
                for name in server.rotated(SCENARIOS, number):
                    target = servers["floor" if name == "floor" else "app"]
                    before, cpu_before = target.sums(), target.cpu_seconds()
                    result = wrk.run(
                        group, target.base_url, paths[name], duration=duration, headers=server.PROXY_HEADERS
                    )
                    time.sleep(0.3)  # the workers' last sums written
                    split = parts(before, target.sums())
                    split["cpu"] = (target.cpu_seconds() - cpu_before) * 1000 / max(1, result.requests)
                    split["rps"], split["p99"] = result.rps, result.p99_ms
                    figures[name].append(split)
                    log(
                        f"  {name:8s} {result.rps:7.0f} req/s p99 {result.p99_ms:6.2f} ms  "
                        + "  ".join(f"{part} {split[part]:.3f}" for part in (*PARTS, "total"))
                        + f"  (/proc: {split['cpu']:.3f})  load {os.getloadavg()[0]:.2f}"
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _report(figures, setup.load_before, duration, rounds_wanted)


def _report(figures: dict, load_before: str, duration: float, rounds: int) -> str:
    lines = [
        "## Under gunicorn: each part of a request's CPU, measured in the workers",
        "",
        f"`python -m bench split` · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · commit "
        f"`{api.git_commit()}` · load average before {load_before}, after {server.load_average()}. "
        f"gunicorn.conf.py (5 sync workers) with a clock in each worker (`bench/split_gunicorn.conf.py`), "
        f"wrk 2 threads, 16 connections, {duration:g} s a run, {rounds} rounds, medians; "
        "CPU ms/request of all workers (`time.process_time`), the /proc figure of the api suite beside it.",
        "",
        "| scenario | req/s | p99 ms | outside a request | environ | app | written | close | total | /proc "
        "| gc (in the parts) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in figures.items():
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        lines.append(
            f"| {name} | {median['rps']:,.0f} | {median['p99']:.1f} | "
            + " | ".join(f"{median[key]:.3f}" for key in (*PARTS[:-1], "total"))
            + f" | {median['cpu']:.3f} | {median['gc']:.3f} |"
        )
    return "\n".join(lines)
