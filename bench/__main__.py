"""`python -m bench [SUITE ...]`: run the benchmark suites (memory, api, events, grpc and tracing
by default; `make bench`).

`profile`, `stack` and `components` run only when named. `memory` (one worker's RSS over 100,000
checks) keeps one worker busy for minutes: run with other suites, it goes on in the background
beside them and is waited for at the end. Each suite is a module of this package with a
`run(args) -> str` function that measures, prints its progress, and returns a Markdown section
for bench/RESULTS.md. The sections of the suites run are printed at the end; `--write` also
replaces those sections in bench/RESULTS.md.
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
}
DEFAULT = ("memory", "api", "events", "grpc", "tracing")
# Runs in the background beside the suites that follow it (see bench/memory.py), when they run.
BACKGROUND = "memory"
# Suites with absolute targets (events/s): the background run pauses while they run.
PAUSES_BACKGROUND = ("events",)
RESULTS = Path(__file__).with_name("RESULTS.md")


def replace_section(text: str, name: str, section: str) -> str:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    block = f"{begin}\n{section.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + block + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"default: {' '.join(DEFAULT)}")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="short runs, for trying the harness")
    args = parser.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    names = list(args.suites or DEFAULT)
    sections = {}
    background = None
    if BACKGROUND in names and len(names) > 1:
        from bench.memory import Memory

        names.remove(BACKGROUND)
        background = Memory(quick=args.quick, background=True).start()
    try:
        for name in names:
            module = importlib.import_module(SUITES[name])
            if background is not None and name in PAUSES_BACKGROUND:
                background.pause()
            try:
                sections[name] = module.run(args)
            finally:
                if background is not None:
                    background.resume()
    except BaseException:
        if background is not None:
            background.finish(abandon=True)
        raise
    if background is not None:
        log("waiting for the memory run to end")
        sections[BACKGROUND] = background.finish()
    for section in sections.values():
        print("\n" + section)
    if args.write:
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        for name, section in sections.items():
            text = replace_section(text, name, section)
        RESULTS.write_text(text)
    log(f"bench done in {time.monotonic() - started:.0f} s ({', '.join(sections)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
