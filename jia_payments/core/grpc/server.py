"""The gRPC server: every app's servicers (the `SERVICES` of each installed app's `grpc` module),
the health service, server reflection, and the interceptor every call goes through."""

import dataclasses
from collections.abc import Callable, Iterable
from concurrent import futures
from importlib import import_module

import grpc
from django.apps import apps
from django.utils.module_loading import module_has_submodule
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from jia_payments.core.grpc.health import HealthMonitor
from jia_payments.core.grpc.interceptors import ObservingInterceptor


@dataclasses.dataclass(frozen=True)
class Service:
    """One gRPC service an app serves: its full name, its servicer, the generated `add_*` function."""

    name: str
    servicer: object
    add: Callable


def app_services() -> list[Service]:
    found: list[Service] = []
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, "grpc"):
            found.extend(getattr(import_module(f"{app_config.name}.grpc"), "SERVICES", ()))
    return found


@dataclasses.dataclass
class Server:
    server: grpc.Server
    health: HealthMonitor
    port: int

    def start(self) -> None:
        self.health.start()
        self.server.start()

    def stop(self, grace: float) -> None:
        """NOT_SERVING at once, then up to `grace` seconds for calls in flight."""
        self.health.stop()
        self.server.stop(grace).wait()


def build(
    *,
    address: str,
    max_workers: int,
    health_interval: float,
    services: Iterable[Service] | None = None,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
) -> Server:
    services = list(app_services() if services is None else services)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[ObservingInterceptor(), *interceptors],
    )
    for service in services:
        service.add(service.servicer, server)
    monitor = HealthMonitor(interval=health_interval)
    health_pb2_grpc.add_HealthServicer_to_server(monitor.servicer, server)
    names = [service.name for service in services]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return Server(server=server, health=monitor, port=port)
