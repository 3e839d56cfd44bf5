"""Run the app the way production does, for benchmarks: its own database, gunicorn, one process group.

Generic (no suite's data here): `bench_database_url`/`bench_redis_url` derive a benchmark's own
database and Redis db from DATABASE_URL/REDIS_URL, `ensure_database` creates and migrates it,
`production_env` is the environment of a DEBUG=false process, `suite_setup` is what each server
suite does first (all of these together), `ProcessGroup` starts the servers (and later wrk) in one
process group that is always killed as a whole: on return, on an exception, on Ctrl-C and on
SIGTERM, and `Server` starts one server and waits until it answers: `Gunicorn` (sync or gthread,
gunicorn.conf.py) or `Granian`; `serving` is a suite's servers' lifetime (a dead one fails the suite,
their last lines on a failure) and `rotated` the order of each round's runs.
"""

import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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


_MIGRATE = """
import django
from django.conf import settings
from testsupport.schema import THIRD_PARTY_BUILT_FROM_MODELS
django.setup()
settings.MIGRATION_MODULES = {**settings.MIGRATION_MODULES, **dict.fromkeys(THIRD_PARTY_BUILT_FROM_MODELS)}
from django.core.management import call_command
call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
"""


_migrated: set[str] = set()  # databases this process has migrated: the next suites skip it


def ensure_database(url: str, env: dict[str, str]) -> None:
    """Create the database if missing, then migrate it (a no-op when it is up to date).

    As for the test database (conftest.py, testsupport/schema.py): the third-party apps' tables
    straight from their models (dj-stripe's migrations alone take ~4 minutes on a fresh
    database), our apps through their migrations.
    """
    import psycopg

    if url in _migrated:
        return
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            log(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')
    started = time.monotonic()
    subprocess.run([PYTHON, "-c", _MIGRATE], cwd=ROOT, env=env, check=True)
    _migrated.add(url)
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


@dataclass(frozen=True)
class SuiteSetup:
    issuer: Any  # testsupport.tokens.TokenIssuer: signs the requests' tokens
    database_url: str
    redis_url: str
    env: dict[str, str]
    load_before: str


def suite_setup(suite: str, **extra: str) -> SuiteSetup:
    """What a suite that serves the app does first: wrk installed, a token issuer, the bench database
    (created, migrated) and Redis db, production's environment for them (the app's settings, worker
    recycling off: its restarts would land on random runs; `extra` on top), the load average logged."""
    from bench import wrk
    from testsupport.tokens import TokenIssuer

    wrk.ensure_wrk()
    issuer = TokenIssuer()
    database_url, redis_url = bench_database_url(), bench_redis_url()
    env = production_env(
        database_url=database_url,
        redis_url=redis_url,
        public_key_pem=issuer.public_pem,
        **{"DJANGO_SETTINGS_MODULE": "jia_payments.settings", "GUNICORN_MAX_REQUESTS": "0", **extra},
    )
    load_before = load_average()
    log(f"{suite}: load average {load_before}")
    ensure_database(database_url, env)
    return SuiteSetup(issuer, database_url, redis_url, env, load_before)


PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


_handed_out: set[int] = set()  # ports of BENCH_PORTS given to servers in this process


def free_port() -> int:
    """A port nothing listens on: the first free one of BENCH_PORTS ("21200-21299", for a machine
    shared with other benches), else one the system picks."""
    first, _, last = os.environ.get("BENCH_PORTS", "").partition("-")
    candidates = range(int(first), int(last or first) + 1) if first else [0]
    for port in candidates:
        if port in _handed_out:  # given to a server not listening yet
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            found = probe.getsockname()[1]
        if first:
            _handed_out.add(found)
        return found
    raise RuntimeError(f"no free port in BENCH_PORTS={os.environ['BENCH_PORTS']}")


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


class Server:
    """A server process under test on 127.0.0.1:<port>, started in a ProcessGroup: `start()` runs
    `command()` and waits until `ready()` (the app's /healthz answers and every worker is up).

    Its output goes to a temporary log file, shown (its tail) if it fails, removed after.
    `metrics()` reads /metrics (all workers' counters) with the METRICS_TOKEN it sets;
    `cpu_seconds()` is the CPU its workers used so far, recycled ones included (the workers are
    the children of the process started, for gunicorn's master as for granian's main process).
    Subclasses say how it is started (`command`), how many workers it has and when it is ready.
    """

    name = "server"

    def __init__(
        self, group: ProcessGroup, env: dict[str, str], *, port: int | None = None, app: str | None = None
    ):
        self.group = group
        self.app = app  # a WSGI app other than production's (the floor), same server settings
        self.port = port or free_port()
        self.logfile = tempfile.NamedTemporaryFile(prefix=f"bench-{self.name}-", suffix=".log", delete=False)
        self.metrics_dir = tempfile.mkdtemp(prefix="bench-metrics-")
        self.metrics_token = _secret(40)
        self.env = {**env, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir, "METRICS_TOKEN": self.metrics_token}
        self.workers = 1
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as answer:  # noqa: S310
                return answer.status == 200 and len(self.worker_pids()) >= self.workers
        return False

    def start(self, timeout: float = 60.0) -> "Server":
        return self.launch().wait_ready(timeout)

    def launch(self) -> "Server":
        """Start the process, without waiting (`wait_ready`): several servers then start at once."""
        self.process = self.group.popen(
            self.command(), cwd=ROOT, env=self.env, stdout=self.logfile, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            if self.ready():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.tail()}")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(_stat(int(entry.name))[1]) == self.process.pid:  # ppid
                    pids.append(int(entry.name))
        return sorted(pids)

    def cpu_seconds(self) -> float:
        """CPU of the workers: the live ones', plus what the master has reaped (recycled workers)."""
        if self.process is None:
            return 0.0
        reaped = 0
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat(self.process.pid)
            reaped = int(fields[13]) + int(fields[14])  # cutime, cstime
        return reaped / _CLOCK_TICKS + cpu_seconds(self.worker_pids())

    def rss_kib(self) -> dict[int, int]:
        """Resident set size of each worker, KiB."""
        sizes = {}
        for pid in self.worker_pids():
            with contextlib.suppress(OSError, ValueError, StopIteration):
                status = Path(f"/proc/{pid}/status").read_text().splitlines()
                sizes[pid] = int(next(x for x in status if x.startswith("VmRSS:")).split()[1])
        return sizes

    def metrics(self) -> dict[str, float]:
        """/metrics as {'name{labels}': value} (Prometheus text; all workers summed)."""
        status, body = request(
            f"{self.base_url}/metrics", headers={"Authorization": f"Bearer {self.metrics_token}"}
        )
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}: {body[:200]!r}")
        samples = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[name] = float(value)
        return samples

    def log_text(self) -> str:
        self.logfile.flush()
        return Path(self.logfile.name).read_text(errors="replace")

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
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


@contextlib.contextmanager
def serving(servers: dict[str, Server], label: str = "{}"):
    """Around a suite's runs on `servers` (a dict it may still fill inside): a server that died
    meanwhile fails the suite; on any failure each started server's last lines go to stderr; each
    one's files are removed after. `label` names a server in those messages (`{}`: its key)."""
    try:
        yield servers
        for name, target in servers.items():
            if target.process.poll() is not None:
                raise RuntimeError(f"{label.format(name)} died:\n{target.tail()}")
    except BaseException:
        for name, target in servers.items():
            if target.process is not None:
                print(f"{label.format(name)}'s last lines:\n{target.tail()}", file=sys.stderr)
        raise
    finally:
        for target in servers.values():
            target.cleanup()


def rotated(items: tuple, number: int) -> tuple:
    """Round `number`'s order of `items`: each goes first in turn (two alternate), so that none
    always runs on a warmer (or more loaded) machine than the others."""
    shift = number % len(items)
    return items[shift:] + items[:shift]


def default_workers() -> int:
    """gunicorn.conf.py's default: 2 x CPUs + 1."""
    return 2 * len(os.sched_getaffinity(0)) + 1


class Gunicorn(Server):
    """gunicorn as production runs it: `gunicorn -c gunicorn.conf.py` (docker/entrypoint.sh `web`),
    or another WSGI `app` under the same configuration, with every gunicorn.conf.py default
    (workers = 2 x CPUs + 1, sync, worker recycling, Prometheus multiprocess directory) unless
    `workers` is given; `threads` > 1 is gunicorn.conf.py's GUNICORN_THREADS (the gthread worker).
    """

    name = "gunicorn"

    def __init__(self, group: ProcessGroup, env: dict[str, str], *, workers: int | None = None,
                 threads: int | None = None, port: int | None = None, app: str | None = None):  # fmt: skip
        super().__init__(group, env, port=port, app=app)
        self.env["GUNICORN_BIND"] = f"127.0.0.1:{self.port}"
        if workers:
            self.env["WEB_CONCURRENCY"] = str(workers)
        if threads:
            self.env["GUNICORN_THREADS"] = str(threads)
        self.workers = int(self.env.get("WEB_CONCURRENCY") or default_workers())

    def command(self) -> list[str]:
        args = [PYTHON, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--backlog", "2048"]
        return [*args, self.app] if self.app else args


class Granian(Server):
    """granian's WSGI server on production's WSGI app (or `app`): `workers` processes (gunicorn's
    default count unless given), each with `threads` blocking threads running the app, HTTP/1.1 with
    keep-alive (its default), its own access log off (the app logs each request, as under gunicorn).
    gunicorn.conf.py is not read: granian has no hooks for it."""

    name = "granian"

    def __init__(self, group: ProcessGroup, env: dict[str, str], *, workers: int | None = None,
                 threads: int = 1, port: int | None = None, app: str | None = None):  # fmt: skip
        super().__init__(group, env, port=port, app=app)
        self.workers = workers or int(self.env.get("WEB_CONCURRENCY") or default_workers())
        self.threads = threads

    def command(self) -> list[str]:
        return [
            PYTHON, "-m", "granian", "--interface", "wsgi", "--http", "1",
            "--host", "127.0.0.1", "--port", str(self.port), "--backlog", "2048",
            "--workers", str(self.workers), "--blocking-threads", str(self.threads),
            "--no-ws", "--no-access-log", self.app or "jia_payments.wsgi:application",
        ]  # fmt: skip


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name: [state, ppid, ...]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pids) -> float:
    """User + system CPU time of these processes so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat(pid)
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
