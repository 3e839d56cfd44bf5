from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed


def _point_djstripe_at_stripe_api_base(**kwargs):
    """dj-stripe calls Stripe through the SDK's global `api_base` (our gateway does not)."""
    import stripe
    from django.conf import settings

    if kwargs.get("setting", "STRIPE_API_BASE") == "STRIPE_API_BASE":
        stripe.api_base = settings.STRIPE_API_BASE or stripe.DEFAULT_API_BASE


def check_webhook_event_callback(app_configs=None, **kwargs):
    """dj-stripe's own check, less its deprecation warning (see `PaymentsConfig.ready`)."""
    import inspect

    from djstripe.settings import djstripe_settings

    callback = djstripe_settings.WEBHOOK_EVENT_CALLBACK
    if callback and len(inspect.signature(callback).parameters) < 2:
        return [checks.Error(f"{callback} must accept (trigger, api_key).", id="djstripe.E004")]
    return []


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments and checkout"

    def ready(self):
        # dj-stripe deprecates DJSTRIPE_WEBHOOK_EVENT_CALLBACK in favour of its signals, with an
        # unsilenceable warning; our rule is no signals for our logic (DESIGN.md), and the callback
        # is what hands a verified event to Celery. Keep its argument check, drop the warning.
        from djstripe import checks as djstripe_checks

        checks.registry.registry.registered_checks.discard(
            djstripe_checks.check_webhook_event_callback_accepts_api_key
        )
        checks.register(check_webhook_event_callback, "djstripe")
        _point_djstripe_at_stripe_api_base()
        setting_changed.connect(_point_djstripe_at_stripe_api_base, dispatch_uid="payments.stripe_api_base")

        from jia_payments.core.outbox.events import register_event_types
        from payments import metrics
        from payments.stripe.handlers import HANDLERS

        metrics.register_handled_event_types(HANDLERS)
        register_event_types(
            "payment.created",
            "payment.status.updated",
            "payment.completed",
            "payment.refunded",
            "checkout.session.created",
            "checkout.session.completed",
            "subscription.updated",
            "subscription.payment_failed",
            "subscription.canceled",
            "subscription.duplicate_canceled",
        )
