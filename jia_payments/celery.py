import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jia_payments.settings")

app = Celery("jia_payments")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
