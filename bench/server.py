"""Run the app the way production does, for benchmarks: its own database, gunicorn, one process group.

Generic (no suite's data here): `bench_database_url`/`bench_redis_url` derive a benchmark's own
database and Redis db from DATABASE_URL/REDIS_URL, `ensure_database` creates and migrates it,
`production_env` is the environment of a DEBUG=false process, and `ProcessGroup` starts gunicorn
(and later wrk) in one process group that is always killed as a whole: on return, on an exception,
on Ctrl-C and on SIGTERM.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


# --- databases -----------------------------------------------------------------------------------


def bench_database_url(suffix: str = "bench") -> str:
    """BENCH_DATABASE_URL, or DATABASE_URL's database with `_<suffix>` appended (never the tests')."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return explicit
    url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/jia_payments"
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit(f"the benchmarks need PostgreSQL; DATABASE_URL is {parts.scheme}")
    name = parts.path.lstrip("/") or "jia_payments"
    return urlunsplit(parts._replace(path=f"/{name}_{suffix}"))


def bench_redis_url() -> str:
    """BENCH_REDIS_URL, or REDIS_URL with db number + 10 (mod 16): not the one its tests use."""
    explicit = os.environ.get("BENCH_REDIS_URL")
    if explicit:
        return explicit
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    parts = urlsplit(url)
    db = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(db + 10) % 16}"))


def ensure_database(url: str, env: dict[str, str]) -> None:
    """Create the database if missing, then migrate it (a no-op when it is up to date).

    dj-stripe's migrations take minutes on a fresh database; later runs reuse it.
    """
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            log(f"creating database {name} (the first migration takes a few minutes)")
            conn.execute(f'CREATE DATABASE "{name}"')
    started = time.monotonic()
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    log(f"database {name} migrated ({time.monotonic() - started:.1f} s)")


# --- production settings ------------------------------------------------------------------------


def _secret(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def production_env(*, database_url: str, redis_url: str, public_key_pem: str, **extra: str) -> dict[str, str]:
    """A DEBUG=false environment like a deployment's, behind a TLS-terminating proxy on loopback.

    Requests must carry `X-Forwarded-Proto: https` (the proxy's header), as in production; the
    HTTPS redirect, HSTS and secure cookies stay on.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "BENCH_", "DEBUG", "PYTEST"))
    }
    env.update(
        DEBUG="false",
        SECRET_KEY=_secret(64),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        AUTH_PUBLIC_KEY_PEM=public_key_pem,
        STRIPE_SECRET="sk_test_" + _secret(32),
        STRIPE_WEBHOOK_SECRET="whsec_" + _secret(32),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- processes ----------------------------------------------------------------------------------


class ProcessGroup:
    """gunicorn and the load generator in one process group, killed together however we leave.

    The first process started leads a new process group; the next ones join it. (Not the
    terminal's foreground group: Ctrl-C reaches only us, and we end the group.) Leaving the
    `with` block (normally, by an exception, Ctrl-C, or SIGTERM turned into SystemExit) sends
    SIGTERM to the whole group, then SIGKILL to whatever is left after `grace` seconds.
    """

    def __init__(self, grace: float = 5.0):
        self.grace = grace
        self.pgid: int | None = None
        self.processes: list[subprocess.Popen] = []
        self._old_sigterm = None

    def __enter__(self):
        def on_sigterm(signum, frame):
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
        return self

    def __exit__(self, *exc):
        self.kill()
        signal.signal(signal.SIGTERM, self._old_sigterm or signal.SIG_DFL)
        return False

    def popen(self, args, **kwargs) -> subprocess.Popen:
        if self.pgid is None:
            process = subprocess.Popen(args, process_group=0, **kwargs)
            self.pgid = process.pid
        else:
            process = subprocess.Popen(args, process_group=self.pgid, **kwargs)
        self.processes.append(process)
        return process

    def kill(self) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)  # stragglers (gunicorn workers, wrk)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
        self.pgid = None


class Gunicorn:
    """`gunicorn jia_payments.wsgi` on 127.0.0.1:<port>, as the Dockerfile runs it (sync workers).

    Its output goes to a temporary log file, shown (its tail) if it fails to start, removed after.
    `worker_pids()` lists the workers; `signal_workers()` pokes them (see bench/gunicorn_conf.py).
    """

    def __init__(
        self,
        group: ProcessGroup,
        env: dict[str, str],
        *,
        workers: int = 3,
        port: int | None = None,
        stats: tuple[str, ...] = (),
    ):
        self.group, self.workers = group, workers
        self.port = port or free_port()
        self.logfile = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
        self.stats_dir = tempfile.mkdtemp(prefix="bench-stats-")
        self.env = {**env, "BENCH_STATS_DIR": self.stats_dir, "BENCH_STATS": ",".join(stats)}
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Gunicorn":
        args = [
            PYTHON,
            "-m",
            "gunicorn",
            "jia_payments.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--backlog",
            "2048",
            "--config",
            "python:bench.gunicorn_conf",
            "--no-control-socket",  # one shared path by default: two benches would collide
        ]
        self.process = self.group.popen(
            args, cwd=ROOT, env=self.env, stdout=self.logfile, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200 and len(self._ready()) == self.workers:
                        return self
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s:\n{self.tail()}")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:  # ppid
                    pids.append(int(entry.name))
        return sorted(pids)

    def _ready(self) -> set[int]:
        ready = {int(p.name.split(".")[0]) for p in Path(self.stats_dir).glob("*.ready")}
        return ready & set(self.worker_pids())

    def worker_stats(self, timeout: float = 10.0) -> dict[int, dict]:
        """Each worker's BENCH_STATS counters, by pid (SIGUSR2; see bench/gunicorn_conf.py)."""
        pids = sorted(self._ready())
        for pid in pids:
            (Path(self.stats_dir) / f"{pid}.json").unlink(missing_ok=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR2)
        found: dict[int, dict] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(pids) and time.monotonic() < deadline:
            for pid in pids:
                path = Path(self.stats_dir) / f"{pid}.json"
                if pid not in found and path.exists():
                    found[pid] = json.loads(path.read_text())
            time.sleep(0.02)
        if len(found) < len(pids):
            raise RuntimeError(f"workers {sorted(set(pids) - set(found))} did not report their counters")
        return found

    def tail(self, lines: int = 40) -> str:
        self.logfile.flush()
        with open(self.logfile.name, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            return "\n".join(handle.read().decode(errors="replace").splitlines()[-lines:])

    def cleanup(self) -> None:
        self.logfile.close()
        with contextlib.suppress(OSError):
            os.unlink(self.logfile.name)
        shutil.rmtree(self.stats_dir, ignore_errors=True)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    """User + system CPU time of these processes so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def postgres_backend_pids(database_url: str) -> list[int]:
    """The server processes of the connections to this database (PostgreSQL on this machine)."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name]).fetchall()
    return [pid for (pid,) in rows]


def request(url: str, *, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    """One HTTP request with the proxy's header; returns (status, body bytes)."""
    req = urllib.request.Request(  # noqa: S310
        url, method=method, data=body, headers={**PROXY_HEADERS, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
