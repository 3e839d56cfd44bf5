"""Django admin for entitlements and families. Every save and action goes through the services,
so admin writes record their events and invalidate the cached answers like API writes do."""

from django import forms
from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html

from entitlements import admin_views, services
from entitlements.models import Entitlement, Family, FamilyMember
from jia_payments.core.api.errors import DomainError
from jia_payments.core.audit.admin import AuditedAdmin, action_reason


class EntitlementForm(forms.ModelForm):
    class Meta:
        model = Entitlement
        fields = [
            "user_id",
            "feature",
            "plan",
            "family",
            "status",
            "status_reason",
            "expires_at",
            "usage_limits",
            "metadata",
        ]

    def clean(self):
        data = super().clean()
        plan, feature = data.get("plan"), data.get("feature")
        if plan is not None and feature is not None:
            try:
                services.check_feature_of_plan(plan=plan, feature_code=feature.pk)
            except DomainError as error:
                self.add_error(
                    "feature", (getattr(error, "errors", None) or {}).get("feature_code") or str(error.detail)
                )
        return data


@admin.register(Entitlement)
class EntitlementAdmin(AuditedAdmin, admin.ModelAdmin):
    form = EntitlementForm
    list_display = [
        "user_id",
        "feature",
        "plan",
        "status",
        "expires_at",
        "family_owner",
        "origin_short",
        "granted_at",
    ]
    list_filter = ["status", "origin", "plan", "feature"]
    search_fields = ["user_id", "subscription_id", "=id", "=family__id", "=payment_id"]
    # When and by what purchase a row was granted are facts, not settings: a manual grant is granted
    # now, by no payment or subscription.
    readonly_fields = [
        "id",
        "origin",
        "granted_at",
        "subscription_id",
        "payment_id",
        "created_at",
        "updated_at",
    ]
    raw_id_fields = ["family"]
    date_hierarchy = "granted_at"
    list_select_related = ["plan", "feature", "family"]
    actions = ["cancel_selected", "extend_selected", "expire_selected", "reactivate_selected"]
    change_list_template = "admin/entitlements/entitlement/change_list.html"
    fieldsets = [
        (None, {"fields": ["id", "user_id", "feature", "plan", "family", "origin"]}),
        ("State", {"fields": ["status", "status_reason", "granted_at", "expires_at"]}),
        ("Granted by", {"fields": ["subscription_id", "payment_id"]}),
        ("Details", {"fields": ["usage_limits", "metadata", "created_at", "updated_at"]}),
    ]

    def has_delete_permission(self, request, obj=None):
        return False  # cancel instead: the history of who had what stays

    @admin.display(description="Origin", ordering="origin")
    def origin_short(self, entitlement) -> str:
        """The origin's name without its explanation (the filter beside the list keeps that)."""
        return entitlement.get_origin_display().split(" (")[0]

    @admin.display(description="Family", ordering="family__owner_user_id")
    def family_owner(self, entitlement) -> str:
        """The family by its owner, short enough for the list (its id is the link's title)."""
        family = entitlement.family
        if family is None:
            return "-"
        link = reverse("admin:entitlements_family_change", args=[family.pk])
        return format_html('<a href="{}" title="family {}">of {}</a>', link, family.pk, family.owner_user_id)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        grant = path(
            "grant-plan/",
            wrap(lambda r: admin_views.grant_plan_view(self, r)),
            name="entitlements_grant_plan",
        )
        return [grant, *super().get_urls()]

    def site_urls(self):
        why = self.admin_site.admin_view(lambda r: admin_views.why_view(self, r))
        return [path("entitlements/why/", why, name="entitlements_why")]

    def save_model(self, request, obj, form, change):
        if change:
            services.entitlement_update(entitlement=obj, changed_fields=form.changed_data)
        else:
            services.entitlement_admin_create(entitlement=obj)

    @admin.action(description="Extend selected entitlements (new end, reason)\u2026", permissions=["change"])
    def extend_selected(self, request, queryset):
        return admin_views.extend_view(
            self, request, [str(pk) for pk in queryset.values_list("pk", flat=True)]
        )

    def _move(self, request, queryset, status: str, verb: str, *, reason_required: bool = False) -> None:
        """`reason`: typed next to the action; it becomes the rows' status_reason and is audited."""
        reason = action_reason(request)
        if reason_required and not reason:
            self.message_user(request, f"Give a reason: nothing was {verb}.", messages.ERROR)
            return
        moved = refused = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                services.entitlement_set_status(
                    entitlement_id=pk, status=status, reason=reason or f"admin: {verb}"
                )
                moved += 1
            except DomainError:
                refused += 1
        self.message_user(request, f"{moved} entitlement(s) {verb}.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} could not be {verb}.", messages.WARNING)

    @admin.action(description="Cancel (revoke) selected entitlements", permissions=["change"])
    def cancel_selected(self, request, queryset):
        self._move(request, queryset, Entitlement.Status.CANCELLED, "cancelled", reason_required=True)

    @admin.action(description="Mark selected entitlements expired", permissions=["change"])
    def expire_selected(self, request, queryset):
        self._move(request, queryset, Entitlement.Status.EXPIRED, "expired")

    @admin.action(description="Reactivate selected entitlements", permissions=["change"])
    def reactivate_selected(self, request, queryset):
        self._move(request, queryset, Entitlement.Status.ACTIVE, "reactivated")


class FamilyMemberForm(forms.ModelForm):
    class Meta:
        model = FamilyMember
        fields = ["user_id"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # a member is removed and added, never renamed
            self.fields["user_id"].disabled = True


class FamilyMemberInline(admin.TabularInline):
    model = FamilyMember
    form = FamilyMemberForm
    extra = 1
    fields = ["user_id", "role", "added_at"]
    readonly_fields = ["role", "added_at"]


@admin.register(Family)
class FamilyAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["id", "owner_user_id", "plan", "seats", "created_at"]
    list_filter = ["plan"]
    search_fields = ["=id", "owner_user_id", "members__user_id"]
    readonly_fields = ["id", "owner_user_id", "plan", "member_count", "created_at", "updated_at"]
    list_select_related = ["plan"]
    inlines = [FamilyMemberInline]

    def has_add_permission(self, request):
        return False  # families are created by a family plan's grant

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Seats")
    def seats(self, family: Family) -> str:
        return format_html("{} / {}", family.member_count, family.plan.max_users)

    def save_formset(self, request, form, formset, change):
        """Members are added and removed by the services: seats counted, access updated at once."""
        if formset.model is not FamilyMember:
            return super().save_formset(request, form, formset, change)
        family = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for member_form in formset.forms:
            if not member_form.has_changed() and not formset._should_delete_form(member_form):
                continue
            member, user_id = member_form.instance, member_form.cleaned_data.get("user_id")
            try:
                if formset._should_delete_form(member_form) and member.pk:
                    services.family_member_remove(family_id=family.pk, user_id=member.user_id)
                    formset.deleted_objects.append(member)
                elif not member.pk and user_id:
                    formset.new_objects.append(
                        services.family_member_add(family_id=family.pk, user_id=user_id)
                    )
            except DomainError as error:
                self.message_user(request, f"{error.title}: {error.detail}", messages.ERROR)
