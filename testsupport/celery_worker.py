"""A real Celery worker process on Redis, working against the test database.

End-to-end tests need the webhook's task to run where production runs it: in another process,
taking it from the broker, with its own database connections. `CeleryWorker` starts
`celery -A <app> worker` with the test process's environment plus `DATABASE_URL` naming the
test database pytest-django created, waits until it reports ready, and stops it.

With `PRODUCTION_VENV` set (make test sets it), the worker runs on that virtual environment: the
packages of requirements/base.txt and nothing else, as in the image, so a runtime dependency that
only the test tools bring in (pytest brings `packaging`, which kombu's Redis transport needs) fails
here as it would in production.
"""

import os
import subprocess
import sys
import threading
import uuid
from collections import deque
from contextlib import ExitStack
from pathlib import Path

from testsupport.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent


def production_python() -> str:
    """The interpreter of the production environment (PRODUCTION_VENV), else this one."""
    venv = os.environ.get("PRODUCTION_VENV")
    if not venv:
        return sys.executable
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"PRODUCTION_VENV={venv} has no bin/python: make {venv}/.installed")
    return str(python)


class CeleryWorker:
    def __init__(self, *, app: str, env: dict[str, str], concurrency: int = 2,
                 queues: str | None = None, log_path: Path | None = None):  # fmt: skip
        self.app = app
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.concurrency = concurrency
        self.queues = queues
        self.log_path = log_path
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.process: subprocess.Popen | None = None
        self.lines: deque[str] = deque(maxlen=400)
        self._ready = threading.Event()

    def start(self, timeout: float = 60) -> "CeleryWorker":
        command = [
            production_python(), "-m", "celery", "-A", self.app, "worker",
            "--loglevel=INFO", "--pool=prefork", f"--concurrency={self.concurrency}",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", self.name,
        ]  # fmt: skip
        if self.queues:
            command += ["-Q", self.queues]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its pool children are stopped with it
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._ready.wait(timeout):
            output = self.output()
            self.stop()
            raise RuntimeError(f"celery worker not ready after {timeout}s:\n{output}")
        return self

    def _read_output(self) -> None:
        with ExitStack() as stack:
            log = stack.enter_context(open(self.log_path, "a")) if self.log_path else None
            for line in self.process.stdout:
                self.lines.append(line)
                if log:
                    log.write(line)
                    log.flush()
                if " ready." in line:
                    self._ready.set()

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 20) -> None:
        # SIGTERM: a warm shutdown (the running task finishes), to the pool children too.
        stop_process(self.process, timeout=timeout, group=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
