"""`manage.py grpcserver` as operators run it: a real process, grpcurl, SIGTERM."""

import json
import time

import pytest
import requests

from testsupport.grpcserver import GrpcServerProcess
from testsupport.processes import free_port


def test_grpcurl_lists_the_services_and_checks_health(grpcserver_process):
    listed = grpcserver_process.grpcurl("list")
    assert listed.returncode == 0, listed.stderr
    assert "pricing.v1.PricingService" in listed.stdout.split()
    for service in ("", "database", "cache"):
        assert grpcserver_process.health(service) == "SERVING"


def test_a_call_is_one_json_log_line(grpcserver_process):
    method = "/pricing.v1.PricingService/GetPricingZone"
    answer = grpcserver_process.grpcurl(method.lstrip("/"), data={"iso_code": "ZZ"})
    assert "Code: NotFound" in answer.stderr

    def calls_of(name: str) -> list[dict]:  # grpcurl's reflection stream logs its own line
        logged = [json.loads(x) for x in grpcserver_process.log.splitlines() if '"grpc_call"' in x]
        return [line for line in logged if line["method"] == name]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not calls_of(method):
        time.sleep(0.1)
    (line,) = calls_of(method)
    assert (line["method"], line["code"], line["level"]) == (method, "NOT_FOUND", "info")


def test_sigterm_stops_within_the_grace_period(grpcserver_process):
    started = time.monotonic()
    assert grpcserver_process.terminate(timeout=30) == 0
    assert time.monotonic() - started < 10
    assert "grpc server stopped" in grpcserver_process.log


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_health_is_not_serving(tmp_path):
    server = GrpcServerProcess(
        env={"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing", "READINESS_TIMEOUT": "1"},
        log_path=tmp_path / "grpc.log",
    )
    try:
        server.start()
        statuses = {name: server.health(name) for name in ("", "database", "cache")}
        call = server.grpcurl("pricing.v1.PricingService/ListPlans", data={})
    finally:
        server.stop()
    assert statuses == {"": "NOT_SERVING", "database": "NOT_SERVING", "cache": "SERVING"}
    assert "Code: Unavailable" in call.stderr
    assert "A dependency is unavailable; try again later." in call.stderr


@pytest.mark.django_db(transaction=True)
def test_its_metrics_are_served_on_grpc_metrics_port(tmp_path):
    port = free_port()
    server = GrpcServerProcess(
        env={"GRPC_METRICS_PORT": str(port), "METRICS_TOKEN": "m" * 32}, log_path=tmp_path / "grpc.log"
    )
    try:
        server.start()
        server.grpcurl("pricing.v1.PricingService/GetPricingZone", data={"iso_code": "ZZ"})
        refused = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        scraped = requests.get(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer " + "m" * 32}, timeout=10
        )
    finally:
        server.stop()
    assert refused.status_code == 401
    assert (
        'grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetPricingZone",'
        'grpc_service="pricing.v1.PricingService",grpc_type="unary"} 1.0'
    ) in scraped.text
