"""A script run the way `make run` runs the app: on the embedded SQLite, in a `manage.py shell`
child with DEBUG=true and none of the suite's server configuration, its tables made straight from
the models. The suite's other tests run on PostgreSQL."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_CONFIG = ("DATABASE_URL", "POSTGRES_DSN", "REDIS_URL", "AUTH_PUBLIC_KEY_PEM", "AUTH_JWKS_PATH")

TABLES_FROM_MODELS = """
from django.conf import settings
from django.core.management import call_command


class NoMigrations(dict):  # the tables straight from the models: minutes faster than migrating
    def __contains__(self, app_label):
        return True

    def __getitem__(self, app_label):
        return None


settings.MIGRATION_MODULES = NoMigrations()
call_command("migrate", run_syncdb=True, verbosity=0)
"""


def answers_on_sqlite(script: str, tmp_path: Path) -> dict:
    """What `script` printed as `ANSWERS <json>`, run on a new SQLite database in `tmp_path`."""
    env = {name: value for name, value in os.environ.items() if name not in SERVER_CONFIG}
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", LOG_LEVEL="WARNING")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", TABLES_FROM_MODELS + script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("ANSWERS ")]
    return json.loads(line.removeprefix("ANSWERS "))
