"""localstripe (a stateful fake Stripe) on 127.0.0.1, extended, for tests.

    python -m testsupport.localstripe [--port 0] [--store FILE]   # prints {"port": N} once bound

`LocalStripe` starts it as a child process and speaks to its test-only routes; the product
talks to it through the real `stripe` SDK (`api_base` = `LocalStripe.url`). What it adds to
localstripe is in `testsupport/localstripe_ext.py`.
"""

import argparse
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from testsupport.processes import stop_process
from testsupport.waiting import wait_until_answering

# dj-stripe accepts only keys shaped like Stripe's: ^(pk|sk|rk)_(test|live)_[a-zA-Z0-9]{24,}$
API_KEY = "sk_test_localstripe0000000000000000000000"
PUBLISHABLE_KEY = "pk_test_localstripe0000000000000000000000"
WEBHOOK_SECRET = "whsec_" + secrets.token_hex(16)  # this run's; localstripe learns it from us


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    from testsupport.localstripe_ext import build_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--store", type=Path, help="keep the objects in this file (loaded at start)")
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    logging.basicConfig(level=logging.WARNING)
    web.run_app(build_app(args.store), sock=sock, print=None, access_log=None)


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header: t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<payload>")."""
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), b"%d." % stamp + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


class LocalStripe:
    """A running localstripe process and the calls a test makes to it besides the SDK's."""

    def __init__(self, *, log_path: Path | None = None, store_path: Path | None = None):
        self.log_path = log_path
        self.store_path = store_path
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.http = requests.Session()
        self.http.auth = (API_KEY, "")

    def start(self, timeout: float = 20) -> "LocalStripe":
        root = str(Path(__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        # the child keeps its own copy of the log's descriptor
        with ExitStack() as stack:
            stderr = stack.enter_context(open(self.log_path, "ab")) if self.log_path else None
            store = ["--store", str(self.store_path)] if self.store_path else []
            self.process = subprocess.Popen(
                [sys.executable, "-m", "testsupport.localstripe", *store],
                stdout=subprocess.PIPE,
                stderr=stderr or subprocess.DEVNULL,
                env=env,
            )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"localstripe did not start (exit {self.process.wait()})")
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"
        try:
            wait_until_answering(
                self.process,
                lambda: bool(self.get("/v1/account")),
                what="localstripe",
                logs=self.logs,
                timeout=timeout,
            )
        except RuntimeError:
            self.stop()
            raise
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.http.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- plain HTTP to the fake, for what the SDK has no call for

    def get(self, path: str, **params) -> dict:
        response = self.http.get(self.url + path, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, data: dict | None = None) -> dict:
        response = self.http.post(self.url + path, json=data or {}, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else {}

    def flush(self) -> None:
        self.http.delete(self.url + "/_config/data", timeout=30).raise_for_status()

    def configure_webhook(self, url: str, secret: str = WEBHOOK_SECRET, *, name: str = "default",
                          events: list[str] | None = None) -> None:  # fmt: skip
        """Have every event (or only `events`) sent, signed with `secret`, to `url`."""
        body = {"url": url, "secret": secret}
        if events is not None:
            body["events"] = events
        self.post(f"/_config/webhooks/{name}", body)

    def complete_checkout_session(self, session_id: str, *, payment_method: str = "pm_card_visa",
                                  email: str = "customer@example.com") -> dict:  # fmt: skip
        """Pay an open Checkout Session; Stripe then sends `checkout.session.completed`."""
        return self.post(
            f"/v1/test_helpers/checkout/sessions/{session_id}/complete",
            {"payment_method": payment_method, "email": email},
        )

    def renew_subscription(self, subscription_id: str) -> dict:
        """Start the next period (paid): `invoice.paid` and `customer.subscription.updated`."""
        return self.post(f"/v1/test_helpers/subscriptions/{subscription_id}/renew")

    def advance_subscription(self, subscription_id: str, *, ended_at: int | None = None,
                             payment_method: str | None = None) -> dict:  # fmt: skip
        """The current period ends (at `ended_at`, default now): canceled if set to cancel at the
        period's end, else the next period is invoiced (`past_due` if `payment_method` declines,
        e.g. `pm_card_chargeCustomerFail`)."""
        body = {k: v for k, v in {"ended_at": ended_at, "payment_method": payment_method}.items() if v}
        return self.post(f"/v1/test_helpers/subscriptions/{subscription_id}/advance", body)

    def deliver_event(self, event_id: str, *, timestamp: int | None = None) -> list[dict]:
        """Send one stored event to the webhooks now; answers each endpoint's HTTP status."""
        body = {} if timestamp is None else {"timestamp": timestamp}
        return self.post(f"/_config/events/{event_id}/deliver", body)["deliveries"]

    def deliveries(self) -> list[dict]:
        return self.get("/_config/deliveries")["deliveries"]

    def deliveries_in_flight(self) -> int:
        """Webhook sends scheduled or under way."""
        return self.get("/_config/deliveries")["in_flight"]

    def set_delivery(self, *, paused: bool | None = None, delay: float | None = None) -> None:
        """Pause webhook sending (events are still recorded and listed) or change its delay."""
        body = {k: v for k, v in {"paused": paused, "delay": delay}.items() if v is not None}
        self.post("/_config/deliveries", body)

    def fail_next(self, method: str, path: str, *, status: int = 500, times: int = 1) -> None:
        """The next `times` calls of `method` `path` answer `status` (the SDK does not retry)."""
        self.post("/_config/faults", {"method": method, "path": path, "status": status, "times": times})

    def events(self, **params) -> list[dict]:
        return self.get("/v1/events", limit=100, **params)["data"]


if __name__ == "__main__":
    main()
