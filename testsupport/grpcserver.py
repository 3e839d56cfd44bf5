"""`manage.py grpcserver` as a real process on the test database, for grpcurl and the client tests."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from testsupport.processes import ServerProcess, free_port, testing_database_url
from testsupport.tokens import TokenIssuer
from testsupport.waiting import listening

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


class GrpcServerProcess(ServerProcess):
    what = "grpcserver"
    stop_signal = signal.SIGKILL
    stop_timeout = 10.0

    def __init__(self, *, env: dict | None = None, log_path: Path):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        super().__init__(
            env={
                **os.environ,
                "DATABASE_URL": testing_database_url(),
                "GRPC_ADDRESS": self.address,
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "INFO",
                # Production refuses to start without a token verification key (a system check).
                "AUTH_PUBLIC_KEY_PEM": TokenIssuer().public_pem,
                **(env or {}),
            },
            log_path=log_path,
        )

    def command(self) -> list[str]:
        return [sys.executable, "manage.py", "grpcserver"]

    def answers(self) -> bool:
        return listening(self.port)

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

    @property
    def log(self) -> str:
        return self.logs()
