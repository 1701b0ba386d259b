"""The "spamd children" rules: at least the feeding transport's maxproc,
at most what the cores can keep busy; unknown is never a failure."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from mailfilter import config
from mailfilter.ops import checks_spamd, selftest
from mailfilter.ops.checks_spamd import (
    SPAMD_CHILDREN_PER_CORE,
    SPAMD_CHILDREN_PER_CORE_NETWORK,
    judge,
)
from mailfilter.ops.postfixcheck import Service
from mailfilter.ops.spamdproc import SpamdOptions
from tests.support.ports import free_port

# The limits follow the constants, which are tuned from measurements.
LOCAL_2 = 2 * SPAMD_CHILDREN_PER_CORE  # what 2 cores take with -L
NETWORK_2 = 2 * SPAMD_CHILDREN_PER_CORE_NETWORK


def scan(maxproc):
    return Service("scan", "unix", maxproc, "smtp")


def test_network_tests_allow_more_children_per_core():
    """Children waiting on DNS leave the CPU to others."""
    assert SPAMD_CHILDREN_PER_CORE_NETWORK > SPAMD_CHILDREN_PER_CORE >= 1
    n = LOCAL_2 + 1
    assert judge(SpamdOptions(n, local=True), 2, scan(n)).warn
    assert not judge(SpamdOptions(n, local=False), 2, scan(n)).warn


def test_children_matching_maxproc_pass():
    check = judge(SpamdOptions(LOCAL_2, local=False), 2, scan(LOCAL_2))
    assert check.ok
    assert not check.warn
    assert check.mark == "✓"
    assert check.detail == (
        f"{LOCAL_2} (network tests); scan maxproc {LOCAL_2}; "
        f"2 cores take up to {NETWORK_2}"
    )
    assert check.fix == ""


def test_fewer_children_than_maxproc_warn():
    check = judge(SpamdOptions(3, local=False), 2, scan(NETWORK_2))
    assert check.ok
    assert check.warn
    assert check.mark == "!"
    assert check.detail == (
        f"3 (network tests); fewer than scan maxproc {NETWORK_2}: sessions "
        f"wait in spamd's queue; 2 cores take up to {NETWORK_2}"
    )
    assert check.fix == (
        "lower scan's maxproc in master.cf to 3, or raise spamd's "
        f"--max-children to {NETWORK_2}"
    )


def test_more_children_than_cores_with_local_tests_warn():
    """-L: children beyond the cores only queue for the CPU."""
    n = LOCAL_2 + 6
    check = judge(SpamdOptions(n, local=True), 2, scan(n))
    assert check.ok
    assert check.warn
    assert check.detail == (
        f"{n} (-L: local tests only); scan maxproc {n}; more than "
        f"{LOCAL_2} for 2 cores: they queue for the CPU"
    )
    assert check.fix == (
        f"lower scan's maxproc in master.cf to {LOCAL_2} and set spamd's "
        f"--max-children to {LOCAL_2}"
    )


def test_too_many_children_with_a_small_maxproc():
    check = judge(SpamdOptions(LOCAL_2 + 2, local=True), 2, scan(LOCAL_2))
    assert check.warn
    assert check.fix == f"lower spamd's --max-children to {LOCAL_2}"


def test_too_few_children_and_maxproc_beyond_the_cores():
    """Raising the children to maxproc would crowd the CPU: the fix
    brings both to what the cores take."""
    check = judge(SpamdOptions(1, local=True), 2, scan(LOCAL_2 + 6))
    assert check.warn
    assert f"fewer than scan maxproc {LOCAL_2 + 6}" in check.detail
    assert check.fix == (
        f"lower scan's maxproc in master.cf to {LOCAL_2} and set spamd's "
        f"--max-children to {LOCAL_2}"
    )


def test_limit_scales_with_cores():
    four = 4 * SPAMD_CHILDREN_PER_CORE
    assert not judge(SpamdOptions(four, local=True), 4, scan(four)).warn
    assert judge(SpamdOptions(four + 1, local=True), 4, scan(four)).warn


def test_unknown_postfix_still_judges_the_cores():
    fine = judge(SpamdOptions(1, local=False), 2, None, "postconf: gone")
    assert fine.ok
    assert not fine.warn
    assert fine.detail == (
        "1 (network tests); postfix maxproc unknown (postconf: gone); "
        f"2 cores take up to {NETWORK_2}"
    )
    crowded = judge(
        SpamdOptions(LOCAL_2 + 1, local=True), 2, None, "postconf: gone"
    )
    assert crowded.warn
    assert crowded.fix == f"lower spamd's --max-children to {LOCAL_2}"


def _config(tmp_path, spamd):
    return config.load(
        None, {"quarantine": str(tmp_path / "q"), "spamd": spamd}
    )


def test_spamd_off_adds_no_line(tmp_path):
    checks = asyncio.run(
        checks_spamd.check_spamd_children(_config(tmp_path, "off"))
    )
    assert checks == []


def test_spamd_elsewhere_is_unknown_not_a_failure(tmp_path):
    (check,) = asyncio.run(
        checks_spamd.check_spamd_children(_config(tmp_path, "192.0.2.7:783"))
    )
    assert check.ok
    assert not check.warn
    assert check.detail == "unknown (spamd at 192.0.2.7 is not on loopback)"


def test_nothing_on_the_port_is_unknown(tmp_path):
    port = free_port()
    (check,) = asyncio.run(
        checks_spamd.check_spamd_children(
            _config(tmp_path, f"127.0.0.1:{port}")
        )
    )
    assert check.ok
    assert not check.warn
    assert (
        check.detail == f"unknown (nothing listens on 127.0.0.1:{port} here)"
    )


def _names(tmp_path, capsys, *, quick):
    port = free_port()
    cfg = config.load(
        None,
        {
            "quarantine": str(tmp_path / "q"),
            "listen": [f"127.0.0.1:{free_port()}"],
            "listen_originating": [],
            "forward": f"127.0.0.1:{free_port()}",
            "clamd": "off",
            "spamd": f"127.0.0.1:{port}",
            "log_to": "stderr",
            "inbound_verify": False,
        },
    )
    asyncio.run(selftest.run(cfg, quick=quick, as_json=True))
    report = json.loads(capsys.readouterr().out)
    return {c["name"]: c for c in report["checks"]}


def test_selftest_runs_the_check_in_full_mode_only(tmp_path, capsys):
    full = _names(tmp_path, capsys, quick=False)
    assert full["spamd children"]["ok"]
    assert full["spamd children"]["detail"].startswith("unknown (")
    quick = _names(tmp_path, capsys, quick=True)
    assert "spamd children" not in quick


def _postfix(tmp_path, monkeypatch, main, master):
    """A Postfix config directory that the real postconf reads."""
    if (
        not shutil.which("postconf")
        and not Path("/usr/sbin/postconf").exists()
    ):
        pytest.skip("postconf is not installed")
    (tmp_path / "main.cf").write_text(main)
    (tmp_path / "master.cf").write_text(master)
    monkeypatch.setenv("MAIL_CONFIG", str(tmp_path))
    return _config(tmp_path, "127.0.0.1:783")


MASTER = """\
scan      unix  -       -       n       -       7       smtp
  -o smtp_data_done_timeout=1200
bulk      unix  -       -       n       -       -       smtp
"""


def test_the_transport_in_content_filter(tmp_path, monkeypatch):
    cfg = _postfix(
        tmp_path,
        monkeypatch,
        "content_filter = scan:[127.0.0.1]:10024\n",
        MASTER,
    )
    transport, reason = checks_spamd.feeding_transport(cfg)
    assert (transport.name, transport.maxproc, reason) == ("scan", 7, "")


def test_maxproc_dash_is_default_process_limit(tmp_path, monkeypatch):
    cfg = _postfix(
        tmp_path,
        monkeypatch,
        "content_filter = bulk:[127.0.0.1]:10024\n"
        "default_process_limit = 50\n",
        MASTER,
    )
    transport, _ = checks_spamd.feeding_transport(cfg)
    assert (transport.name, transport.maxproc) == ("bulk", 50)


def test_no_content_filter(tmp_path, monkeypatch):
    cfg = _postfix(tmp_path, monkeypatch, "", MASTER)
    assert checks_spamd.feeding_transport(cfg) == (
        None,
        "no unix transport for content_filter is unset",
    )


def test_postconf_failing_says_why_in_short(tmp_path, monkeypatch):
    cfg = _postfix(tmp_path, monkeypatch, "", MASTER)
    monkeypatch.setenv("MAIL_CONFIG", str(tmp_path / "gone"))
    transport, reason = checks_spamd.feeding_transport(cfg)
    assert transport is None
    assert reason.startswith(f"fatal: open {tmp_path}")
    assert len(reason) <= 100
