"""gRPC test helpers: an in-process server on a free port, metadata for a token, statuses and
their details, and a message's fields as plain values (to compare with a REST body)."""

import datetime
from contextlib import contextmanager

import grpc
import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jia_payments.core.grpc import server as grpc_server


class _SharedConnection(grpc.ServerInterceptor):
    """Calls use the test's own database connection (and so see its uncommitted rows), as
    Django's test client shares the test's transaction with the view."""

    def __init__(self, connection):
        self.connection = connection

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior, connection = handler.unary_unary, self.connection

        def run(message, context):
            own = connections[DEFAULT_DB_ALIAS]
            connections[DEFAULT_DB_ALIAS] = connection
            try:
                return behavior(message, context)
            finally:
                connections[DEFAULT_DB_ALIAS] = own  # request_finished closes this thread's own

        return handler._replace(unary_unary=run)


@contextmanager
def serving(*, share_connection: bool = False, max_workers: int = 8, health_interval: float = 3600):
    """The app's gRPC server on 127.0.0.1 (a free port) and a channel to it. `share_connection`:
    its calls run in the test's transaction, one at a time."""
    interceptors = []
    if share_connection:
        connection = connections[DEFAULT_DB_ALIAS]
        connection.inc_thread_sharing()
        interceptors.append(_SharedConnection(connection))
    server = grpc_server.build(
        address="127.0.0.1:0",
        max_workers=1 if share_connection else max_workers,
        health_interval=health_interval,
        interceptors=interceptors,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield server, channel
    finally:
        channel.close()
        server.stop(0)
        if share_connection:
            connection.dec_thread_sharing()


def auth(token: str | None, **extra: str) -> list[tuple[str, str]]:
    metadata = [("better-auth-token", token)] if token else []
    return metadata + [(key.replace("_", "-"), value) for key, value in extra.items()]


def failure(call) -> grpc.RpcError:
    """The error `call()` fails with (the test fails if it does not)."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def details_of(error: grpc.RpcError) -> dict:
    """The status details by type name: ErrorInfo, BadRequest, RetryInfo."""
    status = rpc_status.from_call(error)
    found = {}
    for detail in status.details if status else ():
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if detail.Is(cls.DESCRIPTOR):
                message = cls()
                detail.Unpack(message)
                found[cls.__name__] = message
    return found


def field_errors(error: grpc.RpcError) -> dict[str, list[str]]:
    bad_request = details_of(error).get("BadRequest")
    errors: dict[str, list[str]] = {}
    for violation in bad_request.field_violations if bad_request else ():
        errors.setdefault(violation.field, []).append(violation.description)
    return errors


def reason_of(error: grpc.RpcError) -> str | None:
    info = details_of(error).get("ErrorInfo")
    return info.reason if info else None


def plain(message) -> dict:
    """Every field of `message` as a Python value: unset messages and optionals None, Structs dicts,
    Timestamps aware datetimes, nested messages dicts."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = {key: _plain_value(item) for key, item in value.items()}
        elif field.is_repeated:
            out[field.name] = [_plain_value(item) for item in value]
        elif field.has_presence and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _plain_value(value)
    return out


def _plain_value(value):
    if isinstance(value, struct_pb2.Struct):
        return json_format.MessageToDict(value)
    if isinstance(value, timestamp_pb2.Timestamp):
        return value.ToDatetime(tzinfo=datetime.UTC)
    if hasattr(value, "DESCRIPTOR"):
        return plain(value)
    return value


def rest_like(
    body: dict, timestamps: tuple[str, ...] = ("created_at", "updated_at", "granted_at", "expires_at")
):
    """A REST body with its timestamp text as datetimes (to compare with `plain`)."""
    out = {}
    for key, value in body.items():
        if key in timestamps and isinstance(value, str):
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif isinstance(value, dict) and key not in ("metadata", "usage_limits"):
            value = rest_like(value, timestamps)
        out[key] = value
    return out
