import uuid

from django.db import models
from django.db.models import Q

from jia_payments.core.api.validation import CURRENCY_CODE
from pricing.selectors import format_money

MAX_AMOUNT = 99_999_999


class Payment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        REFUNDED = "refunded"

    # The only moves a payment's status may make (DESIGN.md).
    TRANSITIONS = {
        Status.PENDING: {Status.COMPLETED, Status.FAILED, Status.CANCELLED},
        Status.COMPLETED: {Status.REFUNDED},
        Status.FAILED: set(),
        Status.CANCELLED: set(),
        Status.REFUNDED: set(),
    }

    class Method(models.TextChoices):
        CREDIT_CARD = "credit_card"
        DEBIT_CARD = "debit_card"
        BANK_TRANSFER = "bank_transfer"
        WALLET = "wallet"
        STRIPE_CHECKOUT = "stripe_checkout"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    amount = models.PositiveBigIntegerField(help_text="Minor units of the currency")
    currency = models.CharField(max_length=3, validators=[CURRENCY_CODE])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    payment_method = models.CharField(max_length=32, choices=Method.choices)
    customer_id = models.CharField(max_length=255)
    order_id = models.CharField(max_length=255, blank=True)
    description = models.CharField(max_length=1000, blank=True)
    external_payment_id = models.CharField(max_length=255, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    refunded_amount = models.PositiveBigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "completed", "failed", "cancelled", "refunded"]),
                name="payment_status_valid",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="payment_currency_iso"),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=models.F("amount")), name="payment_refund_lte_amount"
            ),
            models.UniqueConstraint(
                fields=["external_payment_id"],
                condition=~Q(external_payment_id=""),
                name="payment_external_id_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["customer_id", "-created_at"], name="payment_customer_created_idx"),
            models.Index(fields=["-created_at"], name="payment_created_idx"),
            models.Index(fields=["status", "-created_at"], name="payment_status_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.currency)} ({self.status})"

    def can_move_to(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.Status(self.status)]


class CheckoutSession(models.Model):
    """Our record of a Stripe Checkout Session: the price is fixed when it is created."""

    class Status(models.TextChoices):
        OPEN = "open"
        COMPLETE = "complete"
        EXPIRED = "expired"

    class CountrySource(models.TextChoices):
        EDGE_HEADER = "edge_header"
        REQUEST = "request"
        UNKNOWN = "unknown"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=255, db_index=True)
    plan = models.ForeignKey("pricing.Plan", on_delete=models.PROTECT, related_name="checkout_sessions")
    country = models.CharField(max_length=2, blank=True)
    country_source = models.CharField(max_length=16, choices=CountrySource.choices)
    zone = models.CharField(max_length=1, blank=True)
    multiplier = models.DecimalField(max_digits=5, decimal_places=2)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3, validators=[CURRENCY_CODE])
    family_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    stripe_session_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    url = models.URLField(max_length=2000, blank=True)
    success_url = models.URLField(max_length=2000)
    cancel_url = models.URLField(max_length=2000)
    expires_at = models.DateTimeField(null=True, blank=True)
    payment = models.OneToOneField(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="checkout_session"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["open", "complete", "expired"]), name="checkout_status_valid"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="checkout_amount_gte_0"),
            models.UniqueConstraint(
                fields=["stripe_session_id"],
                condition=~Q(stripe_session_id=""),
                name="checkout_stripe_session_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"checkout {self.id} ({self.status})"


class Refund(models.Model):
    """One refund of a payment, asked for here (API, admin) or made in Stripe's dashboard.

    A refund asked for here is a `pending` row first: its id is the Stripe idempotency key, and
    pending rows count against what is left to refund, so two requests cannot refund twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.PositiveBigIntegerField(help_text="Minor units of the payment's currency")
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    requested_by = models.CharField(max_length=255, help_text="Who asked: a caller, or stripe")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]), name="refund_status_valid"
            ),
            models.UniqueConstraint(
                fields=["stripe_refund_id"], condition=~Q(stripe_refund_id=""), name="refund_stripe_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"refund {format_money(self.amount, self.payment.currency)} ({self.status})"


class StripeEvent(models.Model):
    """A Stripe event as received (webhook or reconciliation), and how processing it went.

    The primary key is Stripe's event id: an event is stored once however often it is delivered,
    and processed once, in the transaction that marks it processed.
    """

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for (another) try
        PROCESSED = "processed"
        IGNORED = "ignored"  # a type we have no handler for
        FAILED = "failed"  # every try failed; "reprocess" in admin runs it again

    class Source(models.TextChoices):
        WEBHOOK = "webhook"
        RECONCILIATION = "reconciliation"

    id = models.CharField(primary_key=True, max_length=255, help_text="Stripe's event id")
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=64, blank=True)
    stripe_created_at = models.DateTimeField()
    payload = models.JSONField(help_text="The event as Stripe sent it")
    source = models.CharField(max_length=16, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-stripe_created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "processed", "ignored", "failed"]),
                name="stripe_event_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="stripe_event_status_idx"),
            models.Index(fields=["type", "-stripe_created_at"], name="stripe_event_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"


class Subscription(models.Model):
    """Our mirror of a Stripe subscription bought through checkout: who pays, for which plan, at
    what price (the country and zone price as at checkout), and how far it is paid.

    Stripe is the truth: every event about it re-reads the subscription and this row follows
    (`payments.subscriptions.subscription_sync`), so duplicates and late events change nothing.
    """

    class Status(models.TextChoices):
        INCOMPLETE = "incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired"
        TRIALING = "trialing"
        ACTIVE = "active"
        PAST_DUE = "past_due"
        UNPAID = "unpaid"
        CANCELED = "canceled"
        PAUSED = "paused"

    LIVE = (Status.TRIALING, Status.ACTIVE, Status.PAST_DUE, Status.INCOMPLETE)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=255, help_text="The buyer (a family plan's owner)")
    family_id = models.UUIDField(null=True, blank=True)
    plan = models.ForeignKey("pricing.Plan", on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=24, choices=Status.choices)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    paid_through = models.DateTimeField(null=True, blank=True, help_text="End of the last paid period")
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True)
    zone = models.CharField(max_length=1, blank=True)
    amount = models.PositiveBigIntegerField(help_text="Per period, minor units")
    currency = models.CharField(max_length=3, validators=[CURRENCY_CODE])
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_item_id = models.CharField(max_length=255, blank=True)
    pending_plan = models.ForeignKey(
        "pricing.Plan", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Asked for; the plan changes when Stripe confirms",
    )  # fmt: skip
    changes = models.PositiveIntegerField(default=0, help_text="Plan changes asked for (Stripe keys)")
    checkout_session = models.ForeignKey(
        CheckoutSession, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates",
        help_text="Set only on a duplicate: the buyer's live subscription this one repeats (bought"
        " while that one was live). A duplicate grants nothing and is canceled at Stripe and refunded"
        " in full; empty on every subscription that counts",
    )  # fmt: skip
    settled_by_staff = models.BooleanField(
        default=False,
        help_text="A duplicate found in the data when the one-live rule came (or one whose automatic"
        " settling had failed every try by then): staff decide; reconciliation neither cancels nor"
        " refunds it",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    status__in=[
                        "incomplete",
                        "incomplete_expired",
                        "trialing",
                        "active",
                        "past_due",
                        "unpaid",
                        "canceled",
                        "paused",
                    ]
                ),
                name="subscription_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="subscription_currency_iso"
            ),
            # One subscription per buyer (a family plan's owner) at a time; a duplicate Stripe
            # still made is recorded apart (`duplicate_of`) and never grants anything.
            models.UniqueConstraint(
                fields=["user_id"],
                condition=Q(status__in=["trialing", "active", "past_due", "incomplete"])
                & Q(duplicate_of__isnull=True),
                name="subscription_one_live_per_buyer",
            ),
        ]
        indexes = [models.Index(fields=["user_id", "-created_at"], name="subscription_user_created_idx")]

    def __str__(self) -> str:
        return f"subscription {self.id} of {self.user_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE
