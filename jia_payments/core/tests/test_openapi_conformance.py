"""The OpenAPI schema says what the server does: schemathesis (every check, every phase) against
the production web server (gunicorn) on the test PostgreSQL database, as a backend service, an
end user and staff, finds no failure.

Bounded and repeatable: testsupport/schemathesis.toml fixes the number of examples per operation
and makes generation deterministic, so each run sends the same cases."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from testsupport.localstripe import API_KEY
from testsupport.processes import ROOT
from testsupport.webserver import WebServerProcess

ST = str(Path(sys.executable).parent / "st")
CONFIG = ROOT / "testsupport" / "schemathesis.toml"
ROLES = {
    "service": ("svc_conformance", "service"),
    "user": ("user_conformance", None),
    "staff": ("staff_conformance", "admin"),
}
UNLIMITED = "1000000/min"


@pytest.fixture
def api_server(transactional_db, token_issuer, localstripe, tmp_path):
    call_command("loaddata", "catalog", "pricing_zones", verbosity=0)
    server = WebServerProcess(
        env={
            "AUTH_PUBLIC_KEY_PEM": token_issuer.public_pem,
            "STRIPE_SECRET": API_KEY,
            "STRIPE_API_BASE": localstripe.url,
            "LOG_LEVEL": "WARNING",
            # The run's own request rate is not what it tests (429 is documented everywhere).
            **dict.fromkeys(
                ("THROTTLE_ANON", "THROTTLE_USER", "THROTTLE_SERVICE", "THROTTLE_WRITE"), UNLIMITED
            ),
        },
        log_path=tmp_path / "gunicorn.log",
        workers=3,
    )
    try:
        yield server.start()
    finally:
        server.stop()


def start_schemathesis(base_url: str, token: str, report_dir: Path) -> subprocess.Popen:
    report_dir.mkdir()
    return subprocess.Popen(
        [
            ST,
            "--config-file",
            str(CONFIG),
            "run",
            f"{base_url}/api/schema/?format=json",
            "--checks",
            "all",
            "--header",
            f"better-auth-token: {token}",
            "--report-dir",
            str(report_dir),
            "--no-color",
        ],
        cwd=report_dir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.e2e
def test_schemathesis_finds_no_failure_as_service_user_and_staff(api_server, token_issuer, tmp_path):
    """The three runs go side by side (one server, each run its own caller): the suite waits for
    the longest, not for the sum."""
    runs = {
        role: start_schemathesis(
            api_server.url, token_issuer.token(subject, role=claim, ttl=3600), tmp_path / role
        )
        for role, (subject, claim) in ROLES.items()
    }
    outputs = {role: run.communicate(timeout=900)[0] for role, run in runs.items()}
    summaries = {role: output[output.rfind("SUMMARY") :] for role, output in outputs.items()}
    for role, summary in summaries.items():
        generated = re.search(r"(\d+) generated", summary)
        print(f"schemathesis as {role}: {generated.group(0) if generated else '?'}\n{summary}")
    failed = {role: outputs[role][-20000:] for role, run in runs.items() if run.returncode != 0}
    assert not failed, "\n\n".join(f"--- as {role} ---\n{output}" for role, output in failed.items())
    for role, summary in summaries.items():
        assert re.search(r"[1-9]\d* generated", summary), (role, summary)
