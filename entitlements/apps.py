from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    name = "entitlements"
    verbose_name = "Entitlements and families"

    def ready(self):
        from entitlements import metrics  # noqa: F401  (its counters are scraped from process start)
        from entitlements.services import plan_entitlements_sync_later
        from jia_payments.core.outbox.events import register_event_types
        from pricing.services import on_plan_features_changed

        register_event_types("entitlement.created", "entitlement.updated", "entitlement.expired")
        # The entitlements granted by a plan follow its features and limits (synced after commit).
        on_plan_features_changed(plan_entitlements_sync_later)
