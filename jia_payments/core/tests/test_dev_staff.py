"""`manage.py ensure_dev_staff`, as `make run` calls it: the login it prints is where the server
listens, also on another RUN_PORT."""

import io

import pytest
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_the_printed_admin_and_docs_urls_follow_the_port():
    out = io.StringIO()
    call_command("ensure_dev_staff", base_url="http://127.0.0.1:9780/", stdout=out)
    said = out.getvalue()
    assert said.startswith("Admin: http://127.0.0.1:9780/admin/  login admin / admin\n")
    assert "API docs: http://127.0.0.1:9780/api/docs/ " in said
    assert "8000" not in said
