"""Links between admin pages: to an object's change page."""

from django.contrib.admin.utils import quote
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html


def admin_url(obj) -> str:
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[quote(obj.pk)])
    except NoReverseMatch:
        return ""


def admin_link(obj, text) -> str:
    url = admin_url(obj)
    return format_html('<a href="{}">{}</a>', url, text) if url else format_html("{}", text)
