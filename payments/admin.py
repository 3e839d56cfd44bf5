from django import forms
from django.contrib import admin, messages

from jia_payments.core.api.errors import DomainError
from jia_payments.core.audit.admin import AuditedAdmin, action_reason
from payments.models import CheckoutSession, Payment, Refund, StripeEvent
from payments.refunds import payment_refund
from payments.stripe.events import stripe_events_reprocess


class PaymentAdminForm(forms.ModelForm):
    class Meta:
        model = Payment
        fields = [
            "amount",
            "currency",
            "status",
            "payment_method",
            "customer_id",
            "order_id",
            "description",
            "external_payment_id",
            "failure_reason",
            "metadata",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and "status" in self.fields:
            current = self.instance.status
            allowed = {current, *Payment.TRANSITIONS[Payment.Status(current)]}
            self.fields["status"].choices = [c for c in Payment.Status.choices if c[0] in allowed]

    def clean_status(self):
        status = self.cleaned_data["status"]
        if self.instance.pk:
            current = Payment.objects.values_list("status", flat=True).get(pk=self.instance.pk)
            if status != current and status not in Payment.TRANSITIONS[Payment.Status(current)]:
                raise forms.ValidationError(f"A {current} payment cannot become {status}.")
        elif status != Payment.Status.PENDING:
            raise forms.ValidationError("A new payment starts as pending.")
        return status


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = [
        "id",
        "amount",
        "status",
        "reason",
        "stripe_refund_id",
        "requested_by",
        "failure_reason",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # refunds go through Stripe: the "Refund in full" action


@admin.action(description="Refund in full through Stripe")
def refund_in_full(modeladmin, request, queryset):
    """The reason typed next to the action goes to Stripe (as metadata), the refund and the audit
    trail; a refund needs one."""
    reason = action_reason(request)
    if not reason:
        modeladmin.message_user(request, "Give a reason: nothing was refunded.", messages.ERROR)
        return
    for payment in queryset:
        try:
            payment_refund(
                payment_id=payment.pk,
                amount=None,
                reason=reason,
                requested_by=f"staff:{request.user}",
            )
        except DomainError as error:
            modeladmin.message_user(request, f"Payment {payment.pk}: {error.detail}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"Payment {payment.pk}: refunded", messages.SUCCESS)


@admin.register(Payment)
class PaymentAdmin(AuditedAdmin, admin.ModelAdmin):
    form = PaymentAdminForm
    inlines = [RefundInline]
    actions = [refund_in_full]
    list_display = [
        "id",
        "customer_id",
        "order_id",
        "amount",
        "currency",
        "status",
        "payment_method",
        "created_at",
    ]
    list_filter = ["status", "currency", "payment_method"]
    search_fields = ["=id", "customer_id", "order_id", "external_payment_id"]
    readonly_fields = ["id", "refunded_amount", "created_at", "updated_at"]
    date_hierarchy = "created_at"


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "user_id", "plan", "country", "zone", "amount", "currency", "status", "created_at"]
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
        "amount",
        "currency",
        "family_id",
        "stripe_session_id",
        "url",
        "payment",
        "expires_at",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request):
        return False  # sessions are created through the API, priced at that moment


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "attempts", "source", "stripe_created_at", "processed_at"]
    list_filter = ["status", "type", "source"]
    search_fields = ["=id", "type"]
    date_hierarchy = "stripe_created_at"
    actions = ["reprocess"]
    readonly_fields = [f.name for f in StripeEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_reprocess_permission(self, request):
        return request.user.has_perm("payments.change_stripeevent")

    @admin.action(description="Reprocess (failed or stuck events)", permissions=["reprocess"])
    def reprocess(self, request, queryset):
        queued = stripe_events_reprocess(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{queued} event(s) queued for processing again.", messages.SUCCESS)
