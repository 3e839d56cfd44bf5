from django import template

from jia_payments.core.audit.admin import changes_html

register = template.Library()

register.filter("audit_changes_html", changes_html)
