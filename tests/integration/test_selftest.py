"""`mailfilter --selftest` against a real stack, and with parts missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.filter import REPO
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def selftest(
    args: list[str], env: dict[str, str] | None = None
) -> tuple[int, dict]:
    """Run the selftest with --json; (exit status, parsed report)."""
    done = subprocess.run(
        [sys.executable, "-m", "mailfilter", "--selftest", "--json", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})),
    )
    return done.returncode, json.loads(done.stdout)


def test_selftest_passes_on_a_working_stack(scanned_sandwich):
    """All checks pass, Postfix recipe included (how long it takes is a
    benchmark figure, not a test: this machine may be busy)."""
    pf, mf = scanned_sandwich
    status, report = selftest(mf.args[3:], {"MAIL_CONFIG": str(pf.config_dir)})
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [] == failed
    assert 0 == status
    names = {c["name"] for c in report["checks"]}
    assert {
        "clamd detects EICAR",
        "spamd scores GTUBE as spam",
        "maxproc vs max_connections",
        "pipeline: EICAR in a zip",
        "pipeline: banned .exe",
    } <= names


def test_selftest_fails_and_says_how_to_fix(tmp_path):
    """With clamd, spamd, 10025 and the filter all absent: non-zero, each ✗ with a fix."""
    args = [
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--forward",
        f"127.0.0.1:{free_port()}",
        "--clamd",
        f"unix:{tmp_path}/none.sock",
        "--spamd",
        f"127.0.0.1:{free_port()}",
        "--quarantine",
        str(tmp_path / "q"),
        "--policy",
        str(REPO / "policy/default.toml"),
    ]
    status, report = selftest(args)
    assert 1 == status
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert {"clamd", "spamd"} <= set(failed)
    assert any(name.startswith("listener") for name in failed)
    assert any(name.startswith("reinjection") for name in failed)
    assert all(c["fix"] for c in failed.values())


def test_quick_mode_is_a_health_check(scanned_sandwich):
    """--quick checks the listener, 10025 and the scanners only."""
    _, mf = scanned_sandwich
    status, report = selftest(["--quick", *mf.args[3:]])
    assert 0 == status
    names = {c["name"] for c in report["checks"]}
    assert not any(n.startswith("pipeline") for n in names)
    # Liveness only: no test scan that would queue behind real mail.
    assert {"clamd", "spamd"} <= names
    assert not {"clamd detects EICAR", "spamd scores GTUBE as spam"} & names
