"""What the image runs, run here: docker/entrypoint.sh's web and worker roles on the production
environment (PRODUCTION_VENV: requirements/base.txt and nothing else), production settings from the
environment, on PostgreSQL, Redis, a Kafka-protocol broker and the fake Stripe.

The compose stack's smoke test where no Docker engine runs: the web role migrates and serves
/healthz and /readyz; a signed Stripe webhook is enqueued by the web process and processed by the
worker process; a payment created over the API reaches the broker through the worker's relay.
"""

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from djstripe.models import WebhookEndpoint

from payments.models import StripeEvent
from testsupport.localstripe import API_KEY, signature_header
from testsupport.processes import free_port, stop_process
from testsupport.waiting import wait_until_answering

ROOT = Path(__file__).resolve().parents[3]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
WEBHOOK_SECRET = "whsec_imagesmoke0123456789abcdefghij"
WAIT_SECONDS = 180  # a bound for a busy 2-core machine, not a speed assertion

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("PRODUCTION_VENV"),
        reason="PRODUCTION_VENV (the requirements/base.txt environment) is not set: make test sets it",
    ),
]


class Role:
    """One `docker/entrypoint.sh ROLE` process, as a container runs it."""

    def __init__(self, role: str, env: dict[str, str], log_path: Path, *args: str):
        self.log_path = log_path
        self.log = open(log_path, "w+")
        self.process = subprocess.Popen(
            ["/bin/sh", str(ENTRYPOINT), role, *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 30) -> None:
        stop_process(self.process, timeout=timeout, group=True)
        self.log.close()


def wait_for(condition, what: str, process: Role, timeout: float = WAIT_SECONDS):
    return wait_until_answering(process.process, condition, what=what, logs=process.output, timeout=timeout)


def production_env(*, token_issuer, localstripe, tansu, topic: str, tmp_path: Path) -> dict[str, str]:
    """A container's environment: production settings, this machine's services, nothing of pytest's."""
    venv = Path(os.environ["PRODUCTION_VENV"])
    database_url = (
        urlparse(os.environ["DATABASE_URL"])
        ._replace(path=f"/{settings.DATABASES['default']['NAME']}")
        .geturl()
    )
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "testsupport.image_settings",
        "DEBUG": "false",
        "SECRET_KEY": "image-smoke-" + "s" * 40,
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ["REDIS_URL"],
        "STRIPE_SECRET": API_KEY,
        "STRIPE_API_BASE": localstripe.url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "AUTH_PUBLIC_KEY_PEM": token_issuer.public_pem,
        "EVENTS_BROKERS": tansu.bootstrap_servers,
        "EVENTS_TOPIC": topic,
        # Its own queue: another test's worker on the same Redis must not take its tasks.
        "CELERY_TASK_DEFAULT_QUEUE": f"queue-{topic}",
        "LOG_LEVEL": "INFO",
        "DB_WAIT_TIMEOUT": "60",
    }


@pytest.fixture
def image(token_issuer, localstripe, tansu, tmp_path):
    if not tansu.running:
        tansu.start()
    topic = f"image-smoke-{uuid.uuid4().hex[:12]}"
    tansu.create_topic(topic)
    env = production_env(token_issuer=token_issuer, localstripe=localstripe, tansu=tansu, topic=topic,
                         tmp_path=tmp_path)  # fmt: skip
    port = free_port()
    worker = Role(
        "worker",
        {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker-metrics"),
         "CONTAINER_ROLE_FILE": str(tmp_path / "worker.role")},
        tmp_path / "worker.log",
        "--concurrency=1", "--without-gossip", "--without-mingle", "-n", f"smoke-{port}@%h",
    )  # fmt: skip
    web = Role(
        "web",
        {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2",
         "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "web-metrics"),
         "CONTAINER_ROLE_FILE": str(tmp_path / "web.role")},
        tmp_path / "web.log",
    )  # fmt: skip
    try:
        yield web, worker, f"http://127.0.0.1:{port}", topic, env
    finally:
        web.stop()
        worker.stop()


def test_the_images_web_and_worker_roles_serve_enqueue_process_and_relay(
    image, token_issuer, tansu, tmp_path
):
    web, worker, base, topic, env = image
    port = base.rsplit(":", 1)[1]
    node = f"smoke-{port}@{socket.gethostname()}"
    wait_for(lambda: requests.get(f"{base}/healthz", timeout=5).status_code == 200, "/healthz", web)
    ready = wait_for(
        lambda: (r := requests.get(f"{base}/readyz", timeout=10)).status_code == 200 and r, "/readyz", web
    )
    assert ready.headers["Content-Type"].startswith("application/json")
    wait_for(lambda: " ready." in worker.output(), "the worker", worker)
    # The image's HEALTHCHECK (web) and compose's (worker, beat) answer healthy.
    for role in ("web", "worker", "beat"):
        probe = subprocess.run(
            [str(Path(os.environ["PRODUCTION_VENV"]) / "bin" / "python"), "docker/healthcheck.py", role],
            cwd=ROOT, env={**env, "PORT": port, "CELERY_NODE_NAME": node}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert probe.returncode == 0, (role, probe.stdout, probe.stderr)
    # The image's HEALTHCHECK gives no role: a worker container is checked as the worker it runs.
    probe = subprocess.run(
        [str(Path(os.environ["PRODUCTION_VENV"]) / "bin" / "python"), "docker/healthcheck.py"],
        cwd=ROOT, env={**env, "CELERY_NODE_NAME": node, "CONTAINER_ROLE_FILE": str(tmp_path / "worker.role")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (probe.returncode, probe.stdout) == (0, f"worker {node} answers\n"), probe.stderr

    # A signed Stripe webhook: the web process stores and enqueues it (kombu's Redis transport in
    # the production environment), the worker process takes it from the broker and processes it.
    with_secret = {"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_WEBHOOK_UUID": ""}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in with_secret.items():
            patch.setattr(settings, name, value)
        call_command("stripe_webhook_endpoint", verbosity=0)
    endpoint = WebhookEndpoint.objects.get()
    event_id = f"evt_smoke_{uuid.uuid4().hex[:16]}"
    body = json.dumps({
        "id": event_id, "object": "event", "type": "customer.created", "api_version": "2024-06-20",
        "created": int(time.time()), "livemode": False,
        "data": {"object": {"id": "cus_smoke", "object": "customer"}},
    }).encode()  # fmt: skip
    response = requests.post(
        f"{base}/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature_header(body, WEBHOOK_SECRET),
        },
        timeout=30,
    )
    assert response.status_code == 200, (response.status_code, response.text, web.output())
    processed = wait_for(
        lambda: StripeEvent.objects.filter(pk=event_id).exclude(status=StripeEvent.Status.PENDING).first(),
        "the worker to process the webhook event",
        worker,
    )
    assert processed.status == StripeEvent.Status.IGNORED  # no handler for customer.created

    # A payment created over the API: its outbox event reaches the broker through the worker's relay.
    created = requests.post(
        f"{base}/api/v1/payments/",
        json={"amount": 1999, "currency": "USD", "payment_method": "bank_transfer",
              "customer_id": "user_smoke", "order_id": "order-smoke-1", "description": "smoke"},
        headers={"better-auth-token": token_issuer.token("svc_smoke", role="service"),
                 "Idempotency-Key": f"smoke-{uuid.uuid4()}"},
        timeout=30,
    )  # fmt: skip
    assert created.status_code == 201, (created.text, web.output())
    payment_id = created.json()["id"]
    records = tansu.read_topic(topic, min_messages=1, timeout=WAIT_SECONDS)
    events = [json.loads(r.value) for r in records if r.key.decode() == payment_id]
    assert [e["type"] for e in events] == ["payment.created"], worker.output()
    assert events[0]["data"]["id"] == payment_id


def test_the_web_role_refuses_to_start_without_a_token_verification_key(
    token_issuer, localstripe, tansu, tmp_path
):
    env = production_env(token_issuer=token_issuer, localstripe=localstripe, tansu=tansu, topic="unused",
                         tmp_path=tmp_path)  # fmt: skip
    env["AUTH_PUBLIC_KEY_PEM"] = ""
    web = Role("web", {**env, "GUNICORN_BIND": f"127.0.0.1:{free_port()}"}, tmp_path / "web.log")
    try:
        web.process.wait(timeout=WAIT_SECONDS)
    finally:
        web.stop()
    assert web.process.returncode != 0
    assert "core.E005" in web.output()
