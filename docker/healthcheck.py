"""The container health check of each role: python docker/healthcheck.py [web|worker|beat|grpc].

web     GET /healthz on the local port answers 200 (the process serves; dependencies are /readyz's)
worker  this container's Celery worker answers a ping through the broker
beat    the broker beat publishes to accepts a connection
grpc    the gRPC health service on GRPC_ADDRESS's port answers SERVING

Without a role (the image's HEALTHCHECK), the role the container was started with: entrypoint.sh
writes it to CONTAINER_ROLE_FILE (/tmp/jia-payments-role), so `docker run IMAGE worker` on any
platform is checked as a worker, not asked for a web page it does not serve.

Exit 0 healthy, 1 not (what Docker's HEALTHCHECK reads); one line on stdout says why.
"""

import os
import socket
import sys
import urllib.request

TIMEOUT = float(os.environ.get("HEALTHCHECK_TIMEOUT", "4"))


def web() -> str:
    port = os.environ.get("PORT", "8000")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT) as response:
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")
    return "web answers /healthz"


def _celery_app():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jia_payments.settings")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from jia_payments.celery import app

    return app


def worker() -> str:
    node = os.environ.get("CELERY_NODE_NAME") or f"celery@{socket.gethostname()}"
    replies = _celery_app().control.ping(destination=[node], timeout=TIMEOUT)
    if not replies:
        raise RuntimeError(f"worker {node} did not answer a ping")
    return f"worker {node} answers"


def beat() -> str:
    with _celery_app().connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=TIMEOUT)
    return "beat's broker accepts a connection"


def grpc() -> str:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from jia_payments.core.grpc.probe import serving

    port = os.environ.get("GRPC_ADDRESS", "[::]:8081").rsplit(":", 1)[-1]
    if not serving(f"127.0.0.1:{port}", timeout=TIMEOUT):
        raise RuntimeError(f"the gRPC health service on port {port} is not SERVING")
    return f"gRPC serves on port {port}"


def container_role() -> str:
    try:
        with open(os.environ.get("CONTAINER_ROLE_FILE", "/tmp/jia-payments-role")) as handle:  # noqa: S108
            return handle.read().strip() or "web"
    except OSError:
        return "web"


def main() -> int:
    role = sys.argv[1] if len(sys.argv) > 1 else container_role()
    probe = {"web": web, "worker": worker, "beat": beat, "grpc": grpc}[role]
    try:
        print(probe())
    except Exception as error:  # noqa: BLE001 (any failure is "unhealthy", said in one line)
        print(f"unhealthy: {type(error).__name__}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
