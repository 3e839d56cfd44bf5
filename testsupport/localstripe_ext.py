"""What localstripe lacks and the product needs, added to it in-process.

localstripe (PyPI) fakes customers, payment intents, charges and refunds. Stripe also has, and
the product uses, resources localstripe does not: the account, Prices, Checkout Sessions,
price-based subscriptions with their invoices, `charge.refunded` events, idempotent requests and
a newest-first event list. They are added here, shaped like Stripe's documented objects
(`stripe_objects.json` beside this file: Stripe's own OpenAPI fixtures), on top of localstripe's
object store, so expansion and retrieval by id work across both.

Test-only routes (Stripe has no equivalent that works without a browser):
- POST /v1/test_helpers/checkout/sessions/{id}/complete    pay an open session, as a customer would
- POST /v1/test_helpers/subscriptions/{id}/renew           start the next billing period (paid)
- POST /v1/test_helpers/subscriptions/{id}/advance         the period ends now (or at `ended_at`):
                                                           canceled, renewed, or past_due if declined
- GET  /billing_portal/{id}                                the Billing Portal session's page
- GET|POST /_config/deliveries                             webhook delivery log; pause/resume
- POST /_config/events/{id}/deliver                        deliver one event now, synchronously
- POST /_config/faults                                     fail the next N matching API calls

Its objects live in memory, or also in a file (`build_app(store_path=...)`: `make run`'s
var/localstripe.pickle) loaded at start and saved after every change, so a restarted fake still
has the customers and payments a database kept from its earlier runs.
"""

import asyncio
import copy
import hashlib
import hmac
import json
import os
import pickle
import random
import string
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from dateutil.relativedelta import relativedelta
from localstripe import resources as ls
from localstripe import server as ls_server
from localstripe import webhooks as ls_webhooks
from localstripe.errors import UserError

from pricing.money import stripe_minimum_charge  # no Django: the table only

API_VERSION = "2026-08-26.dahlia"  # what the pinned stripe SDK sends; rendered into events
TEMPLATES = json.loads((Path(__file__).with_name("stripe_objects.json")).read_text())

INTERVALS = {"day": "days", "week": "weeks", "month": "months", "year": "years"}

_state = {"paused": False, "delay": 0.2}
_deliveries: list[dict] = []
_idempotency: dict[tuple[str, str], dict] = {}
_faults: list[dict] = []
_sending: set[asyncio.Future] = set()


def _rand(n: int) -> str:
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(n))


def _template(kind: str, **values) -> dict:
    """Stripe's example object of `kind`, deep-copied, with `values` set on it."""
    obj = copy.deepcopy(TEMPLATES[kind])
    obj.update(values)
    return obj


def _int(value, name: str, *, minimum: int = 0) -> int:
    value = ls.try_convert_to_int(value)
    if type(value) is not int or value < minimum:
        raise _invalid(f"Invalid integer: {name}", param=name)
    return value


def _invalid(message: str, *, param: str | None = None, code: str | None = None, status=400):
    contents = {}
    if param:
        contents["param"] = param
    if code:
        contents["code"] = code
    return UserError(status, message, contents)


def _reject_unknown(params: dict, allowed: set[str]) -> None:
    for key in params:
        if key not in allowed:
            raise _invalid(f"Received unknown parameter: {key}", param=key)


def _period_end(start: int, recurring: dict) -> int:
    unit = INTERVALS[recurring["interval"]]
    count = int(recurring.get("interval_count") or 1)
    start_dt = datetime.fromtimestamp(start, tz=UTC)
    return int((start_dt + relativedelta(**{unit: count})).timestamp())


def emit(event_type: str, obj, previous_attributes: dict | None = None) -> ls.Event:
    """Record a Stripe event about `obj` and send it to the registered webhooks."""
    event = ls.Event(event_type, obj)
    if previous_attributes:
        event.data["previous_attributes"] = previous_attributes
    ls.schedule_webhook(event)
    return event


class Resource(ls.StripeObject):
    """A Stripe object kept in localstripe's store and exported as an independent copy.

    localstripe copies only the top level on export, so an event holding an export would change
    when the object's nested fields change later; Stripe's events are snapshots.
    """

    _newest_first = True

    def _fill(self, kind: str) -> None:
        """Every field of Stripe's example `kind` object; the caller then sets the real values."""
        for key, value in _template(kind).items():
            if key not in ("id", "created", "livemode", "object"):
                setattr(self, key, value)

    def _export(self, expand=None):
        return copy.deepcopy(super()._export(expand=expand))

    @classmethod
    def _api_list_all(cls, url, limit=None, starting_after=None, **filters):
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        if cls._newest_first:
            li._list.reverse()
        for key, value in filters.items():
            li._list = [o for o in li._list if str(getattr(o, key, None)) == str(value)]
        return li


class MetadataOnly:
    """Before `Resource` in a resource's bases: only its metadata can change, it cannot be deleted."""

    @classmethod
    def _api_update(cls, id, **data):
        _reject_unknown(data, {"metadata"})
        return super()._api_update(id, **data)

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, "Method Not Allowed")


# ----------------------------------------------------------------------------- account


def account_retrieve(**_):
    return Account()


class Account:
    """The one account behind the API key (`GET /v1/account`), Stripe's example object."""

    def _export(self, expand=None):
        return _template(
            "account",
            id="acct_1LocalstripeTest0",
            charges_enabled=True,
            payouts_enabled=True,
            details_submitted=True,
            business_profile={**TEMPLATES["account"]["business_profile"], "name": "localstripe"},
        )


# ----------------------------------------------------------------------------- prices


class Price(Resource):
    object = "price"
    _id_prefix = "price_"

    def __init__(self, currency=None, unit_amount=None, product=None, product_data=None,
                 recurring=None, metadata=None, nickname=None, lookup_key=None, active=True,
                 tax_behavior="unspecified", **kwargs):  # fmt: skip
        _reject_unknown(kwargs, set())
        if not isinstance(currency, str) or len(currency) != 3:
            raise _invalid("Missing required param: currency.", param="currency")
        unit_amount = _int(unit_amount, "unit_amount")
        if recurring is not None:
            if not isinstance(recurring, dict) or recurring.get("interval") not in INTERVALS:
                raise _invalid("Invalid recurring[interval]", param="recurring[interval]")
            recurring = {
                "interval": recurring["interval"],
                "interval_count": _int(recurring.get("interval_count", 1), "interval_count", minimum=1),
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        if product is None:
            if not isinstance(product_data, dict) or not product_data.get("name"):
                raise _invalid("Missing required param: product_data[name].", param="product_data")
            product = ls.Product(
                name=product_data["name"],
                description=product_data.get("description"),
                metadata=product_data.get("metadata"),
            ).id
        else:
            ls.Product._api_retrieve(product)
        super().__init__()
        self._fill("price")
        self.active = ls.try_convert_to_bool(active)
        self.currency = currency.lower()
        self.unit_amount = unit_amount
        self.unit_amount_decimal = str(unit_amount)
        self.product = product
        self.recurring = recurring
        self.type = "recurring" if recurring else "one_time"
        self.metadata = metadata or {}
        self.nickname = nickname
        self.lookup_key = lookup_key
        self.tax_behavior = tax_behavior
        self.custom_unit_amount = None
        self.transform_quantity = None

    @classmethod
    def _api_create(cls, **data):
        price = cls(**data)
        emit("price.created", price)
        return price

    @classmethod
    def _api_update(cls, id, **data):
        _reject_unknown(data, {"active", "metadata", "nickname", "lookup_key"})
        if "active" in data:
            data["active"] = ls.try_convert_to_bool(data["active"])
        price = super()._api_update(id, **data)
        emit("price.updated", price)
        return price

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, "Prices cannot be deleted; set active=false.")


# ----------------------------------------------------------------------------- checkout


class CheckoutSession(MetadataOnly, Resource):
    object = "checkout.session"
    _id_prefix = "cs_test_"
    _base_url = ""  # set from the request, so `url` points at this server's pay page

    def __init__(self, mode=None, line_items=None, success_url=None, cancel_url=None,
                 client_reference_id=None, customer=None, customer_email=None,
                 customer_creation=None, metadata=None, expires_at=None,
                 payment_intent_data=None, subscription_data=None, payment_method_types=None,
                 locale=None, ui_mode=None, currency=None, **kwargs):  # fmt: skip
        _reject_unknown(kwargs, set())
        if mode not in ("payment", "subscription"):
            raise _invalid("Invalid mode: must be one of payment, setup, or subscription", param="mode")
        if not isinstance(line_items, list) or not line_items:
            raise _invalid("Missing required param: line_items.", param="line_items")
        if customer is not None:
            ls.Customer._api_retrieve(customer)
        now = int(time.time())
        expires_at = now + 24 * 3600 if expires_at is None else _int(expires_at, "expires_at")
        if not now + 30 * 60 <= expires_at <= now + 24 * 3600:
            raise _invalid("expires_at must be 30 minutes to 24 hours from now", param="expires_at")
        items = [self._line_item(mode, i, item) for i, item in enumerate(line_items)]
        currencies = {item["currency"] for item in items}
        if len(currencies) != 1:
            raise _invalid("All line items must use the same currency.", param="line_items")
        (session_currency,) = currencies
        total = sum(item["amount_total"] for item in items)
        minimum = stripe_minimum_charge(session_currency)
        if total < minimum:
            raise _invalid(
                f"The Checkout Session's total amount due must add up to at least "
                f"{minimum} {session_currency} (minor units)",
                param="line_items",
                code="amount_too_small",
            )
        super().__init__(id="cs_test_a1" + _rand(56))
        self._fill("checkout.session")
        self.adaptive_pricing = {"enabled": False}
        self.after_expiration = None
        self.amount_subtotal = total
        self.amount_total = total
        self.cancel_url = cancel_url
        self.client_reference_id = client_reference_id
        self.collected_information = None
        self.currency = session_currency
        self.currency_conversion = None
        self.custom_text = {"after_submit": None, "shipping_address": None, "submit": None,
                            "terms_of_service_acceptance": None}  # fmt: skip
        self.customer = customer
        self.customer_creation = customer_creation or ("always" if mode == "subscription" else "if_required")
        self.customer_details = None
        self.customer_email = customer_email
        self.expires_at = expires_at
        self.invoice = None
        self.invoice_creation = None
        self.locale = locale
        self.managed_payments = {"enabled": False}
        self.metadata = metadata or {}
        self.mode = mode
        self.payment_intent = None
        self.payment_method_configuration_details = None
        self.payment_method_types = payment_method_types or ["card"]
        self.payment_status = "unpaid"
        self.saved_payment_method_options = None
        self.shipping_address_collection = None
        self.shipping_cost = None
        self.status = "open"
        self.subscription = None
        self.success_url = success_url
        self.total_details = {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}
        self.ui_mode = ui_mode or "hosted"
        self.url = f"{CheckoutSession._base_url}/checkout/pay/{self.id}"
        self._line_items = items
        self._payment_intent_data = payment_intent_data or {}
        self._subscription_data = subscription_data or {}

    @staticmethod
    def _line_item(mode: str, index: int, item: dict) -> dict:
        if not isinstance(item, dict):
            raise _invalid("Invalid line_items", param=f"line_items[{index}]")
        _reject_unknown(item, {"price", "price_data", "quantity"})
        quantity = _int(item.get("quantity", 1), f"line_items[{index}][quantity]", minimum=1)
        if item.get("price"):
            price = Price._api_retrieve(item["price"])
        elif isinstance(item.get("price_data"), dict):
            price = Price(**item["price_data"])
        else:
            raise _invalid("You must specify either `price` or `price_data`", param=f"line_items[{index}]")
        if (mode == "subscription") != (price.recurring is not None):
            raise _invalid(
                f"You specified `{mode}` mode but passed a "
                f"{'one-time' if mode == 'subscription' else 'recurring'} price.",
                param=f"line_items[{index}]",
            )
        amount = price.unit_amount * quantity
        description = ls.Product._api_retrieve(price.product).name
        return {
            "id": "li_" + _rand(24), "object": "item", "amount_discount": 0,
            "amount_subtotal": amount, "amount_tax": 0, "amount_total": amount,
            "currency": price.currency, "description": description,
            "price": price._export(), "quantity": quantity,
        }  # fmt: skip

    def _export(self, expand=None):
        expand = list(expand or [])
        with_line_items = "line_items" in expand
        if with_line_items:
            expand.remove("line_items")
        obj = super()._export(expand=expand)
        if with_line_items:
            obj["line_items"] = self._line_items_list()
        return obj

    def _line_items_list(self) -> dict:
        return {"object": "list", "data": copy.deepcopy(self._line_items), "has_more": False,
                "url": f"/v1/checkout/sessions/{self.id}/line_items"}  # fmt: skip

    @classmethod
    def _api_create(cls, **data):
        return cls(**data)  # Stripe sends no event for a created session

    @classmethod
    def _api_list_line_items(cls, id, **_):
        return _Raw(cls._api_retrieve(id)._line_items_list())

    @classmethod
    def _api_expire(cls, id, **kwargs):
        _reject_unknown(kwargs, set())
        session = cls._api_retrieve(id)
        if session.status != "open":
            raise _invalid(f"Only Checkout Sessions with a status of open can be expired. "
                           f"This session has a status of {session.status}.")  # fmt: skip
        session._expire()
        return session

    def _expire(self):
        self.status = "expired"
        self.url = None
        emit("checkout.session.expired", self)

    @classmethod
    def _api_complete(cls, id, payment_method="pm_card_visa", email="customer@example.com", **kw):
        """Pay the session as the customer would on Stripe's page (test helper)."""
        _reject_unknown(kw, set())
        session = cls._api_retrieve(id)
        if session.status != "open":
            raise _invalid(f"This Checkout Session is {session.status}.", code="checkout_session_not_open")
        if session.customer is None and session.customer_creation == "always":
            session.customer = ls.Customer(email=email).id
        # A declined card raises a 402 here, and the session stays open as on Stripe.
        pi = _pay(session.amount_total, session.currency, session.customer, payment_method,
                  metadata=session._payment_intent_data.get("metadata"),
                  description=session._payment_intent_data.get("description"))  # fmt: skip
        if session.mode == "subscription":
            subscription = Subscription(session, pi)
            session.subscription = subscription.id
            session.invoice = subscription.latest_invoice
        else:
            session.payment_intent = pi.id
        session.customer_details = {
            "address": None, "business_name": None, "email": email, "individual_name": None,
            "name": None, "phone": None, "tax_exempt": "none", "tax_ids": [],
        }  # fmt: skip
        session.status = "complete"
        session.payment_status = "paid"
        session.url = None
        emit("checkout.session.completed", session)
        return session


class _Raw:
    """An already exported object, for routes that return a list built by hand."""

    def __init__(self, obj):
        self._obj = obj

    def _export(self, expand=None):
        return self._obj


def _pay(amount, currency, customer, payment_method, *, metadata=None, description=None):
    """A confirmed PaymentIntent (localstripe's), as Checkout and invoices create them."""
    pi = ls.PaymentIntent(amount=amount, currency=currency, customer=customer,
                          payment_method=payment_method, metadata=metadata)  # fmt: skip
    pi.description = description
    pi._confirm(on_failure_now=pi._report_failure)
    return pi


# ----------------------------------------------------------------------------- subscriptions


class Invoice(MetadataOnly, Resource):
    """A subscription's invoice: open when made, `paid` once a payment of its amount succeeds."""

    object = "invoice"
    _id_prefix = "in_"

    def __init__(self, subscription, billing_reason: str, *, lines: list[tuple[int, str, bool]],
                 period: tuple[int, int]):  # fmt: skip
        super().__init__()
        item = subscription._item
        self._fill("invoice")
        now = int(time.time())
        amount = sum(line_amount for line_amount, _, _ in lines)
        self.amount_due = self.subtotal = self.total = amount
        self.subtotal_excluding_tax = self.total_excluding_tax = amount
        self.amount_paid = self.amount_overpaid = 0
        self.amount_remaining = amount
        self.attempt_count, self.attempted, self.auto_advance = 0, False, True
        self.billing_reason = billing_reason
        self.currency = subscription.currency
        self.customer = subscription.customer
        self.due_date = None
        self.effective_at = now
        self.from_invoice = None
        self.last_finalization_error = None
        self.next_payment_attempt = None
        self.number = "LS-" + _rand(8).upper()
        self.period_start, self.period_end = period
        self.shipping_cost = None
        self.status = "open"
        self.status_transitions = {"finalized_at": now, "marked_uncollectible_at": None,
                                   "paid_at": None, "voided_at": None}  # fmt: skip
        # `subscription` until API 2025-03-31, `parent.subscription_details` since
        self.subscription = subscription.id
        self.parent = {
            "quote_details": None,
            "subscription_details": {
                "metadata": subscription.metadata,
                "subscription": subscription.id,
            },
            "type": "subscription_details",
        }
        self.lines = {
            "object": "list", "has_more": False, "url": f"/v1/invoices/{self.id}/lines",
            "data": [self._line(subscription, item, line_amount, description, proration)
                     for line_amount, description, proration in lines],
        }  # fmt: skip
        # Since API 2025-03-31 an invoice names its PaymentIntent through `payments` (expandable).
        self.payments = {"object": "list", "has_more": False, "data": [],
                         "url": f"/v1/invoice_payments?invoice={self.id}"}  # fmt: skip
        self.webhooks_delivered_at = None

    def _line(self, subscription, item, amount: int, description: str, proration: bool) -> dict:
        return {
            "id": "il_" + _rand(24), "object": "line_item", "amount": amount,
            "currency": self.currency, "description": description, "discount_amounts": [],
            "discountable": not proration, "discounts": [], "invoice": self.id, "livemode": False,
            "metadata": {}, "period": {"start": self.period_start, "end": self.period_end},
            "pricing": {"type": "price_details", "unit_amount_decimal": str(amount),
                        "price_details": {"price": item["price"]["id"],
                                          "product": item["price"]["product"]}},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {"subscription": subscription.id,
                                                     "subscription_item": item["id"],
                                                     "proration": proration,
                                                     "proration_details": None,
                                                     "invoice_item": None}},
            "quantity": 1 if proration else item["quantity"], "subtotal": amount, "taxes": [],
        }  # fmt: skip

    def _attempt(self, payment_method) -> bool:
        """Charge what is due with `payment_method`; answers whether the invoice is paid now.
        A decline leaves it open (`invoice.payment_failed`), to be retried or paid later."""
        self.attempt_count += 1
        self.attempted = True
        if self.amount_due <= 0:  # a credit (a downgrade's proration): nothing to charge
            self._mark_paid(None)
            return True
        try:
            pi = _pay(self.amount_due, self.currency, self.customer, payment_method)
        except UserError:
            self.next_payment_attempt = int(time.time()) + 3 * 24 * 3600
            emit("invoice.payment_failed", self)
            return False
        self._mark_paid(pi)
        return True

    def _mark_paid(self, pi) -> None:
        now = int(time.time())
        self.status = "paid"
        self.amount_paid, self.amount_remaining = self.amount_due, 0
        self.next_payment_attempt = None
        self.status_transitions = {**self.status_transitions, "paid_at": now}
        if pi is not None:
            pi.invoice = None  # localstripe would call back into its own Invoice class otherwise
            self.payments["data"].append({
                "id": "inpay_" + _rand(24), "object": "invoice_payment", "amount_paid": pi.amount,
                "amount_requested": pi.amount, "currency": self.currency, "invoice": self.id,
                "is_default": True, "livemode": False, "created": now,
                "payment": {"type": "payment_intent", "payment_intent": pi.id}, "status": "paid",
                "status_transitions": {"canceled_at": None, "paid_at": now},
            })  # fmt: skip
        emit("invoice.paid", self)

    @classmethod
    def _api_pay(cls, id, payment_method=None, off_session=None, **kwargs):
        """`POST /v1/invoices/{id}/pay`: charge an open invoice now; a past_due subscription whose
        invoice gets paid is active again. A decline is a 402, as on Stripe."""
        _reject_unknown(kwargs, set())
        invoice = cls._api_retrieve(id)
        if invoice.status != "open":
            raise _invalid("Invoice is already paid", code="invoice_already_paid")
        sub = Subscription._api_retrieve(invoice.subscription)
        if payment_method:
            sub.default_payment_method = payment_method
        if not invoice._attempt(sub.default_payment_method):
            raise UserError(402, "Your card was declined.", {"code": "card_declined", "type": "card_error"})
        sub._recovered(invoice)
        return invoice

    @classmethod
    def _api_create(cls, **data):
        raise UserError(405, "Invoices are created by subscriptions here.")


PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")


class Subscription(Resource):
    """A price-based subscription, as Checkout creates it (Stripe's shape, periods on items).

    Besides Stripe's calls (update: items with proration, cancel at period end, cancel now), the
    test helper `advance` ends the current period: a subscription set to cancel then is canceled;
    any other is invoiced for the next period (prorations included), `past_due` when that payment
    is declined, until `POST /v1/invoices/{id}/pay` succeeds."""

    object = "subscription"
    _id_prefix = "sub_"

    def __init__(self, session: CheckoutSession, pi):
        super().__init__()
        self._fill("subscription")
        now = int(time.time())
        line = session._line_items[0]
        price = line["price"]
        self.billing_cycle_anchor = now
        self.billing_cycle_anchor_config = None
        self.billing_mode = {"type": "classic", "flexible": None}
        self.billing_schedules = []
        self.billing_thresholds = None
        self.cancel_at = None
        self.cancel_at_period_end = False
        self.canceled_at = None
        self.currency = session.currency
        self.customer = session.customer
        self.default_payment_method = pi.payment_method
        self.ended_at = None
        self.managed_payments = {"enabled": False}
        self.metadata = dict(session._subscription_data.get("metadata") or {})
        self.next_pending_invoice_item_invoice = None
        self.pause_collection = None
        self.pending_invoice_item_interval = None
        self.pending_update = None
        self.start_date = now
        self.status = "active"
        self.transfer_data = None
        self.trial_end = self.trial_start = None
        self.items = {
            "object": "list", "has_more": False, "url": f"/v1/subscription_items?subscription={self.id}",
            "data": [{
                "id": "si_" + _rand(14), "object": "subscription_item", "billing_thresholds": None,
                "created": now, "current_period_start": now,
                "current_period_end": _period_end(now, price["recurring"]), "discounts": [],
                "metadata": {}, "price": price, "plan": None, "quantity": line["quantity"],
                "subscription": self.id, "tax_rates": [],
            }],
        }  # fmt: skip
        self._prorations: list[tuple[int, str, bool]] = []  # lines for the next invoice
        item = self._item
        invoice = Invoice(self, "subscription_create", lines=[(pi.amount, "Subscription", False)],
                          period=(now, item["current_period_end"]))  # fmt: skip
        self.latest_invoice = invoice.id
        emit("customer.subscription.created", self)
        invoice._mark_paid(pi)

    @property
    def _item(self) -> dict:
        return self.items["data"][0]

    def _snapshot(self) -> dict:
        keys = ("items", "latest_invoice", "status", "cancel_at_period_end", "cancel_at", "canceled_at")
        return {key: copy.deepcopy(getattr(self, key)) for key in keys}

    def _next_period(self, start: int, previous: dict) -> Invoice:
        """Invoice the period starting at `start`; the subscription is past_due if it is unpaid."""
        item = self._item
        item["current_period_start"] = start
        item["current_period_end"] = _period_end(start, item["price"]["recurring"])
        lines = [(item["price"]["unit_amount"] * item["quantity"], "Subscription", False), *self._prorations]
        self._prorations = []
        invoice = Invoice(self, "subscription_cycle", lines=lines,
                          period=(start, item["current_period_end"]))  # fmt: skip
        self.latest_invoice = invoice.id
        paid = invoice._attempt(self.default_payment_method)
        self.status = "active" if paid else "past_due"
        emit("customer.subscription.updated", self, previous)
        return invoice

    def _renew(self):
        self._next_period(self._item["current_period_end"], self._snapshot())

    def _recovered(self, invoice) -> None:
        if self.status == "past_due" and self.latest_invoice == invoice.id:
            previous = self._snapshot()
            self.status = "active"
            emit("customer.subscription.updated", self, previous)

    def _end(self, at: int) -> None:
        self.status = "canceled"
        self.canceled_at = self.canceled_at or at
        self.ended_at = at
        self.cancellation_details = {"comment": None, "feedback": None, "reason": "cancellation_requested"}
        emit("customer.subscription.deleted", self)

    @classmethod
    def _api_renew(cls, id, **kwargs):
        _reject_unknown(kwargs, set())
        sub = cls._api_retrieve(id)
        if sub.status != "active":
            raise _invalid(f"Subscription {id} is {sub.status}.")
        sub._renew()
        return sub

    @classmethod
    def _api_advance(cls, id, ended_at=None, payment_method=None, **kwargs):
        """Test helper: the current period ends at `ended_at` (unix time; default now)."""
        _reject_unknown(kwargs, set())
        sub = cls._api_retrieve(id)
        if sub.status not in ("active", "past_due"):
            raise _invalid(f"Subscription {id} is {sub.status}.")
        ended_at = int(time.time()) if ended_at is None else _int(ended_at, "ended_at")
        if payment_method:
            sub.default_payment_method = payment_method
        previous = sub._snapshot()
        sub._item["current_period_end"] = ended_at
        if sub.cancel_at_period_end:
            sub.cancel_at = ended_at
            sub._end(ended_at)
        else:
            sub._next_period(ended_at, previous)
        return sub

    @classmethod
    def _api_create(cls, **data):
        raise UserError(405, "Subscriptions are created by Checkout here.")

    @classmethod
    def _api_update(cls, id, **data):
        _reject_unknown(
            data,
            {"metadata", "cancel_at_period_end", "items", "proration_behavior", "default_payment_method"},
        )
        sub = cls._api_retrieve(id)
        if sub.status == "canceled":
            raise _invalid("A canceled subscription can only update its metadata.")
        previous = sub._snapshot()
        if "cancel_at_period_end" in data:
            at_end = ls.try_convert_to_bool(data.pop("cancel_at_period_end"))
            sub.cancel_at_period_end = at_end
            sub.cancel_at = sub._item["current_period_end"] if at_end else None
            sub.canceled_at = int(time.time()) if at_end else None
        behavior = data.pop("proration_behavior", None) or "create_prorations"
        if behavior not in PRORATION_BEHAVIORS:
            raise _invalid("Invalid proration_behavior", param="proration_behavior")
        if "items" in data:
            sub._change_items(data.pop("items"), behavior)
        if "default_payment_method" in data:
            sub.default_payment_method = data.pop("default_payment_method")
        if data:
            super()._api_update(id, **data)
        emit("customer.subscription.updated", sub, previous)
        return sub

    def _change_items(self, items, behavior: str) -> None:
        """A new price on the one item; the unused time of the old one is credited and the rest
        of the period on the new one charged (`create_prorations`: on the next invoice;
        `always_invoice`: on an invoice paid now; `none`: not at all)."""
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            raise _invalid("Exactly one item is supported here.", param="items")
        change = items[0]
        _reject_unknown(change, {"id", "price", "price_data", "quantity"})
        item = self._item
        if change.get("id") not in (None, item["id"]):
            raise _invalid(f"No such subscription item: '{change['id']}'", param="items[0][id]")
        if change.get("price"):
            price = Price._api_retrieve(change["price"])
        elif isinstance(change.get("price_data"), dict):
            price = Price(**change["price_data"])
        else:
            raise _invalid("You must specify either `price` or `price_data`", param="items[0]")
        if price.recurring is None:
            raise _invalid("The price must be recurring.", param="items[0][price]")
        if price.currency != self.currency:
            raise _invalid("A subscription's currency cannot change.", param="items[0][price]")
        quantity = _int(change.get("quantity", item["quantity"]), "items[0][quantity]", minimum=1)
        old_amount = item["price"]["unit_amount"] * item["quantity"]
        new_amount = price.unit_amount * quantity
        item["price"], item["quantity"] = price._export(), quantity
        if behavior == "none":
            return
        start, end = item["current_period_start"], item["current_period_end"]
        left = max(0.0, min(1.0, (end - time.time()) / max(1, end - start)))
        lines = [
            (-round(old_amount * left), "Unused time (proration)", True),
            (round(new_amount * left), "Remaining time (proration)", True),
        ]
        if behavior == "create_prorations":
            self._prorations.extend(lines)
            return
        invoice = Invoice(self, "subscription_update", lines=lines, period=(start, end))
        self.latest_invoice = invoice.id
        invoice._attempt(self.default_payment_method)

    @classmethod
    def _api_delete(cls, id, **kwargs):
        """Cancel now (`DELETE /v1/subscriptions/{id}`, the SDK's `cancel`)."""
        _reject_unknown(kwargs, {"prorate", "invoice_now", "cancellation_details"})
        sub = cls._api_retrieve(id)
        if sub.status == "canceled":
            raise _invalid(f"No such subscription: '{id}' is already canceled", param="id")
        sub._end(int(time.time()))
        return sub

    @classmethod
    def _api_list_all(cls, url, status=None, **filters):
        li = super()._api_list_all(url, **filters)
        if status is None:
            li._list = [s for s in li._list if s.status != "canceled"]
        elif status != "all":
            li._list = [s for s in li._list if s.status == status]
        return li


# ----------------------------------------------------------------------------- billing portal


class BillingPortalSession(Resource):
    """`POST /v1/billing_portal/sessions`: a page where the customer sees their subscriptions and
    can cancel one at the period's end, then goes back to `return_url`."""

    object = "billing_portal.session"
    _id_prefix = "bps_"
    _newest_first = False

    def __init__(self, customer=None, return_url=None, configuration=None, locale=None,
                 flow_data=None, on_behalf_of=None, **kwargs):  # fmt: skip
        _reject_unknown(kwargs, set())
        if not isinstance(customer, str) or not customer:
            raise _invalid("Missing required param: customer.", param="customer")
        ls.Customer._api_retrieve(customer)
        super().__init__(id="bps_" + _rand(24))
        self.configuration = configuration or "bpc_localstripe"
        self.customer = customer
        self.flow = None
        self.locale = locale
        self.on_behalf_of = on_behalf_of
        self.return_url = return_url
        self.url = f"{CheckoutSession._base_url}/billing_portal/{self.id}"

    @classmethod
    def _api_update(cls, id, **data):
        raise UserError(405, "Method Not Allowed")

    @classmethod
    def _api_delete(cls, id):
        raise UserError(405, "Method Not Allowed")


def _customer_subscriptions(customer: str) -> list:
    return [o for k, o in ls.store.items() if k.startswith("subscription:") and o.customer == customer]


def portal_page(request):
    portal = BillingPortalSession._api_retrieve(request.match_info["id"])
    rows = "".join(
        f"<li id={sub.id}><span class=status>{sub.status}</span> "
        f"<span class=amount>{sub._item['price']['unit_amount']} {sub.currency.upper()}</span> "
        f"<span class=cancel_at_period_end>{str(sub.cancel_at_period_end).lower()}</span>"
        + (
            f"<form method=post action=/billing_portal/{portal.id}/cancel><input type=hidden "
            f"name=subscription value={sub.id}><button type=submit>Cancel plan</button></form>"
            if sub.status in ("active", "past_due") and not sub.cancel_at_period_end
            else ""
        )
        + "</li>"
        for sub in _customer_subscriptions(portal.customer)
    )
    html = (
        f"<!doctype html><title>Billing</title><h1>localstripe billing portal</h1>"
        f"<p id=customer>{portal.customer}</p><ul id=subscriptions>{rows}</ul>"
        f"<a id=return href='{portal.return_url or '/'}'>Return</a>"
    )
    return web.Response(text=html, content_type="text/html")


async def portal_cancel(request):
    portal = BillingPortalSession._api_retrieve(request.match_info["id"])
    form = await request.post()
    sub = Subscription._api_retrieve(form.get("subscription", ""))
    if sub.customer != portal.customer:
        raise web.HTTPNotFound()
    Subscription._api_update(sub.id, cancel_at_period_end=True)
    raise web.HTTPSeeOther(f"/billing_portal/{portal.id}")


# ----------------------------------------------------------------------------- refunds, intents


def refund_create(reason=None, **data):
    """localstripe's refund, plus what Stripe does that it does not: the `reason`, a check
    against the amount left to refund, and the `charge.refunded` / `refund.created` events."""
    if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise _invalid("Invalid reason", param="reason")
    pi_id, charge_id = data.get("payment_intent"), data.get("charge")
    if pi_id:
        pi = ls.PaymentIntent._api_retrieve(pi_id)
        charge = pi.latest_charge
        if charge is None:
            raise _invalid(f"PaymentIntent {pi_id} has no charge to refund.", param="payment_intent")
    elif charge_id:
        charge = ls.Charge._api_retrieve(charge_id)
    else:
        raise _invalid("One of `charge` or `payment_intent` is required.")
    left = charge.amount - charge.amount_refunded
    if left <= 0:
        raise _invalid(f"Charge {charge.id} has already been refunded.", code="charge_already_refunded")
    amount = ls.try_convert_to_int(data.get("amount", left))
    if type(amount) is int and amount > left:
        raise _invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            param="amount",
            code="amount_too_large",
        )
    refund = ls.Refund(**{**data, "amount": amount})  # localstripe's default is the whole charge
    refund.reason = reason
    refund.payment_intent = charge.payment_intent
    refund.object = "refund"
    emit("refund.created", refund)
    emit("charge.refunded", charge)
    return refund


def payment_intent_create(description=None, automatic_payment_methods=None, **data):
    """localstripe's PaymentIntent, also taking `description` and `automatic_payment_methods`."""
    pi = ls.PaymentIntent._api_create(**data)
    pi.description = description
    pi.automatic_payment_methods = automatic_payment_methods
    emit("payment_intent.created", pi)
    return pi


# ----------------------------------------------------------------------------- events


def events_list(limit=None, starting_after=None, ending_before=None, type=None, types=None,
                created=None, **kwargs):  # fmt: skip
    """Newest first, as Stripe lists them (localstripe lists oldest first)."""
    _reject_unknown(kwargs, set())
    events = [obj for key, obj in ls.store.items() if key.startswith("event:")]
    events.reverse()
    wanted = set(types or []) | ({type} if type else set())
    if wanted:
        events = [e for e in events if e.type in wanted]
    bounds = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
    for op, value in (created or {}).items():
        if op not in bounds:
            raise _invalid(f"Invalid created[{op}]", param="created")
        events = [e for e in events if bounds[op](e.created, _int(value, "created"))]
    if ending_before:
        ids = [e.id for e in events]
        if ending_before in ids:
            events = events[: ids.index(ending_before)]
    li = ls.List("/v1/events", limit=limit, starting_after=starting_after)
    li._list = events
    return li


# ----------------------------------------------------------------------------- webhooks


def _signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), b"%d." % timestamp + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


async def _deliver(event, webhook, *, timestamp: int | None = None) -> dict:
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": _signature_header(payload, webhook.secret, stamp),
    }
    record = {
        "event": event.id,
        "type": event.type,
        "url": webhook.url,
        "status": None,
        "error": None,
    }
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(webhook.url, data=payload, headers=headers) as response,
        ):
            record["status"] = response.status
            await response.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        record["error"] = repr(exc)
    _deliveries.append(record)
    return record


def _webhooks_for(event):
    return [w for w in ls_webhooks._webhooks.values() if w.events is None or event.type in w.events]


def schedule_webhook(event):
    """Replaces localstripe's sender: Stripe-like signature time (now), a log, a pause switch."""
    event.pending_webhooks = len(_webhooks_for(event))
    if _state["paused"]:
        return

    async def send():
        await asyncio.sleep(_state["delay"])
        for webhook in _webhooks_for(event):
            await _deliver(event, webhook)

    task = asyncio.ensure_future(send())
    _sending.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_sending.discard)


async def deliver_now(request):
    event = ls.Event._api_retrieve(request.match_info["id"])
    data = await ls_server.get_post_data(request) or {}
    stamp = ls.try_convert_to_int(data.get("timestamp")) if data.get("timestamp") else None
    results = [await _deliver(event, w, timestamp=stamp) for w in _webhooks_for(event)]
    return ls_server.json_response({"deliveries": results})


async def deliveries(request):
    if request.method == "POST":
        data = await ls_server.get_post_data(request) or {}
        if "paused" in data:
            _state["paused"] = ls.try_convert_to_bool(data["paused"])
        if "delay" in data:
            _state["delay"] = float(data["delay"])
    return ls_server.json_response({"deliveries": _deliveries, "in_flight": len(_sending), **_state})


async def flush(request):
    ls.store.clear()
    _deliveries.clear()
    _idempotency.clear()
    _faults.clear()
    _state.update(paused=False, delay=0.2)
    return web.Response()


def _event_init(original):
    def init(self, type, data):
        original(self, type, data)
        self.api_version = API_VERSION
        self.pending_webhooks = 0
        self.request = {"id": None, "idempotency_key": None}

    return init


# ----------------------------------------------------------------------------- middlewares


async def faults(request):
    """Make the next `times` calls of `method` to `path` answer `status` (Stripe's 500 body),
    with `Stripe-Should-Retry: false` so the SDK gives up at once, as Stripe can tell it to."""
    data = await ls_server.get_post_data(request) or {}
    _faults.append({
        "method": data.get("method", "GET").upper(), "path": data["path"],
        "status": int(data.get("status", 500)), "times": int(data.get("times", 1)),
    })  # fmt: skip
    return ls_server.json_response({"faults": _faults})


@web.middleware
async def fault_middleware(request, handler):
    for fault in _faults:
        if fault["times"] > 0 and (request.method, request.path) == (
            fault["method"],
            fault["path"],
        ):
            fault["times"] -= 1
            body = {"error": {"type": "api_error", "message": "An unknown error occurred (fault)"}}
            response = ls_server.json_response(body, status=fault["status"])
            response.headers["Stripe-Should-Retry"] = "false"
            return response
    return await handler(request)


@web.middleware
async def idempotency_middleware(request, handler):
    """Stripe's idempotent requests: the same key replays the first answer; the same key with
    other parameters is an `idempotency_error`; a key still in flight is a 409."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/v1/"):
        return await handler(request)
    cache_key = (request.headers.get("Authorization", ""), key)
    fingerprint = (request.path, hashlib.sha256(await request.read()).hexdigest())
    seen = _idempotency.get(cache_key)
    if seen is not None:
        if seen["fingerprint"] != fingerprint:
            return _idempotency_error(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Try using a key other than "
                f"'{key}' if you meant to execute a different request.",
            )
        if seen.get("body") is None:
            return _idempotency_error(
                409, "There is currently another in-progress request using this Idempotent Key."
            )
        return web.Response(status=seen["status"], body=seen["body"],
                            content_type="application/json",
                            headers={"Idempotent-Replayed": "true", "Idempotency-Key": key})  # fmt: skip
    _idempotency[cache_key] = {"fingerprint": fingerprint}
    response = await handler(request)
    if 200 <= response.status < 300 or response.status == 402:
        _idempotency[cache_key].update(status=response.status, body=response.body)
    else:
        del _idempotency[cache_key]  # Stripe keeps no result for requests it rejected up front
    response.headers["Idempotency-Key"] = key
    return response


def _idempotency_error(status: int, message: str):
    body = {"error": {"type": "idempotency_error", "message": message}}
    return ls_server.json_response(body, status=status)


@web.middleware
async def auth_middleware(request, handler):
    if request.path.startswith(("/checkout/pay/", "/billing_portal/")):  # pages a browser opens
        return await handler(request)
    return await ls_server.auth_middleware(request, handler)


@web.middleware
async def base_url_middleware(request, handler):
    CheckoutSession._base_url = f"{request.scheme}://{request.host}"
    return await handler(request)


# ----------------------------------------------------------------------------- hosted page


def pay_page(request):
    session = CheckoutSession._api_retrieve(request.match_info["id"])
    amount = f"{session.amount_total} {session.currency.upper()} (minor units)"
    html = (
        f"<!doctype html><title>Pay</title><h1>localstripe checkout</h1>"
        f"<p id=status>{session.status}</p><p id=amount>{amount}</p>"
        f"<form method=post><input name=email value=customer@example.com>"
        f"<button type=submit>Pay</button></form>"
    )
    return web.Response(text=html, content_type="text/html")


async def pay_submit(request):
    form = await request.post()
    session = CheckoutSession._api_complete(request.match_info["id"], email=form.get("email"))
    target = (session.success_url or "/").replace("{CHECKOUT_SESSION_ID}", session.id)
    raise web.HTTPSeeOther(target)


# ----------------------------------------------------------------------------- the app


def _payment_intent_export(original):
    """Stripe names a PaymentIntent's `latest_charge` by id unless it is expanded; localstripe
    exports the whole charge."""

    def export(self, expand=None):
        obj = original(self, expand=expand)
        if isinstance(obj.get("latest_charge"), dict) and "latest_charge" not in (expand or []):
            obj["latest_charge"] = obj["latest_charge"]["id"]
        return obj

    return export


def _payment_intent_update(original):
    """A declined PaymentIntent takes another payment method and is confirmed again, as on Stripe
    (localstripe keeps it `requires_payment_method` for good)."""

    def update(cls, id, **data):
        intent = ls.PaymentIntent._api_retrieve(id)
        if data.get("payment_method") and intent.status == "requires_payment_method" and intent.latest_charge:
            intent.latest_charge = None  # the failed charge stays listed under the customer
        return original(id, **data)

    return classmethod(update)


def _class_for_id(cls, id):
    """localstripe looks only at direct subclasses when it expands an id; ours are deeper."""
    pending = list(ls.StripeObject.__subclasses__())
    while pending:
        candidate = pending.pop(0)
        if id.startswith(getattr(candidate, "_id_prefix", "\0")):
            return candidate
        pending.extend(candidate.__subclasses__())


def _install_patches():
    ls.StripeObject._get_class_for_id = classmethod(_class_for_id)
    ls.Store.dump_to_disk = lambda self: None  # in memory only: no shared /tmp pickle
    ls.Store.try_load_from_disk = lambda self: None
    ls.Event.__init__ = _event_init(ls.Event.__init__)
    ls.PaymentIntent._export = _payment_intent_export(ls.PaymentIntent._export)
    ls.PaymentIntent._api_update = _payment_intent_update(ls.PaymentIntent._api_update)
    ls.schedule_webhook = schedule_webhook


class _StoreFile:
    """localstripe's object store kept in `path`: loaded once, written whole (atomically) after
    every request that may change it and when the server stops."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> None:
        if self.path.exists():
            ls.store.clear()
            ls.store.update(pickle.loads(self.path.read_bytes()))  # noqa: S301 (its own file)

    def save(self) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_bytes(pickle.dumps(dict(ls.store), protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(partial, self.path)

    @web.middleware
    async def middleware(self, request, handler):
        try:
            return await handler(request)
        finally:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                self.save()


def build_app(store_path: Path | None = None) -> web.Application:
    """localstripe's routes behind ours (aiohttp takes the first route that matches); its objects
    kept in `store_path` too when given."""
    _install_patches()
    store_file = None if store_path is None else _StoreFile(store_path)
    saving = []
    if store_file is not None:
        store_file.load()
        saving = [store_file.middleware]
    app = web.Application(
        middlewares=[*saving, base_url_middleware, fault_middleware, idempotency_middleware,
                     ls_server.error_middleware, auth_middleware],
    )  # fmt: skip
    app["store_file"] = store_file
    app.on_response_prepare.append(ls_server.add_cors_headers)
    r, s = app.router, ls_server
    r.add_get("/v1/account", s.api_extra(account_retrieve, "/v1/account"))
    r.add_post("/v1/refunds", s.api_extra(refund_create, "/v1/refunds"))
    r.add_post("/v1/payment_intents", s.api_extra(payment_intent_create, "/v1/payment_intents"))
    r.add_get("/v1/events", s.api_extra(events_list, "/v1/events"))
    for cls, url in ((Price, "/v1/prices"), (CheckoutSession, "/v1/checkout/sessions"),
                     (Subscription, "/v1/subscriptions"), (Invoice, "/v1/invoices")):  # fmt: skip
        r.add_post(url, s.api_create(cls, url))
        r.add_get(url, s.api_list_all(cls, url))
        r.add_get(url + "/{id}", s.api_retrieve(cls, url))
        r.add_post(url + "/{id}", s.api_update(cls, url))
        r.add_delete(url + "/{id}", s.api_delete(cls, url))
    extras = (
        ("GET", "/v1/checkout/sessions/{id}/line_items", CheckoutSession._api_list_line_items),
        ("POST", "/v1/checkout/sessions/{id}/expire", CheckoutSession._api_expire),
        ("POST", "/v1/test_helpers/checkout/sessions/{id}/complete", CheckoutSession._api_complete),
        ("POST", "/v1/test_helpers/subscriptions/{id}/renew", Subscription._api_renew),
        ("POST", "/v1/test_helpers/subscriptions/{id}/advance", Subscription._api_advance),
        ("POST", "/v1/invoices/{id}/pay", Invoice._api_pay),
    )
    for method, url, func in extras:
        r.add_route(method, url, s.api_extra(func, url))
    r.add_post(
        "/v1/billing_portal/sessions", s.api_create(BillingPortalSession, "/v1/billing_portal/sessions")
    )
    r.add_get("/checkout/pay/{id}", pay_page)
    r.add_get("/billing_portal/{id}", portal_page)
    r.add_post("/billing_portal/{id}/cancel", portal_cancel)
    r.add_post("/checkout/pay/{id}", pay_submit)
    r.add_route("*", "/_config/deliveries", deliveries)
    r.add_post("/_config/events/{id}/deliver", deliver_now)
    r.add_post("/_config/faults", faults)
    r.add_delete("/_config/data", flush)
    for route in s.app.router.routes():
        if route.method != "HEAD":
            r.add_route(route.method, route.resource.canonical, route.handler)
    app.on_startup.append(_start_expiry)
    if store_file is not None:
        app.on_cleanup.append(_save_store)
    return app


async def _save_store(app):
    app["store_file"].save()


async def _start_expiry(app):
    async def expire_due_sessions():
        while True:
            await asyncio.sleep(1)
            now = int(time.time())
            for key, obj in list(ls.store.items()):
                if key.startswith("checkout.session:") and obj.status == "open" and obj.expires_at <= now:
                    obj._expire()
                    if app["store_file"] is not None:
                        app["store_file"].save()

    app["expiry"] = asyncio.ensure_future(expire_due_sessions())
