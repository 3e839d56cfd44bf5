"""Settings come from the environment; production refuses to start without its secrets."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.tokens import TokenIssuer

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-secret-9f8e7d6c5b4a3928171605ab",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/jia_payments",
    "STRIPE_SECRET": "sk_live_" + "a" * 30,
    "ALLOWED_HOSTS": "payments.jia.app",
    "AUTH_PUBLIC_KEY_PEM": TokenIssuer().public_pem,
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}
CONFIG_NAMES = [
    *PRODUCTION,
    "AUTH_JWKS_PATH",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "POSTGRES_DSN",
    "REDIS_URL",
    "SECURE_SSL_REDIRECT",
    "CELERY_TASK_ALWAYS_EAGER",
    "AUTH_PUBLIC_KEY_PEM",
]


def _manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name not in CONFIG_NAMES}
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "STRIPE_SECRET"])
def test_production_without_a_secret_refuses_to_start_naming_it(missing):
    env = {name: value for name, value in PRODUCTION.items() if name != missing}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_postgres_dsn_is_an_alias_of_database_url():
    env = {name: value for name, value in PRODUCTION.items() if name != "DATABASE_URL"}
    env["POSTGRES_DSN"] = PRODUCTION["DATABASE_URL"]
    code = (
        "from django.conf import settings; from django.db import connections; "
        "from django_prometheus.db.backends.postgresql.base import DatabaseWrapper; "
        "print(settings.DATABASES['default']['ENGINE'], isinstance(connections['default'], DatabaseWrapper))"
    )
    result = _manage("shell", "--no-imports", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    # PostgreSQL's backend with django-prometheus' query counters (settings "Metrics"), whose
    # health check polls the socket (jia_payments.core.ops.postgresql)
    assert result.stdout.strip() == "jia_payments.core.ops.postgresql True"


def test_production_configuration_passes_check_deploy():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_embedded_defaults_need_nothing_but_debug():
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'],"
        " s.CELERY_TASK_ALWAYS_EAGER, s.EVENTS_PROVIDER, s.STRIPE_API_BASE)"
    )
    result = _manage("shell", "--no-imports", "-c", code, DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django_prometheus.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
        "True",
        "outbox",
        "http://127.0.0.1:8420",
    ]


def test_redis_parts_build_the_cache_url():
    code = "from django.conf import settings as s; print(s.CACHES['default']['LOCATION'])"
    result = _manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        DEBUG="true",
        REDIS_ADDR="cache.internal:6380",
        REDIS_DB="3",
        REDIS_PASSWORD="pw",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "redis://:pw@cache.internal:6380/3"


def test_production_without_a_token_verification_key_fails_its_checks():
    env = {name: value for name, value in PRODUCTION.items() if name != "AUTH_PUBLIC_KEY_PEM"}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "core.E005" in result.stderr
    assert "AUTH_PUBLIC_KEY_PEM" in result.stderr


def test_a_debug_server_without_a_key_passes_its_checks():
    result = _manage("check", DEBUG="true")
    assert result.returncode == 0, result.stderr


SECURITY = (
    "from django.conf import settings as s;"
    "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
    " getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
)


def test_https_redirect_and_secure_cookies_default_on_behind_a_declared_tls_proxy():
    result = _manage("shell", "--no-imports", "-c", SECURITY, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True True ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_without_a_tls_proxy_production_answers_plain_http_and_check_deploy_warns():
    env = {name: value for name, value in PRODUCTION.items() if name != "SECURE_PROXY_SSL_HEADER"}
    result = _manage("shell", "--no-imports", "-c", SECURITY, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False False None"
    deploy = _manage("check", "--deploy", **env)
    assert "security.W008" in deploy.stderr  # the redirect is off: said, not silent


def test_the_environment_turns_the_https_redirect_on_without_a_proxy():
    env = {name: value for name, value in PRODUCTION.items() if name != "SECURE_PROXY_SSL_HEADER"}
    result = _manage("shell", "--no-imports", "-c", SECURITY, **env, SECURE_SSL_REDIRECT="true")
    assert result.stdout.split()[0] == "True", result.stderr


POOLED_QUERIES = """
import threading
from django.db import connection, connections
pids, lock = set(), threading.Lock()
def query():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid() FROM pg_sleep(0.3)")
        with lock:
            pids.add(cursor.fetchone()[0])
    connections["default"].close()  # back to the pool
threads = [threading.Thread(target=query) for _ in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
pool = connection.pool
print(type(pool).__module__, pool.max_size, len(pids))
"""


@pytest.mark.django_db
def test_postgres_max_conns_serves_every_query_through_psycopgs_pool_of_that_size():
    from django.conf import settings as django_settings

    from testsupport.celery_worker import production_python

    database = django_settings.DATABASES["default"]
    env = {name: value for name, value in os.environ.items() if name not in CONFIG_NAMES}
    env.update(PRODUCTION)
    env["DATABASE_URL"] = (
        f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )
    env["POSTGRES_MAX_CONNS"] = "2"
    result = subprocess.run(
        [production_python(), "manage.py", "shell", "--no-imports", "-c", POOLED_QUERIES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # six threads at once, two connections: every query waited for one of the pool's
    assert result.stdout.split() == ["psycopg_pool.pool", "2", "2"]


def test_make_run_serves_on_the_embedded_defaults_whatever_the_shell_exports():
    """A developer's shell often exports REDIS_URL and DATABASE_URL (for `make test`): `make run`
    still runs tasks in process (no worker reads a broker there) on its own SQLite and memory cache."""
    exported = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:6379/4",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/jia_payments",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/4",
    }
    planned = subprocess.run(
        [shutil.which("make"), "--dry-run", "--no-print-directory", "run"],
        cwd=ROOT,
        env=exported,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (serve,) = [line for line in planned.stdout.splitlines() if "manage.py runserver" in line]
    code = (
        "from django.conf import settings; "
        "print(settings.CELERY_TASK_ALWAYS_EAGER, settings.CACHES['default']['BACKEND'], "
        "settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1])"
    )
    run_env = shlex.split(serve.split("manage.py runserver")[0])  # env -u ... DEBUG=true ... python
    shown = subprocess.run(
        [*run_env, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=exported,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [
        "True",
        "django.core.cache.backends.locmem.LocMemCache",
        "sqlite3",
    ]
