"""`python -m bench [SUITE ...]`: run the benchmark suites (all of them by default).

Each suite is a module of this package with a `run(args) -> str` function that measures, prints
its progress, and returns a Markdown section for bench/RESULTS.md. The sections of the suites run
are printed at the end; `--write` also replaces those sections in bench/RESULTS.md.
"""

import argparse
import importlib
import sys
from pathlib import Path

SUITES = {
    "entitlements": "bench.entitlements",  # access checks under gunicorn + wrk
    "events": "bench.events",  # outbox relay throughput and create overhead
}
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
    parser.add_argument("suites", nargs="*", metavar="SUITE", help="default: all suites")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="short runs, for trying the harness")
    args = parser.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    sections = {}
    for name in args.suites or list(SUITES):
        module = importlib.import_module(SUITES[name])
        sections[name] = module.run(args)
    for section in sections.values():
        print("\n" + section)
    if args.write:
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        for name, section in sections.items():
            text = replace_section(text, name, section)
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
