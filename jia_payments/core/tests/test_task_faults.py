"""A Celery worker killed with SIGKILL mid-task: the task runs again on the next worker, and its
effect happens once (acks_late, reject on a lost worker, idempotent tasks), against real Redis and
PostgreSQL."""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings

from jia_payments.celery import app as celery_app
from jia_payments.core.models import OutboxEvent
from jia_payments.core.tests.tasks import slow_effect
from testsupport.celery_worker import production_python

ROOT = Path(__file__).resolve().parents[3]
TASKS = 6
WAIT_SECONDS = 180  # a bound for a busy 2-core machine, not a speed assertion

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, available_apps=["jia_payments.core"])]


class Worker:
    def __init__(self, queue: str, log_path: Path):
        database = settings.DATABASES["default"]["NAME"]
        env = {
            **os.environ,
            "DATABASE_URL": urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{database}").geturl(),
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_VISIBILITY_TIMEOUT_SECONDS": "5",  # the dead worker's message comes back soon
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
        command = [
            production_python(), "-m", "celery", "-A", "jia_payments", "worker", "--loglevel=INFO",
            "--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle",
            "-I", "jia_payments.core.tests.tasks", "-n", f"faults-{uuid.uuid4().hex[:8]}@%h", "-Q", queue,
        ]  # fmt: skip
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def events(self, name: str) -> list[str]:
        markers = []
        for raw in self.log_path.read_text().splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if line.get("event") == name:
                markers.append(line["marker"])
        return markers

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            assert self.process.poll() is None, self.log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what}: {self.log_path.read_text()[-4000:]}"
            )
            time.sleep(0.1)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # the master and its pool: nothing acks
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def test_a_worker_killed_mid_task_runs_the_task_again_elsewhere_with_one_effect(tmp_path):
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    markers = [f"fault-{uuid.uuid4().hex[:8]}-{n}" for n in range(TASKS)]
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    first = Worker(queue, tmp_path / "first.log")
    second = None
    try:
        for marker in markers:
            slow_effect.apply_async(args=[marker, 2.0], queue=queue)
        first.wait_for(lambda: first.events("slow_effect_started"), "the first task to start")
        first.kill()
        killed_mid_task = set(first.events("slow_effect_started")) - set(first.events("slow_effect_done"))
        assert len(killed_mid_task) == 1
        second = Worker(queue, tmp_path / "second.log")
        second.wait_for(
            lambda: (
                set(second.events("slow_effect_done")) >= set(markers) - set(first.events("slow_effect_done"))
            ),
            "every task done",
        )
    finally:
        celery_app.conf.task_always_eager = previous
        first.stop()
        if second is not None:
            second.stop()
    effects = list(OutboxEvent.objects.filter(type="test.effect").values_list("aggregate_id", flat=True))
    print(
        f"\ncelery SIGKILL: {TASKS} tasks, {len(killed_mid_task)} killed mid-task, "
        f"{len(set(second.events('slow_effect_started')) & killed_mid_task)} of them ran again, "
        f"{len(set(effects))} effects, {len(set(markers) - set(effects))} lost, "
        f"{len(effects) - len(set(effects))} duplicated"
    )
    assert sorted(effects) == sorted(markers)  # every task's effect, each once: lost 0
    assert set(second.events("slow_effect_started")) >= killed_mid_task  # it ran again, to the end
