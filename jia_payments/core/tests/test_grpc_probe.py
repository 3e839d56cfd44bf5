"""The container health check: `python -m jia_payments.core.grpc.probe`."""

from jia_payments.core.grpc import probe
from testsupport.processes import free_port


def test_the_probe_says_serving_only_when_the_health_service_does(grpc_server):
    server, _ = grpc_server
    address = f"127.0.0.1:{server.port}"
    assert probe.main([address]) == 0
    assert probe.main([address, "database"]) == 0
    server.health.stop()
    assert probe.main([address]) == 1
    assert probe.main([f"127.0.0.1:{free_port()}"]) == 1  # nothing listening


def test_the_image_health_check_checks_a_grpc_container_as_one(grpc_server, tmp_path):
    """`docker run IMAGE grpc` on any platform: the image's HEALTHCHECK (no role given) reads the
    role entrypoint.sh recorded and asks the gRPC health service, not a web page."""
    import subprocess
    import sys
    from pathlib import Path

    server, _ = grpc_server
    role_file = tmp_path / "role"
    role_file.write_text("grpc\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "CONTAINER_ROLE_FILE": str(role_file),
        "GRPC_ADDRESS": f"[::]:{server.port}",
    }
    root = Path(__file__).resolve().parents[3]

    def check() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "docker/healthcheck.py"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    healthy = check()
    assert (healthy.returncode, healthy.stdout) == (0, f"gRPC serves on port {server.port}\n")
    server.health.stop()
    unhealthy = check()
    assert unhealthy.returncode == 1
    assert unhealthy.stdout.startswith("unhealthy: RuntimeError: the gRPC health service")
