"""Read a topic back without a consumer group (assign() every partition): for `consume_events`
and the tests. Joining a group costs ~20 s on tansu and commits offsets nobody needs here.
Plain kafka-python, no Django, so testsupport can use it too."""

from __future__ import annotations

import time
from collections.abc import Iterator


def read_topic(
    bootstrap_servers: str | list[str],
    topic: str,
    *,
    from_beginning: bool = True,
    follow: bool = False,
    min_messages: int = 0,
    timeout: float | None = None,
) -> Iterator:
    """Yield the topic's records (kafka ConsumerRecord) as they are read.

    Stops at the partitions' end offsets once min_messages have been read, unless follow; and in
    any case once `timeout` seconds have passed (None: no limit). Order holds within a partition.
    """
    from kafka import KafkaConsumer, TopicPartition

    deadline = None if timeout is None else time.monotonic() + timeout

    def time_left() -> bool:
        return deadline is None or time.monotonic() < deadline

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        fetch_max_wait_ms=100,
        bootstrap_timeout_ms=5000,
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and (follow or min_messages) and time_left():
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            consumer.seek_to_beginning(*assigned)
        else:
            consumer.seek_to_end(*assigned)
        count = 0
        while time_left():
            for batch in consumer.poll(timeout_ms=100).values():
                count += len(batch)
                yield from batch
            if follow or count < min_messages:
                continue
            ends = consumer.end_offsets(assigned)
            if all(consumer.position(tp) >= ends[tp] for tp in assigned):
                return
    finally:
        consumer.close()
