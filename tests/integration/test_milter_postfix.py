"""Milter specifics through real Postfix: recipients whose decisions
differ (strictest wins, discarded recipients deleted), and our header
edits applied by Postfix to the message it keeps."""

from __future__ import annotations

import base64
import smtplib
import time

import pytest

from tests.integration.conftest import need_postfix
from tests.integration.doors_support import start_door
from tests.support import corpus

pytestmark = pytest.mark.integration
LOVER = '\n[[recipient]]\nmatch = "lover@example.com"\nbanned_lover = true\n'


def banned() -> bytes:
    exe = base64.encodebytes(corpus.pe_exe()).replace(b"\n", b"\r\n")
    return (
        b"From: a@example.org\r\nTo: u@example.com\r\nSubject: invoice\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"'
        b"\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=a.exe"
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + exe + b"--b--\r\n"
    )


def send(port: int, rcpts: list[str], data: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        return smtp.sendmail("a@example.org", rcpts, data)


def test_one_reject_refuses_the_message_for_all_recipients(tmp_path):
    need_postfix()
    pf, mf, _ = start_door(tmp_path, "milter", policy_extra=LOVER)
    try:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            send(pf.port, ["lover@example.com", "u@example.com"], banned())
        assert caught.value.smtp_code == 554
        assert pf.delivered() == []
    finally:
        mf.stop()
        pf.stop()


def test_discarded_recipient_deleted_the_other_gets_a_tagged_copy(tmp_path):
    need_postfix()
    rule = '[door.milter.destiny.BANNED]\naction = "reject"'
    pf, mf, _ = start_door(
        tmp_path,
        "milter",
        policy_extra=LOVER,
        policy_edit=(rule, rule.replace("reject", "discard")),
    )
    try:
        send(pf.port, ["lover@example.com", "u@example.com"], banned())
        (path,) = pf.wait_delivered(1)
        data = path.read_bytes()
        assert b"X-Original-To: lover@example.com" in data
        assert b"X-Amavis-Alert: BANNED" in data
        assert b"X-Quarantine-ID: <" in data
        deadline = time.monotonic() + 10
        while not pf.queue_empty() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pf.queue_empty()
        assert len(pf.delivered()) == 1  # u@ was deleted, not delivered
        assert "to=<u@example.com>" not in pf.log()
    finally:
        mf.stop()
        pf.stop()
