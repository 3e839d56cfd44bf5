"""The image and the compose stack as an operator meets them (no Docker engine here: their files are
read as Docker reads them; test_production_path runs what they start)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker" / "docker-compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def test_the_image_installs_the_hash_pinned_lock_and_has_a_health_check():
    assert "pip install --require-hashes -r requirements/base.txt" in DOCKERFILE
    assert re.search(
        r'^HEALTHCHECK .*\n?.*CMD \["python", "docker/healthcheck.py"\]', DOCKERFILE, re.MULTILINE
    )


def test_every_locked_requirement_is_pinned_with_a_hash():
    for lock in ("base.txt", "dev.txt"):
        lines = (ROOT / "requirements" / lock).read_text().splitlines()
        requirements = [n for n, line in enumerate(lines) if re.match(r"^[A-Za-z0-9]", line)]
        assert len(requirements) > 50, lock
        for n in requirements:
            assert re.match(r"^[A-Za-z0-9_.-]+==\S+", lines[n]), (lock, lines[n])
            assert re.match(r"^\s+--hash=sha256:[0-9a-f]{64}", lines[n + 1]), (lock, lines[n])


def test_the_runtime_lock_has_the_extras_production_needs():
    names = {
        line.split("==")[0].lower()
        for line in (ROOT / "requirements" / "base.txt").read_text().splitlines()
        if re.match(r"^[A-Za-z0-9]", line)
    }
    # celery[redis] (kombu's Redis transport needs packaging) and psycopg[pool] (POSTGRES_MAX_CONNS)
    assert {"celery", "kombu", "redis", "packaging", "psycopg", "psycopg-binary", "psycopg-pool"} <= names
    assert not names & {"pytest", "ruff", "factory-boy"}


def test_the_build_context_leaves_out_history_environments_databases_and_secrets():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".venv-*", "var", "*.sqlite3", ".env", ".env.*", "**/.env"} <= ignored


def test_every_compose_service_has_a_health_check_and_a_restart_policy():
    services = COMPOSE["services"]
    assert set(services) >= {"postgres", "redis", "kafka", "web", "worker", "beat"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name
        assert service.get("restart") == "unless-stopped", name
    roles = {name: services[name]["healthcheck"]["test"][-1] for name in ("worker", "beat")}
    assert roles == {"worker": "worker", "beat": "beat"}


def test_compose_serves_plain_http_on_localhost_unless_a_tls_proxy_is_declared():
    env = COMPOSE["x-app"]["environment"]
    assert env["SECURE_PROXY_SSL_HEADER"] == "${SECURE_PROXY_SSL_HEADER:-}"
    assert "SECURE_SSL_REDIRECT" not in env  # the default follows the proxy declaration
    assert "localhost" in env["ALLOWED_HOSTS"]
    assert COMPOSE["services"]["web"]["ports"] == ["8000:8000"]
    for dependency in ("postgres", "redis", "kafka"):
        assert COMPOSE["x-app"]["depends_on"][dependency] == {"condition": "service_healthy"}
