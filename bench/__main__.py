"""`python -m bench [SUITE ...]`: run the benchmark suites (api, events, servers, memory, grpc and
tracing by default; `make bench`).

`profile`, `stack`, `components` and `split` run only when named. Each suite is a module of this package
with a `run(args) -> str` function that measures, prints its progress, and returns a Markdown
section for bench/RESULTS.md. The sections of the suites run are printed at the end; `--write`
also replaces those sections in bench/RESULTS.md.

How they are scheduled (`plan`): the suites whose figures are absolute (ALONE: req/s against the
machine's own floor, events/s, a profile) run first, one at a time, with nothing else of the bench
beside them. `memory` (one worker's RSS over 100,000 checks) keeps one worker busy for minutes, so
it then starts in the background and goes on beside the suites whose figures are same-run ratios
(the others: gRPC / REST, tracing on / off, ...), and is waited for at the end, within what is left
of the 15 minutes `make bench` may take. Alone (or with only ALONE suites), it runs last, in the
foreground.
"""

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.server import log

SUITES = {
    "api": "bench.api",  # the HTTP API under gunicorn + wrk: floor, ceiling, checks, creates, webhooks
    "events": "bench.events",  # outbox relay throughput and create overhead
    "tracing": "bench.tracing",  # warm check and payment create, tracing off vs on
    "profile": "bench.profile",  # py-spy on the workers under load (asked for by name only)
    "stack": "bench.stack",  # CPU per request of the Django stack in one process (by name only)
    "components": "bench.components",  # what each change to the stack saves (by name only)
    "grpc": "bench.grpc",  # the warm entitlement check through gRPC beside REST
    "memory": "bench.memory",  # one worker's RSS over 100,000 warm checks
    "servers": "bench.servers",  # floor and warm check under gunicorn sync, gthread and granian
    "split": "bench.split",  # a request's CPU under gunicorn, part by part, in the workers (by name only)
}
DEFAULT = ("api", "events", "servers", "memory", "grpc", "tracing")
# Runs in the background beside the suites of same-run ratios (see bench/memory.py).
BACKGROUND = "memory"
# Suites with absolute figures: run before the background run starts, nothing of the bench beside.
ALONE = ("api", "events", "servers", "profile", "split")
# `make bench` on an idle machine stays under 15 minutes: the background run's checks end this
# many seconds after the bench's start at the latest (then reporting how far they got), but get
# BACKGROUND_LEAST seconds at least on a machine so loaded that the suites before it ran long.
BUDGET = 840.0
BACKGROUND_LEAST = 420.0
RESULTS = Path(__file__).with_name("RESULTS.md")


def replace_section(text: str, name: str, section: str) -> str:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    block = f"{begin}\n{section.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + block + "\n"


def plan(names: list[str]) -> tuple[list[str], list[str]]:
    """(the suites run before the background run starts, those run beside it), each in the order
    asked. With nothing to run beside it, the memory run is the last of the first list."""
    first = [n for n in names if n in ALONE]
    beside = [n for n in names if n not in ALONE and n != BACKGROUND]
    if BACKGROUND in names and not beside:
        first.append(BACKGROUND)
    return first, beside


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"default: {' '.join(DEFAULT)}")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="short runs, for trying the harness")
    parser.add_argument("--toggle", help="stack: a change of bench/toggles.py, off and on alternately")
    parser.add_argument("--scenarios", help="stack: the scenarios to run, comma-separated")
    args = parser.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    names = list(dict.fromkeys(args.suites or DEFAULT))
    first, beside = plan(names)
    sections = {}
    suite_seconds = {}

    def run_suite(name: str) -> None:
        began = time.monotonic()
        sections[name] = importlib.import_module(SUITES[name]).run(args)
        suite_seconds[name] = time.monotonic() - began

    for name in first:
        run_suite(name)
    if beside:
        background = None
        if BACKGROUND in names:
            from bench.memory import Memory

            budget = max(BACKGROUND_LEAST, BUDGET - (time.monotonic() - started))
            background = Memory(quick=args.quick, background=True, budget=budget).start()
            began = time.monotonic()
        try:
            for name in beside:
                run_suite(name)
        except BaseException:
            if background is not None:
                background.finish(abandon=True)
            raise
        if background is not None:
            log("waiting for the memory run to end")
            sections[BACKGROUND] = background.finish()
            suite_seconds[BACKGROUND] = time.monotonic() - began
    for section in sections.values():
        print("\n" + section)
    if args.write:
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        for name, section in sections.items():
            text = replace_section(text, name, section)
        RESULTS.write_text(text)
    took = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in suite_seconds.items())
    log(
        f"bench done in {time.monotonic() - started:.0f} s ({took}; {', '.join(beside)} beside memory)"
        if BACKGROUND in names and beside
        else f"bench done in {time.monotonic() - started:.0f} s ({took})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
