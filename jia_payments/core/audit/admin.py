"""The audit trail in Django admin: each audited object's change page shows its recent changes
(who, when, before -> after, why) with a link to its full audit log, and staff give a reason for a
change (a "Reason" box on the form and next to the actions)."""

import copy
from functools import cache

from auditlog.mixins import AuditlogHistoryAdminMixin
from auditlog.render import render_logentry_changes_html
from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import quote
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from jia_payments.core.audit.trail import actor_label, audit_context, entries_for, reason_of

MAX_VALUE_CHARS = 80


class ReasonActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=255,
        label="Reason",
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "why (kept in the audit trail)"}),
    )


def action_reason(request) -> str:
    """The reason typed next to an admin action ("" when none)."""
    return request.POST.get("reason", "").strip()[:255]


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "\u2026"


@cache
def _reverse_relations(model) -> frozenset[str]:
    return frozenset(f.name for f in model._meta.get_fields() if f.auto_created and not f.concrete)


def recorded_changes(entry) -> dict:
    """An entry's changes as shown: without the reverse side of another model's relation (entries
    written before it was excluded hold a payment's "refunds: None -> payments.Refund.None"; the
    rows are history and stay as written). A field the model has since lost is still shown."""
    changes = entry.changes_dict or {}
    model = entry.content_type.model_class()
    hidden = _reverse_relations(model) if model is not None else frozenset()
    return {field: change for field, change in changes.items() if field not in hidden}


def entry_as_shown(entry):
    """A copy of `entry` holding only `recorded_changes`, for auditlog's own rendering."""
    shown = copy.copy(entry)
    shown.changes, shown.changes_text = recorded_changes(entry), ""
    return shown


def changes_html(entry) -> str:
    """An entry's changes as auditlog's before/after tables, reverse relations left out."""
    return render_logentry_changes_html(entry_as_shown(entry))


def changes_text(entry) -> str:
    """An entry's changes on one line: "field: before -> after; ..."."""
    parts = []
    for field, change in recorded_changes(entry).items():
        if isinstance(change, dict):  # a many-to-many change
            objects = ", ".join(str(o) for o in change.get("objects", []))
            parts.append(f"{field}: {change.get('operation', '')} {_short(objects)}")
        elif isinstance(change, (list, tuple)) and len(change) == 2:
            parts.append(f"{field}: {_short(change[0])} \u2192 {_short(change[1])}")
    return "; ".join(parts)


class AuditedAdmin(AuditlogHistoryAdminMixin):
    """Mix into a ModelAdmin (first) of a model auditlog tracks."""

    show_auditlog_history_link = True
    action_form = ReasonActionForm
    audit_trail_size = 10

    def get_form(self, request, obj=None, change=False, **kwargs):
        if "form" not in kwargs:
            reason = forms.CharField(
                required=False,
                max_length=500,
                label="Reason for this change",
                help_text="Kept in the audit trail with the change.",
            )
            kwargs["form"] = type(self.form.__name__, (self.form,), {"audit_reason": reason})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "audit_trail"] if obj is not None else fields

    def get_fieldsets(self, request, obj=None):
        ours = {"audit_trail", "audit_reason"}
        fieldsets = [
            (name, {**options, "fields": [f for f in options["fields"] if f not in ours]})
            for name, options in super().get_fieldsets(request, obj)
        ]
        fields = ["audit_reason", "audit_trail"] if obj is not None else ["audit_reason"]
        if not self.has_change_permission(request, obj) and obj is not None:
            fields = ["audit_trail"]
        return [*fieldsets, ("Audit trail", {"fields": fields})]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        reason = request.POST.get("audit_reason", "").strip() if request.method == "POST" else ""
        with audit_context(reason=reason):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        with audit_context(reason=action_reason(request) if request.method == "POST" else ""):
            return super().changelist_view(request, extra_context)

    @admin.display(description="Recent changes")
    def audit_trail(self, obj) -> str:
        entries = list(entries_for(obj)[: self.audit_trail_size])
        opts = self.model._meta
        try:
            full = reverse(f"admin:{opts.app_label}_{opts.model_name}_auditlog", args=[quote(obj.pk)])
        except NoReverseMatch:
            full = ""
        if not entries:
            return "No change recorded yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    localtime(entry.timestamp).strftime("%Y-%m-%d %H:%M:%S %Z"),
                    actor_label(entry),
                    entry.get_action_display(),
                    changes_text(entry),
                    reason_of(entry),
                )
                for entry in entries
            ),
        )
        return format_html(
            '<table class="audit-trail"><thead><tr><th>When</th><th>Who</th><th>Action</th>'
            "<th>Changes (before \u2192 after)</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a class="audit-log-link" href="{}">Full audit log</a></p>',
            rows,
            full,
        )
