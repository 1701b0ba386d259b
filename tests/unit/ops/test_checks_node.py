"""Selftest checks of the node: a missing /dev/log warns, never fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailfilter import config
from mailfilter.ops import checks_node
from mailfilter.ops.check import Check


def test_missing_syslog_socket_is_a_warning(tmp_path, monkeypatch):
    """The service falls back to stderr; the selftest must agree."""
    real_exists = Path.exists

    def no_dev_log(self):
        return False if str(self) == "/dev/log" else real_exists(self)

    monkeypatch.setattr(Path, "exists", no_dev_log)
    cfg = config.load(
        None, {"quarantine": str(tmp_path / "q"), "log_to": "syslog"}
    )
    checks = asyncio.run(checks_node.check_writable(cfg))
    (syslog,) = [c for c in checks if c.name == "syslog socket"]
    assert syslog.ok
    assert syslog.warn
    assert syslog.mark == "!"
    assert "stderr" in syslog.detail


def test_marks():
    """✓ fine, ! warning (exit 0), ✗ failure."""
    assert Check("a", True, "").mark == "✓"
    assert Check("a", True, "", warn=True).mark == "!"
    assert Check("a", False, "").mark == "✗"
