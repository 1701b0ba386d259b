"""The whole chain a real server runs, delivery included:

smtplib -> Postfix -> mailfilter (real clamd, spamd) -> Postfix 10025 ->
lmtp:inet -> `mailfilter lmtp-deliver` -> per-user Maildirs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support.filter import REPO, start_filter
from tests.support.ports import free_port, wait_port
from tests.support.postfix import start_postfix
from tests.support.samples import eicar

pytestmark = pytest.mark.integration


# Run by the LMTP server in place of its module, when a test asks for a
# full filesystem quota: while the flag file exists, writes into carol's
# Maildir fail with EDQUOT (no filesystem here has user quotas to fill).
_EDQUOT_LAUNCHER = """
import errno, os, sys
import maildir.delivery
flag, real = sys.argv.pop(1), os.write
def write(fd, data):
    path = os.readlink(f"/proc/self/fd/{fd}")
    if "/carol/Maildir/" in path and os.path.exists(flag):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    return real(fd, data)
maildir.delivery.os.write = write
from mailfilter.delivery.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_chain(tmp_path, clamd, spamd, quota_flag=None):
    """Postfix with virtual_transport = lmtp to our LMTP delivery server."""
    mail = tmp_path / "mail"
    mail.mkdir()
    lport = free_port()
    launcher = (
        ["-m", "mailfilter.delivery.cli"]
        if quota_flag is None
        else ["-c", _EDQUOT_LAUNCHER, str(quota_flag)]
    )
    with (tmp_path / "lmtp.log").open("wb") as log:
        lmtp = subprocess.Popen(
            [
                sys.executable,
                *launcher,
                "--listen",
                f"127.0.0.1:{lport}",
                "--root-template",
                str(mail / "{domain}" / "{user}" / "Maildir"),
                "--auto-create",
                "--create-extension-folders",
                "--spam-folder",
                "Junk",
            ],
            cwd=REPO,
            stderr=log,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
    started = []

    def stop():
        for daemon in reversed(started):
            daemon.stop()
        lmtp.terminate()
        lmtp.wait()

    # A failed start must not leave the LMTP server running.
    try:
        wait_port(lport)
        fport = free_port()
        pf = start_postfix(
            tmp_path / "pf",
            fport,
            extra_main=f"virtual_transport = lmtp:inet:[127.0.0.1]:{lport}\n"
            "recipient_delimiter = +\n",
        )
        started.append(pf)
        started.append(
            start_filter(
                tmp_path / "f",
                fport,
                pf.reinject_port,
                clamd=clamd.address,
                spamd=spamd.address,
            )
        )
    except BaseException:
        stop()
        raise
    return pf, mail, stop


@pytest.fixture
def chain(tmp_path, clamd, spamd):
    """The whole chain, delivering normally."""
    pf, mail, stop = start_chain(tmp_path, clamd, spamd)
    yield pf, mail
    stop()


def files(box):
    """Message files in a Maildir's new/ and cur/."""
    return [
        p
        for sub in ("new", "cur")
        if (box / sub).exists()
        for p in (box / sub).iterdir()
    ]


def wait_for(predicate, timeout=60):
    """Poll until predicate() is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.1)


def test_delivery_by_lmtp_with_extension_folder_and_virus_blocked(chain):
    """Two users get their mail, user+Lists lands in .Lists, EICAR never lands."""
    import smtplib

    pf, mail = chain
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
        smtp.sendmail(
            "a@example.org",
            ["alice@example.com", "bob+Lists@example.com"],
            b"From: a@example.org\r\nSubject: hello\r\n\r\nHi both.\r\n",
        )
        smtp.sendmail(
            "a@example.org",
            ["alice@example.com"],
            b"From: a@example.org\r\nSubject: virus\r\n\r\n"
            + eicar()
            + b"\r\n",
        )
    alice = mail / "example.com" / "alice" / "Maildir"
    bob_lists = mail / "example.com" / "bob" / "Maildir" / ".Lists"
    wait_for(lambda: files(alice) and files(bob_lists))
    time.sleep(1)  # give the virus time to (not) arrive
    (alice_msg,) = files(alice)
    (bob_msg,) = files(bob_lists)
    for data in (alice_msg.read_bytes(), bob_msg.read_bytes()):
        assert b"X-Virus-Scanned: mailfilter at test.invalid" in data
        assert data.endswith(b"Hi both.\n")
    assert (bob_lists / "maildirfolder").exists()
    assert "status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]" in pf.log()
    assert "relay=127.0.0.1[127.0.0.1]:" in pf.log()


def test_filesystem_quota_defers_and_delivers_after_recovery(
    tmp_path, clamd, spamd
):
    """EDQUOT for one recipient: Postfix defers her copy (452 4.2.2), never
    bounces it, delivers the other at once, and hers once space is back."""
    import smtplib

    flag = tmp_path / "carol-over-quota"
    flag.touch()
    pf, mail, stop = start_chain(tmp_path, clamd, spamd, quota_flag=flag)
    try:
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
            smtp.sendmail(
                "a@example.org",
                ["alice@example.com", "carol@example.com"],
                b"From: a@example.org\r\nSubject: q\r\n\r\nHello.\r\n",
            )
        user = mail / "example.com"
        wait_for(lambda: files(user / "alice" / "Maildir"))
        log = pf.wait_log("452 4.2.2")
        carol = [line for line in log.splitlines() if "<carol@" in line]
        assert any("status=deferred" in line for line in carol), carol
        assert "status=bounced" not in log
        assert not files(user / "carol" / "Maildir")
        flag.unlink()
        pf.flush()
        wait_for(lambda: files(user / "carol" / "Maildir"))
        assert "status=bounced" not in pf.log()
        (msg,) = files(user / "carol" / "Maildir")
        assert msg.read_bytes().endswith(b"Hello.\n")
    finally:
        stop()
