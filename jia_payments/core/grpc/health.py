"""The standard `grpc.health.v1.Health` service: overall ("") and one named service per dependency
a call needs (`database`, `cache`), NOT_SERVING while it is down.

A monitor thread probes the dependencies every GRPC_HEALTH_INTERVAL seconds with the readiness
checks of /readyz (same clients, same timeouts), so a Check answers at once and a Watch sees
changes. With no Redis configured the cache is the process's own memory: always SERVING.
"""

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connections
from grpc_health.v1 import health, health_pb2
from health_check.checks import Database
from health_check.contrib.redis import Redis

from jia_payments.core.ops.health import readiness_checks

logger = logging.getLogger(__name__)

OVERALL = ""
DEPENDENCIES = {"database": Database, "cache": Redis}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    def __init__(self, *, interval: float):
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self.interval = interval
        self._stop = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="grpc-health")
        self._thread = threading.Thread(target=self._loop, name="grpc-health", daemon=True)
        for name in (OVERALL, *DEPENDENCIES):
            self.servicer.set(name, NOT_SERVING)

    def probe(self) -> dict[str, bool]:
        """Which dependencies answer now (True: up)."""
        checks = {
            name: next((check for check in readiness_checks() if isinstance(check, cls)), None)
            for name, cls in DEPENDENCIES.items()
        }

        async def run():
            wanted = [check for check in checks.values() if check is not None]
            return await asyncio.gather(*(check.get_result(self._executor) for check in wanted))

        results = {id(result.check): not result.error for result in asyncio.run(run())}
        self._executor.submit(connections.close_all).result()
        return {name: check is None or results[id(check)] for name, check in checks.items()}

    def update(self) -> dict[str, bool]:
        up = self.probe()
        for name, ok in up.items():
            self.servicer.set(name, SERVING if ok else NOT_SERVING)
        self.servicer.set(OVERALL, SERVING if all(up.values()) else NOT_SERVING)
        if not all(up.values()):
            logger.warning(
                "grpc health: not serving", extra={"down": sorted(n for n, ok in up.items() if not ok)}
            )
        return up

    def _loop(self) -> None:
        # `start` has just probed: the first probe here is one interval later, so no two probes
        # run at once (the later to finish would set what the earlier found).
        while not self._stop.wait(self.interval):
            try:
                self.update()
            except Exception:
                logger.exception("grpc health probe failed")
                for name in (OVERALL, *DEPENDENCIES):
                    self.servicer.set(name, NOT_SERVING)

    def start(self) -> None:
        self.update()
        self._thread.start()

    def stop(self) -> None:
        """Every service NOT_SERVING (clients move away while in-flight calls finish)."""
        self._stop.set()
        self.servicer.enter_graceful_shutdown()
        self._executor.shutdown(wait=False)
