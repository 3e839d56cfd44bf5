"""Waiting for other processes (a worker, a broker, a webhook sender) in tests."""

import time

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
