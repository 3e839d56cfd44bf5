"""Reads of the outbox for people (the admin dashboard)."""

from django.db.models import Count, Min, Q

from jia_payments.core.models import OutboxEvent


def outbox_backlog() -> dict:
    """Events not yet on Kafka: `{pending, failing, oldest}` (failing: publishing was tried and
    failed at least once; oldest: the earliest one's creation time, None when there is none)."""
    return OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).aggregate(
        pending=Count("id"), failing=Count("id", filter=Q(attempts__gt=0)), oldest=Min("created_at")
    )
