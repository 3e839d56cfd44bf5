"""Memory (`python -m bench memory`): one gunicorn worker alone serves 100,000 warm entitlement
checks; its RSS after a warm-up and after the checks.

The worker is production's (`gunicorn -c gunicorn.conf.py`, sync, recycling off, WEB_CONCURRENCY=1)
on the bench database, with its own users (`bench-mem-*`, seeded here, untouched by the other
suites). The checks are counted by the worker itself: the entitlement cache's lookups on /metrics,
polled until MEMORY_CHECKS were made after the warm-up (wrk sends until then, 8 connections).

100,000 checks are minutes of one worker's CPU: under `make bench` the run goes on in the
background beside the suites whose figures are same-run ratios (`start` before them, `finish`
after; its worker and wrk are more load beside everyone else's, which those ratios absorb), at a
raised priority (NICE) so that it gets further in the time on a loaded machine; the suites with
absolute figures run before it starts (bench/__main__.py). `python -m bench memory` alone runs it
in the foreground.
"""

import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import server, wrk
from bench.server import log

USERS = 1_000
CHECKS = 100_000
WARMUP = 5_000
GROWTH_KIB = 10 * 1024
CONNECTIONS = 8
# Seconds from start() to the end of the checks at most, alone; under `make bench` the caller gives
# what is left of its 15 minutes (the run then reports how far it got).
BUDGET_ALONE = 1_500.0
SAMPLE_EVERY = 10_000  # checks between two RSS samples
POLL_EVERY = 3.0  # seconds between two reads of the worker's counters (each a /metrics request to it)
# The worker and its wrk run at this priority when allowed (root): 100,000 checks are ~250 s of
# CPU whatever their priority, but at the fair share of a machine loaded 15-20 on 2 cores a single
# worker gets ~0.1 core (~45 checks/s: 40 minutes). What is measured is RSS, which the priority
# does not change; the other suites' ratios are taken within their own runs.
NICE = -10
LOOKUPS = 'jia_payments_entitlement_cache_lookups_total{result="%s"}'
FEATURES = ("family_calendar", "shared_lists", "location_sharing", "photo_vault", "ai_assistant", "ad_free")


def seed(users: int = USERS) -> dict:
    """In a subprocess with the server's settings: the premium plan for every third user, the free
    plan for the others (the checks answer both ways)."""
    from django.core.management import call_command

    from entitlements.models import Entitlement
    from pricing.models import Plan

    call_command("loaddata", "catalog", verbosity=0)
    plans = {
        p.pk: p for p in Plan.objects.filter(pk__in=("premium_monthly", "free")).prefetch_related("features")
    }
    Entitlement.objects.filter(user_id__startswith="bench-mem-").delete()
    rows = []
    for n in range(users):
        plan = plans["premium_monthly" if n % 3 == 0 else "free"]
        rows += [
            Entitlement(user_id=user_id(n), feature_id=f.code, plan=plan, subscription_id=f"sub_mem_{n}")
            for f in plan.features.all()
        ]
    Entitlement.objects.bulk_create(rows, batch_size=5000)
    return {"entitlements": len(rows)}


def user_id(n: int) -> str:
    return f"bench-mem-{n:04d}"


class Memory:
    """The memory run: `start()` (in the main thread: the database, the requests), a thread that
    seeds, starts the server and sends the checks, `finish()` (waits for it, stops the server) ->
    the Markdown section."""

    def __init__(self, quick: bool = False, background: bool = False, budget: float = BUDGET_ALONE) -> None:
        self.quick = quick
        self.background = background
        self.budget = budget
        self.samples: list[tuple[int, int]] = []  # (checks so far, RSS KiB)
        self.wanted = CHECKS // 10 if quick else CHECKS
        self.group = server.ProcessGroup()
        self.result: dict = {}
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
        self.gunicorn: server.Gunicorn | None = None
        self.stop = threading.Event()
        self.nice = 0

    def start(self) -> "Memory":
        self.started = time.monotonic()
        # Worker recycling off (suite_setup): the one worker must serve every check.
        setup = server.suite_setup("memory", THROTTLE_USER="100000000/min")
        issuer, env, self.load_before = setup.issuer, setup.env, setup.load_before
        rng = random.Random(11)
        lines = [
            ("GET", f"/api/v1/entitlements/check/?feature_code={rng.choice(FEATURES)}",
             issuer.token(user_id(n), ttl=4 * 3600), "")
            for n in range(USERS)
        ]  # fmt: skip
        self.checks_file = wrk.write_requests(self.workdir / "checks.tsv", lines)
        self.group.__enter__()  # in the main thread: it handles SIGTERM
        self.thread = threading.Thread(target=self._run, args=(env,), name="bench-memory", daemon=True)
        self.thread.start()
        return self

    def _prepare(self, env: dict) -> None:
        """Seeding and the server, in the thread: the next suite starts meanwhile."""
        seeded = subprocess.run(
            [server.PYTHON, "-c", "import django; django.setup(); from bench.memory import seed; seed()"],
            cwd=server.ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding failed:\n{seeded.stderr[-3000:]}")
        self.gunicorn = server.Gunicorn(self.group, env, workers=1).start()
        (pid,) = self.gunicorn.worker_pids()
        try:
            os.setpriority(os.PRIO_PROCESS, pid, NICE)
            self.nice = NICE
        except OSError:  # not root: the fair share, and probably fewer checks in the time
            self.nice = 0

    def _lookups(self) -> int:
        samples = self.gunicorn.metrics()
        return int(samples.get(LOOKUPS % "hit", 0) + samples.get(LOOKUPS % "miss", 0))

    def _send(self, count: int, limit: float, pid: int | None = None) -> tuple[list[wrk.Result], int, float]:
        """Checks until `count` were made or `limit` seconds passed; with `pid`, RSS samples on
        the way. Returns the runs, the checks made and the seconds spent sending."""
        before = self._lookups()
        deadline = time.monotonic() + limit
        runs: list[wrk.Result] = []
        sending = 0.0

        def made() -> int:
            return self._lookups() - before

        def done() -> bool:
            so_far = made()
            if pid is not None and so_far >= SAMPLE_EVERY * (len(self.samples) + 1):
                self.samples.append((so_far, self.gunicorn.rss_kib()[pid]))
            return self.stop.is_set() or so_far >= count

        while not self.stop.is_set() and made() < count and deadline - time.monotonic() > 1:
            began = time.monotonic()
            runs.append(
                wrk.run(
                    self.group,
                    self.gunicorn.base_url,
                    self.checks_file,
                    duration=max(1.0, deadline - began),
                    connections=CONNECTIONS,
                    threads=1,
                    headers=server.PROXY_HEADERS,
                    stop_when=done,
                    poll_every=POLL_EVERY,
                    nice=self.nice,
                )
            )
            sending += time.monotonic() - began
        return runs, made(), sending

    def _run(self, env: dict) -> None:
        try:
            self._prepare(env)
            (pid,) = self.gunicorn.worker_pids()
            fresh = self.gunicorn.rss_kib()[pid]
            _, warmed, _ = self._send(WARMUP, 120)
            start = self.gunicorn.rss_kib()[pid]
            log(f"memory: warmed up ({warmed:,} checks), RSS {fresh / 1024:.1f} -> {start / 1024:.1f} MB")
            began, cpu_before = time.monotonic(), self.gunicorn.cpu_seconds()
            limit = self.budget - (time.monotonic() - self.started)
            runs, checks, sending = self._send(self.wanted, limit, pid)
            seconds = time.monotonic() - began
            cpu_ms = (self.gunicorn.cpu_seconds() - cpu_before) * 1000 / max(1, checks)
            if self.gunicorn.worker_pids() != [pid]:
                raise RuntimeError("the worker of the memory run was replaced during it")
            end = self.gunicorn.rss_kib()[pid]
            log(
                f"memory: {checks:,} checks in {seconds:.0f} s, RSS {start / 1024:.1f} -> {end / 1024:.1f} MB"
            )
            self.result = {
                "fresh_kib": fresh,
                "start_kib": start,
                "end_kib": end,
                "warmup": warmed,
                "checks": checks,
                "seconds": seconds,
                "sending": sending,
                "rps": checks / sending if sending else 0.0,
                "errors": sum(r.failed for r in runs),
                "p99_ms": max((r.p99_ms for r in runs), default=0.0),
                "runs": len(runs),
                "cpu_ms": cpu_ms,
            }
        except Exception as error:  # noqa: BLE001 (reported by finish(), in the main thread)
            self.error = error

    def finish(self, abandon: bool = False) -> str:
        try:
            if self.thread is not None:
                if abandon:
                    self.stop.set()
                self.thread.join()
        finally:
            self.group.__exit__(None, None, None)
            if self.gunicorn is not None:
                self.gunicorn.cleanup()
            shutil.rmtree(self.workdir)
        if self.error is not None:
            raise RuntimeError(f"the memory run failed: {self.error}") from self.error
        return self._report()

    def _report(self) -> str:
        r = self.result
        growth = r["end_kib"] - r["start_kib"]
        reached = r["checks"] >= self.wanted
        ok = reached and growth < GROWTH_KIB
        verdict = "met" if ok else "**not met**" + ("" if reached else ": the run ended at its time limit")
        curve = ", ".join(f"{n:,}: {kib / 1024:.1f} MB" for n, kib in self.samples)
        return "\n".join(
            [
                "## Memory: one gunicorn worker's RSS over 100,000 warm checks",
                "",
                f"`python -m bench memory{' --quick' if self.quick else ''}` (in `make bench`: in the "
                f"background beside the suites of same-run ratios), {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, "
                f"{os.cpu_count()} cores, load {self.load_before} before, {server.load_average()} after.",
                "",
                "One worker alone (`gunicorn -c gunicorn.conf.py`, WEB_CONCURRENCY=1, sync, recycling off), "
                f"{USERS:,} users (`bench-mem-*`: premium or free), `GET /api/v1/entitlements/check/` "
                f"rotating over them from wrk ({CONNECTIONS} connections); checks counted by the worker's "
                "cache lookups on /metrics. "
                + (
                    f"The worker and wrk ran at nice {self.nice}: 100,000 checks are the same CPU work at "
                    "any priority, but at a fair share of this loaded machine one worker gets ~0.1 core "
                    "(~45 checks/s); RSS, what is measured, does not depend on it."
                    if self.nice
                    else "The worker ran at the default priority (raising it needs root)."
                ),
                "",
                "| RSS just started | after the warm-up | after the checks | growth | checks (wanted) "
                "| time | req/s while sending | p99 ms (worst run) | worker CPU ms/check | target | met |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
                f"| {r['fresh_kib'] / 1024:.1f} MB | {r['start_kib'] / 1024:.1f} MB "
                f"({r['warmup']:,} checks) | {r['end_kib'] / 1024:.1f} MB | {growth / 1024:+.1f} MB "
                f"| {r['checks']:,} ({self.wanted:,}) | {r['seconds']:.0f} s ({r['sending']:.0f} s sending, "
                f"{r['runs']} wrk runs) | {r['rps']:,.0f} "
                f"| {r['p99_ms']:.1f} | {r['cpu_ms']:.2f} "
                f"| growth < {GROWTH_KIB / 1024:.0f} MB over {self.wanted:,} checks "
                f"| {verdict} |",
                "",
                f"RSS on the way (checks after the warm-up: RSS): {curve or 'no sample'}. Time limit: the "
                f"checks end {self.budget:.0f} s after the run's start at the latest"
                + (" (so that `make bench` stays under 15 minutes)." if self.background else "."),
            ]
        )


def run(args) -> str:
    """Alone (`python -m bench memory`): start, wait, report."""
    return Memory(quick=getattr(args, "quick", False)).start().finish()
