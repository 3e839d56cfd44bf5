"""`manage.py grpcserver` as operators run it: a real process, grpcurl, SIGTERM."""

import json
import time

import pytest

from testsupport.grpcserver import GrpcServerProcess


def test_grpcurl_lists_the_services_and_checks_health(grpcserver_process):
    listed = grpcserver_process.grpcurl("list")
    assert listed.returncode == 0, listed.stderr
    assert "pricing.v1.PricingService" in listed.stdout.split()
    for service in ("", "database", "cache"):
        checked = grpcserver_process.grpcurl("grpc.health.v1.Health/Check", data={"service": service})
        assert checked.returncode == 0, checked.stderr
        assert json.loads(checked.stdout) == {"status": "SERVING"}


def test_a_call_is_one_json_log_line(grpcserver_process):
    answer = grpcserver_process.grpcurl("pricing.v1.PricingService/GetPricingZone", data={"iso_code": "ZZ"})
    assert "Code: NotFound" in answer.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and '"grpc_call"' not in grpcserver_process.log:
        time.sleep(0.1)
    (line,) = [json.loads(x) for x in grpcserver_process.log.splitlines() if '"grpc_call"' in x]
    assert (line["method"], line["code"], line["level"]) == (
        "/pricing.v1.PricingService/GetPricingZone",
        "NOT_FOUND",
        "info",
    )


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
        statuses = {
            name: json.loads(server.grpcurl("grpc.health.v1.Health/Check", data={"service": name}).stdout)[
                "status"
            ]
            for name in ("", "database", "cache")
        }
    finally:
        server.stop()
    assert statuses == {"": "NOT_SERVING", "database": "NOT_SERVING", "cache": "SERVING"}
