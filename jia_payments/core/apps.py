"""The shared layer every app builds on, importing no app: `api/` (what every REST view uses),
`outbox/` (events and their relay to Kafka), `audit/` (the audit trail) and `ops/` (health,
metrics registry, logs, system checks). Its models (idempotency keys, outbox rows) and the
serving commands (`management/commands/`) stay at the package root, where Django finds them."""

from django.apps import AppConfig
from django.core.signals import setting_changed


def _reload_auth_keys(*, setting, **kwargs):
    if setting.startswith("AUTH_"):
        from jia_payments.core.api.auth import _verification_keys, forget_verified_tokens

        _verification_keys.cache_clear()
        forget_verified_tokens()


class CoreConfig(AppConfig):
    name = "jia_payments.core"
    label = "core"
    verbose_name = "Core: events and idempotency"

    def ready(self):
        from jia_payments.core.ops import checks  # noqa: F401  (registers the system checks)

        setting_changed.connect(_reload_auth_keys, dispatch_uid="core.reload_auth_keys")
        from auditlog.models import LogEntry
        from celery.signals import before_task_publish, task_postrun, task_prerun
        from django.db.models.signals import pre_save

        from jia_payments.core.audit.trail import (
            fill_log_entry,
            task_audit_end,
            task_audit_headers,
            task_audit_resume,
        )
        from jia_payments.core.ops import metrics

        metrics.connect_celery_signals()
        pre_save.connect(fill_log_entry, sender=LogEntry, dispatch_uid="core.audit.fill_log_entry")
        # Work a caller starts and a Celery task finishes names the caller, not "system".
        before_task_publish.connect(task_audit_headers, dispatch_uid="core.audit.task_headers")
        task_prerun.connect(task_audit_resume, dispatch_uid="core.audit.task_resume")
        task_postrun.connect(task_audit_end, dispatch_uid="core.audit.task_end")
