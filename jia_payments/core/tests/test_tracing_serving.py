"""Traces from real serving processes over the real protocol: gunicorn (preloaded app) starts the
SDK in each worker after the fork and exports to an OTLP receiver; and the gRPC server."""

import json
import os
import subprocess
import sys

import pytest
import requests

from testsupport import webserver
from testsupport.grpcserver import GrpcServerProcess
from testsupport.processes import ROOT, testing_database_url
from testsupport.tracing import OtlpGrpcReceiver, OtlpReceiver
from testsupport.waiting import wait_for
from testsupport.webserver import WebServerProcess

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def otlp_receiver():
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.mark.django_db
def test_gunicorn_workers_export_the_request_span_with_the_callers_traceparent_as_parent(
    otlp_receiver, tmp_path
):
    server = WebServerProcess(
        env={**webserver.PRODUCTION, **otlp_receiver.environ()}, log_path=tmp_path / "gunicorn.log"
    )
    try:
        server.start()
        answer = requests.get(f"{server.url}/api/v1/plans/", headers={"traceparent": TRACEPARENT}, timeout=10)
        assert answer.status_code == 200, server.logs()

        def server_spans():
            return [s for s in otlp_receiver.spans() if s.name == "GET api/v1/plans/"]

        [served, *_] = wait_for(server_spans, timeout=30, what="the request span at the receiver")
    finally:
        server.stop()
    logs = server.logs()
    assert (served.trace_id, served.parent_span_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert served.kind == 2  # SERVER
    assert served.resource["service.name"] == "jia-payments"
    assert served.resource["jia.role"] == "web"
    worker_pid = int(served.resource["service.instance.id"].rsplit("-", 1)[1])
    assert worker_pid != server.process.pid  # started in a worker after the fork, not in the master
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
        env = {**os.environ, **receiver.environ(), "DATABASE_URL": testing_database_url()}
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

    server = GrpcServerProcess(
        env={**webserver.PRODUCTION, **otlp_receiver.environ()}, log_path=tmp_path / "grpcserver.log"
    )
    try:
        server.start()
        channel = grpc.insecure_channel(server.address)
        check = channel.unary_unary(GRPC_HEALTH_CHECK)  # bytes in, bytes out: no stubs needed
        check(b"", metadata=[("traceparent", TRACEPARENT)], timeout=10)
        served = wait_for(
            lambda: [s for s in otlp_receiver.spans() if s.name == GRPC_HEALTH_CHECK],
            timeout=30,
            what="the call's span at the receiver",
        )[0]
    finally:
        server.stop()
    assert (served.trace_id, served.parent_span_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert served.resource["jia.role"] == "grpc"
