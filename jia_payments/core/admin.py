import json

from django.contrib import admin, messages
from django.db.models import Case, Value, When
from django.utils.html import format_html

from jia_payments.core.models import IdempotencyKey, OutboxEvent
from jia_payments.core.outbox.services import outbox_republish


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "subject", "status", "attempts", "error", "created_at", "sent_at"]
    list_filter = ["status", "type"]
    search_fields = ["subject", "aggregate_id", "=event_id"]
    # What needs looking at first: not yet sent and failing (most attempts), then the rest, newest first.
    ordering = [
        Case(When(status=OutboxEvent.Status.SENT, then=Value(1)), default=Value(0)).asc(),
        "-attempts",
        "-id",
    ]
    fields = [
        "id",
        "event_id",
        "type",
        "aggregate_id",
        "subject",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
        "pretty_envelope",
    ]
    readonly_fields = fields
    actions = ["publish_again"]

    @admin.display(description="error")
    def error(self, obj) -> str:
        return obj.last_error[:120]

    @admin.display(description="envelope")
    def pretty_envelope(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.envelope, indent=2, sort_keys=True))

    def has_publish_permission(self, request):
        return request.user.has_perm("core.change_outboxevent")

    @admin.action(description="Publish again (same event id)", permissions=["publish"])
    def publish_again(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        count = outbox_republish(ids=ids)
        skipped = len(ids) - count
        message = f"{count} event(s) queued to be published again."
        if skipped:
            message += f" {skipped} still pending were left as they are."
        self.message_user(request, message, messages.SUCCESS)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["caller", "key", "method", "path", "state", "response_status", "created_at"]
    list_filter = ["state", "method"]
    search_fields = ["caller", "key"]


# --- The audit trail: every entry says who acted (admin user, API caller or system job) and why ---

from auditlog import admin as auditlog_admin  # noqa: E402  (registers auditlog's LogEntryAdmin first)
from auditlog.models import LogEntry  # noqa: E402

from jia_payments.core.audit.admin import changes_html, entry_as_shown  # noqa: E402
from jia_payments.core.audit.trail import actor_label, reason_of  # noqa: E402

admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class AuditLogEntryAdmin(auditlog_admin.LogEntryAdmin):
    list_display = ["created", "resource_url", "action", "msg_short", "who", "why", "cid_url"]
    search_fields = [*auditlog_admin.LogEntryAdmin.search_fields, "actor_email", "object_pk"]
    readonly_fields = [*auditlog_admin.LogEntryAdmin.readonly_fields, "who", "why", "additional_data"]
    fieldsets = [
        (None, {"fields": ["created", "who", "why", "resource_url", "cid"]}),
        ("Changes", {"fields": ["action", "msg", "additional_data"]}),
    ]

    @admin.display(description="Changes")
    def msg_short(self, entry):
        return super().msg_short(entry_as_shown(entry))

    @admin.display(description="Changes")
    def msg(self, entry):
        return changes_html(entry)

    @admin.display(description="Who")
    def who(self, entry) -> str:
        return actor_label(entry)

    @admin.display(description="Reason")
    def why(self, entry) -> str:
        return reason_of(entry)
