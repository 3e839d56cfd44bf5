import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Family(models.Model):
    """The group that shares a family plan; the buyer is its owner and counts as a seat."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_user_id = models.CharField(max_length=255, db_index=True)
    plan = models.ForeignKey("pricing.Plan", on_delete=models.PROTECT, related_name="families")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "families"

    def __str__(self) -> str:
        return f"family {self.id} of {self.owner_user_id}"


class FamilyMember(models.Model):
    id = models.BigAutoField(primary_key=True)
    family = models.ForeignKey(Family, on_delete=models.CASCADE, related_name="members")
    user_id = models.CharField(max_length=255)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["family", "user_id"], name="family_member_unique"),
        ]
        indexes = [models.Index(fields=["user_id"], name="familymember_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.family_id}"


class Entitlement(models.Model):
    """A user's (or a family's) right to one feature, granted by a plan.

    Access = status active and (expires_at is null or in the future). `expires_at` null = lifetime.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=255)
    family = models.ForeignKey(
        Family, null=True, blank=True, on_delete=models.PROTECT, related_name="entitlements"
    )
    feature = models.ForeignKey(
        "pricing.Feature",
        to_field="code",
        db_column="feature_code",
        on_delete=models.PROTECT,
        related_name="entitlements",
    )
    plan = models.ForeignKey("pricing.Plan", on_delete=models.PROTECT, related_name="entitlements")
    subscription_id = models.CharField(max_length=255, blank=True)
    payment_id = models.UUIDField(null=True, blank=True, help_text="The payment that granted it")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty = lifetime")
    usage_limits = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "expired", "cancelled"]),
                name="entitlement_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["user_id", "feature"], name="entitlement_user_feature_idx"),
            models.Index(fields=["family"], name="entitlement_family_idx"),
            models.Index(
                fields=["expires_at"], name="entitlement_active_expiry_idx", condition=Q(status="active")
            ),
            models.Index(fields=["subscription_id"], name="entitlement_subscription_idx"),
            models.Index(fields=["payment_id"], name="entitlement_payment_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.feature_id} ({self.status})"
