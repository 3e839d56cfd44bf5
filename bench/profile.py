"""Where a request's CPU goes: py-spy samples every gunicorn worker while wrk drives one scenario.

`python -m bench profile [--quick] [--write]` (not part of a plain `make bench`; run it on its own,
or `make bench BENCH_ARGS=profile`). It reuses the api suite's database, seed and servers: the
product under `gunicorn -c gunicorn.conf.py` with production settings. For each profiled scenario
(the ceiling, the warm check, the payment create, the webhook acknowledgement) py-spy
(`record --subprocesses --nonblocking --gil`, 100 samples/s per worker, only samples holding the
GIL: the CPU the Python code uses, not its waits on PostgreSQL or Redis) samples
while wrk runs; the table lists the functions holding the most samples, by total (the function and
what it calls) and by self (the function's own code), as a share of all samples.
"""

import collections
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench import api, server, wrk
from bench.server import log

SCENARIOS = ("ceiling", "warm", "create", "webhook")
TOP = 25
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*)\)$")
# Frames every request passes through on its way in: their totals say nothing.
_PLUMBING = (
    "<frozen",
    "gunicorn/",
    "django/core/handlers/",
    "django/utils/deprecation.py",
    "django/views/generic/base.py",
    "django/views/decorators/csrf.py",
    "django/utils/decorators.py",
)


def ensure_py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(server.PYTHON).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is missing: pip install -r requirements/dev.txt")
    return found


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", str(server.ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _frame(text: str) -> str:
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip()
    return f"{_short(match['file'])}:{match['func']}"


def summarize(raw: Path) -> tuple[int, list, list]:
    """(samples, top by total, top by self, self by package) from py-spy's raw (collapsed) output."""
    total = collections.Counter()
    own = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";") if f.strip() and not f.startswith("process ")]
        if not frames:
            continue
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for name in set(frames):
            total[name] += n
    packages = collections.Counter()
    for name, n in own.items():
        packages[_package(name)] += n
    by_total = [(name, n) for name, n in total.most_common() if not name.startswith(_PLUMBING)][:TOP]
    return samples, by_total, own.most_common(TOP), packages.most_common(15)


def _package(name: str) -> str:
    """`django/db/models/query.py:QuerySet.get` -> `django.db`; `jia_payments/...` -> `jia_payments.core`."""
    path = name.split(":", 1)[0]
    parts = path.removesuffix(".py").split("/")
    depth = 2 if parts[0] in ("django", "jia_payments", "rest_framework", "prometheus_client") else 1
    return ".".join(parts[:depth]) if len(parts) > 1 else parts[0]


def run(args) -> str:
    from testsupport.localstripe import LocalStripe
    from testsupport.tokens import TokenIssuer

    quick = getattr(args, "quick", False)
    seconds = 4.0 if quick else 12.0
    wrk.ensure_wrk()
    py_spy = ensure_py_spy()
    issuer = TokenIssuer()
    database_url, redis_url = server.bench_database_url(), server.bench_redis_url()
    load_before = server.load_average()
    results = {}
    stripe_fake = LocalStripe().start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        env = server.production_env(
            database_url=database_url,
            redis_url=redis_url,
            public_key_pem=issuer.public_pem,
            BENCH_ENDPOINTS="true",
            DJANGO_SETTINGS_MODULE="jia_payments.settings",
            STRIPE_API_BASE=stripe_fake.url,
            STRIPE_WEBHOOK_UUID=str(uuid.uuid4()),
            GUNICORN_MAX_REQUESTS="0",
            **api.THROTTLES,
        )
        server.ensure_database(database_url, env)
        api._manage(env, "stripe_webhook_endpoint")
        api._seed(env)
        intents = api.stripe_objects(stripe_fake, 5)
        users = [api.user_id(n) for n in range(api.WARM_USERS)]
        tokens = [issuer.token(u, ttl=3600) for u in users]
        service_token = issuer.token("svc_bench", role="service", ttl=3600)
        webhook_path = f"/stripe/webhook/{env['STRIPE_WEBHOOK_UUID']}/"
        count = int(api.ONCE_RATE_CAP * (seconds + 2))
        files = {
            "ceiling": lambda: [("GET", f"{api.API}/_bench/constant/", t, "") for t in tokens],
            "warm": lambda: [
                ("GET", f"{api.API}/entitlements/check/?feature_code={api.CATALOG[n % 10]}", t, "")
                for n, t in enumerate(tokens)
            ],
            "create": lambda: api.create_lines(service_token, count),
            "webhook": lambda: api.webhook_lines(webhook_path, env["STRIPE_WEBHOOK_SECRET"], intents, count),
        }
        with server.ProcessGroup() as group:
            gunicorn = server.Gunicorn(group, env, workers=api.WORKERS)
            try:
                gunicorn.start()
                for scenario in SCENARIOS:
                    path = wrk.write_requests(workdir / f"{scenario}.tsv", files[scenario]())
                    mode = "once" if scenario in ("create", "webhook") else "cycle"
                    wrk.run(
                        group, gunicorn.base_url, path, duration=2, mode=mode, headers=server.PROXY_HEADERS
                    )
                    if mode == "once":
                        path = wrk.write_requests(workdir / f"{scenario}.tsv", files[scenario]())
                    raw = workdir / f"{scenario}.raw"
                    spy = subprocess.Popen(
                        [py_spy, "record", "--subprocesses", "--nonblocking", "--gil", "--nolineno",
                         "--format", "raw", "--rate", "100", "--duration", f"{seconds:.0f}",
                         "--output", str(raw),
                         "--pid", str(gunicorn.process.pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    )  # fmt: skip
                    time.sleep(0.5)  # py-spy attached before the load starts
                    cpu_before = gunicorn.cpu_seconds()
                    result = wrk.run(
                        group,
                        gunicorn.base_url,
                        path,
                        duration=seconds,
                        mode=mode,
                        connections=api.CONNECTIONS,
                        threads=api.THREADS,
                        headers=server.PROXY_HEADERS,
                    )
                    cpu_ms = (gunicorn.cpu_seconds() - cpu_before) * 1000 / max(1, result.requests)
                    _, err = spy.communicate(timeout=seconds + 60)
                    if spy.returncode != 0 or not raw.exists():
                        raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode()[-2000:]}")
                    samples, by_total, by_self, packages = summarize(raw)
                    results[scenario] = (
                        result,
                        cpu_ms,
                        samples,
                        by_total,
                        by_self,
                        packages,
                        os.getloadavg()[0],
                    )
                    log(
                        f"  profiled {scenario}: {result.rps:.0f} req/s, {cpu_ms:.2f} ms CPU/req, "
                        f"{samples} samples"
                    )
            finally:
                gunicorn.cleanup()
    finally:
        stripe_fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return _report(results, load_before, seconds)


def _report(results: dict, load_before: str, seconds: float) -> str:
    lines = [
        "## Profile: where a request's CPU goes (py-spy on every gunicorn worker under wrk)",
        "",
        f"`python -m bench profile` · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · commit "
        f"`{api._git_commit()}` · load average before {load_before}, after {server.load_average()}. "
        f"The product as the api suite serves it; {seconds:g} s of wrk ({api.CONNECTIONS} connections) "
        "per scenario, py-spy at 100 samples/s per busy worker. Shares are of all samples of the "
        "scenario (only samples holding the GIL: CPU, not waits); `total` counts a function with "
        "everything it calls, `self` its own lines only.",
    ]
    for scenario, (result, cpu_ms, samples, by_total, by_self, packages, load) in results.items():
        lines += [
            "",
            f"### {api.TITLES[scenario]}: {result.rps:,.0f} req/s, {cpu_ms:.2f} ms CPU/request, "
            f"{samples:,} samples, load {load:.2f}",
            "",
            "Self time by package: "
            + ", ".join(f"{name} {n / samples:.0%}" for name, n in packages if n / samples >= 0.01)
            + ".",
            "",
            "| total | function (with what it calls) | self | function (its own lines) |",
            "|---:|---|---:|---|",
        ]
        for (t_name, t_n), (s_name, s_n) in zip(by_total, by_self, strict=False):
            lines.append(f"| {t_n / samples:.0%} | `{t_name}` | {s_n / samples:.1%} | `{s_name}` |")
    return "\n".join(lines)
