"""Generate the Python code of the gRPC contract: `python proto/generate.py [--out DIR]`.

The generated modules are checked in under jia_payments/protos/ (a test regenerates them and
compares), so neither the image nor a runtime install needs the compiler. The `.proto` files are
mapped under that package's path, so the generated `_grpc` modules import their messages as
`jia_payments.protos.<package>.v1` without any rewriting.
"""

import argparse
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PACKAGE = "jia_payments/protos"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out: Path) -> None:
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    files = [f"{PACKAGE}/{path.relative_to(PROTO_DIR).as_posix()}" for path in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PACKAGE}={PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for directory in {(out / file).parent for file in files} | {out / PACKAGE}:
        for parent in [directory, *directory.parents]:
            if parent == out:
                break
            (parent / "__init__.py").touch()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="root of the generated package tree")
    generate(parser.parse_args(argv).out)


if __name__ == "__main__":
    sys.exit(main())
