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


@pytest.fixture
def chain(tmp_path, clamd, spamd):
    """Postfix with virtual_transport = lmtp to our LMTP delivery server."""
    mail = tmp_path / "mail"
    mail.mkdir()
    lport = free_port()
    with (tmp_path / "lmtp.log").open("wb") as log:
        lmtp = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailfilter.delivery.cli",
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
    wait_port(lport)
    fport = free_port()
    pf = start_postfix(
        tmp_path / "pf",
        fport,
        extra_main=f"virtual_transport = lmtp:inet:[127.0.0.1]:{lport}\n"
        "recipient_delimiter = +\n",
    )
    mf = start_filter(
        tmp_path / "f",
        fport,
        pf.reinject_port,
        clamd=clamd.address,
        spamd=spamd.address,
    )
    yield pf, mail
    mf.stop()
    pf.stop()
    lmtp.terminate()
    lmtp.wait()


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
