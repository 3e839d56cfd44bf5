"""The gRPC contract in proto/: buf-linted, no breaking change against the released descriptor set,
and the checked-in Python code is what the compiler makes of it, for the pinned protobuf runtime."""

import filecmp
import re
import shutil
import subprocess
import sys
from pathlib import Path

import google.protobuf
import pytest

ROOT = Path(__file__).resolve().parents[3]
BUF = str(Path(sys.executable).parent / "buf")
RELEASED = ROOT / "proto" / "released.binpb"
GENERATED = ROOT / "jia_payments" / "protos"


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([BUF, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_protos_pass_buf_lint():
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_protos_do_not_break_the_released_contract():
    result = buf("breaking", "--against", str(RELEASED))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("  int64 amount = 2;", "  string amount = 2;", 'changed type from "int64" to "string"'),
        ("  string customer_id = 6;", "  string customer = 6;", 'changed name from "customer_id"'),
        ("  rpc ListPayments(ListPaymentsRequest) returns (ListPaymentsResponse);\n", "", "ListPayments"),
    ],
)
def test_a_breaking_change_to_a_released_message_fails_the_check(tmp_path, old, new, complaint):
    shutil.copytree(ROOT / "proto", tmp_path / "proto", ignore=shutil.ignore_patterns("*.binpb", "*.py"))
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    payment = tmp_path / "proto" / "payment" / "v1" / "payment.proto"
    text = payment.read_text()
    assert old in text
    payment.write_text(text.replace(old, new, 1))
    result = buf("breaking", "--against", str(RELEASED), cwd=tmp_path)
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def test_the_checked_in_code_is_what_the_protos_generate(tmp_path):
    subprocess.run([sys.executable, "proto/generate.py", "--out", str(tmp_path)], cwd=ROOT, check=True)
    fresh = tmp_path / "jia_payments" / "protos"
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    checked_in = sorted(
        p.relative_to(GENERATED) for p in GENERATED.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh_files == checked_in
    _, mismatch, errors = filecmp.cmpfiles(fresh, GENERATED, [str(p) for p in fresh_files], shallow=False)
    assert (mismatch, errors) == ([], [])


def _pinned(name: str) -> str:
    """The version the runtime lock (requirements/base.txt, hash-pinned) installs."""
    text = (ROOT / "requirements" / "base.txt").read_text()
    return re.search(rf"^{re.escape(name)}==([^\s\\]+)", text, re.MULTILINE).group(1)


def test_the_generated_code_runs_on_the_pinned_protobuf_runtime():
    """Generated code refuses a runtime older than the compiler, or of another major version."""
    versions = {
        tuple(
            int(part)
            for part in re.search(r"# Protobuf Python Version: (\S+)", path.read_text()).group(1).split(".")
        )
        for path in GENERATED.rglob("*_pb2.py")
    }
    assert len(versions) == 1
    (generated,) = versions
    pinned = tuple(int(part) for part in _pinned("protobuf").split("."))
    assert google.protobuf.__version__ == _pinned("protobuf")
    assert generated[0] == pinned[0]
    assert generated <= pinned


def test_grpcio_is_at_least_what_the_generated_stubs_need():
    import grpc
    from grpc._utilities import first_version_is_lower

    needed = {
        re.search(r"GRPC_GENERATED_VERSION = '(\S+)'", p.read_text()).group(1)
        for p in GENERATED.rglob("*_grpc.py")
    }
    assert grpc.__version__ == _pinned("grpcio")
    assert needed
    assert not any(first_version_is_lower(grpc.__version__, version) for version in needed)
