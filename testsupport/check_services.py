"""Stop `make test` at once, with a clear message, when PostgreSQL or Redis is not reachable."""

import os
import socket
import sys
from urllib.parse import urlparse


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), 2):
            return True
    except OSError:
        return False


def main() -> int:
    problems = []
    database_url = os.environ["DATABASE_URL"]
    redis_url = os.environ["REDIS_URL"]
    if not reachable(database_url, 5432):
        problems.append(
            f"PostgreSQL is not reachable at {database_url}: start it "
            "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or set DATABASE_URL."
        )
    if not reachable(redis_url, 6379):
        problems.append(
            f"Redis is not reachable at {redis_url}: start it (redis-server --daemonize yes "
            "--bind 127.0.0.1 --port 6379 --save '' --appendonly no) or set REDIS_URL."
        )
    for problem in problems:
        print(f"make test: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
