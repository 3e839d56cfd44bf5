"""The gRPC server's shared machinery: reflection, health, authentication, rate limits, the error
mapping, one log line and the metrics per call (a streaming one's when the stream ends)."""

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import grpc
import pytest
from django.conf import settings
from django.core import signals
from django.db import OperationalError
from django.test import override_settings
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY
from rest_framework import exceptions

from jia_payments.core.api import errors as domain
from jia_payments.core.grpc import interceptors
from jia_payments.core.grpc.errors import status_for
from jia_payments.core.grpc.health import HealthMonitor
from jia_payments.protos.pricing.v1 import pricing_pb2 as pb
from jia_payments.protos.pricing.v1.pricing_pb2_grpc import PricingServiceStub
from pricing import selectors
from testsupport.grpc import auth, details_of, reason_of
from testsupport.logcapture import capture_logs
from testsupport.processes import free_port
from testsupport.waiting import wait_for

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
ZONE = pb.GetPricingZoneRequest(iso_code="ZZ")  # answers NOT_FOUND: a call that needs no data
PRICING_FILE = reflection_pb2.ServerReflectionRequest(file_containing_symbol="pricing.v1.PricingService")


def health_of(channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service)).status


# --- reflection and health ---------------------------------------------------------------------


def test_reflection_lists_every_service_for_grpcurl(grpc_server):
    server, _ = grpc_server
    listed = subprocess.run(
        [GRPCURL, "-plaintext", f"127.0.0.1:{server.port}", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [
        "entitlement.v1.EntitlementService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "payment.v1.PaymentService",
        "pricing.v1.PricingService",
    ]
    described = subprocess.run(
        [GRPCURL, "-plaintext", f"127.0.0.1:{server.port}", "describe", "pricing.v1.PricingService"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "rpc GetPrices ( .pricing.v1.GetPricesRequest ) returns ( .pricing.v1.GetPricesResponse );" in (
        described.stdout
    )


def test_health_serves_overall_database_and_cache(grpc_server):
    _, channel = grpc_server
    assert [health_of(channel, name) for name in ("", "database", "cache")] == [
        health_pb2.HealthCheckResponse.SERVING
    ] * 3
    with pytest.raises(grpc.RpcError) as raised:
        health_of(channel, "kafka")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_dependency_down_is_not_serving_and_so_is_the_whole(grpc_server):
    server, channel = grpc_server
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", READINESS_TIMEOUT=5):
        assert server.health.update() == {"database": True, "cache": False}
    assert health_of(channel, "cache") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_of(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_of(channel, "database") == health_pb2.HealthCheckResponse.SERVING
    with override_settings(READINESS_TIMEOUT=5):  # a loaded test machine is slow, not down
        assert server.health.update() == {"database": True, "cache": True}
    assert health_of(channel, "") == health_pb2.HealthCheckResponse.SERVING


def _waiting_for_its_interval(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def test_the_monitor_probes_at_start_and_then_only_each_interval_never_two_at_once(monkeypatch):
    """A second probe beside start's (or a test's) would set, when it ends, what it found before."""
    monitor = HealthMonitor(interval=3600)
    probed = []

    def probe():
        probed.append(threading.current_thread().name)
        return {"database": True, "cache": True}

    monkeypatch.setattr(monitor, "probe", probe)
    monitor.start()
    try:
        wait_for(lambda: _waiting_for_its_interval(monitor._thread), what="the monitor waiting")
        assert probed == [threading.current_thread().name]
    finally:
        monitor.stop()


def test_stopping_goes_not_serving_first(grpc_server):
    server, channel = grpc_server
    server.health.stop()
    assert health_of(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING


# --- authentication: the REST rules --------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        [("better-auth-token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")],
        [("authorization", "Bearer not-a-verifiable-token")],
    ],
)
def test_a_bad_token_is_unauthenticated_even_where_none_is_needed(grpc_channel, metadata):
    with pytest.raises(grpc.RpcError) as raised:
        PricingServiceStub(grpc_channel).GetPricingZone(ZONE, metadata=metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(raised.value) == "authentication_failed"


def test_an_expired_token_is_unauthenticated(grpc_channel, token_issuer):
    expired = token_issuer.token("user_1", ttl=-3600)
    with pytest.raises(grpc.RpcError) as raised:
        PricingServiceStub(grpc_channel).GetPricingZone(ZONE, metadata=auth(expired))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == "Invalid or expired token."


# --- one log line per call, request ids, metrics ----------------------------------------------------


def _handled(method: str, code: str) -> float:
    labels = {
        "grpc_type": "unary",
        "grpc_service": "pricing.v1.PricingService",
        "grpc_method": method,
        "grpc_code": code,
    }
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


@pytest.mark.parametrize("header", ["better-auth-token", "authorization"])
def test_each_call_logs_one_line_with_the_old_service_s_fields_and_no_token(
    grpc_channel, token_issuer, header
):
    token = token_issuer.token("user_logged", role="service")
    value = token if header == "better-auth-token" else f"Bearer {token}"
    request_id = f"req-{uuid.uuid4()}"
    before = _handled("GetPricingZone", "NOT_FOUND")
    with capture_logs() as logs:
        with pytest.raises(grpc.RpcError) as raised:
            PricingServiceStub(grpc_channel).GetPricingZone(
                ZONE, metadata=[(header, value), ("x-request-id", request_id)]
            )
    assert dict(raised.value.initial_metadata())["x-request-id"] == request_id
    (line,) = logs.events("grpc_call")
    assert {key: line[key] for key in ("request_id", "user_id", "method", "code", "level")} == {
        "request_id": request_id,
        "user_id": "user_logged",
        "method": "/pricing.v1.PricingService/GetPricingZone",
        "code": "NOT_FOUND",
        "level": "info",
    }
    assert 0 < line["duration"] < 5
    assert token not in logs.text
    assert _handled("GetPricingZone", "NOT_FOUND") == before + 1


def test_a_call_without_a_sane_request_id_gets_a_new_one(grpc_channel, monkeypatch):
    new = uuid.UUID("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
    monkeypatch.setattr(interceptors.uuid, "uuid4", lambda: new)
    with capture_logs() as logs:
        with pytest.raises(grpc.RpcError) as raised:
            PricingServiceStub(grpc_channel).GetPricingZone(
                ZONE, metadata=[("x-request-id", "bad id; " + "x" * 200)]
            )
    given = dict(raised.value.initial_metadata())["x-request-id"]
    assert given == str(new)
    assert logs.events("grpc_call")[0]["request_id"] == given


def test_an_unexpected_error_is_internal_with_no_trace_and_logged(grpc_channel, monkeypatch):
    def broken(iso_code):
        raise RuntimeError("secret internals at /srv/app.py line 3")

    monkeypatch.setattr(selectors, "pricing_zone_get", broken)
    with capture_logs() as logs:
        with pytest.raises(grpc.RpcError) as raised:
            PricingServiceStub(grpc_channel).GetPricingZone(ZONE)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "An unexpected error occurred."
    assert "secret internals" not in str(raised.value.trailing_metadata())
    assert reason_of(raised.value) == "server_error"
    assert "secret internals" in logs.text  # for the operator, in the log
    assert logs.events("grpc_call")[0]["code"] == "INTERNAL"


# --- rate limits: the REST throttles, counters and rates ---------------------------------------------


def _rates(**overrides):
    framework = {**settings.REST_FRAMEWORK}
    framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], **overrides}
    return override_settings(REST_FRAMEWORK=framework)


def test_the_rest_rate_limit_is_resource_exhausted_with_retry_info(grpc_channel, token_issuer):
    stub = PricingServiceStub(grpc_channel)
    token = auth(token_issuer.token(f"user_{uuid.uuid4().hex[:8]}"))
    with _rates(user="2/min"):
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetPricingZone(ZONE, metadata=token)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetPricingZone(ZONE, metadata=token)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(raised.value) == "throttled"
    assert 0 < details_of(raised.value)["RetryInfo"].retry_delay.seconds <= 60


# --- the error mapping ------------------------------------------------------------------------------


class PlanFull(domain.Conflict):
    code = "plan_full"


class EntitlementExists(domain.Conflict):
    code = "entitlement_exists"


@pytest.mark.parametrize(
    ("exc", "code", "reason"),
    [
        (
            exceptions.ValidationError({"amount": ["Must be positive."]}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid",
        ),
        (domain.NotFound(), grpc.StatusCode.NOT_FOUND, "not_found"),
        (domain.InvalidTransition(), grpc.StatusCode.FAILED_PRECONDITION, "invalid_transition"),
        (PlanFull(), grpc.StatusCode.FAILED_PRECONDITION, "plan_full"),
        (EntitlementExists(), grpc.StatusCode.ALREADY_EXISTS, "entitlement_exists"),
        (domain.IdempotencyKeyReused(), grpc.StatusCode.ALREADY_EXISTS, "idempotency_key_reused"),
        (domain.IdempotencyKeyInProgress(), grpc.StatusCode.ABORTED, "idempotency_key_in_progress"),
        (exceptions.NotAuthenticated(), grpc.StatusCode.UNAUTHENTICATED, "not_authenticated"),
        (exceptions.PermissionDenied(), grpc.StatusCode.PERMISSION_DENIED, "permission_denied"),
        (exceptions.Throttled(3), grpc.StatusCode.RESOURCE_EXHAUSTED, "throttled"),
        (domain.ServiceUnavailable(), grpc.StatusCode.UNAVAILABLE, "service_unavailable"),
        (OperationalError("connection refused"), grpc.StatusCode.UNAVAILABLE, "service_unavailable"),
        (ZeroDivisionError(), grpc.StatusCode.INTERNAL, "server_error"),
    ],
)
def test_errors_map_to_status_codes_with_rest_s_code_as_the_reason(exc, code, reason):
    status = status_for(exc)
    assert status.code == code.value[0]
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == (reason, "jia.app")


def test_validation_errors_are_bad_request_field_violations():
    from google.rpc import error_details_pb2

    status = status_for(
        exceptions.ValidationError({"amount": ["Must be positive."], "items": [{"x": ["No."]}]})
    )
    bad_request = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("amount", "Must be positive."),
        ("items[0].x", "No."),
    ]


def test_each_call_runs_django_s_request_hooks_that_close_old_connections(grpc_channel):
    seen = []

    def started(**kwargs):
        seen.append("started")

    def finished(**kwargs):
        seen.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        for _ in range(2):
            with pytest.raises(grpc.RpcError):
                PricingServiceStub(grpc_channel).GetPricingZone(ZONE)
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert seen == ["started", "finished"] * 2


@pytest.mark.parametrize(("service", "code"), [("", "OK"), ("database", "OK"), ("no-such", "NOT_FOUND")])
def test_a_health_check_is_logged_and_counted_like_every_call(grpc_channel, service, code):
    labels = {
        "grpc_type": "unary",
        "grpc_service": "grpc.health.v1.Health",
        "grpc_method": "Check",
        "grpc_code": code,
    }
    before = REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0
    request_id = f"req-{uuid.uuid4()}"
    stub = health_pb2_grpc.HealthStub(grpc_channel)
    with capture_logs() as logs:
        try:
            answer, call = stub.Check.with_call(
                health_pb2.HealthCheckRequest(service=service), metadata=[("x-request-id", request_id)]
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError as refused:
            call = refused
    assert call.code().name == code
    assert dict(call.initial_metadata())["x-request-id"] == request_id
    (line,) = logs.events("grpc_call")
    assert {key: line[key] for key in ("request_id", "user_id", "method", "code", "level")} == {
        "request_id": request_id,
        "user_id": None,
        "method": "/grpc.health.v1.Health/Check",
        "code": code,
        "level": "info",
    }
    assert REGISTRY.get_sample_value("grpc_server_handled_total", labels) == before + 1


# --- streaming calls: one line and the metrics when the stream ends -------------------------------


def _stream_samples(grpc_type: str, service: str, method: str, code: str) -> tuple[float, float]:
    """(calls counted with this code, calls timed) for a streaming method."""
    labels = {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method}
    handled = REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": code})
    timed = REGISTRY.get_sample_value("grpc_server_handling_seconds_count", labels)
    return handled or 0.0, timed or 0.0


def test_a_reflection_stream_is_logged_and_counted_when_it_ends(grpc_channel):
    service, method = "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo"
    before = _stream_samples("bidi_stream", service, method, "OK")
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)
    asked = [reflection_pb2.ServerReflectionRequest(list_services=""), PRICING_FILE]
    with capture_logs() as logs:
        answers = stub.ServerReflectionInfo(iter(asked), metadata=[("x-request-id", "req-reflect-1")])
        listed, described = list(answers)
        # written once the call has terminated on the server, which can follow the status by a moment
        (line,) = wait_for(lambda: logs.events("grpc_call"), what="the stream's log line")
    assert "pricing.v1.PricingService" in [s.name for s in listed.list_services_response.service]
    assert described.file_descriptor_response.file_descriptor_proto
    assert dict(answers.initial_metadata())["x-request-id"] == "req-reflect-1"
    assert {key: line[key] for key in ("request_id", "user_id", "method", "code", "level")} == {
        "request_id": "req-reflect-1",
        "user_id": None,
        "method": f"/{service}/{method}",
        "code": "OK",
        "level": "info",
    }
    assert line["duration"] > 0 and line["duration_ms"] >= 0
    assert _stream_samples("bidi_stream", service, method, "OK") == tuple(n + 1 for n in before)


def test_a_reflection_stream_the_client_leaves_is_cancelled_not_an_error(grpc_channel):
    service, method = "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo"
    before = _stream_samples("bidi_stream", service, method, "CANCELLED")
    more = threading.Event()

    def asked():  # one question, then the client keeps its side open until it leaves
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        more.wait()

    with capture_logs() as logs:
        try:
            answers = reflection_pb2_grpc.ServerReflectionStub(grpc_channel).ServerReflectionInfo(asked())
            assert next(answers).list_services_response.service
            answers.cancel()
            (line,) = wait_for(lambda: logs.events("grpc_call"), what="the stream's log line")
        finally:
            more.set()
    assert (line["code"], line["level"]) == ("CANCELLED", "info")
    assert [logged for logged in logs.lines() if logged["level"] in ("error", "critical")] == []
    assert _stream_samples("bidi_stream", service, method, "CANCELLED") == tuple(n + 1 for n in before)


@pytest.mark.parametrize(("leaving", "code"), [("cancel", "CANCELLED"), ("deadline", "DEADLINE_EXCEEDED")])
def test_a_health_watch_is_logged_and_counted_when_the_client_leaves(grpc_channel, leaving, code):
    service, method = "grpc.health.v1.Health", "Watch"
    before = _stream_samples("server_stream", service, method, code)
    deadline = 10 if leaving == "deadline" else None  # long enough for a loaded machine's first answer
    with capture_logs() as logs:
        watch = health_pb2_grpc.HealthStub(grpc_channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=deadline
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        if leaving == "cancel":
            assert logs.events("grpc_call") == []  # nothing until the stream ends
            watch.cancel()
        (line,) = wait_for(lambda: logs.events("grpc_call"), what="the Watch's log line")
    assert (line["method"], line["code"], line["level"]) == (f"/{service}/{method}", code, "info")
    assert line["request_id"] == dict(watch.initial_metadata())["x-request-id"]
    assert _stream_samples("server_stream", service, method, code) == tuple(n + 1 for n in before)


class _LeftStream:
    """The server side of a stream the client has left, `remaining` seconds before its deadline."""

    def __init__(self, remaining):
        self.remaining = remaining

    def code(self):
        return None

    def is_active(self):
        return False

    def time_remaining(self):
        return self.remaining


@pytest.mark.parametrize(
    ("remaining", "code"),
    [
        (None, grpc.StatusCode.CANCELLED),  # no deadline: the client went
        (30.0, grpc.StatusCode.CANCELLED),
        (0.2, grpc.StatusCode.DEADLINE_EXCEEDED),  # its own deadline passed first, its cancel came first
        (-0.1, grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_a_stream_left_at_its_deadline_ended_by_the_deadline(remaining, code):
    assert interceptors._stream_code(_LeftStream(remaining)) == code
