"""Print the domain events on the Kafka topic, one JSON object a line.

    manage.py consume_events                      # everything on the topic, then stop
    manage.py consume_events --follow             # then keep printing new ones (Ctrl-C stops)
    manage.py consume_events --new --follow       # only events published from now on
    manage.py consume_events --type payment.completed --key <payment id>

Each line: {"partition", "offset", "key", "event": <the CloudEvents envelope>}. No consumer group
(partitions are assigned), so it commits no offsets and disturbs no real consumer.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

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
            line = {"partition": record.partition, "offset": record.offset, "key": key, "event": event}
            self.stdout.write(json.dumps(line))
            printed += 1
            if options["limit"] and printed >= options["limit"]:
                records.close()
                break
