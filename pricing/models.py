import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from jia_payments.core.api.validation import CODE, CURRENCY_CODE, FEATURE_CODE_MAX_LENGTH, ISO_COUNTRY_CODE


class Feature(models.Model):
    """A feature code of the catalog, e.g. `family_calendar`."""

    code = models.CharField(primary_key=True, max_length=FEATURE_CODE_MAX_LENGTH, validators=[CODE])
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Plan(models.Model):
    class BillingCycle(models.TextChoices):
        MONTHLY = "monthly"
        YEARLY = "yearly"
        ONE_TIME = "one_time"

    id = models.CharField(primary_key=True, max_length=FEATURE_CODE_MAX_LENGTH, validators=[CODE])
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    features = models.ManyToManyField(Feature, related_name="plans", blank=True)
    billing_cycle = models.CharField(max_length=16, choices=BillingCycle.choices)
    price_cents = models.PositiveIntegerField(help_text="Zone A price in minor units; 0 = free")
    currency = models.CharField(max_length=3, default="USD", validators=[CURRENCY_CODE])
    max_users = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Seats, the owner included"
    )
    usage_limits = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["price_cents", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(price_cents__gte=0), name="plan_price_cents_gte_0"),
            models.CheckConstraint(condition=Q(max_users__gte=1), name="plan_max_users_gte_1"),
            models.CheckConstraint(
                condition=Q(billing_cycle__in=["monthly", "yearly", "one_time"]),
                name="plan_billing_cycle_valid",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="plan_currency_iso"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.price_cents == 0

    @property
    def is_family(self) -> bool:
        return self.max_users > 1


class PricingZone(models.Model):
    """A country's purchasing-power zone: its price is the plan price times the multiplier."""

    class Zone(models.TextChoices):
        A = "A", "A (Premium)"
        B = "B", "B (Mid-High)"
        C = "C", "C (Mid-Low)"
        D = "D", "D (Low-Income)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    country = models.CharField(max_length=100)
    iso_code = models.CharField(max_length=2, unique=True, validators=[ISO_COUNTRY_CODE])
    zone = models.CharField(max_length=1, choices=Zone.choices)
    zone_name = models.CharField(max_length=50)
    world_bank_classification = models.CharField(max_length=50, blank=True)
    gni_per_capita_threshold = models.CharField(max_length=50, blank=True)
    pricing_multiplier = models.DecimalField(
        max_digits=5, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["iso_code"]
        constraints = [
            models.CheckConstraint(condition=Q(zone__in=["A", "B", "C", "D"]), name="zone_in_a_to_d"),
            models.CheckConstraint(
                condition=Q(pricing_multiplier__gte=0), name="zone_pricing_multiplier_gte_0"
            ),
            models.CheckConstraint(condition=Q(iso_code__regex=r"^[A-Z]{2}$"), name="zone_iso_code_format"),
        ]
        indexes = [
            models.Index(fields=["zone"], name="pricingzone_zone_idx"),
            models.Index(models.functions.Upper("country"), name="pricingzone_country_upper_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.iso_code} ({self.zone})"
