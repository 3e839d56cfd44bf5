import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_shutdown
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

    from jia_payments.core.ops.logs import use_structured_format

    use_structured_format(logger, settings.LOG_FORMAT)


@worker_init.connect
def _serve_worker_metrics(**kwargs):
    """CELERY_METRICS_PORT set: the worker serves its metrics (task failures and retries, Stripe
    event processing) on that port, summed over its pool processes (PROMETHEUS_MULTIPROC_DIR)."""
    port = os.environ.get("CELERY_METRICS_PORT", "").strip()
    if port:
        from jia_payments.core.ops.metrics import serve_worker_metrics

        serve_worker_metrics(int(port))


@worker_process_shutdown.connect
def _drop_dead_process_gauges(pid=None, **kwargs):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
