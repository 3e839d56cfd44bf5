"""`manage.py wait_for_db [--timeout 60] [--migrations]`: wait until the database accepts a query
(containers start together; the database may take a while) and, with --migrations, until no
migration is left to apply (a worker waits for the web container's migrate). Exits 1 after the
timeout, naming what it waited for."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor


class Command(BaseCommand):
    help = "Wait until the database answers a query."
    # It only waits: the configuration is checked by what runs next (migrate, `check`).
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait at most")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--migrations", action="store_true", help="also wait until fully migrated")

    def handle(self, *args, timeout: float, database: str, migrations: bool, **options):
        connection = connections[database]
        deadline = time.monotonic() + timeout
        delay = 0.25
        while True:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                waiting_for = (
                    f"{pending} unapplied migrations"
                    if migrations and (pending := _unapplied(connection))
                    else ""
                )
            except OperationalError as error:
                connection.close()
                waiting_for = f"the database ({error})"
            if not waiting_for:
                self.stdout.write("database is up" + (" and migrated" if migrations else ""))
                return
            if time.monotonic() + delay > deadline:
                raise CommandError(f"gave up after {timeout:g} s waiting for {waiting_for}")
            self.stderr.write(f"waiting for {waiting_for}")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _unapplied(connection) -> int:
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
