"""Capture what the application logs, formatted exactly as production formats it (JSON lines)."""

import io
import json
import logging
from contextlib import contextmanager

from jia_payments.core.ops.logs import formatter


class CapturedLogs:
    def __init__(self, stream: io.StringIO):
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def events(self, event: str) -> list[dict]:
        return [line for line in self.lines() if line.get("event") == event]


@contextmanager
def capture_logs(level: int = logging.INFO, log_format: str = "json"):
    """Every record at `level` or above, from any logger and thread, while the block runs.

    The root logger's level is lowered for the block; other handlers keep their own levels.
    """
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))
    handler.setLevel(level)
    previous_level = root.level
    others = [(h, h.level) for h in root.handlers]
    for other, other_level in others:
        other.setLevel(max(other_level, previous_level))  # what they printed before, no more
    root.addHandler(handler)
    root.setLevel(min(level, previous_level))
    try:
        yield CapturedLogs(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        for other, other_level in others:
            other.setLevel(other_level)


TEST_CARD_NUMBERS = ("4242424242424242", "4000000000000002", "5555555555554444", "4000056655665556")
STRIPE_BODY_MARKER = '"livemode"'  # every Stripe object has it: a logged webhook or API body


def secret_values(issued_tokens) -> set[str]:
    """What no log line may hold: Django's and Stripe's secrets, card numbers, API tokens."""
    from django.conf import settings

    values = {settings.SECRET_KEY, settings.STRIPE_SECRET, settings.STRIPE_WEBHOOK_SECRET, *TEST_CARD_NUMBERS}
    # A token's signature is what makes it a credential (its payload is not secret).
    values.update(token.rsplit(".", 1)[-1] for token in issued_tokens)
    return {value for value in values if value and len(value) >= 12}


def secrets_in(text: str, secrets: set[str]) -> list[str]:
    """The secrets found in `text`, shortened so the report does not leak them again."""
    found = [f"{secret[:6]}..." for secret in secrets if secret and len(secret) >= 12 and secret in text]
    if STRIPE_BODY_MARKER in text:
        found.append("a Stripe object body")
    return found
