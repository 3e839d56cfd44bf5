"""The container health check: `python -m jia_payments.core.grpc.probe`."""

from jia_payments.core.grpc import probe
from testsupport.grpcserver import free_port


def test_the_probe_says_serving_only_when_the_health_service_does(grpc_server):
    server, _ = grpc_server
    address = f"127.0.0.1:{server.port}"
    assert probe.main([address]) == 0
    assert probe.main([address, "database"]) == 0
    server.health.stop()
    assert probe.main([address]) == 1
    assert probe.main([f"127.0.0.1:{free_port()}"]) == 1  # nothing listening
