"""Payments in Django admin: read-only records whose status and money move only through the
payments services (mark failed, cancel, refund), each with a reason for the audit trail."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Q, Value, When
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from entitlements.selectors import entitlements_granted_by
from jia_payments.core.admin import ReadOnlyAdmin
from jia_payments.core.admin_links import admin_link
from jia_payments.core.api.errors import DomainError
from jia_payments.core.audit.admin import AuditedAdmin, action_reason
from jia_payments.core.models import OutboxEvent
from payments import services
from payments.models import CheckoutSession, Payment, Refund, StripeEvent, Subscription
from payments.refunds import is_stripe_payment, payment_refund, payment_refund_record_external, refund_left
from payments.stripe.events import stripe_events_reprocess
from payments.stripe.mirror import stripe_mirror_link
from payments.subscriptions import subscription_duplicate_settle
from pricing.selectors import format_major_units, format_money, parse_major_units

REFUND_PERMISSION = "payments.refund_payment"
MOVE_PERMISSION = "payments.change_payment"
HISTORY_SIZE = 50


def staff_label(request) -> str:
    return f"staff:{request.user.get_username()}"


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = [
        "id",
        "amount_shown",
        "status",
        "reason",
        "stripe_refund",
        "requested_by",
        "failure_reason",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # the "Refund" button, through the refunds service

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="amount")
    def amount_shown(self, refund: Refund) -> str:
        return format_money(refund.amount, refund.payment.currency)

    @admin.display(description="Stripe refund")
    def stripe_refund(self, refund: Refund) -> str:
        return stripe_mirror_link("refund", refund.stripe_refund_id)


class RefundForm(forms.Form):
    amount = forms.CharField(label="Amount", help_text="In the currency's units, e.g. 4.99")
    reason = forms.CharField(max_length=500, help_text="Kept on the refund and in the audit trail")
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, payment: Payment, left: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.payment, self.left = payment, left
        self.fields["amount"].initial = format_major_units(left, payment.currency)
        self.fields[
            "amount"
        ].help_text = f"At most {format_money(left, payment.currency)}; less is a partial refund."

    def clean_amount(self) -> int:
        try:
            amount = parse_major_units(self.cleaned_data["amount"], self.payment.currency)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        if not 0 < amount <= self.left:
            raise forms.ValidationError(f"Between 0 and {format_money(self.left, self.payment.currency)}.")
        return amount


class StatusForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Kept in the audit trail")


# The moves staff make by hand; completing and refunding have their own ways.
MOVES = {
    Payment.Status.FAILED: "Mark failed",
    Payment.Status.CANCELLED: "Cancel",
}


@admin.register(Payment)
class PaymentAdmin(AuditedAdmin, ReadOnlyAdmin):
    inlines = [RefundInline]
    actions = ["mark_failed", "cancel_pending", "refund"]
    list_display = ["id", "customer_id", "order_id", "amount_shown", "status", "payment_method", "created_at"]
    list_filter = ["status", "currency", "payment_method"]
    search_fields = ["=id", "customer_id", "order_id", "external_payment_id"]
    date_hierarchy = "created_at"
    change_form_template = "admin/payments/payment/change_form.html"
    fieldsets = [
        (None, {"fields": ["id", "status", "failure_reason", "customer_id", "order_id", "description"]}),
        ("Money", {"fields": ["amount_shown", "refunded_shown", "left_shown", "payment_method"]}),
        ("Stripe", {"fields": ["stripe_ids"]}),
        ("Events and webhooks", {"fields": ["outbox_events", "webhook_history"]}),
        ("Record", {"fields": ["metadata", "created_at", "updated_at"]}),
    ]
    readonly_fields = [
        "id",
        "status",
        "failure_reason",
        "customer_id",
        "order_id",
        "description",
        "amount_shown",
        "refunded_shown",
        "left_shown",
        "payment_method",
        "stripe_ids",
        "outbox_events",
        "webhook_history",
        "metadata",
        "created_at",
        "updated_at",
    ]

    # --- nothing here writes the row: payments are created by the API, moved by the services ---

    def has_move_permission(self, request):
        return request.user.has_perm(MOVE_PERMISSION)

    def has_refund_permission(self, request):
        return request.user.has_perm(REFUND_PERMISSION)

    # --- how a payment reads ---

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, payment: Payment) -> str:
        return format_money(payment.amount, payment.currency)

    @admin.display(description="refunded")
    def refunded_shown(self, payment: Payment) -> str:
        return format_money(payment.refunded_amount, payment.currency)

    @admin.display(description="left to refund")
    def left_shown(self, payment: Payment) -> str:
        if payment.status != Payment.Status.COMPLETED:
            return "-"
        return format_money(refund_left(payment), payment.currency)

    @admin.display(description="Stripe objects")
    def stripe_ids(self, payment: Payment) -> str:
        rows = [("PaymentIntent", stripe_mirror_link("payment_intent", payment.external_payment_id))]
        if payment.metadata.get("stripe_subscription_id"):
            rows.append(
                (
                    "Subscription",
                    stripe_mirror_link("subscription", payment.metadata["stripe_subscription_id"]),
                )
            )
        session = CheckoutSession.objects.filter(payment=payment).first()
        if session is not None:
            rows.append(
                ("Checkout session", admin_link(session, session.stripe_session_id or str(session.pk)))
            )
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="Outbox events")
    def outbox_events(self, payment: Payment) -> str:
        events = OutboxEvent.objects.filter(aggregate_id=str(payment.pk)).order_by("-id")[:HISTORY_SIZE]
        return _table(
            ["Event", "Status", "Attempts", "Created"],
            [(admin_link(e, e.type), e.status, e.attempts, e.created_at) for e in events],
            empty="No event.",
        )

    @admin.display(description="Webhook history")
    def webhook_history(self, payment: Payment) -> str:
        intent = payment.external_payment_id
        if not intent:
            return "Not a Stripe payment."
        events = StripeEvent.objects.filter(
            Q(payload__data__object__id=intent) | Q(payload__data__object__payment_intent=intent)
        ).order_by("-stripe_created_at")[:HISTORY_SIZE]
        return _table(
            ["Event", "Type", "Status", "Error", "Received"],
            [(admin_link(e, e.pk), e.type, e.status, e.last_error[:200], e.received_at) for e in events],
            empty="No webhook received for it.",
        )

    # --- the buttons on a payment's page ---

    def change_view(self, request, object_id, form_url="", extra_context=None):
        payment = self.get_object(request, object_id)
        buttons = []
        if payment is not None:
            if payment.status == Payment.Status.PENDING and self.has_move_permission(request):
                buttons += [(label, self._url("move", payment, status)) for status, label in MOVES.items()]
            if payment.status == Payment.Status.COMPLETED and self.has_refund_permission(request):
                label = "Refund" if is_stripe_payment(payment) else "Record a refund made outside Stripe"
                buttons.append((label, self._url("refund", payment)))
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "payment_buttons": buttons}
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:payment_id>/refund/", wrap(self.refund_view), name="payments_payment_refund"),
            path("<uuid:payment_id>/move/<str:status>/", wrap(self.move_view), name="payments_payment_move"),
            *super().get_urls(),
        ]

    def _url(self, name: str, payment: Payment, *args) -> str:
        return reverse(f"admin:payments_payment_{name}", args=[payment.pk, *args])

    def _back(self, payment: Payment) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:payments_payment_change", args=[payment.pk]))

    def refund_view(self, request, payment_id):
        """A form (amount, reason), then a page saying what it does (and what access it revokes),
        then the refunds service."""
        if not self.has_refund_permission(request):
            raise PermissionDenied
        payment = Payment.objects.filter(pk=payment_id).first()
        if payment is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, str(payment_id))
        stripe = is_stripe_payment(payment)
        left = refund_left(payment) if payment.status == Payment.Status.COMPLETED else 0
        form = RefundForm(request.POST or None, payment=payment, left=left)
        context = {"confirming": False, "revoked": []}
        if request.method == "POST" and form.is_valid():
            amount, reason = form.cleaned_data["amount"], form.cleaned_data["reason"]
            if form.cleaned_data["confirmed"]:
                refund = payment_refund if stripe else payment_refund_record_external
                try:
                    refund(
                        payment_id=payment.pk, amount=amount, reason=reason, requested_by=staff_label(request)
                    )
                except DomainError as error:
                    self.message_user(request, f"Nothing refunded: {error.detail}", messages.ERROR)
                else:
                    self.message_user(
                        request, f"Refunded {format_money(amount, payment.currency)}.", messages.SUCCESS
                    )
                return self._back(payment)
            full = amount == left
            context = {
                "confirming": True,
                "full": full,
                "refund_shown": format_money(amount, payment.currency),
                "revoked": list(
                    entitlements_granted_by(
                        payment_id=payment.pk,
                        subscription_id=payment.metadata.get("stripe_subscription_id", ""),
                    )
                )
                if full
                else [],
            }
            form = RefundForm(
                {"amount": form.data["amount"], "reason": reason, "confirmed": True},
                payment=payment,
                left=left,
            )
        return self._page(
            request,
            "admin/payments/payment/refund.html",
            payment,
            form,
            title=("Refund" if stripe else "Record a refund made outside Stripe") + f" of {payment}",
            crumb="Refund" if stripe else "Record a refund",
            stripe=stripe,
            left_shown=format_money(left, payment.currency),
            **context,
        )

    def move_view(self, request, payment_id, status):
        if not self.has_move_permission(request):
            raise PermissionDenied
        payment = Payment.objects.filter(pk=payment_id).first()
        if payment is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, str(payment_id))
        if status not in MOVES:
            raise PermissionDenied
        form = StatusForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            self._move([payment.pk], request, status, form.cleaned_data["reason"])
            return self._back(payment)
        return self._page(
            request,
            "admin/payments/payment/move.html",
            payment,
            form,
            title=f"{MOVES[status]} payment {payment}",
            crumb=MOVES[status],
            verb=MOVES[status],
        )

    def _page(self, request, template: str, payment: Payment, form, **context) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "original": payment,
                "payment": payment,
                "amount_shown": format_money(payment.amount, payment.currency),
                "form": form,
                **context,
            },
        )

    def _move(self, ids, request, status: str, reason: str) -> None:
        """Through `payment_move_status`, as the API's status call: its state machine, events, metrics."""
        moved = 0
        for pk in ids:
            try:
                services.payment_move_status(
                    payment_id=pk,
                    status=status,
                    failure_reason=reason if status == Payment.Status.FAILED else "",
                    reason=reason,
                )
                moved += 1
            except DomainError as error:
                self.message_user(request, f"Payment {pk}: {error.detail}", messages.ERROR)
        if moved:
            self.message_user(request, f"{moved} payment(s): {MOVES[status].lower()}ed.", messages.SUCCESS)

    # --- the same moves from the list, with the reason typed next to the action ---

    def _action_move(self, request, queryset, status: str) -> None:
        reason = action_reason(request)
        if not reason:
            self.message_user(request, "Give a reason: nothing was changed.", messages.ERROR)
            return
        self._move(list(queryset.values_list("pk", flat=True)), request, status, reason)

    @admin.action(description="Mark selected pending payments failed (reason required)", permissions=["move"])
    def mark_failed(self, request, queryset):
        self._action_move(request, queryset, Payment.Status.FAILED)

    @admin.action(description="Cancel selected pending payments (reason required)", permissions=["move"])
    def cancel_pending(self, request, queryset):
        self._action_move(request, queryset, Payment.Status.CANCELLED)

    @admin.action(description="Refund the selected payment\u2026", permissions=["refund"])
    def refund(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Refund one payment at a time.", messages.ERROR)
            return None
        return HttpResponseRedirect(self._url("refund", queryset.get()))


def _table(headers: list[str], rows: list[tuple], *, empty: str) -> str:
    if not rows:
        return empty
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ReadOnlyAdmin):
    """Read-only: sessions are created through the API, priced at that moment."""

    list_display = ["id", "user_id", "plan", "country", "zone", "amount_shown", "status", "created_at"]
    list_filter = ["status", "zone", "plan"]
    search_fields = ["=id", "user_id", "stripe_session_id", "country"]
    readonly_fields = [
        "id",
        "user_id",
        "plan",
        "country",
        "country_source",
        "zone",
        "multiplier",
        "amount_shown",
        "family_id",
        "stripe_session_id",
        "url",
        "payment",
        "expires_at",
        "created_at",
        "updated_at",
    ]
    exclude = ["amount", "currency", "stripe_subscription_id", "success_url", "cancel_url", "status"]

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, session: CheckoutSession) -> str:
        return format_money(session.amount, session.currency)


class LeftToStaffFilter(admin.BooleanFieldListFilter):
    """`settled_by_staff` under the name its column has."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "left to staff"


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Read-only: bought through checkout; Stripe is the truth and the row follows its events; plan
    changes, cancels and resumes go through the API (`payments.subscriptions`), which asks Stripe. A
    duplicate left to staff is settled (canceled at Stripe, refunded in full) only by the action,
    on a decision."""

    # Fits 1280 px beside the navigation and the filters: the buyer links the row (the id is on its
    # page and searchable), a duplicate left to staff says so in its status, the period's end is
    # shown without its time, and the newest come first without a column for it.
    list_display = ["user_id", "plan", "status_shown", "amount_shown", "period_end"]
    list_display_links = ["user_id"]
    list_filter = ["status", ("settled_by_staff", LeftToStaffFilter), "plan", "zone"]
    search_fields = ["=id", "user_id", "stripe_subscription_id", "stripe_customer_id"]
    list_select_related = ["plan"]
    readonly_fields = [
        "id",
        "user_id",
        "family_id",
        "plan",
        "pending_plan",
        "status",
        "amount_shown",
        "country",
        "zone",
        "current_period_start",
        "current_period_end",
        "paid_through",
        "cancel_at_period_end",
        "canceled_at",
        "ended_at",
        "stripe_subscription_id",
        "stripe_customer_id",
        "checkout_session",
        "duplicate_of",
        "settled_by_staff",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields
    actions = ["settle_duplicates"]

    @admin.display(description="per period", ordering="amount")
    def amount_shown(self, subscription: Subscription) -> str:
        return format_money(subscription.amount, subscription.currency)

    @admin.display(description="period ends", ordering="current_period_end")
    def period_end(self, subscription: Subscription):
        ends = subscription.current_period_end
        return ends and timezone.localdate(ends)

    @admin.display(description="status", ordering="status")
    def status_shown(self, subscription: Subscription) -> str:
        status = subscription.get_status_display()
        return f"{status}, left to staff" if subscription.settled_by_staff else status

    def has_refund_permission(self, request):
        return request.user.has_perm(REFUND_PERMISSION)

    @admin.action(
        description="Cancel at Stripe and refund in full (settle as duplicate)", permissions=["refund"]
    )
    def settle_duplicates(self, request, queryset):
        settled = 0
        for subscription in queryset.order_by("pk"):
            if subscription.duplicate_of_id is None:
                self.message_user(
                    request, f"Subscription {subscription.pk}: not a duplicate, nothing done.", messages.ERROR
                )
                continue
            try:
                subscription_duplicate_settle(subscription_id=subscription.pk, by_staff=staff_label(request))
            except DomainError as error:
                self.message_user(request, f"Subscription {subscription.pk}: {error.detail}", messages.ERROR)
                continue
            settled += 1
        if settled:
            self.message_user(
                request,
                f"{settled} duplicate subscription(s) canceled at Stripe and refunded in full.",
                messages.SUCCESS,
            )


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "type",
        "status",
        "attempts",
        "error",
        "source",
        "stripe_created_at",
        "processed_at",
    ]
    list_filter = ["status", "type", "source"]
    search_fields = ["=id", "type"]
    date_hierarchy = "stripe_created_at"
    actions = ["reprocess"]
    readonly_fields = [f.name for f in StripeEvent._meta.fields]
    ordering = [
        Case(When(status=StripeEvent.Status.FAILED, then=Value(0)), default=Value(1)).asc(),
        "-stripe_created_at",
    ]

    @admin.display(description="error")
    def error(self, event: StripeEvent) -> str:
        return event.last_error[:120]

    def has_reprocess_permission(self, request):
        return request.user.has_perm("payments.change_stripeevent")

    @admin.action(description="Reprocess (failed or stuck events)", permissions=["reprocess"])
    def reprocess(self, request, queryset):
        queued = stripe_events_reprocess(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{queued} event(s) queued for processing again.", messages.SUCCESS)
