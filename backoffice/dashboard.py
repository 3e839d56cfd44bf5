"""The figures on the admin index, each from one aggregate query (four in all) of an app's
selectors, each with the filtered admin list it summarises. A section is shown (and queried)
only to staff who may view what it counts: money and payment counts need `view_payment`."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.urls import reverse
from django.utils import timezone

from entitlements import selectors as entitlement_selectors
from jia_payments.core.outbox.selectors import outbox_backlog
from payments import selectors as payment_selectors
from pricing.selectors import format_major_units, format_money

DAYS = 30

# section -> the permission its figures need (the admin list each figure links to needs the same)
SECTION_PERMISSIONS = {
    "payments": "payments.view_payment",
    "entitlements": "entitlements.view_entitlement",
    "webhooks": "payments.view_stripeevent",
    "outbox": "core.view_outboxevent",
}


@dataclass
class Dashboard:
    sections: frozenset[str]  # those of SECTION_PERMISSIONS shown; the others' figures are empty
    days: list[str] = field(default_factory=list)
    payments_per_day: list[int] = field(default_factory=list)
    succeeded_per_day: list[int] = field(default_factory=list)
    revenue_per_day: dict[str, list[float]] = field(default_factory=dict)  # currency -> major units kept
    revenue_total: dict[str, str] = field(default_factory=dict)
    payments_total: int = 0
    succeeded: int = 0
    failed: int = 0
    success_rate: str = "-"
    entitlements_per_plan: list[dict] = field(default_factory=list)
    webhooks: dict = field(default_factory=dict)
    outbox: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)


def _list(name: str, **filters) -> str:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return reverse(f"admin:{name}_changelist") + (f"?{query}" if query else "")


def sections_for(user) -> frozenset[str]:
    """The dashboard's sections `user` (a Django user) may see."""
    return frozenset(
        section for section, permission in SECTION_PERMISSIONS.items() if user.has_perm(permission)
    )


def dashboard(*, user, today: date | None = None) -> Dashboard:
    board = Dashboard(sections=sections_for(user))
    if "payments" in board.sections:
        _payment_figures(board, today or timezone.localdate())
    if "entitlements" in board.sections:
        # active entitlements per plan (rows that grant access now, and how many holders)
        board.entitlements_per_plan = [
            {
                **row,
                "link": _list(
                    "entitlements_entitlement", plan__id__exact=row["plan_id"], status__exact="active"
                ),
            }
            for row in entitlement_selectors.entitlements_active_per_plan()
        ]
    if "webhooks" in board.sections:
        # webhooks that failed, or wait for another try
        board.webhooks = payment_selectors.stripe_event_backlog()
        board.links["failed_webhooks"] = _list("payments_stripeevent", status__exact="failed")
        board.links["pending_webhooks"] = _list("payments_stripeevent", status__exact="pending")
    if "outbox" in board.sections:
        # events not yet on Kafka, those whose publishing failed, the oldest
        board.outbox = outbox_backlog()
        board.links["outbox_pending"] = _list("core_outboxevent", status__exact="pending")
        board.links["outbox_failing"] = _list("core_outboxevent", status__exact="pending", attempts__gt=0)
    return board


def _payment_figures(board: Dashboard, today: date) -> None:
    """Payments per day and currency: how many, how many succeeded or failed, what was kept."""
    first = today - timedelta(days=DAYS - 1)
    days = [first + timedelta(days=n) for n in range(DAYS)]
    since = timezone.make_aware(timezone.datetime.combine(first, timezone.datetime.min.time()))
    index = {day: n for n, day in enumerate(days)}
    payments, succeeded = [0] * DAYS, [0] * DAYS
    revenue: dict[str, list[int]] = {}
    failed = 0
    for row in payment_selectors.payment_totals_per_day(since=since):
        n = index.get(row["day"])
        if n is None:
            continue
        payments[n] += row["count"]
        succeeded[n] += row["succeeded"]
        failed += row["failed"]
        revenue.setdefault(row["currency"], [0] * DAYS)[n] += row["kept"] or 0
    decided = sum(succeeded) + failed
    board.days = [day.isoformat() for day in days]
    board.payments_per_day, board.succeeded_per_day = payments, succeeded
    board.revenue_per_day = {
        currency: [float(format_major_units(v, currency)) for v in values]
        for currency, values in sorted(revenue.items())
    }
    board.revenue_total = {
        currency: format_money(sum(values), currency) for currency, values in sorted(revenue.items())
    }
    board.payments_total, board.succeeded, board.failed = sum(payments), sum(succeeded), failed
    board.success_rate = f"{100 * sum(succeeded) / decided:.1f}%" if decided else "-"
    board.links["payments"] = _list("payments_payment", created_at__gte=first.isoformat())
    board.links["failed_payments"] = _list(
        "payments_payment", status__exact="failed", created_at__gte=first.isoformat()
    )
