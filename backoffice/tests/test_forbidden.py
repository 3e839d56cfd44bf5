"""Staff refused an admin page by their groups get admin's 403 page, with a way back."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_staff_without_the_permission_get_admins_403_page_with_a_way_back(as_staff):
    client = as_staff("viewer")
    came_from = "http://testserver" + reverse("admin:index")
    page = client.get(reverse("admin:payments_stripeevent_changelist"), headers={"Referer": came_from})
    html = page.content.decode()
    assert page.status_code == 403
    assert page["Content-Type"].startswith("text/html")
    assert "Jia payments back-office" in html and 'id="logout-form"' in html  # admin's frame
    assert "Your admin groups do not allow this page" in html
    assert f'id="go-back" class="button" href="{came_from}"' in html


def test_the_way_back_is_admins_home_when_the_referer_is_not_ours(as_staff):
    client = as_staff("viewer")
    page = client.get(
        reverse("admin:payments_stripeevent_changelist"), headers={"Referer": "https://evil.example/x"}
    )
    assert page.status_code == 403
    assert f'id="go-back" class="button" href="{reverse("admin:index")}"' in page.content.decode()
