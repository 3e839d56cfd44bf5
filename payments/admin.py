from django import forms
from django.contrib import admin

from payments.models import CheckoutSession, Payment


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


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    form = PaymentAdminForm
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
