"""The project's Celery app as the end-to-end tests' worker process runs it (`-A testsupport.celery_app`).

The same app as production, plus one thing only tests need: transactional tests flush the database
between tests, and the content types Django recreates afterwards get new ids, while a worker process
keeps the ids it cached (ContentType.objects) for its whole life. The audit trail's entries point at
content types, so the worker forgets that cache before each task.
"""

from celery.signals import task_prerun

from jia_payments.celery import app

__all__ = ["app"]


@task_prerun.connect
def _forget_content_type_ids(**kwargs):
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
