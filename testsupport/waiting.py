"""Waiting for other processes (a worker, a broker, a webhook sender) in tests."""

import socket
import subprocess
import time
from collections.abc import Callable

import requests

WAIT_SECONDS = 300  # a bound on waiting for other processes (a busy 2-core machine), not a speed assertion


def wait_for(condition, *, timeout: float = WAIT_SECONDS, what: str = "condition"):
    """Poll `condition` until it answers something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_until_answering(
    process: subprocess.Popen,
    answers: Callable[[], bool],
    *,
    what: str,
    logs: Callable[[], str],
    timeout: float,
):
    """Poll `answers()` (a request to the server `process` just started) until it is truthy, and
    return what it answered; an OSError (refused, reset, timed out: requests' errors are OSErrors)
    is "not yet". Fails with the server's `logs()` when it exits first or does not answer within
    `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{logs()}")
        try:
            answer = answers()
        except OSError:
            answer = None
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout} s:\n{logs()}")
        time.sleep(0.1)


def listening(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str) -> bool:
    """GET `url` answers 200 (on a connection of its own, closed after the answer)."""
    return requests.get(url, headers={"Connection": "close"}, timeout=5).status_code == 200
