"""The project's Celery app as the end-to-end tests' worker process runs it (`-A testsupport.celery_app`).

The same app as production, plus one thing only tests need: transactional tests flush the database
between tests, and the content types Django recreates afterwards get new ids, while a worker process
keeps the ids it cached (ContentType.objects) for its whole life. The audit trail's entries point at
content types, so the worker forgets that cache before each task.
"""

from celery.signals import task_prerun

from jia_payments.celery import app

__all__ = ["app"]


@task_prerun.connect
def _forget_content_type_ids(**kwargs):
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


# Webhook handlers read Stripe outside any transaction or row lock (payments.stripe.handlers):
# in the end-to-end worker, a Stripe read inside a transaction fails its task, so every flow the
# end-to-end tests drive holds to it.
_HANDLER_READS = (
    "checkout_session_retrieve",
    "subscription_retrieve",
    "invoice_retrieve",
    "payment_intent_retrieve",
    "refunds_list",
)


def _outside_transactions(read):
    def guarded(*args, **kwargs):
        from django.db import connection

        if connection.in_atomic_block:
            raise RuntimeError(f"stripe_gateway.{read.__name__} called inside a database transaction")
        return read(*args, **kwargs)

    return guarded


def _guard_stripe_reads() -> None:
    from payments.stripe import gateway as stripe_gateway

    for name in _HANDLER_READS:
        setattr(stripe_gateway, name, _outside_transactions(getattr(stripe_gateway, name)))


_guard_stripe_reads()
