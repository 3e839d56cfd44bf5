"""Structured JSON logs: per-request fields, request ids in and out, into Celery tasks; redaction."""

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from jia_payments.celery import app as celery_app
from jia_payments.core.ops.logs import REDACTED, redact
from testsupport.logcapture import capture_logs, secrets_in
from testsupport.processes import stop_process
from testsupport.waiting import wait_until_answering

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.urls("jia_payments.core.tests.ops_urls")


def _finished(logs) -> dict:
    (line,) = logs.events("request_finished")
    return line


def test_a_request_logs_one_json_line_with_the_operator_fields(api_client_for):
    client = api_client_for("user_logs_1")
    with capture_logs() as logs:
        response = client.post("/echo/", {"marker": "m1"}, HTTP_X_REQUEST_ID="req-abc-123")
    assert response.status_code == 201
    assert response["X-Request-ID"] == "req-abc-123"
    line = _finished(logs)
    assert line["request_id"] == "req-abc-123"
    assert line["user_id"] == "user_logs_1"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/echo/", 201)
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert line["level"] == "info"
    assert line["logger"] == "django_structlog.middlewares.request"
    assert datetime.fromisoformat(line["timestamp"]).utcoffset().total_seconds() == 0
    # The view's own line carries the same request id.
    (echo,) = logs.events("echo_posted")
    assert echo["request_id"] == "req-abc-123"
    assert echo["logger"] == "jia_payments.core.tests.ops_urls"


@pytest.mark.parametrize(("num_proxies", "logged"), [(0, "203.0.113.9"), (1, "198.51.100.7")])
def test_the_logged_ip_is_the_one_the_rate_limits_trust(anon_client, settings, num_proxies, logged):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    with capture_logs() as logs:
        # A client can send any X-Forwarded-For; only a declared proxy's last entry is believed.
        anon_client.get("/echo/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    assert _finished(logs)["ip"] == logged


def test_without_a_request_id_one_is_generated_and_returned(anon_client):
    with capture_logs() as logs:
        response = anon_client.get("/echo/")
    request_id = response["X-Request-ID"]
    assert str(uuid.UUID(request_id)) == request_id
    line = _finished(logs)
    assert line["request_id"] == request_id
    assert line["user_id"] is None
    assert line["status"] == 200


@pytest.mark.parametrize("sent", ["x" * 129, "has spaces in it", 'quote"and\nnewline'])
def test_an_unreasonable_request_id_is_replaced(anon_client, sent):
    with capture_logs() as logs:
        response = anon_client.get("/echo/", HTTP_X_REQUEST_ID=sent)
    returned = response["X-Request-ID"]
    assert returned != sent
    assert str(uuid.UUID(returned)) == returned
    assert _finished(logs)["request_id"] == returned


def test_a_task_enqueued_by_a_request_logs_with_its_request_id(api_client_for):
    """Eager (in process), as in most tests."""
    with capture_logs() as logs:
        api_client_for("user_logs_2").post("/echo/", {"marker": "eager"}, HTTP_X_REQUEST_ID="req-task-1")
    (line,) = logs.events("log_probe_ran")
    assert line["request_id"] == "req-task-1"
    assert line["marker"] == "eager"


@pytest.mark.e2e
def test_a_real_worker_logs_the_task_with_the_request_id_of_the_request(api_client_for, tmp_path):
    """Through Redis to a separate `celery worker` process, whose stderr is JSON lines."""
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "false", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "celery", "-A", "jia_payments", "worker", "--loglevel=INFO",
        "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-I", "jia_payments.core.tests.tasks", "-n", f"logs-{uuid.uuid4().hex[:8]}@%h",
        "-Q", f"logs-{uuid.uuid4().hex[:8]}",
    ]  # fmt: skip
    queue = command[-1]
    with open(log_path, "w") as log:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_default_queue
    celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = False, queue
    try:
        api_client_for("user_logs_3").post("/echo/", {"marker": "real"}, HTTP_X_REQUEST_ID="req-worker-1")
        lines = wait_until_answering(
            worker,
            lambda: _has_line(_json_lines(log_path), lambda line: line.get("logger") == "celery.app.trace"),
            what="the worker's celery.app.trace line",
            logs=log_path.read_text,
            timeout=60,
        )
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = previous
        stop_process(worker, timeout=30)
    ran = next(line for line in lines if line.get("event") == "log_probe_ran")
    assert ran["request_id"] == "req-worker-1"
    assert ran["marker"] == "real"
    assert ran["task_id"]
    # task_started is only written at DEBUG: Celery's own line of the task names it
    traced = next(line for line in lines if line.get("logger") == "celery.app.trace")
    assert traced["request_id"] == "req-worker-1"
    assert traced["data"]["name"] == "core.tests.log_probe"
    assert {"timestamp", "level", "logger"} <= traced.keys()
    assert not [line for line in lines if line.get("event") in ("task_started", "task_enqueued")]


def _json_lines(path: Path) -> list[dict]:
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def _has_line(lines: list[dict], wanted) -> list[dict] | None:
    """`lines` when one of them is `wanted`."""
    return lines if any(wanted(line) for line in lines) else None


def _manage_log(code: str, **env: str) -> str:
    full_env = {**os.environ, "DEBUG": "false", **env}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stderr


LOG_TWO = "import logging; log = logging.getLogger('probe'); log.info('info line'); log.error('error line')"


def test_json_is_the_default_format_and_log_level_is_honoured():
    env = {name: value for name, value in os.environ.items() if name != "LOG_FORMAT"}
    output = _run_without(env, "LOG_FORMAT", LOG_LEVEL="ERROR")
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert [(line["event"], line["level"], line["logger"]) for line in lines] == [
        ("error line", "error", "probe")
    ]


def test_console_format_for_people():
    output = _manage_log(LOG_TWO, LOG_FORMAT="console", LOG_LEVEL="INFO")
    assert "info line" in output and "error line" in output
    assert not output.lstrip().startswith("{")


def _run_without(env: dict, name: str, **extra: str) -> str:
    full_env = {key: value for key, value in env.items() if key != name}
    full_env.update(DEBUG="true", **extra)  # a DEBUG process logs JSON too unless told otherwise
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", LOG_TWO],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_redaction_of_credentials_and_card_numbers():
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2lnbmF0dXJlX2J5dGVz"
    event = redact(
        None,
        "info",
        {
            "event": f"got {token} from the header",
            "headers": {"Authorization": "Bearer abc", "Stripe-Signature": "t=1,v1=x", "Accept": "json"},
            "note": "keys sk_live_abcdefghijklmnop and whsec_abcdefghijklmnop",
            "card": "paid with 4242 4242 4242 4242",
            "amount_and_time": "999 cents at 1732619283001",
            "request_id": "req-1",
        },
    )
    assert event["event"] == f"got {REDACTED} from the header"
    assert event["headers"] == {"Authorization": REDACTED, "Stripe-Signature": REDACTED, "Accept": "json"}
    assert event["note"] == f"keys {REDACTED} and {REDACTED}"
    assert event["card"] == f"paid with {REDACTED}"
    assert (
        redact(None, "info", {"event": "paid with 4242-4242-4242-4242"})["event"] == f"paid with {REDACTED}"
    )
    # A long number that is not a card number (fails the Luhn check) stays.
    assert event["amount_and_time"] == "999 cents at 1732619283001"
    assert event["request_id"] == "req-1"


def test_the_secret_sweep_finds_a_leak():
    """The per-test sweep (root conftest) relies on this: it must see a secret when one is there."""
    secret = "sk_test_" + "9" * 24
    text = json.dumps({"event": "oops", "value": secret})
    assert secrets_in(text, {secret}) == ["sk_tes..."]
    assert secrets_in(json.dumps({"body": {"livemode": False}}), set()) == ["a Stripe object body"]
    assert secrets_in(text, {"something-else-entirely"}) == []
