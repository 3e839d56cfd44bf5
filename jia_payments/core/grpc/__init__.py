"""The gRPC transport: what every app's servicers (`<app>/grpc.py`) share.

A call goes through the same code a REST request does: `calls.CallRequest` carries the call's
metadata the way Django's request carries headers, so the REST authentication, permissions,
throttles, idempotency store and audit trail take it as they are; `errors` renders every exception
through the problem-details renderer and maps it to a gRPC status; `interceptors` gives each call
its request id, log line, metrics and database connection hygiene; `server` assembles the server
with health and reflection.
"""
