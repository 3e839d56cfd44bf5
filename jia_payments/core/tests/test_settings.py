"""Settings come from the environment; production refuses to start without its secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-secret-9f8e7d6c5b4a3928171605ab",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/jia_payments",
    "STRIPE_SECRET": "sk_live_" + "a" * 30,
    "ALLOWED_HOSTS": "payments.jia.app",
}
CONFIG_NAMES = [
    *PRODUCTION,
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
