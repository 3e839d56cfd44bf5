"""CPU per request of the Django stack alone: the WSGI app called in one process, no server, no socket.

`python -m bench stack [--quick] [--write]` (asked for by name; a minute). The api suite's
database and Redis db, production settings (DEBUG=false, JSON logs to a discarded stderr,
Prometheus multiprocess files), and the same requests as its scenarios: the ceiling, the warm
check, the batch, the payment create and the webhook acknowledgement. Each round runs every
scenario for REQUESTS requests in turn; the figure is the median over the rounds of the process's
CPU time (`time.process_time`) per request. With no server, network or other process in the
measurement it moves little with the machine's load: it is how bench/RESULTS.md measures what
one change to the stack saves.

`--toggle NAME` (a function of `bench.toggles`, switching a change off and on) runs the warm and
batch checks (or `--scenarios a,b`) with the change off and on alternately, every BLOCK requests,
in the same process: the change's before and after, figures "<scenario> off" and "<scenario> on".
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from bench import api, server
from bench.server import log

REQUESTS = 400
ROUNDS = 7
SCENARIOS = ("ceiling", "warm", "batch", "list", "create", "webhook")
BLOCK = 20  # with --toggle, off and on alternate every BLOCK requests: the load drifts less between them


def run(args) -> str:
    from testsupport.tokens import TokenIssuer

    quick = getattr(args, "quick", False)
    database_url, redis_url = server.bench_database_url(), server.bench_redis_url()
    metrics_dir = tempfile.mkdtemp(prefix="bench-stack-metrics-")
    issuer = TokenIssuer()
    env = server.production_env(
        database_url=database_url,
        redis_url=redis_url,
        public_key_pem=issuer.public_pem,  # production refuses to start without a key
        BENCH_PRIVATE_KEY_PEM=_private_pem(issuer),  # the child signs its tokens with it
        BENCH_ENDPOINTS="true",
        DJANGO_SETTINGS_MODULE="jia_payments.settings",
        STRIPE_WEBHOOK_UUID=str(uuid.uuid4()),
        PROMETHEUS_MULTIPROC_DIR=metrics_dir,
        BENCH_STACK_TOGGLE=getattr(args, "toggle", None) or "",
        BENCH_STACK_SCENARIOS=getattr(args, "scenarios", None) or "",
        **api.THROTTLES,
    )
    load_before = server.load_average()
    server.ensure_database(database_url, env)
    api._manage(env, "stripe_webhook_endpoint")
    api.seed_in_subprocess(env)
    rounds = 3 if quick else ROUNDS
    try:
        child = subprocess.run(
            [server.PYTHON, "-m", "bench.stack", str(rounds), str(REQUESTS // (2 if quick else 1))],
            cwd=server.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the JSON log lines: written, then discarded
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    line = next((x for x in child.stdout.splitlines() if x.startswith("STACK ")), None)
    if child.returncode != 0 or line is None:
        raise RuntimeError(f"bench.stack failed ({child.returncode}):\n{child.stdout[-3000:]}")
    figures = json.loads(line.removeprefix("STACK "))
    for name, ms in figures["median"].items():
        rounds_text = ", ".join(f"{x:.3f}" for x in figures["rounds"][name])
        log(f"  {name:8s} {ms:.3f} ms CPU/request (rounds: {rounds_text})")
    return _report(figures, load_before)


def _private_pem(issuer) -> str:
    from cryptography.hazmat.primitives import serialization

    return issuer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _report(figures: dict, load_before: str) -> str:
    lines = [
        "## Stack: CPU per request in one process (no server, no network)",
        "",
        f"`python -m bench stack` · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · commit "
        f"`{api.git_commit()}` · load average before {load_before}, after {server.load_average()}. "
        f"{figures['requests']} requests per scenario and round, {figures['rounds_count']} rounds; "
        "median of the rounds' CPU ms/request (`time.process_time` of the process calling the WSGI app).",
        "",
        "| scenario | CPU ms/request | rounds |",
        "|---|---:|---|",
    ]
    for name, ms in figures["median"].items():
        rounds = ", ".join(f"{x:.3f}" for x in figures["rounds"][name])
        scenario, _, state = name.partition(" ")
        lines.append(f"| {api.TITLES[scenario]}{f' ({state})' if state else ''} | {ms:.3f} | {rounds} |")
    return "\n".join(lines)


# --- the child: calls the WSGI app ----------------------------------------------------------


def _environ(method: str, path: str, *, token: str = "", body: bytes = b"", headers: dict | None = None):
    import io

    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_X_FORWARDED_PROTO": "https",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    if token:
        environ["HTTP_BETTER_AUTH_TOKEN"] = token
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _key(scenario: str, state: str | None) -> str:
    return scenario if state is None else f"{scenario} {state}"


def child(rounds: int, requests: int) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from testsupport.tokens import TokenIssuer

    issuer = TokenIssuer(load_pem_private_key(os.environ.pop("BENCH_PRIVATE_KEY_PEM").encode(), None))
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    import django

    django.setup()
    import redis

    from entitlements.cache import stats
    from jia_payments.wsgi import application

    users = [api.user_id(n) for n in range(requests)]
    tokens = [issuer.token(u, ttl=3600) for u in users]
    service = issuer.token("svc_bench", role="service", ttl=3600)
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]
    webhook_path = f"/stripe/webhook/{os.environ['STRIPE_WEBHOOK_UUID']}/"
    intent = {"id": "pi_bench", "object": "payment_intent", "amount": 1000, "currency": "usd"}
    batch = json.dumps({"feature_codes": api.BATCH}).encode()

    def requests_of(name: str):
        if name == "ceiling":
            return [_environ("GET", f"{api.API}/_bench/constant/", token=t) for t in tokens]
        if name == "warm":
            return [
                _environ("GET", f"{api.API}/entitlements/check/?feature_code={api.CATALOG[n % 10]}", token=t)
                for n, t in enumerate(tokens)
            ]
        if name == "batch":
            return [_environ("POST", f"{api.API}/entitlements/check/", token=t, body=batch) for t in tokens]
        if name == "list":
            return [_environ("GET", f"{api.API}/entitlements/", token=t) for t in tokens]
        if name == "create":
            return [
                _environ(
                    "POST",
                    path,
                    token=service,
                    body=body.encode(),
                    headers=dict(h.split(": ", 1) for h in extra),
                )
                for _, path, _, body, *extra in api.create_lines(service, requests)
            ]
        return [
            _environ("POST", path, body=body.encode(), headers=dict(h.split(": ", 1) for h in extra))
            for _, path, _, body, *extra in api.webhook_lines(webhook_path, secret, [intent], requests)
        ]

    from bench import toggles

    def call(environ) -> int:
        if toggles.pause:
            time.sleep(toggles.pause)
        status = []
        body = application(environ, lambda s, h, exc_info=None: status.append(s))
        for _ in body:
            pass
        if hasattr(body, "close"):
            body.close()
        return int(status[0].split()[0])

    for environ in requests_of("warm") + requests_of("ceiling"):  # tokens verified, entries cached
        call(environ)
    stats.reset()
    queue = redis.Redis.from_url(os.environ["REDIS_URL"])
    toggle_name = os.environ.get("BENCH_STACK_TOGGLE")
    scenarios = tuple(filter(None, os.environ.get("BENCH_STACK_SCENARIOS", "").split(","))) or (
        ("warm", "batch") if toggle_name else SCENARIOS
    )
    if toggle_name:
        from bench import toggles

        toggle = getattr(toggles, toggle_name)
    states = ("off", "on") if toggle_name else (None,)
    results = {_key(name, state): [] for name in scenarios for state in states}
    for round_number in range(rounds):
        for name in scenarios:
            made = {state: requests_of(name) for state in states}  # an environ's body is read once
            spent = dict.fromkeys(states, 0.0)
            for block in range(0, len(made[states[0]]), BLOCK):
                for state in states if (block // BLOCK + round_number) % 2 == 0 else states[::-1]:
                    if state is not None:
                        toggle(state == "on")
                    began = time.process_time()
                    for environ in made[state][block : block + BLOCK]:
                        code = call(environ)
                        if code >= 300:
                            raise SystemExit(f"{name}: answered {code}")
                    spent[state] += time.process_time() - began
            for state in states:
                results[_key(name, state)].append(spent[state] * 1000 / len(made[state]))
        queue.delete("celery")  # the webhook tasks: no worker takes them here
    if stats.misses:
        raise SystemExit(f"the warm checks missed the cache {stats.misses} times: not seeded?")
    print(
        "STACK "
        + json.dumps(
            {
                "median": {k: statistics.median(v) for k, v in results.items()},
                "rounds": results,
                "requests": requests,
                "rounds_count": rounds,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    child(int(sys.argv[1]), int(sys.argv[2]))
