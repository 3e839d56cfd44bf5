from django.contrib import admin

from entitlements.models import Entitlement, Family, FamilyMember


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    list_display = ["user_id", "feature", "plan", "status", "expires_at", "family", "granted_at"]
    list_filter = ["status", "plan", "feature"]
    search_fields = ["user_id", "subscription_id", "=id", "=family__id"]
    readonly_fields = ["id", "granted_at", "created_at", "updated_at"]
    raw_id_fields = ["family"]
    date_hierarchy = "granted_at"
    list_select_related = ["plan", "feature"]


class FamilyMemberInline(admin.TabularInline):
    model = FamilyMember
    extra = 0
    readonly_fields = ["added_at"]


@admin.register(Family)
class FamilyAdmin(admin.ModelAdmin):
    list_display = ["id", "owner_user_id", "plan", "created_at"]
    list_filter = ["plan"]
    search_fields = ["=id", "owner_user_id", "members__user_id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [FamilyMemberInline]
