"""`manage.py migrate_locked`: `migrate`, one process at a time across the whole deployment.

Two web replicas starting together would both run `migrate`; the second could try to create a
table the first is creating. On PostgreSQL this command takes a session-level advisory lock first
(the second replica waits, then finds nothing left to do); other databases migrate directly.
"""

import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

# pg_advisory_lock key: any bigint, the same in every replica ("jiamigr" in ASCII).
MIGRATION_LOCK_KEY = 0x6A69616D696772


class Command(BaseCommand):
    help = "Run migrate while holding a PostgreSQL advisory lock (one replica migrates at a time)."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--lock-timeout", type=float, default=600.0, help="seconds to wait for another migrate"
        )

    def handle(self, *args, database: str, lock_timeout: float, **options):
        connection = connections[database]
        migrate_options = {"database": database, "interactive": False, "verbosity": options["verbosity"]}
        if connection.vendor != "postgresql":
            call_command("migrate", **migrate_options)
            return
        self._lock(connection, lock_timeout)
        try:
            call_command("migrate", **migrate_options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])

    def _lock(self, connection, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
                if cursor.fetchone()[0]:
                    return
            if time.monotonic() > deadline:
                raise CommandError(f"another migrate held the migration lock for over {timeout:g} s")
            if not waiting:
                self.stdout.write("another replica is migrating; waiting for it")
                waiting = True
            time.sleep(0.5)
