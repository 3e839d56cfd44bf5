"""Signed API tokens from the development key pair (DEBUG only).

manage.py dev_token --role service --sub billing-backend     # one token, printed alone
manage.py dev_token --all                                    # what `make run` prints
"""

from django.core.management.base import BaseCommand, CommandError

from jia_payments.core.api.dev_tokens import DEFAULT_TTL_SECONDS, ROLE_CLAIMS, DevKeysRefused, dev_token

# The callers `make run` prints a token for: (role, sub, what it may do).
READY_CALLERS = (
    ("user", "spiff_id_test_user_123", "an end user, for themself"),
    ("service", "dev-service", "a backend service, for any user"),
    ("staff", "dev-staff", "staff, for any user"),
)


class Command(BaseCommand):
    help = "Print a signed API token (development key pair in var/; refused when DEBUG is false)."

    def add_arguments(self, parser):
        parser.add_argument("--role", choices=sorted(ROLE_CLAIMS), default="user")
        parser.add_argument("--sub", help="the caller's id (the token's subject)")
        parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds (default a day)")
        parser.add_argument("--all", action="store_true", help="a token for each ready caller, labelled")

    def handle(self, *args, role, sub, ttl, all, **options):
        if ttl <= 0:
            raise CommandError("--ttl must be positive.")
        try:
            if all:
                self._print_ready(ttl)
            else:
                if not sub:
                    raise CommandError("--sub is required (or --all).")
                self.stdout.write(dev_token(role=role, sub=sub, ttl=ttl))
        except DevKeysRefused as error:
            raise CommandError(str(error)) from error

    def _print_ready(self, ttl: int) -> None:
        hours = ttl // 3600
        self.stdout.write(f"API tokens (valid {hours} h; send as 'better-auth-token: <token>'):")
        for role, sub, what in READY_CALLERS:
            token = dev_token(role=role, sub=sub, ttl=ttl)
            self.stdout.write(f"  {role:<8} {sub} ({what}):\n    {token}")
        self.stdout.write("More: python manage.py dev_token --role user|service|staff --sub NAME")
