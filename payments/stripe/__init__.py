"""Everything of payments that talks to Stripe.

- `gateway`: the only module that calls Stripe's API (through the SDK).
- `webhooks`: Stripe's calls to us, verified before anything is stored, handed to the inbox.
- `events`: the inbox: each Stripe event stored once, processed once by a Celery task, retried,
  reprocessed, reconciled.
- `handlers`: what each event type does to our payments, checkout sessions and refunds.
- `endpoint`: the dj-stripe webhook endpoint row kept equal to settings.
"""
