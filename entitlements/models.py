import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Family(models.Model):
    """The group that shares a family plan; the buyer is its owner and counts as a seat.

    `member_count` is the number of FamilyMember rows (the owner's included). Adding a member
    raises it with one conditional UPDATE that compares it with the plan's `max_users`, so the
    database decides who gets the last seat, however many adds run at once.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner_user_id = models.CharField(max_length=255, db_index=True)
    plan = models.ForeignKey("pricing.Plan", on_delete=models.PROTECT, related_name="families")
    member_count = models.PositiveSmallIntegerField(default=0, editable=False, help_text="Seats taken")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "families"
        constraints = [
            models.CheckConstraint(condition=Q(member_count__gte=0), name="family_member_count_gte_0"),
            models.CheckConstraint(condition=~Q(owner_user_id=""), name="family_owner_not_empty"),
        ]

    def __str__(self) -> str:
        return f"family {self.id} of {self.owner_user_id}"


class FamilyMember(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    id = models.BigAutoField(primary_key=True)
    family = models.ForeignKey(Family, on_delete=models.CASCADE, related_name="members")
    user_id = models.CharField(max_length=255)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["family", "user_id"], name="family_member_unique"),
            models.UniqueConstraint(
                fields=["family"], condition=Q(role="owner"), name="family_one_owner_member"
            ),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "member"]), name="family_member_role_valid"
            ),
            models.CheckConstraint(condition=~Q(user_id=""), name="family_member_user_not_empty"),
        ]
        indexes = [models.Index(fields=["user_id"], name="familymember_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.family_id}"


class Entitlement(models.Model):
    """A user's (or a family's) right to one feature, granted by a plan.

    Access = status active and (expires_at is null or in the future). `expires_at` null = lifetime.
    A family's rows carry the owner's `user_id` and the `family`; members reach them through
    FamilyMember.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    class Origin(models.TextChoices):
        PLAN = "plan", "Plan grant (follows the plan's features and limits)"
        MANUAL = "manual", "Single grant (API or admin)"

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
    grant_id = models.UUIDField(null=True, blank=True, help_text="The plan grant (no checkout) that made it")
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.MANUAL, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=255, blank=True, help_text="Why it was cancelled or expired")
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
            models.CheckConstraint(
                condition=Q(origin__in=["plan", "manual"]), name="entitlement_origin_valid"
            ),
            models.CheckConstraint(condition=~Q(user_id=""), name="entitlement_user_not_empty"),
            # A retried webhook cannot add rows: one row per feature per subscription / payment.
            models.UniqueConstraint(
                fields=["subscription_id", "feature"],
                condition=~Q(subscription_id=""),
                name="entitlement_subscription_feature_unique",
            ),
            models.UniqueConstraint(
                fields=["payment_id", "feature"],
                condition=Q(payment_id__isnull=False),
                name="entitlement_payment_feature_unique",
            ),
            models.UniqueConstraint(
                fields=["grant_id", "feature"],
                condition=Q(grant_id__isnull=False),
                name="entitlement_grant_feature_unique",
            ),
            # Grants with none of these (free plan, single grants): one active row per holder and feature.
            models.UniqueConstraint(
                fields=["user_id", "plan", "feature", "family"],
                condition=Q(
                    subscription_id="", payment_id__isnull=True, grant_id__isnull=True, status="active"
                ),
                nulls_distinct=False,
                name="entitlement_unkeyed_active_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["user_id", "feature"], name="entitlement_user_feature_idx"),
            models.Index(
                fields=["expires_at"], name="entitlement_active_expiry_idx", condition=Q(status="active")
            ),
            models.Index(fields=["subscription_id"], name="entitlement_subscription_idx"),
            models.Index(fields=["payment_id"], name="entitlement_payment_idx"),
            models.Index(fields=["grant_id"], name="entitlement_grant_idx"),
            models.Index(fields=["plan"], name="entitlement_plan_active_idx", condition=Q(status="active")),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.feature_id} ({self.status})"

    def grants_access(self, now=None) -> bool:
        now = now or timezone.now()
        return self.status == self.Status.ACTIVE and (self.expires_at is None or self.expires_at > now)
