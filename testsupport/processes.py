"""The tests' own server processes: a port to bind, the test database's URL to give them, starting
one and waiting until it answers (`ServerProcess`), and stopping them."""

import os
import signal
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from testsupport.waiting import wait_until_answering

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def testing_database_url() -> str:
    """DATABASE_URL naming the test database this session built (and Django's connection uses)."""
    from django.conf import settings

    url = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(url._replace(path="/" + settings.DATABASES["default"]["NAME"]))


def stop_process(
    process: subprocess.Popen | None,
    *,
    timeout: float,
    sig: signal.Signals = signal.SIGTERM,
    group: bool = False,
) -> None:
    """Send a running `process` `sig` (to its whole process group with `group`: one started with
    `start_new_session=True`), then SIGKILL if it has not exited within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return

    def send(signum: signal.Signals) -> None:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)

    send(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


class ServerProcess:
    """A server a test starts: `command()` run in the project's folder on `env`, its output (stdout
    and stderr) in `log_path`. `start()` returns once `answers()` (within `start_timeout` seconds);
    `stop()` sends `stop_signal`, then SIGKILL after `stop_timeout` seconds. Subclasses say what
    it runs and how it answers."""

    what = "server"
    start_timeout = 60.0
    stop_signal = signal.SIGTERM
    stop_timeout = 40.0

    def __init__(self, *, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float | None = None):
        timeout = self.start_timeout if timeout is None else timeout
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until_answering(self.process, self.answers, what=self.what, logs=self.logs, timeout=timeout)
        return self

    def logs(self) -> str:
        if self._log is not None and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        stop_process(self.process, timeout=self.stop_timeout, sig=self.stop_signal)
        if self._log is not None:
            self._log.close()
