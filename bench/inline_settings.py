"""The product's settings with dj-stripe's default webhook handling, for the bench to compare with.

Without `DJSTRIPE_WEBHOOK_EVENT_CALLBACK`, dj-stripe verifies the event and processes it
in the request (it fetches the event's object from Stripe and syncs it) before answering.
"""

from jia_payments.settings import *  # noqa: F403

DJSTRIPE_WEBHOOK_EVENT_CALLBACK = None
