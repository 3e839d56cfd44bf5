from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

USERNAME = "admin"
PASSWORD = "admin"  # noqa: S105 - development only; refused when DEBUG is false


class Command(BaseCommand):
    help = "Create the development staff user (DEBUG only) and print its login."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="where the server listens (make run's RUN_PORT)",
        )

    def handle(self, *args, base_url, **options):
        if not settings.DEBUG:
            raise CommandError("ensure_dev_staff is for development only (DEBUG=true).")
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(PASSWORD)
            user.save()
        base_url = base_url.rstrip("/")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: {base_url}/admin/  login {USERNAME} / {PASSWORD}"
                f"{'' if created else ' (existing user; password unchanged)'}\n"
                f"API docs: {base_url}/api/docs/   "
                "API calls: header 'better-auth-token: <any user id>' (development fallback)"
            )
        )
