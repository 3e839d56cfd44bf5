"""The production web server (gunicorn with gunicorn.conf.py) as a real process on the test
database, for tests that drive the HTTP API from outside (schemathesis)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from testsupport.grpcserver import free_port, testing_database_url
from testsupport.waiting import http_ok, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


class WebServerProcess:
    def __init__(self, *, env: dict, log_path: Path, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": testing_database_url(),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "ALLOWED_HOSTS": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": str(log_path.parent / "metrics"),
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "WebServerProcess":
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [GUNICORN, "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until_answering(
            self.process,
            lambda: http_ok(f"{self.url}/healthz"),
            what="gunicorn",
            logs=self.logs,
            timeout=timeout,
        )
        return self

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self._log.close()
