"""Print the domain events on the Kafka topic, one JSON object a line.

    manage.py consume_events                      # everything on the topic, then stop
    manage.py consume_events --follow             # then keep printing new ones (Ctrl-C stops)
    manage.py consume_events --new --follow       # only events published from now on
    manage.py consume_events --type payment.completed --key <payment id>

Each line: {"partition", "offset", "key", "event": <the CloudEvents envelope>}. No consumer group
(partitions are assigned), so it commits no offsets and disturbs no real consumer. Traced (OTEL_*
set), each printed event is a consumer span in the trace its message carries (traceparent).
"""

import contextlib
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jia_payments.core.ops import tracing
from jia_payments.core.outbox.publishers import TRACE_CONTEXT_KEYS
from jia_payments.core.outbox.reader import read_topic


class Command(BaseCommand):
    help = "Print the domain events on the Kafka topic (EVENTS_TOPIC at EVENTS_BROKERS)."

    def add_arguments(self, parser):
        parser.add_argument("--brokers", default=",".join(settings.EVENTS_BROKERS))
        parser.add_argument("--topic", default=settings.EVENTS_TOPIC)
        parser.add_argument("--follow", action="store_true", help="keep waiting for new events")
        parser.add_argument("--new", action="store_true", help="skip what is already on the topic")
        parser.add_argument("--type", help="only events of this type")
        parser.add_argument("--key", help="only events of this aggregate id (the message key)")
        parser.add_argument("--limit", type=int, help="stop after printing this many")
        parser.add_argument("--timeout", type=float, help="stop after this many seconds")

    def handle(self, *args, **options):
        if not options["brokers"]:
            raise CommandError("no broker: set EVENTS_BROKERS or pass --brokers host:port")
        records = read_topic(
            options["brokers"].split(","),
            options["topic"],
            from_beginning=not options["new"],
            follow=options["follow"],
            timeout=options["timeout"],
        )
        tracing.start("consumer")
        printed = 0
        for record in records:
            key = record.key.decode() if record.key is not None else None
            try:
                event = json.loads(record.value)
            except ValueError:
                event = record.value.decode(errors="replace")
            if not isinstance(event, dict):
                event = {"value": event}
            if options["type"] and event.get("type") != options["type"]:
                continue
            if options["key"] and key != options["key"]:
                continue
            with _consumer_span(record, options["topic"], event):
                line = {"partition": record.partition, "offset": record.offset, "key": key, "event": event}
                self.stdout.write(json.dumps(line))
            printed += 1
            if options["limit"] and printed >= options["limit"]:
                records.close()
                break
        tracing.flush()


def _consumer_span(record, topic: str, event: dict):
    """Traced: a consumer span continuing the trace the message carries (its W3C headers, or the
    envelope's distributed tracing extension when a producer sent no headers)."""
    if not tracing.active():
        return contextlib.nullcontext()
    from opentelemetry.trace import SpanKind

    headers = {name: value.decode(errors="replace") for name, value in record.headers or () if value}
    carrier = {k: headers[k] for k in TRACE_CONTEXT_KEYS if k in headers} or {
        k: event[k] for k in TRACE_CONTEXT_KEYS if isinstance(event.get(k), str)
    }
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "cloudevents.event_id": str(event.get("id", "")),
        "cloudevents.event_type": str(event.get("type", "")),
    }
    return tracing.span(
        f"process {topic}", attributes, kind=SpanKind.CONSUMER, context=tracing.context_from(carrier)
    )
