import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jia_payments.settings")

app = Celery("jia_payments")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Workers bind the request_id (and the rest of the log context) a task was enqueued with.
app.steps["worker"].add(DjangoStructLogInitStep)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_worker_logs(logger, **kwargs):
    """Celery sets up the worker's handlers (honouring --loglevel); we give them our JSON format."""
    from django.conf import settings

    from jia_payments.core.logs import use_structured_format

    use_structured_format(logger, settings.LOG_FORMAT)
