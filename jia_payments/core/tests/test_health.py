"""/healthz answers while the process lives; /readyz names the dependency that is down, quickly."""

import socket
import threading

import pytest
from django.test import override_settings
from health_check.checks import Database

from testsupport.processes import free_port

pytestmark = pytest.mark.django_db  # the check connects from its own thread: no transaction needed


@pytest.fixture
def with_broker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a deployment with a real broker


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers: a hung dependency."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_healthz_answers_on_the_pod_address_over_plain_http(client):
    with override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["payments.jia.app"]):
        response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_does_not_depend_on_redis(client):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        assert client.get("/healthz").status_code == 200


def test_readyz_is_200_when_every_dependency_answers(client, with_broker):
    response = client.get("/readyz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "celery_broker": "ok"},
    }


def test_readyz_names_redis_when_it_is_down(client, settings, with_broker):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"].startswith("Unavailable: Unable to connect to Redis")
    assert body["checks"]["database"] == "ok"


def test_readyz_names_the_broker_and_redis_when_redis_hangs(client, settings, with_broker, silent_server):
    settings.READINESS_TIMEOUT = 0.3
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent_server}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["celery_broker", "redis"]


def test_readyz_checks_kafka_only_when_events_go_to_kafka(client, settings, silent_server):
    settings.READINESS_TIMEOUT = 0.3
    assert "kafka" not in client.get("/readyz").json()["checks"]
    settings.EVENTS_PROVIDER = "kafka"
    settings.EVENTS_BROKERS = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{silent_server}"]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["kafka"]
    assert response.json()["checks"]["kafka"] == "Unavailable: no broker answered"


def test_readyz_answers_when_a_check_hangs_beyond_its_own_timeout(client, settings, monkeypatch):
    """A probe stuck where no client timeout reaches it is given up on, and named."""
    settings.READINESS_TIMEOUT = 0.2
    release = threading.Event()
    monkeypatch.setattr(Database, "run", lambda self: release.wait(30))
    try:
        response = client.get("/readyz")
    finally:
        release.set()
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"]["database"] == "Unavailable: Timed out after 0.2 seconds"
