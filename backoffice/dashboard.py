"""The figures on the admin index, each from one aggregate query (four in all) of an app's
selectors, each with the filtered admin list it summarises."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.urls import reverse
from django.utils import timezone

from entitlements import selectors as entitlement_selectors
from jia_payments.core.outbox.selectors import outbox_backlog
from payments import selectors as payment_selectors
from pricing.selectors import format_major_units, format_money

DAYS = 30


@dataclass
class Dashboard:
    days: list[str]
    payments_per_day: list[int]
    succeeded_per_day: list[int]
    revenue_per_day: dict[str, list[float]]  # currency -> major units kept (refunds taken off)
    revenue_total: dict[str, str]
    payments_total: int
    succeeded: int
    failed: int
    success_rate: str
    entitlements_per_plan: list[dict] = field(default_factory=list)
    webhooks: dict = field(default_factory=dict)
    outbox: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)


def _list(name: str, **filters) -> str:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return reverse(f"admin:{name}_changelist") + (f"?{query}" if query else "")


def dashboard(*, today: date | None = None) -> Dashboard:
    today = today or timezone.localdate()
    first = today - timedelta(days=DAYS - 1)
    days = [first + timedelta(days=n) for n in range(DAYS)]
    since = timezone.make_aware(timezone.datetime.combine(first, timezone.datetime.min.time()))

    # 1. payments per day and currency: how many, how many succeeded or failed, what was kept
    per_day = payment_selectors.payment_totals_per_day(since=since)
    index = {day: n for n, day in enumerate(days)}
    payments, succeeded = [0] * DAYS, [0] * DAYS
    revenue: dict[str, list[int]] = {}
    failed = 0
    for row in per_day:
        n = index.get(row["day"])
        if n is None:
            continue
        payments[n] += row["count"]
        succeeded[n] += row["succeeded"]
        failed += row["failed"]
        revenue.setdefault(row["currency"], [0] * DAYS)[n] += row["kept"] or 0
    decided = sum(succeeded) + failed

    # 2. active entitlements per plan (rows that grant access now, and how many holders)
    plans = [
        {
            **row,
            "link": _list("entitlements_entitlement", plan__id__exact=row["plan_id"], status__exact="active"),
        }
        for row in entitlement_selectors.entitlements_active_per_plan()
    ]

    # 3. webhooks that failed, or wait for another try
    webhooks = payment_selectors.stripe_event_backlog()

    # 4. the outbox backlog: events not yet on Kafka, those whose publishing failed, the oldest
    outbox = outbox_backlog()

    return Dashboard(
        days=[day.isoformat() for day in days],
        payments_per_day=payments,
        succeeded_per_day=succeeded,
        revenue_per_day={
            currency: [float(format_major_units(v, currency)) for v in values]
            for currency, values in sorted(revenue.items())
        },
        revenue_total={
            currency: format_money(sum(values), currency) for currency, values in sorted(revenue.items())
        },
        payments_total=sum(payments),
        succeeded=sum(succeeded),
        failed=failed,
        success_rate=f"{100 * sum(succeeded) / decided:.1f}%" if decided else "-",
        entitlements_per_plan=plans,
        webhooks=webhooks,
        outbox=outbox,
        links={
            "payments": _list("payments_payment", created_at__gte=first.isoformat()),
            "failed_payments": _list(
                "payments_payment", status__exact="failed", created_at__gte=first.isoformat()
            ),
            "failed_webhooks": _list("payments_stripeevent", status__exact="failed"),
            "pending_webhooks": _list("payments_stripeevent", status__exact="pending"),
            "outbox_pending": _list("core_outboxevent", status__exact="pending"),
            "outbox_failing": _list("core_outboxevent", status__exact="pending", attempts__gt=0),
        },
    )
