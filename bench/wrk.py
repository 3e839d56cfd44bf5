"""Drive a server with wrk (Debian package `wrk`, installed if missing) and read its figures.

`run` sends the requests of a file, one per line `METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY` (the token
goes in `better-auth-token`), through bench/lua/rotate.lua: `cycle` loops over them for
`duration` seconds, `once` sends each line once (split between the threads) and stops. wrk runs
in the caller's ProcessGroup, so it dies with the server on any exit.
"""

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.server import ProcessGroup, log

SCRIPT = Path(__file__).with_name("lua") / "rotate.lua"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk (apt-get install -y wrk)")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    errors: dict
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def write_requests(path: Path, lines: list[tuple[str, str, str, str]]) -> Path:
    for line in lines:
        if any("\t" in part or "\n" in part for part in line):
            raise ValueError(f"a request field holds a tab or newline: {line!r}")
    path.write_text("".join("\t".join(line) + "\n" for line in lines))
    return path


def run(
    group: ProcessGroup,
    base_url: str,
    requests_file: Path,
    *,
    mode: str = "cycle",
    duration: float = 10.0,
    connections: int = 16,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    stop_when: Callable[[], bool] | None = None,
    poll_every: float = 0.5,
    nice: int = 0,
) -> Result:
    """One wrk run. `stop_when`, polled every `poll_every` seconds, ends it early (SIGINT: wrk then
    reports the time it really ran). A `once` run needs it: wrk's threads stop when their slice
    is sent, but wrk itself waits out `duration`. `nice`: wrk's scheduling priority (`nice -n`)."""
    args = [
        *(["nice", "-n", str(nice)] if nice else []),
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout:g}s",
        "--latency",
        "-s",
        str(SCRIPT),
        base_url,
        "--",
        str(requests_file),
        str(threads),
        mode,
        *(f"{name}={value}" for name, value in (headers or {}).items()),
    ]
    process = group.popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + duration + 60
    while stop_when is not None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(poll_every)
        if process.poll() is None and stop_when():
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.strip()}\n{out[-2000:]}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    latency = data["latency_us"]
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors={k: v for k, v in data["errors"].items() if v},
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )
