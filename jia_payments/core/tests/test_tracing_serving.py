"""Traces from real serving processes over the real protocol: gunicorn (preloaded app) starts the
SDK in each worker after the fork and exports to an OTLP receiver; and the gRPC server."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings

from testsupport.tokens import TokenIssuer
from testsupport.tracing import OtlpGrpcReceiver, OtlpReceiver
from testsupport.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-secret-9f8e7d6c5b4a3928171605ab",
    "STRIPE_SECRET": "sk_live_" + "a" * 30,
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_database_url() -> str:
    return (
        urlparse(os.environ["DATABASE_URL"])
        ._replace(path=f"/{settings.DATABASES['default']['NAME']}")
        .geturl()
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def otlp_receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.mark.django_db
def test_gunicorn_workers_export_the_request_span_with_the_callers_traceparent_as_parent(
    otlp_receiver, tmp_path
):
    port = _free_port()
    env = {
        **os.environ,
        **PRODUCTION,
        **otlp_receiver.environ(),
        "DATABASE_URL": _test_database_url(),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    with open(tmp_path / "gunicorn.log", "w+") as log:
        process = subprocess.Popen(
            [GUNICORN, "-c", "gunicorn.conf.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}/api/v1/plans/"

            def answered():
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                try:
                    return (
                        requests.get(url, headers={"traceparent": TRACEPARENT}, timeout=10).status_code == 200
                    )
                except requests.ConnectionError:
                    return False

            wait_for(answered, timeout=120, what="gunicorn answering")

            def server_spans():
                return [s for s in otlp_receiver.spans() if s.name == "GET api/v1/plans/"]

            [served, *_] = wait_for(server_spans, timeout=30, what="the request span at the receiver")
        finally:
            _stop(process)
        logs = (tmp_path / "gunicorn.log").read_text()
    assert (served.trace_id, served.parent_span_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert served.kind == 2  # SERVER
    assert served.resource["service.name"] == "jia-payments"
    assert served.resource["jia.role"] == "web"
    worker_pid = int(served.resource["service.instance.id"].rsplit("-", 1)[1])
    assert worker_pid != process.pid  # started in a worker after the fork, not in the master
    events = [line["event"] for line in _json_lines(logs)]
    booted = {event.rsplit(" ", 1)[1] for event in events if event.startswith("Booting worker with pid")}
    assert events.count("tracing started") == len(booted) >= 1  # once per worker, never the master
    statements = [s.attributes.get("db.statement", "") for s in otlp_receiver.spans()]
    assert any("pricing_plan" in st for st in statements)  # the worker's database calls, traced


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "event" in parsed:
            lines.append(parsed)
    return lines


EXPORT_OVER_GRPC = """
import django
django.setup()
from django.test import Client
from jia_payments.core.ops import tracing
assert tracing.start("worker")
assert Client().get("/api/v1/plans/", HTTP_TRACEPARENT="{traceparent}").status_code == 200
tracing.flush()
"""


@pytest.mark.django_db
def test_with_otel_exporter_otlp_protocol_grpc_spans_go_over_grpc():
    with OtlpGrpcReceiver() as receiver:
        env = {**os.environ, **receiver.environ(), "DATABASE_URL": _test_database_url()}
        done = subprocess.run(
            [sys.executable, "-c", EXPORT_OVER_GRPC.format(traceparent=TRACEPARENT)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        spans = receiver.spans()
    (served,) = [s for s in spans if s.name == "GET api/v1/plans/"]
    assert (served.trace_id, served.parent_span_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert served.resource["jia.role"] == "worker"


GRPC_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@pytest.mark.django_db
def test_the_grpc_server_exports_its_calls_with_the_callers_traceparent_as_parent(otlp_receiver, tmp_path):
    import grpc

    port = _free_port()
    env = {
        **os.environ,
        **PRODUCTION,
        **otlp_receiver.environ(),
        "DATABASE_URL": _test_database_url(),
        "AUTH_PUBLIC_KEY_PEM": TokenIssuer().public_pem,  # production refuses to start without one
    }
    with open(tmp_path / "grpcserver.log", "w+") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "grpcserver", "--address", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def listening():
                assert process.poll() is None, (tmp_path / "grpcserver.log").read_text()[-2000:]
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", port)) == 0

            wait_for(listening, timeout=60, what="the gRPC server listening")
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            check = channel.unary_unary(GRPC_HEALTH_CHECK)  # bytes in, bytes out: no stubs needed
            check(b"", metadata=[("traceparent", TRACEPARENT)], timeout=10)
            served = wait_for(
                lambda: [s for s in otlp_receiver.spans() if s.name == GRPC_HEALTH_CHECK],
                timeout=30,
                what="the call's span at the receiver",
            )[0]
        finally:
            _stop(process)
    assert (served.trace_id, served.parent_span_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert served.resource["jia.role"] == "grpc"
