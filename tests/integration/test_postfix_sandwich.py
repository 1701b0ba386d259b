"""smtplib -> Postfix -> mailfilter -> Postfix 10025 -> Maildir, for real."""

from __future__ import annotations

import re
import smtplib
import time

import pytest

from tests.support.filter import start_filter
from tests.support.ports import free_port
from tests.support.postfix import start_postfix

pytestmark = pytest.mark.integration

MESSAGE = (
    b"From: Alice <alice@example.org>\r\nTo: u@example.com\r\n"
    b"Subject: integration\r\nMessage-ID: <it-1@example.org>\r\n"
    b"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n"
    b"Hello.\r\n.A line with a leading dot\r\n\r\nBye.\r\n"
)
OURS = re.compile(
    rb"^(?:Received|X-Virus-Scanned|X-Spam-[A-Za-z]+|Return-Path|Delivered-To|X-Original-To|X-Quarantine-ID):.*\n(?:[ \t].*\n)*"
)


def strip_added(data: bytes) -> bytes:
    """Remove the header fields Postfix and mailfilter add on the way."""
    while m := OURS.match(data):
        data = data[m.end() :]
    return data


def send(port: int, rcpts: list[str], data: bytes, **kw) -> None:
    """Submit one message to Postfix."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("alice@example.org", rcpts, data, **kw)


def test_mail_arrives_byte_identical_apart_from_added_headers(sandwich):
    """The delivered file is the sent message (LF endings) plus headers on top."""
    pf, mf = sandwich
    send(pf.port, ["u@example.com"], MESSAGE)
    (path,) = pf.wait_delivered(1)
    delivered = path.read_bytes()
    assert MESSAGE.replace(b"\r\n", b"\n") == strip_added(delivered)
    log = pf.log()
    assert re.search(
        r"status=sent \(250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:\d+\): 250 2\.0\.0 Ok: queued as \w+\)",
        log,
    )
    # XFORWARD passed on: Postfix logs the original queue id at 10025.
    assert "orig_queue_id=" in log
    amavis = [x for x in mf.log().splitlines() if "Passed CLEAN" in x]
    assert 1 == len(amavis)
    assert "Queue-ID: " in amavis[0]
    assert "queued_as: " in amavis[0]
    assert "Message-ID: <it-1@example.org>" in amavis[0]


def test_smtputf8_and_8bitmime_are_delivered(sandwich):
    """SMTPUTF8 (UTF-8 local part and header) and 8BITMIME mail is delivered, not bounced."""
    pf, _ = sandwich
    body = (
        "From: jörg@example.org\r\nTo: üser@example.com\r\nSubject: Grüße\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße ✓\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.sendmail(
            "jörg@example.org",
            ["üser@example.com"],
            body,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
        smtp.sendmail(
            "a@example.org",
            ["u@example.com"],
            b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin-1\r\n\r\nf\xfcr\r\n",
            mail_options=["BODY=8BITMIME"],
        )
    files = pf.wait_delivered(2)
    contents = b"".join(p.read_bytes() for p in files)
    assert "Schöne Grüße ✓".encode() in contents
    assert b"f\xfcr" in contents
    assert "bounced" not in pf.log()


def test_dsn_parameters_survive(sandwich):
    """RET, ENVID, NOTIFY and ORCPT reach the delivering Postfix (its DSN shows them)."""
    pf, _ = sandwich
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.sendmail(
            "alice@example.com",
            ["u@example.com"],
            MESSAGE,
            mail_options=["RET=HDRS", "ENVID=probe42"],
            rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;orig@example.com"],
        )
    # The message and the success notification it asked for.
    files = pf.wait_delivered(2)
    dsn = next(
        p.read_bytes() for p in files if b"multipart/report" in p.read_bytes()
    )
    assert b"Original-Envelope-Id: probe42" in dsn
    assert b"Original-Recipient: rfc822;orig@example.com" in dsn
    assert b"Action: delivered" in dsn
    assert b"text/rfc822-headers" in dsn  # RET=HDRS


def test_many_recipients_and_null_sender(sandwich):
    """A bounce (null sender) to 50 recipients passes end to end."""
    pf, _ = sandwich
    rcpts = [f"r{i}@example.com" for i in range(50)]
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
        smtp.sendmail("<>", rcpts, MESSAGE)
    pf.wait_delivered(50)


def test_reinjection_down_defers_then_delivers(tmp_path):
    """With 10025 unreachable Postfix defers, and delivers after recovery."""
    fport = free_port()
    pf = start_postfix(tmp_path / "pf", fport)
    dead = free_port()
    mf = start_filter(tmp_path / "f1", fport, dead)
    try:
        send(pf.port, ["u@example.com"], MESSAGE)
        pf.wait_log("status=deferred")
        assert re.search(
            r"status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.5\.0",
            pf.log(),
        )
        assert [] == pf.delivered()
        mf.stop()
        mf = start_filter(tmp_path / "f2", fport, pf.reinject_port)
        pf.flush()
        pf.wait_delivered(1, timeout=60)
    finally:
        mf.stop()
        pf.stop()


def test_filter_killed_mid_stream_loses_nothing(tmp_path):
    """kill -9 of mailfilter while mail flows: every message is delivered."""
    fport = free_port()
    pf = start_postfix(tmp_path / "pf", fport)
    mf = start_filter(tmp_path / "f1", fport, pf.reinject_port)
    try:
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
            for i in range(30):
                smtp.sendmail(
                    "a@example.org",
                    ["u@example.com"],
                    MESSAGE.replace(b"it-1@", f"kill-{i}@".encode()),
                )
                if i == 10:
                    mf.kill()
                    mf = start_filter(tmp_path / "f2", fport, pf.reinject_port)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            pf.flush()
            ids = {
                re.search(rb"kill-(\d+)@", p.read_bytes()).group(1)
                for p in pf.delivered()
            }
            if len(ids) == 30:
                break
            time.sleep(1)
        assert 30 == len(ids)
    finally:
        mf.stop()
        pf.stop()


def test_pooled_connection_closed_by_postfix_is_not_a_deferral(tmp_path):
    """Postfix's 10025 smtpd closes an idle connection (421, smtpd_timeout)
    while it sits in the filter's pool: the next message is probed off it
    and delivered on a new connection, never deferred by a stale one."""
    fport = free_port()
    pf = start_postfix(
        tmp_path / "pf", fport, extra_main="smtpd_timeout = 2s\n"
    )
    mf = start_filter(tmp_path / "f1", fport, pf.reinject_port)
    try:
        send(pf.port, ["u@example.com"], MESSAGE)
        pf.wait_delivered(1)
        time.sleep(4)  # past smtpd_timeout: 10025 has hung up on the pool
        send(
            pf.port,
            ["u@example.com"],
            MESSAGE.replace(b"it-1@", b"it-2@"),
        )
        pf.wait_delivered(2, timeout=30)
        # No deferral by the filter (a Maildir hiccup of the delivery
        # side would say "maildir delivery failed" instead).
        assert not re.search(r"status=deferred \(host 127\.0\.0\.1", pf.log())
    finally:
        mf.stop()
        pf.stop()
