"""The production web server (gunicorn with gunicorn.conf.py) as a real process on the test
database, for tests that drive the HTTP API from outside (schemathesis)."""

import os
import sys
from pathlib import Path

from testsupport.processes import ServerProcess, free_port, testing_database_url
from testsupport.waiting import http_ok

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
# Production mode with made-up secrets, for a process that serves as a deployment would.
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-secret-9f8e7d6c5b4a3928171605ab",
    "STRIPE_SECRET": "sk_live_" + "a" * 30,
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "false",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "json",
}


class WebServerProcess(ServerProcess):
    what = "gunicorn"
    start_timeout = 120.0

    def __init__(self, *, env: dict, log_path: Path, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            env={
                **os.environ,
                "DATABASE_URL": testing_database_url(),
                "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                "WEB_CONCURRENCY": str(workers),
                "ALLOWED_HOSTS": "127.0.0.1",
                "PROMETHEUS_MULTIPROC_DIR": str(log_path.parent / "metrics"),
                **env,
            },
            log_path=log_path,
        )

    def command(self) -> list[str]:
        return [GUNICORN, "-c", "gunicorn.conf.py"]

    def answers(self) -> bool:
        return http_ok(f"{self.url}/healthz")
