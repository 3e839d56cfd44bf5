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
from testsupport.webserver import ROOT, WebServerProcess

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
    )
    try:
        yield server.start()
    finally:
        server.stop()


def run_schemathesis(base_url: str, token: str, report_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
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
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.e2e
@pytest.mark.parametrize("role", sorted(ROLES))
def test_schemathesis_finds_no_failure(role, api_server, token_issuer, tmp_path):
    subject, claim = ROLES[role]
    result = run_schemathesis(api_server.url, token_issuer.token(subject, role=claim, ttl=3600), tmp_path)
    summary = result.stdout[result.stdout.rfind("SUMMARY") :]
    generated = re.search(r"(\d+) generated", summary)
    print(f"schemathesis as {role}: {generated.group(0) if generated else '?'}\n{summary}")
    assert result.returncode == 0, f"{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    assert generated and int(generated.group(1)) > 0, summary
