"""gunicorn hooks for the benchmarks (`--config python:bench.gunicorn_conf`); no effect on serving.

With BENCH_STATS_DIR set, each worker, once ready, writes `<dir>/<pid>.ready`, and on SIGUSR2
writes `<dir>/<pid>.json`: the result of each callable named in BENCH_STATS (comma-separated
`module:attribute.path`, e.g. `entitlements.cache:stats.snapshot`). That is how a benchmark reads
per-process counters of every worker without an HTTP endpoint.
"""

import importlib
import json
import os
import signal
import threading


def _callables():
    found = {}
    for spec in filter(None, os.environ.get("BENCH_STATS", "").split(",")):
        module_name, _, path = spec.partition(":")
        target = importlib.import_module(module_name)
        for part in path.split("."):
            target = getattr(target, part)
        found[spec] = target
    return found


def post_worker_init(worker):
    directory = os.environ.get("BENCH_STATS_DIR")
    if not directory:
        return
    callables = _callables()
    pid = os.getpid()

    def dump():
        result = {name: call() for name, call in callables.items()}
        temporary = os.path.join(directory, f"{pid}.json.tmp")
        with open(temporary, "w") as handle:
            json.dump(result, handle)
        os.replace(temporary, os.path.join(directory, f"{pid}.json"))

    def on_usr2(signum, frame):
        # In a thread: the signal may arrive while this thread holds a lock the callable takes.
        threading.Thread(target=dump, daemon=True).start()

    signal.signal(signal.SIGUSR2, on_usr2)
    open(os.path.join(directory, f"{pid}.ready"), "w").close()
