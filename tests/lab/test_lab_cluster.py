"""The short lab run: up, one message through the VIP delivered and read
back over IMAP, one director failover and one real-server failover with
zero loss, down with nothing left.

Needs root (network and mount namespaces), the Debian daemons of
scripts/setup.sh and ansible-core; skipped otherwise. The 8-run campaign is
bench/lab_failover.py (docs/cluster-lab.md).
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "deploy" / "lab" / "lab"
ROOT = Path("/run/mailfilter-lab")
STORE = ROOT / "store" / "example.com" / "probe" / "Maildir"
DAEMONS = ("keepalived", "haproxy", "postfix", "dovecot", "clamd", "spamd")

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
    pytest.mark.skipif(
        not all(shutil.which(d, path="/usr/sbin:/usr/bin:/sbin")
                for d in DAEMONS),
        reason="cluster daemons not installed (scripts/setup.sh)",
    ),
]


def lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LAB), *args],
                          capture_output=True, text=True, timeout=timeout,
                          check=False)


def mailfilter() -> str:
    return str(Path(sys.executable).parent / "mailfilter")


def leftovers() -> list[str]:
    """Anything of the lab still present: namespaces, mounts, processes."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True,
                           text=True, check=False).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines()
              if line.startswith("mflab-")]
    found += [f"mount {line.split()[1]}"
              for line in Path("/proc/mounts").read_text().splitlines()
              if str(ROOT) in line]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if str(ROOT).encode() in cmdline and int(proc.name) != os.getpid():
            found.append(f"process {proc.name}: {cmdline[:120]!r}")
    if ROOT.exists():
        found.append(f"directory {ROOT}")
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    if lab("status").returncode != 3 or leftovers():
        pytest.skip("a lab is already up (or left over): run `lab down`")
    started = time.monotonic()
    up = lab("up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "HAProxy in TCP mode stands in" in up.stdout
        # Up in under a minute (a first render with Ansible adds ~20 s).
        assert time.monotonic() - started < 90, up.stdout
        yield
    finally:
        lab("down")


def probe(tmp: Path, *, duration: float | None = None,
          count: int | None = None, interval: float = 0.05,
          during: object = None) -> dict:
    """mailfilter probe in the client namespace; its JSON report.

    `during` is called (no arguments) 1.5 s into the run, for a fault.
    """
    password = tmp / "pw"
    password.write_text("lab\n")
    out = tmp / "probe.json"
    cmd = [sys.executable, str(LAB), "exec", "client", "--", mailfilter(),
           "probe", "--smtp", "10.213.0.25:25", "--to", "probe@example.com",
           "--imap", "10.213.0.25:143", "--imap-user", "probe@example.com",
           "--imap-password-file", str(password), "--interval",
           str(interval), "--timeout", "60", "--json", str(out)]
    cmd += ["--count", str(count)] if count else ["--duration", str(duration)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if during is not None:
        time.sleep(1.5)
        during()
    output, _ = proc.communicate(timeout=240)
    assert out.exists(), output
    return json.loads(out.read_text())


def stored_tags() -> dict[str, int]:
    counts: dict[str, int] = {}
    parser = email.parser.BytesHeaderParser()
    for sub in ("new", "cur"):
        for f in (STORE / sub).glob("*"):
            with f.open("rb") as fh:
                subject = str(parser.parse(fh).get("Subject", ""))
            tag = subject.removeprefix("mailfilter probe ").strip()
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def assert_no_loss(report: dict) -> None:
    """Every message SMTP accepted is in the store exactly once."""
    accepted = {s["tag"] for s in report["samples"] if s["smtp_ok"]}
    assert accepted
    deadline = time.monotonic() + 90
    while not accepted <= stored_tags().keys():
        assert time.monotonic() < deadline, accepted - stored_tags().keys()
        time.sleep(1)
    stored = stored_tags()
    assert all(stored[t] == 1 for t in accepted), "duplicates"
    assert report["summary"]["lost"] == 0


def vip_holder() -> str:
    st = json.loads(lab("status", "--json").stdout)
    assert len(st["vip_holders"]) == 1, st["vip_holders"]
    return st["vip_holders"][0]


def wait_all_up(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        st = json.loads(lab("status", "--json").stdout)
        views = [st["haproxy"][d] for d in st["vip_holders"]]
        if (len(st["vip_holders"]) == 1
                and all(v.startswith("UP") for v in views[0].values())):
            return
        assert time.monotonic() < deadline, st
        time.sleep(0.5)


def test_one_message_through_the_vip(cluster, tmp_path):
    report = probe(tmp_path, count=1)
    sample = report["samples"][0]
    assert sample["smtp_ok"], sample
    assert sample["latency"] is not None, "not seen over IMAP"
    assert_no_loss(report)
    # The real client's address reached Postfix (PROXY protocol).
    logs = "".join(p.read_text(errors="replace")
                   for p in ROOT.glob("rs*/var/log/postfix.log"))
    assert "[10.213.0.100]" in logs


def test_director_failover_loses_nothing(cluster, tmp_path):
    wait_all_up()
    holder = vip_holder()

    def cut() -> None:
        assert lab("cut", holder).returncode == 0

    report = probe(tmp_path, duration=4, during=cut)
    try:
        assert vip_holder() != holder
    finally:
        lab("join", holder)
    assert_no_loss(report)


def test_realserver_failover_loses_nothing(cluster, tmp_path):
    wait_all_up()

    def cut() -> None:
        assert lab("cut", "rs2").returncode == 0

    report = probe(tmp_path, duration=4, during=cut)
    st = json.loads(lab("status", "--json").stdout)
    view = st["haproxy"][st["vip_holders"][0]]
    assert not view["smtp_realservers/rs2"].startswith("UP"), view
    lab("join", "rs2")
    assert_no_loss(report)


def test_down_leaves_nothing(cluster):
    done = lab("down")
    assert done.returncode == 0, done.stdout + done.stderr
    assert leftovers() == []
