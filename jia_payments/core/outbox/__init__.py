"""The transactional outbox's way out: relay pending OutboxEvent rows to Kafka (or the log).

- `jia_payments.core.outbox.events.record_event` writes a row in the caller's transaction and, once that
  transaction commits, asks for a relay run (`tasks.relay_events`), debounced: the run starts
  EVENTS_RELAY_DELAY_SECONDS later and the commits until then share it (see
  `request_relay_on_commit`); Celery beat also sweeps every EVENTS_SWEEP_SECONDS.
- `services.outbox_relay` claims rows with SELECT ... FOR UPDATE SKIP LOCKED, publishes them,
  waits for the broker's acknowledgement of each and only then marks them sent, in the same
  transaction that holds the claim. A relay that dies before that commit leaves its rows pending:
  they are published again (at least once) with the same CloudEvents id.
- `publishers` holds the Kafka producer (or the log writer), `backoff` the shared "broker is
  down, wait until..." state, `reader` reads a topic back (consume_events, tests).
"""
