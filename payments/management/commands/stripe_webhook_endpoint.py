"""Create or update dj-stripe's webhook endpoint row from settings: no admin clicking.

    manage.py stripe_webhook_endpoint [--base-url https://payments.example]

The endpoint's secret is STRIPE_WEBHOOK_SECRET (Stripe's `whsec_...` for the endpoint configured
in its dashboard); its URL path, /stripe/webhook/<uuid>/, uses STRIPE_WEBHOOK_UUID, or a uuid
derived from the secret so that running the command again changes nothing.
"""

from django.core.management.base import BaseCommand, CommandError

from payments.stripe.endpoint import webhook_endpoint_ensure


class Command(BaseCommand):
    help = "Create or update the Stripe webhook endpoint row (secret, tolerance) from settings."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="", help="This service's public URL, for the record")

    def handle(self, *args, base_url, **options):
        try:
            endpoint, created = webhook_endpoint_ensure(base_url=base_url)
        except ValueError as error:
            raise CommandError(str(error)) from error
        verb = "created" if created else "updated"
        self.stdout.write(f"{verb} webhook endpoint {endpoint.id}: /stripe/webhook/{endpoint.djstripe_uuid}/")
