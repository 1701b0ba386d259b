"""Both before-queue doors through real Postfix: reject at SMTP time.

smtplib -> Postfix (smtpd_milters, or smtpd_proxy_filter) -> mailfilter
with real clamd and spamd. Clean mail is delivered byte-identical apart
from the header fields added on the way; EICAR, a banned .exe and GTUBE
are refused while the client is connected, with our reply text; a filter
that is down defers (4xx) and mail flows again once it is back.
"""

from __future__ import annotations

import base64
import smtplib
from typing import TYPE_CHECKING

import pytest

from tests.integration.conftest import need_postfix
from tests.integration.doors_support import start_door
from tests.support import corpus
from tests.support.filter import start_filter
from tests.support.ports import wait_port
from tests.support.samples import eicar, gtube

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration
DOORS = ["milter", "proxy"]
HEAD = (
    b"From: Alice <alice@example.org>\r\nTo: u@example.com\r\n"
    b"Subject: {s}\r\nMessage-ID: <{s}@example.org>\r\n"
    b"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n"
)
ADDED = (
    b"Received:",
    b"X-Virus-Scanned:",
    b"X-Spam-",
    b"Return-Path:",
    b"Delivered-To:",
    b"X-Original-To:",
    b"X-Quarantine-ID:",
)


def message(subject: str, body: bytes, extra: bytes = b"") -> bytes:
    head = HEAD.replace(b"{s}", subject.encode())
    return head + extra + b"\r\n" + body


def strip_added(data: bytes) -> bytes:
    """The delivered file without the fields added on the way (any place
    in the header), LF line ends back to CRLF."""
    lines = data.split(b"\n")
    out, skipping, in_head = [], False, True
    for line in lines:
        if in_head and line == b"":
            in_head = False
        if in_head and line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = in_head and line.startswith(ADDED)
        if not skipping:
            out.append(line)
    return b"\r\n".join(out)


def send(port: int, rcpts: list[str], data: bytes, **kw: object) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.sendmail("alice@example.org", rcpts, data, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=DOORS)
def door(request, tmp_path: Path, clamd, spamd) -> Iterator[tuple]:
    need_postfix()
    pf, mf, args = start_door(
        tmp_path, request.param, clamd=clamd.address, spamd=spamd.address
    )
    yield request.param, pf, mf, args
    mf.stop()
    pf.stop()


def test_clean_mail_delivered_byte_identical_apart_from_headers(door):
    _, pf, mf, _ = door
    sent = message("clean", b"Hello.\r\n.A line with a dot\r\n\r\nBye.\r\n")
    send(pf.port, ["u@example.com"], sent)
    (path,) = pf.wait_delivered(1)
    delivered = path.read_bytes()
    assert sent == strip_added(delivered)
    assert b"X-Virus-Scanned:" in delivered
    assert "Passed CLEAN" in mf.log()


def _exe_attachment() -> bytes:
    exe = base64.encodebytes(corpus.pe_exe()).replace(b"\n", b"\r\n")
    return (
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream; name=a.exe\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + exe + b"--b--\r\n"
    )


MIME = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n'


@pytest.mark.parametrize(
    ("what", "body", "extra", "reason"),
    [
        ("eicar", eicar() + b"\r\n", b"", "INFECTED: "),
        ("banned", _exe_attachment(), MIME, "BANNED: "),
        ("gtube", gtube().encode() + b"\r\n", b"", "spam"),
    ],
)
def test_rejected_at_smtp_time_with_our_text(door, what, body, extra, reason):
    _, pf, mf, _ = door
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(pf.port, ["u@example.com"], message(what, body, extra))
    code, text = caught.value.smtp_code, caught.value.smtp_error.decode()
    assert 554 == code
    assert "5.7.0 Reject, id=" in text
    assert f" - {reason}" in text
    assert pf.delivered() == []
    assert pf.queue_empty()  # nothing left to bounce later
    assert "Blocked" in mf.log()


def test_filter_down_defers_then_mail_flows_again(door, tmp_path):
    _, pf, mf, args = door
    mf.stop()
    with pytest.raises(smtplib.SMTPResponseException) as caught:
        send(pf.port, ["u@example.com"], message("down", b"x\r\n"))
    assert 400 <= caught.value.smtp_code < 500
    assert pf.delivered() == []
    back = start_filter(
        tmp_path / "again",
        mf.port,
        pf.reinject_port,
        policy=tmp_path / "policy.toml",
        extra=args,
    )
    try:
        wait_port(int(args[1].rsplit(":", 1)[1]))
        send(pf.port, ["u@example.com"], message("back", b"x\r\n"))
        pf.wait_delivered(1)
    finally:
        back.stop()


def test_8bit_and_smtputf8(door):
    _, pf, _, _ = door
    body = "Grüße, 8-bit body\r\n".encode()
    sent = message("utf8", body).replace(
        b"Subject: utf8", "Subject: Grüße".encode()
    )
    send(
        pf.port,
        ["jürgen@example.com"],
        sent,
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )
    (path,) = pf.wait_delivered(1)
    assert sent == strip_added(path.read_bytes())


def test_many_recipients(door):
    _, pf, _, _ = door
    rcpts = [f"r{i}@example.com" for i in range(40)]
    send(pf.port, rcpts, message("many", b"to many\r\n"))
    assert len(pf.wait_delivered(40)) == 40


def test_20_mb_message(door):
    _, pf, _, _ = door
    line = b"0123456789" * 7 + b"\r\n"
    body = line * (20 * 1024 * 1024 // len(line))
    sent = message("big", body)
    send(pf.port, ["u@example.com"], sent)
    (path,) = pf.wait_delivered(1, timeout=180)
    assert sent == strip_added(path.read_bytes())
