"""Where relayed events go: Kafka (kafka-python, idempotent producer) or the log."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger("jia_payments.events")

# CloudEvents' Kafka protocol binding, structured content mode: the value is the whole envelope.
CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=UTF-8")


# The W3C trace context a message carries, as CloudEvents' distributed tracing extension names it.
TRACE_CONTEXT_KEYS = ("traceparent", "tracestate")


@dataclass(frozen=True)
class Message:
    key: str
    envelope: dict
    trace_context: dict | None = None  # of the transaction that recorded the event, when traced

    def cloudevent(self) -> dict:
        """The envelope, with the distributed tracing extension attributes when traced."""
        if not self.trace_context:
            return self.envelope
        extension = {k: self.trace_context[k] for k in TRACE_CONTEXT_KEYS if self.trace_context.get(k)}
        return {**self.envelope, **extension}

    def value(self) -> bytes:
        return json.dumps(self.cloudevent(), separators=(",", ":")).encode()

    def headers(self) -> list[tuple[str, bytes]]:
        """CloudEvents' content type, and the trace context (W3C names) a consumer continues."""
        if not self.trace_context:
            return [CONTENT_TYPE_HEADER]
        return [CONTENT_TYPE_HEADER] + [
            (k, self.trace_context[k].encode()) for k in TRACE_CONTEXT_KEYS if self.trace_context.get(k)
        ]


class PublishError(Exception):
    """The broker could not be reached, or did not acknowledge a message in time."""


class KafkaPublisher:
    """One idempotent producer per process, made on first use and dropped after any error.

    Dropping it matters: a producer that saw the broker go away (or a broker that lost its state)
    keeps failing with UnknownProducerId / InitProducerId errors, and one made while the broker is
    down blocks for its whole bootstrap timeout. A fresh one on the next run recovers.
    """

    def __init__(self) -> None:
        self._producer = None
        self._lock = threading.Lock()

    def _get_producer(self):
        from kafka import KafkaProducer

        with self._lock:
            if self._producer is None:
                timeout_ms = int(settings.EVENTS_PUBLISH_TIMEOUT_SECONDS * 1000)
                linger_ms = 5
                self._producer = KafkaProducer(
                    bootstrap_servers=settings.EVENTS_BROKERS,
                    client_id=f"{settings.APP_NAME}-outbox-relay",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=linger_ms,
                    batch_size=256 * 1024,
                    request_timeout_ms=timeout_ms,
                    delivery_timeout_ms=timeout_ms + linger_ms,
                    max_block_ms=timeout_ms,
                    bootstrap_timeout_ms=timeout_ms,
                    reconnect_backoff_max_ms=1000,
                )
            return self._producer

    def publish(self, messages: list[Message]) -> list[Exception | None]:
        """Send all, then wait for each acknowledgement: None where acknowledged, else the error.

        Raises PublishError when no producer can be made (broker unreachable).
        """
        from kafka.errors import KafkaError

        try:
            producer = self._get_producer()
        except KafkaError as exc:
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc
        topic = settings.EVENTS_TOPIC
        futures = []
        outcomes: list[Exception | None] = []
        for message in messages:
            try:
                future = producer.send(
                    topic, key=message.key.encode(), value=message.value(), headers=message.headers()
                )
            except KafkaError as exc:
                future = exc
            futures.append(future)
        producer.flush(timeout=settings.EVENTS_PUBLISH_TIMEOUT_SECONDS)
        for future in futures:
            if isinstance(future, Exception):
                outcomes.append(future)
                continue
            try:
                future.get(timeout=settings.EVENTS_PUBLISH_TIMEOUT_SECONDS)
            except KafkaError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        if any(outcomes):
            self.reset()
        return outcomes

    def reset(self) -> None:
        """Forget the producer (next publish makes a new one)."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=0)

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's producer without touching its sockets."""
        self._producer = None
        self._lock = threading.Lock()


class LogPublisher:
    """EVENTS_PROVIDER=log: each event is one INFO line on the `jia_payments.events` logger."""

    def publish(self, messages: list[Message]) -> list[Exception | None]:
        for message in messages:
            logger.info("event %s", json.dumps(message.cloudevent(), separators=(",", ":")))
        return [None] * len(messages)

    def reset(self) -> None:
        pass


kafka_publisher = KafkaPublisher()
log_publisher = LogPublisher()


def get_publisher() -> KafkaPublisher | LogPublisher | None:
    """The configured publisher; None for EVENTS_PROVIDER=outbox (rows stay in the table)."""
    provider = settings.EVENTS_PROVIDER
    if provider == "kafka":
        return kafka_publisher
    if provider == "log":
        return log_publisher
    if provider == "outbox":
        return None
    raise ValueError(f"EVENTS_PROVIDER must be kafka, log or outbox, not {provider!r}")
