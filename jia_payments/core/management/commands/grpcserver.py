"""`manage.py grpcserver`: the gRPC API on GRPC_ADDRESS until SIGTERM or SIGINT, then a graceful
stop (health NOT_SERVING at once, up to GRPC_GRACE_SECONDS for calls in flight)."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from jia_payments.core.grpc import server as grpc_server
from jia_payments.core.ops import tracing

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the gRPC API (payment.v1, entitlement.v1, pricing.v1, health, reflection)."

    def add_arguments(self, parser):
        parser.add_argument("--address", default=None, help="host:port (default: GRPC_ADDRESS)")
        parser.add_argument("--max-workers", type=int, default=None, help="default: GRPC_MAX_WORKERS")

    def handle(self, *args, address=None, max_workers=None, **options):
        tracing.start("grpc")  # before the server is built: the instrumentation wraps grpc.server
        address = address or settings.GRPC_ADDRESS
        server = grpc_server.build(
            address=address,
            max_workers=max_workers or settings.GRPC_MAX_WORKERS,
            health_interval=settings.GRPC_HEALTH_INTERVAL,
        )
        if settings.GRPC_METRICS_PORT:
            from jia_payments.core.ops.metrics import serve_worker_metrics

            serve_worker_metrics(settings.GRPC_METRICS_PORT)
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        server.start()
        host = address.rpartition(":")[0]
        logger.info("grpc server listening", extra={"address": f"{host}:{server.port}"})
        self.stdout.write(f"gRPC server listening on {host}:{server.port}", ending="\n")
        self.stdout.flush()
        stopping.wait()
        logger.info("grpc server stopping", extra={"grace_seconds": settings.GRPC_GRACE_SECONDS})
        server.stop(settings.GRPC_GRACE_SECONDS)
        logger.info("grpc server stopped")
