"""The lists staff look into when something is stuck: failed webhooks and failing outbox events
first, with their error, and the buttons that retry them only for who may."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from jia_payments.core.models import OutboxEvent
from jia_payments.core.outbox.events import record_event
from payments.models import StripeEvent

pytestmark = pytest.mark.django_db


def _event(event_id: str, status: str, minutes_ago: int, error: str = ""):
    return StripeEvent.objects.create(
        id=event_id,
        type="invoice.paid",
        stripe_created_at=timezone.now() - timedelta(minutes=minutes_ago),
        payload={},
        source="webhook",
        status=status,
        last_error=error,
    )


def test_failed_webhooks_come_first_with_their_error(as_staff):
    _event("evt_new_ok", "processed", 1)
    _event("evt_old_failed", "failed", 60, error="KeyError: 'customer'")
    client = as_staff("sue", "support")
    html = client.get(reverse("admin:payments_stripeevent_changelist")).content.decode()
    assert html.index("evt_old_failed") < html.index("evt_new_ok")
    assert "KeyError: &#x27;customer&#x27;" in html
    assert 'value="reprocess"' in html


def test_failing_outbox_events_come_first_with_their_error(as_staff):
    sent = record_event(type="payment.created", aggregate_id="p1", subject="payments/p1", data={})
    OutboxEvent.objects.filter(pk=sent.pk).update(status="sent", sent_at=timezone.now())
    failing = record_event(type="payment.created", aggregate_id="p2", subject="payments/p2", data={})
    OutboxEvent.objects.filter(pk=failing.pk).update(attempts=4, last_error="broker down")
    client = as_staff("fiona", "finance")
    html = client.get(reverse("admin:core_outboxevent_changelist")).content.decode()
    assert html.index("payments/p2") < html.index("payments/p1")
    assert "broker down" in html and 'value="publish_again"' in html


def test_staff_without_the_permission_see_no_retry_and_cannot_post_it(as_staff):
    _event("evt_failed", "failed", 5, error="boom")
    client = as_staff("viewer")
    assert client.get(reverse("admin:payments_stripeevent_changelist")).status_code == 403
    Group.objects.create(name="viewers").permissions.add(
        *Group.objects.get(name="support").permissions.filter(codename__startswith="view_")
    )
    get_user_model().objects.get(username="viewer").groups.add(Group.objects.get(name="viewers"))
    html = client.get(reverse("admin:payments_stripeevent_changelist")).content.decode()
    assert "evt_failed" in html and 'value="reprocess"' not in html
    client.post(
        reverse("admin:payments_stripeevent_changelist"),
        {"action": "reprocess", "_selected_action": ["evt_failed"]},
    )
    assert StripeEvent.objects.get(pk="evt_failed").status == "failed"
