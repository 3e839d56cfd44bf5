"""Development: connect the local fake Stripe to this server's webhook, as `make run` does.

    manage.py stripe_dev_webhook --base-url http://127.0.0.1:8000

Creates (or updates) our webhook endpoint with STRIPE_WEBHOOK_SECRET (a development secret by
default with the fake) and registers its URL and secret with localstripe at STRIPE_API_BASE, so
the events of a checkout paid on the fake's page, a refund or a subscription change reach us.
Refused when DEBUG is false: a real Stripe's endpoint is set up in its dashboard.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jia_payments.core.api.errors import DomainError
from payments.stripe import gateway
from payments.stripe.endpoint import webhook_endpoint_ensure

NAME = "jia-payments"


class Command(BaseCommand):
    help = "Register this server's webhook with the local fake Stripe (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", required=True, help="where this server listens")

    def handle(self, *args, base_url, **options):
        if not settings.DEBUG:
            raise CommandError("stripe_dev_webhook is for development only (DEBUG=true).")
        try:
            endpoint, _ = webhook_endpoint_ensure(base_url=base_url)
            gateway.local_webhook_register(name=NAME, url=endpoint.url, secret=settings.STRIPE_WEBHOOK_SECRET)
        except (ValueError, DomainError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Stripe (local fake at {settings.STRIPE_API_BASE}) sends its events to {endpoint.url}"
        )
