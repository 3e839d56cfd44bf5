"""The payments app's business metrics: payments by status and currency, failures by Stripe decline
code, Stripe events received and processed (served by `jia_payments.core.ops.metrics`).

Labels are bounded sets: statuses, ISO currency codes, the known failure codes below ("other" for
free text), the Stripe event types the app handles ("unhandled" for the rest).
"""

from prometheus_client import Counter, Histogram

from jia_payments.core.api.validation import CURRENCY_CODE
from jia_payments.core.ops.metrics import PREFIX

# --- Payments ----------------------------------------------------------------------------------

PAYMENTS = Counter(
    f"{PREFIX}_payments",
    "Payments that reached a status (created = pending), by status and currency.",
    ["status", "currency"],
)
PAYMENT_FAILURES = Counter(
    f"{PREFIX}_payment_failures",
    "Payments that failed, by reason (a known failure code, or 'other').",
    ["reason"],
)

# Failure codes worth a label of their own: Stripe's error and decline codes that an operator acts
# on differently. Anything else (free text from a client, a decline message) counts as "other".
FAILURE_REASONS = frozenset(
    {
        "authentication_required",
        "card_declined",
        "card_not_supported",
        "card_velocity_exceeded",
        "currency_not_supported",
        "do_not_honor",
        "expired_card",
        "fraudulent",
        "generic_decline",
        "incorrect_cvc",
        "incorrect_number",
        "incorrect_zip",
        "insufficient_funds",
        "invalid_account",
        "invalid_amount",
        "lost_card",
        "payment_intent_authentication_failure",
        "payment_method_not_available",
        "processing_error",
        "stolen_card",
        "try_again_later",
    }
)


def failure_reason_label(*candidates: str) -> str:
    """The first candidate that is a known failure code, else "other"."""
    for candidate in candidates:
        code = (candidate or "").strip().lower()
        if code in FAILURE_REASONS:
            return code
    return "other"


def payment_reached(*, status: str, currency: str, failure_reason: str = "", failure_code: str = "") -> None:
    """Count a payment that reached `status` (call on commit)."""
    PAYMENTS.labels(
        status=status, currency=currency if CURRENCY_CODE.regex.match(currency or "") else "other"
    ).inc()
    if status == "failed":
        PAYMENT_FAILURES.labels(reason=failure_reason_label(failure_code, failure_reason)).inc()


# --- Stripe webhook events ---------------------------------------------------------------------

STRIPE_EVENTS_RECEIVED = Counter(
    f"{PREFIX}_stripe_events_received",
    "Stripe events received (webhook or reconciliation), by type and outcome "
    "(new, duplicate, ignored = a type we do not handle).",
    ["type", "outcome"],
)
STRIPE_EVENTS_PROCESSED = Counter(
    f"{PREFIX}_stripe_events_processed",
    "Stripe event processing attempts, by type and outcome "
    "(processed, skipped = already done, retried, failed = gave up, missing).",
    ["type", "outcome"],
)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STRIPE_EVENT_PROCESSING = Histogram(
    f"{PREFIX}_stripe_event_processing_seconds",
    "Time our handler took to process a Stripe event (successful runs), by type.",
    ["type"],
    buckets=_LATENCY_BUCKETS,
)
STRIPE_EVENT_LAG = Histogram(
    f"{PREFIX}_stripe_event_lag_seconds",
    "From a Stripe event stored (webhook acknowledged) to processed, retries included, by type.",
    ["type"],
    buckets=(*_LATENCY_BUCKETS, 900.0, 3600.0, 4 * 3600.0),
)


_handled_event_types: frozenset[str] = frozenset()


def register_handled_event_types(event_types) -> None:
    """The Stripe event types the app handles (PaymentsConfig.ready): each is a label value of its
    own, any other type counts as "unhandled"."""
    global _handled_event_types
    _handled_event_types = frozenset(event_types)


def stripe_event_type_label(event_type: str) -> str:
    return event_type if event_type in _handled_event_types else "unhandled"
