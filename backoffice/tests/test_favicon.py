"""Browsers ask every site for /favicon.ico: it is the back-office's icon, and admin pages name it."""

import pytest
from django.urls import reverse

ICO_HEADER = b"\x00\x00\x01\x00"  # reserved 0, type 1 (icon)


def test_favicon_ico_is_the_icon_with_a_cache_lifetime(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "image/x-icon"
    assert b"".join(answer.streaming_content).startswith(ICO_HEADER)
    assert "max-age=" in answer["Cache-Control"]


@pytest.mark.django_db
def test_admin_pages_link_the_icon(client, as_staff):
    login = client.get(reverse("admin:login"))
    listing = as_staff("root", superuser=True).get(reverse("admin:payments_subscription_changelist"))
    for page in (login, listing):
        assert page.status_code == 200
        assert '<link rel="icon" href="/favicon.ico" sizes="16x16 32x32">' in page.content.decode()
