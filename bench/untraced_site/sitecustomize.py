"""Imported at interpreter start by the untraced reference server (its PYTHONPATH names this
directory): bench/untraced.py's import hook is in place before gunicorn imports any module of the
project (its logger class does, before it loads the app)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bench.untraced  # noqa: F401
