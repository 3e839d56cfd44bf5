"""A gRPC load generator (wrk's counterpart for the gRPC bench): `python -m bench.grpc_load
ADDRESS REQUESTS_FILE DURATION CONCURRENCY`. REQUESTS_FILE has one `token<TAB>user_id<TAB>feature`
per line; CONCURRENCY calls are kept in flight (grpc.aio, one channel per 8), each a
CheckEntitlement with the token as `better-auth-token`. Prints one `BENCH_RESULT {json}` line:
requests, errors by status, seconds, latency percentiles (ms) as the client saw them."""

import asyncio
import itertools
import json
import sys
import time

import grpc

from jia_payments.protos.entitlement.v1 import entitlement_pb2 as pb
from jia_payments.protos.entitlement.v1.entitlement_pb2_grpc import EntitlementServiceStub


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _load(address: str, lines: list[tuple[str, str, str]], duration: float, concurrency: int) -> dict:
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, concurrency // 8))]
    stubs = [EntitlementServiceStub(channel) for channel in channels]
    prepared = [
        (pb.CheckEntitlementRequest(feature_code=feature), (("better-auth-token", token),))
        for token, _user, feature in lines
    ]
    source = itertools.cycle(prepared)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + duration

    async def worker(stub):
        while time.perf_counter() < deadline:
            request, metadata = next(source)
            started = time.perf_counter()
            try:
                await stub.CheckEntitlement(request, metadata=metadata, timeout=5)
                latencies.append(time.perf_counter() - started)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] = errors.get(error.code().name, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(stubs[n % len(stubs)]) for n in range(concurrency)))
    seconds = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": seconds,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p90_ms": _percentile(latencies, 0.90) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


def main(argv: list[str]) -> int:
    address, path, duration, concurrency = argv[0], argv[1], float(argv[2]), int(argv[3])
    with open(path) as handle:
        lines = [tuple(line.rstrip("\n").split("\t")) for line in handle if line.strip()]
    result = asyncio.run(_load(address, lines, duration, concurrency))
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
