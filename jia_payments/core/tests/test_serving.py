"""Production serving: gunicorn.conf.py loads, several workers report one view of the metrics, the
access log is JSON."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings

from testsupport import webserver
from testsupport.processes import ROOT, free_port
from testsupport.tokens import TokenIssuer
from testsupport.webserver import GUNICORN, WebServerProcess

TOKEN = "metrics-token-" + "g" * 24
ISSUER = TokenIssuer()
PRODUCTION = {**webserver.PRODUCTION, "AUTH_PUBLIC_KEY_PEM": ISSUER.public_pem}


def test_gunicorn_conf_loads_with_the_app_in_production_mode():
    env = {**os.environ, **PRODUCTION, "DATABASE_URL": os.environ["DATABASE_URL"]}
    result = subprocess.run(
        [GUNICORN, "--check-config", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_workers_default_to_the_cpus_and_the_environment_overrides():
    code = (
        "import runpy, json; c = runpy.run_path('gunicorn.conf.py');"
        "keys = ('workers', 'timeout', 'graceful_timeout', 'bind', 'max_requests');"
        "print(json.dumps({k: c[k] for k in keys}))"
    )

    def conf(**env):
        ours = ("WEB_CONCURRENCY", "PORT", "GUNICORN_BIND", "GUNICORN_MAX_REQUESTS")
        clean = {k: v for k, v in os.environ.items() if k not in ours}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert conf() == {
        "workers": 2 * len(os.sched_getaffinity(0)) + 1,
        "timeout": 30,
        "graceful_timeout": 30,
        "bind": ["0.0.0.0:8000"],
        "max_requests": 20000,
    }
    changed = conf(
        WEB_CONCURRENCY="3", GUNICORN_TIMEOUT="10", GUNICORN_GRACEFUL_TIMEOUT="20", PORT="9000",
        GUNICORN_MAX_REQUESTS="0",
    )  # fmt: skip
    assert changed == {
        "workers": 3, "timeout": 10, "graceful_timeout": 20, "bind": ["0.0.0.0:9000"], "max_requests": 0,
    }  # fmt: skip


def test_loading_the_app_opens_no_connection_a_forked_worker_could_share():
    """gunicorn.conf.py preloads the app in the master and forks workers from it: a database,
    cache or broker connection opened at import would be one socket shared by every worker."""
    code = (
        "import threading; from jia_payments.wsgi import application;"
        "from django.db import connections; from django.core.cache import cache;"
        "print(sorted(a for a in connections if connections[a].connection is not None),"
        " getattr(cache, '_client', None), sorted(t.name for t in threading.enumerate()))"
    )
    env = {**os.environ, **PRODUCTION, "DATABASE_URL": os.environ["DATABASE_URL"]}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "None", "['MainThread']"]


def test_workers_are_forked_from_a_preloaded_app_unless_told_otherwise():
    code = "import runpy; print(runpy.run_path('gunicorn.conf.py')['preload_app'])"

    def preload(**env):
        clean = {k: v for k, v in os.environ.items() if k != "GUNICORN_PRELOAD"}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True
        )
        return out.stdout.decode().strip()

    assert (preload(), preload(GUNICORN_PRELOAD="false")) == ("True", "False")


def test_what_the_master_loaded_is_frozen_before_a_worker_is_forked():
    """Objects of the preloaded app go to the collector's permanent generation (pre_fork), the
    garbage of loading it collected first: a worker's collections then never walk them."""
    code = (
        "import gc, json, runpy, types, weakref; from jia_payments.wsgi import application;"
        "c = runpy.run_path('gunicorn.conf.py'); gc.collect(); gc.disable();"
        "cycle = types.new_class('Cycle')(); cycle.me = cycle; gone = weakref.ref(cycle); del cycle;"
        "before = gc.get_freeze_count(); c['pre_fork'](None, None);"
        "print(json.dumps([before, gc.get_freeze_count(), len(gc.get_objects()), gone() is None]))"
    )
    env = {**os.environ, **PRODUCTION, "DATABASE_URL": os.environ["DATABASE_URL"]}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    before, frozen, still_walked, cycle_collected = json.loads(out.stdout)
    assert before == 0
    assert frozen > 50_000  # the app's modules, classes, functions, settings
    assert still_walked < 100  # what a collection would still walk: next to nothing
    assert cycle_collected  # garbage of loading collected, not kept frozen


class Gunicorn(WebServerProcess):
    """Two workers in production mode, their metrics in a directory a previous run left files in."""

    def __init__(self, tmp_path: Path, **extra_env: str):
        self.metrics_dir = tmp_path / "metrics"
        self.metrics_dir.mkdir()
        (self.metrics_dir / "counter_999999.db").write_bytes(b"stale")  # a previous run's
        (self.metrics_dir / "not-ours.txt").write_text("kept")  # the directory may be shared
        super().__init__(
            env={**PRODUCTION, "METRICS_TOKEN": TOKEN, **extra_env}, log_path=tmp_path / "gunicorn.log"
        )

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        headers = {"Connection": "close", **(headers or {})}
        response = requests.get(self.url + path, headers=headers, timeout=30)
        return response.status_code, response.content

    def worker_pids(self) -> set[int]:
        return {
            int(m.group(1))
            for p in self.metrics_dir.iterdir()
            if (m := re.match(r"counter_(\d+)\.db", p.name))
        }

    def scrape(self) -> str:
        status, body = self.get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, body
        return body.decode()

    def json_lines(self) -> list[dict]:
        lines = []
        for raw in self.logs().splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines


@pytest.fixture
def gunicorn(django_db_setup, tmp_path):
    server = Gunicorn(tmp_path, GUNICORN_ACCESS_LOG="true")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _not_found_count(scrape: str) -> float:
    pattern = r'^django_http_responses_total_by_status_view_method_total\{(?=[^}]*status="404")[^}]*\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, scrape, re.MULTILINE))


@pytest.mark.django_db
def test_two_workers_counts_add_up_in_one_scrape_and_survive_a_worker_restart(gunicorn):
    assert not (gunicorn.metrics_dir / "counter_999999.db").exists()  # emptied at start
    assert (gunicorn.metrics_dir / "not-ours.txt").exists()
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(20):  # until both workers have served (the kernel picks who accepts)
            statuses = list(pool.map(lambda _: gunicorn.get("/api/v1/no-such-thing/")[0], range(16)))
            assert statuses == [404] * 16
            sent += 16
            if len(gunicorn.worker_pids()) >= 2:
                break
    workers = gunicorn.worker_pids()
    assert len(workers) == 2, gunicorn.logs()

    # Any worker answers the scrape with the sum of both.
    for _ in range(4):
        assert _not_found_count(gunicorn.scrape()) == sent

    # A worker that dies is replaced; what it counted is still counted.
    os.kill(sorted(workers)[0], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while len(gunicorn.worker_pids() - workers) < 1 and time.monotonic() < deadline:
        gunicorn.get("/api/v1/no-such-thing/")
        sent += 1
        time.sleep(0.1)
    assert _not_found_count(gunicorn.scrape()) == sent

    # Access lines are JSON objects in the app's shape.
    access = [entry for entry in gunicorn.json_lines() if entry.get("event") == "access"]
    assert access, gunicorn.logs()
    line = next(entry for entry in access if entry["path"] == "/api/v1/no-such-thing/")
    assert line["method"] == "GET" and line["status"] == 404 and line["logger"] == "gunicorn.access"
    assert line["request_id"] and isinstance(line["duration_ms"], float) and line["timestamp"].endswith("Z")


@pytest.mark.django_db
def test_by_default_a_request_is_one_log_line_the_apps_with_the_operator_fields(django_db_setup, tmp_path):
    server = Gunicorn(tmp_path)
    try:
        server.start()
        status, _ = server.get(
            "/api/v1/no-such-thing/", {"X-Request-ID": "req-one-line", "User-Agent": "probe"}
        )
        assert status == 404
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            mine = [line for line in server.json_lines() if line.get("request_id") == "req-one-line"]
            if mine:
                break
            time.sleep(0.1)
    finally:
        server.stop()
    mine = [line for line in server.json_lines() if line.get("request_id") == "req-one-line"]
    assert [line["event"] for line in mine] == ["request_finished"], server.logs()
    (line,) = mine
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/no-such-thing/", 404)
    assert line["ip"] == "127.0.0.1" and line["user_id"] is None and line["duration_ms"] >= 0
    assert line["logger"] == "django_structlog.middlewares.request" and line["timestamp"].endswith("Z")
    assert not [entry for entry in server.json_lines() if entry.get("event") in ("access", "request_started")]


# --- Static files: admin served by whitenoise from the manifest --------------------------------

MANIFEST_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def _collectstatic(command: list[str], static_root: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "STATIC_MANIFEST")}
    env.update(STATIC_ROOT=str(static_root), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _admin_login_page(static_root: Path):
    from django.test import Client, override_settings

    with override_settings(DEBUG=False, STATIC_ROOT=static_root, STORAGES=MANIFEST_STORAGES):
        client = Client(raise_request_exception=False)  # a fresh handler: whitenoise reads STATIC_ROOT
        page = client.get("/admin/login/")
        stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.content.decode())
        asset = client.get(stylesheet.group(1)) if stylesheet else None
    return page, asset


@pytest.mark.django_db
def test_the_images_collectstatic_lets_production_serve_admin_with_hashed_static_files(tmp_path):
    _collectstatic(["sh", "docker/entrypoint.sh", "collectstatic"], tmp_path)
    assert (tmp_path / "staticfiles.json").exists()

    page, asset = _admin_login_page(tmp_path)
    assert page.status_code == 200
    assert asset is not None and asset.status_code == 200
    assert "immutable" in asset["Cache-Control"]  # whitenoise: hashed names are cached for ever
    assert b"".join(asset.streaming_content).startswith(b"/*")


@pytest.mark.django_db
def test_collectstatic_without_the_manifest_storage_is_what_made_admin_500(tmp_path):
    """The image used to run `DEBUG=true manage.py collectstatic`: plain storage, no manifest."""
    _collectstatic(["env", "DEBUG=true", "python", "manage.py", "collectstatic", "--no-input"], tmp_path)
    assert not (tmp_path / "staticfiles.json").exists()
    page, _ = _admin_login_page(tmp_path)
    assert page.status_code == 500


# --- Start-up commands: wait for the database, migrate one replica at a time ---------------------


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wait_for_db_gives_up_after_its_timeout_naming_the_database():
    closed = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    started = time.monotonic()
    result = _manage("wait_for_db", "--timeout", "1.5", DATABASE_URL=closed)
    assert result.returncode == 1
    assert "gave up after 1.5 s waiting for the database" in result.stderr
    assert time.monotonic() - started < 60


@pytest.mark.django_db
def test_wait_for_db_answers_once_the_database_is_up_and_migrated(django_db_setup):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("wait_for_db", "--timeout", "5", "--migrations", stdout=out)
    assert out.getvalue().strip() == "database is up and migrated"


def _advisory_locks_held(key: int) -> int:
    """Sessions holding the advisory lock `key`, seen from a connection of its own."""
    import psycopg

    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"] or 5432, user=database["USER"], dbname=database["NAME"]
    ) as other:
        return other.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND objsubid = 1",
            [key >> 32, key & 0xFFFFFFFF],
        ).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_migrate_locked_migrates_while_holding_the_lock_and_releases_it(monkeypatch):
    from django.core.management import call_command

    from jia_payments.core.management.commands import migrate_locked

    held_during = []
    monkeypatch.setattr(
        migrate_locked,
        "call_command",
        lambda name, **options: held_during.append(
            (name, _advisory_locks_held(migrate_locked.MIGRATION_LOCK_KEY))
        ),
    )
    call_command("migrate_locked")
    assert held_during == [("migrate", 1)]
    assert _advisory_locks_held(migrate_locked.MIGRATION_LOCK_KEY) == 0


@pytest.mark.django_db(transaction=True)
def test_migrate_locked_waits_for_the_replica_that_migrates(monkeypatch):
    import psycopg
    from django.core.management import CommandError, call_command

    from jia_payments.core.management.commands import migrate_locked

    ran = []
    monkeypatch.setattr(migrate_locked, "call_command", lambda name, **options: ran.append(name))
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"] or 5432, user=database["USER"], dbname=database["NAME"]
    ) as other_replica:
        other_replica.execute("SELECT pg_advisory_lock(%s)", [migrate_locked.MIGRATION_LOCK_KEY])
        with pytest.raises(CommandError, match="another migrate held the migration lock"):
            call_command("migrate_locked", "--lock-timeout", "1")
        assert ran == []
        other_replica.execute("SELECT pg_advisory_unlock(%s)", [migrate_locked.MIGRATION_LOCK_KEY])
    call_command("migrate_locked", "--lock-timeout", "1")
    assert ran == ["migrate"]


@pytest.fixture
def threaded_gunicorn(django_db_setup, tmp_path):
    """One gthread worker: keep-alive connections (the sync worker closes after every answer)."""
    server = Gunicorn(tmp_path, WEB_CONCURRENCY="1", GUNICORN_THREADS="2")
    try:
        server.start()
        yield server
    finally:
        server.stop()


UNREAD_BODIES = [
    (None, 60_000, 401),
    (None, 300_000, 401),
    ("service", 300_000, 413),
    ("service", 2_000_000, 413),
]


@pytest.mark.django_db
def test_an_answer_that_left_the_body_unread_says_close_and_the_next_request_is_served(threaded_gunicorn):
    import http.client

    served = 0
    for token, size, status in UNREAD_BODIES:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["better-auth-token"] = ISSUER.token("svc_big", role=token)
        body = b'{"description": "' + b"x" * size + b'"}'
        for _ in range(5):
            connection = http.client.HTTPConnection("127.0.0.1", threaded_gunicorn.port, timeout=30)
            connection.request("POST", "/api/v1/payments/", body=body, headers=headers)
            first = connection.getresponse()
            problem = json.loads(first.read())
            assert (first.status, problem["status"]) == (status, status)
            assert first.getheader("Connection") == "close", (token, size)
            connection.request("GET", "/healthz")  # http.client reconnects, as a client told "close" does
            second = connection.getresponse()
            second.read()
            served += second.status == 200
            connection.close()
    assert served == 5 * len(UNREAD_BODIES)


@pytest.mark.django_db
@pytest.mark.parametrize("server", ["gunicorn", "threaded_gunicorn"])
def test_a_client_still_sending_a_body_the_answer_left_unread_gets_that_answer(server, request):
    """The server answers 401 before the body has arrived and closes: it reads and drops the rest
    first, so the client's later sends are not reset and it reads the answer."""
    port = request.getfixturevalue(server).port
    size = 2_000_000
    head = (
        b"POST /api/v1/payments/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b"x" * 100_000)
        time.sleep(0.5)  # the answer is written meanwhile; before, the close followed it at once
        sock.sendall(b"x" * (size - 100_000))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    assert status_line.split()[1] == b"401", data[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["status"] == 401


def _raw_request(port: int, request: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)
    }
    return int(status_line.split()[1]), headers, body


REFUSED_BY_GUNICORN = [
    (b"GET /api/v1/plans/?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (
        b"GET /api/v1/plans/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
        "request_header_fields_too_large",
    ),
    (
        b"GET /api/v1/plans/ HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: 1\r\n" % n for n in range(120))
        + b"\r\n",
        431,
        "request_header_fields_too_large",
    ),
    (b"GET /api/v1/plans/ HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request"),
]


@pytest.mark.django_db
def test_requests_gunicorn_refuses_itself_are_answered_in_problem_details(gunicorn):
    for request_bytes, status, code in REFUSED_BY_GUNICORN:
        answered, headers, body = _raw_request(gunicorn.port, request_bytes)
        assert answered == status, body
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        problem = json.loads(body)
        assert (problem["status"], problem["code"]) == (status, code)
        assert problem["type"] == f"https://docs.jia.app/problems/{code}"
        assert set(problem) == {"type", "title", "status", "detail", "code"}
