"""`manage.py grpcserver` as a real process on the test database, for grpcurl and the client tests."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from django.conf import settings

from testsupport.tokens import TokenIssuer
from testsupport.waiting import listening, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def testing_database_url() -> str:
    """DATABASE_URL naming the test database this session built (and Django's connection uses)."""
    url = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(url._replace(path="/" + settings.DATABASES["default"]["NAME"]))


class GrpcServerProcess:
    def __init__(self, *, env: dict | None = None, log_path: Path):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": testing_database_url(),
            "GRPC_ADDRESS": self.address,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            # Production refuses to start without a token verification key (a system check).
            "AUTH_PUBLIC_KEY_PEM": TokenIssuer().public_pem,
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "GrpcServerProcess":
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "grpcserver"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until_answering(
            self.process,
            lambda: listening(self.port),
            what="grpcserver",
            logs=self.log_path.read_text,
            timeout=timeout,
        )
        return self

    def grpcurl(self, *args: str, token: str | None = None, data: dict | str | None = None):
        command = [GRPCURL, "-plaintext"]
        if token:
            command += ["-H", f"better-auth-token: {token}"]
        if data is not None:
            command += ["-d", data if isinstance(data, str) else json.dumps(data)]
        command += [self.address, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    def health(self, service: str = "") -> str:
        """The health service's status for `service` ("" = overall), through grpcurl."""
        answer = self.grpcurl("grpc.health.v1.Health/Check", data={"service": service})
        if answer.returncode != 0:
            raise RuntimeError(answer.stderr)
        return json.loads(answer.stdout)["status"]

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    @property
    def log(self) -> str:
        return self.log_path.read_text()
