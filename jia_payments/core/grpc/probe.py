"""`python -m jia_payments.core.grpc.probe [ADDRESS] [SERVICE]`: exit 0 when the gRPC health
service answers SERVING (the container health check; no Django is loaded)."""

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def serving(address: str, service: str = "", timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str]) -> int:
    address = argv[0] if argv else os.environ.get("GRPC_PROBE_ADDRESS", "127.0.0.1:8081")
    return 0 if serving(address, argv[1] if len(argv) > 1 else "") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
