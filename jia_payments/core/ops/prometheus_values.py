"""prometheus_client's multiprocess values without a `getpid()` system call on every update.

In multiprocess mode each value notes the process id on every increment or observation, to notice
a fork (a gunicorn or Celery child) and move to files of its own: a system call per update, some
twenty per request. Here the id is kept in memory and refreshed in the child right after a fork,
so the same check costs a function call. Installed by settings, before any metric exists.
"""

import os

from prometheus_client import values

_pid = os.getpid()


def _refresh_after_fork() -> None:
    global _pid
    _pid = os.getpid()


def _process_id() -> int:
    return _pid


def install() -> None:
    if not getattr(values.ValueClass, "_multiprocess", False) or getattr(
        values.ValueClass, "_fork_aware", False
    ):
        return
    os.register_at_fork(after_in_child=_refresh_after_fork)
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)
    values.ValueClass._fork_aware = True
