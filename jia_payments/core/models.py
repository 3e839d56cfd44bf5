import uuid

from django.db import models


class OutboxEvent(models.Model):
    """A domain event, written in the transaction of the change it describes.

    The relay (`jia_payments.core.outbox`) publishes pending rows to Kafka in `id` order, key =
    `aggregate_id`, and marks them sent once the broker acknowledged them; a row is never
    published while an earlier row of its aggregate is still pending. `event_id` is the
    CloudEvents id: a re-publish carries the same one. Sent rows are pruned after
    EVENTS_RETENTION_DAYS; pending rows are never deleted.

    A row the broker refused EVENTS_MAX_ATTEMPTS times with an error that retrying cannot cure
    (kafka-python's non-retriable errors: a message over the size limit, say) is `dead`: the
    relay stops trying it, so it no longer backs off every batch. It still holds back the later
    rows of its aggregate: consumers never see an aggregate's events out of order. Admin's
    "publish again" makes it pending again, in its place; admin and /metrics show dead rows.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        DEAD = "dead"

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64, help_text="Kafka key: payment, entitlement or checkout id")
    subject = models.CharField(max_length=255)
    envelope = models.JSONField(help_text="The CloudEvents 1.0 message as published")
    trace_context = models.JSONField(
        null=True,
        blank=True,
        help_text="W3C trace context (traceparent, tracestate) of the transaction that wrote it, "
        "when traced: the message carries it, in its headers and the envelope",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"],
                name="outbox_pending_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["status", "sent_at"], name="outbox_status_sent_idx"),
            # The relay's claim asks, for each candidate, "is an earlier row of this aggregate
            # still pending?" (per-key order with several relays): a probe of this small index.
            models.Index(
                fields=["aggregate_id", "id"],
                name="outbox_pending_aggregate_idx",
                condition=models.Q(status="pending"),
            ),
            # The same probe for dead rows, which hold back their aggregate too (a few at most).
            models.Index(
                fields=["aggregate_id", "id"],
                name="outbox_dead_aggregate_idx",
                condition=models.Q(status="dead"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "sent", "dead"]), name="outbox_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.subject}"


class IdempotencyKey(models.Model):
    """One row per (caller, Idempotency-Key): the first request's fingerprint and answer."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        RELEASED = "released"  # refused or failed cleanly: the next request takes it at once

    id = models.BigAutoField(primary_key=True)
    caller = models.CharField(max_length=255, help_text="Who sent it: user id or service id")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=512)
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request body")
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(
        blank=True,
        default="",
        help_text="The stored answer's JSON exactly as sent (key order kept for the replay)",
    )
    effect_id = models.UUIDField(
        default=uuid.uuid4,
        help_text="The id of what the request makes (its payment, refund, checkout session); a retry "
        "of the same request after a lease or release makes it under the same id, so finds it",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["caller", "key"], name="idempotency_caller_key_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.caller}:{self.key}"
