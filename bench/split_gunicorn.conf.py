"""gunicorn.conf.py as production has it, plus a clock in each worker: where a request's CPU goes
between gunicorn and the app (`python -m bench split`, bench/split.py).

Each worker adds up `time.process_time()` (its own CPU) over its requests, in parts:

  outside   between two requests: select/accept, reading and parsing the request, the close of
            the connection, the heartbeat (the worker's CPU minus what pre_request..post_request held)
  environ   pre_request to the app's call: gunicorn's WSGI environ and response object
  app       the WSGI app's call: the whole Django stack and the view
  written   the answer's headers and body written to the socket (what is left of the request)
  close     the answer's close(): Django's request_finished signal
  gc        the garbage collector's passes, wherever they fell (also inside the parts above)

and writes them to BENCH_SPLIT_DIR/<pid>.json every BENCH_SPLIT_EVERY requests.
"""

import gc
import json
import os
import runpy
import time
from pathlib import Path

_PRODUCTION = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
globals().update({k: v for k, v in runpy.run_path(str(_PRODUCTION)).items() if not k.startswith("__")})

_DIR = Path(os.environ["BENCH_SPLIT_DIR"])
_EVERY = int(os.environ.get("BENCH_SPLIT_EVERY", "100"))
_sums = dict.fromkeys(("requests", "worker", "held", "environ", "app", "close", "gc"), 0.0)
_marks = {"began": None, "request": 0.0, "gc": 0.0}
_production_post_worker_init = post_worker_init  # noqa: F821 (from gunicorn.conf.py)
_production_pre_request = pre_request  # noqa: F821
_production_post_request = post_request  # noqa: F821


def _on_gc(phase, info):
    if phase == "start":
        _marks["gc"] = time.process_time()
    else:
        _sums["gc"] += time.process_time() - _marks["gc"]


def post_worker_init(worker):
    _production_post_worker_init(worker)
    gc.callbacks.append(_on_gc)
    app = worker.wsgi

    def clocked(environ, start_response):
        called = time.process_time()
        _sums["environ"] += called - _marks["request"]
        result = app(environ, start_response)
        _sums["app"] += time.process_time() - called
        close = result.close

        def clocked_close():
            began = time.process_time()
            close()
            _sums["close"] += time.process_time() - began

        result.close = clocked_close
        return result

    worker.wsgi = clocked


def pre_request(worker, req):
    _production_pre_request(worker, req)
    _marks["request"] = time.process_time()
    if _marks["began"] is None:
        _marks["began"] = _marks["request"]


def post_request(worker, req, environ, resp):
    _production_post_request(worker, req, environ, resp)
    now = time.process_time()
    _sums["held"] += now - _marks["request"]
    _sums["requests"] += 1
    if _sums["requests"] % _EVERY == 0:
        _sums["worker"] = now - _marks["began"]
        target = _DIR / f"{os.getpid()}.json"
        target.with_suffix(".tmp").write_text(json.dumps(_sums))
        target.with_suffix(".tmp").replace(target)
