"""The milter door against an MTA-side client: negotiation, several
messages per connection, abort mid-message, macros, and the actions that
carry out each decision."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

import miltertest as mt
import pytest

from mailfilter.smtp import replies
from tests.component.conftest import make_stack
from tests.component.fakes import FakeMTA
from tests.component.milter.mta import MTA
from tests.support import corpus

if TYPE_CHECKING:
    from pathlib import Path

CLEAN = (
    "From: alice@example.org\r\nTo: u@example.com\r\n"
    "Subject: hello\r\nMessage-ID: <m1@example.org>\r\n\r\nHi.\r\n"
)


def banned_message() -> str:
    exe = base64.encodebytes(corpus.pe_exe()).decode().replace("\n", "\r\n")
    return (
        "From: alice@example.org\r\nTo: u@example.com\r\n"
        "Subject: invoice\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--b\r\nContent-Type: application/octet-stream; name=a.exe\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=a.exe\r\n\r\n"
        f"{exe}--b--\r\n"
    )


@pytest.fixture
async def milter(tmp_path: Path) -> Any:
    mta = FakeMTA()
    s = await make_stack(tmp_path, mta, listen_proto="milter:")
    yield s
    await s.service.shutdown()
    await mta.stop()


async def run(port: int, script: Any) -> Any:
    """Run a blocking MTA script against the service on the loop."""

    def body() -> Any:
        client = MTA(port)
        try:
            return script(client)
        finally:
            client.close()

    return await asyncio.to_thread(body)


def commands(result: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [cmd for cmd, _ in result]


async def test_negotiates_only_what_it_uses(milter):
    mta = await asyncio.to_thread(MTA, milter.port)
    mta.close()
    wanted = mt.SMFIF_ADDHDRS | mt.SMFIF_CHGHDRS | mt.SMFIF_DELRCPT
    wanted |= mt.SMFIF_QUARANTINE
    assert wanted == mta.actions
    assert mta.protocol & mt.SMFIP_NR_HDR
    assert mta.protocol & mt.SMFIP_NR_BODY
    assert mta.protocol & mt.SMFIP_HDR_LEADSPC
    # Never asks Postfix to skip the steps it needs.
    for step in (mt.SMFIP_NOMAIL, mt.SMFIP_NORCPT, mt.SMFIP_NOBODY):
        assert not mta.protocol & step


async def test_clean_message_accepted_with_our_headers_and_nothing_sent(
    milter,
):
    def script(mta: MTA) -> Any:
        mta.connect()
        return mta.message(CLEAN, ["u@example.com"])

    result = await run(milter.port, script)
    assert mt.SMFIR_ACCEPT == result[-1][0]
    added = [(d["name"], d["value"]) for c, d in result if c == "i"]
    names = [n for n, _ in added]
    assert "X-Virus-Scanned" not in names  # clamd is off in this stack
    assert "Received" not in names  # Postfix adds its own
    assert milter.mta.transactions == []  # Postfix keeps the message


async def test_banned_rejected_with_our_reply_text(milter):
    def script(mta: MTA) -> Any:
        mta.connect()
        return mta.message(banned_message(), ["u@example.com"])

    result = await run(milter.port, script)
    (cmd, data) = result[-1]
    assert mt.SMFIR_REPLYCODE == cmd
    text = data["smtpcode"] + " " + data["text"]
    assert text.startswith("554 5.7.0 Reject, id=")
    assert "BANNED: " in text
    assert "a.exe" in text
    # Quarantined as the policy says, even though Postfix rejects it.
    assert list(milter.quarantine.rglob("*"))


async def test_several_messages_per_connection_and_abort(milter):
    def script(mta: MTA) -> Any:
        mta.connect()
        first = mta.message(CLEAN, ["u@example.com"], "Q1")
        # Second message aborted after its header: nothing decided.
        mta.envelope("alice@example.org", ["u@example.com"], "Q2")
        mta.content(banned_message()[:200] + "\r\n\r\nx\r\n")
        mta.abort()
        third = mta.message(banned_message(), ["u@example.com"], "Q3")
        fourth = mta.message(CLEAN, ["v@example.com"], "Q4")
        return first, third, fourth

    first, third, fourth = await run(milter.port, script)
    assert mt.SMFIR_ACCEPT == first[-1][0]
    assert mt.SMFIR_REPLYCODE == third[-1][0]
    assert mt.SMFIR_ACCEPT == fourth[-1][0]


async def test_queue_id_macro_in_log_line(milter, caplog):
    caplog.set_level("INFO", logger="mailfilter.verdict")

    def script(mta: MTA) -> Any:
        mta.connect(addr="198.51.100.9")
        return mta.message(CLEAN, ["u@example.com"], "7F3A21")

    await run(milter.port, script)
    (line,) = [r.getMessage() for r in caplog.records if "Passed" in r.getMessage()]
    assert "Queue-ID: 7F3A21" in line
    assert "[198.51.100.9]" in line
    assert "queued_as: 7F3A21" in line


async def test_forged_spam_flag_deleted_and_subject_untouched(milter):
    forged = CLEAN.replace(
        "Subject: hello\r\n",
        "Subject: hello\r\nX-Spam-Flag: YES\r\nX-Spam-Flag: YES\r\n",
    )

    def script(mta: MTA) -> Any:
        mta.connect()
        return mta.message(forged, ["u@example.com"])

    result = await run(milter.port, script)
    # spamd is off here: no spam check, so nothing is stripped (amavis
    # removes X-Spam-* only when it checked for spam).
    assert [c for c, _ in result if c == "m"] == []
    assert mt.SMFIR_ACCEPT == result[-1][0]


async def test_too_many_recipients_refused_per_rcpt(tmp_path):
    mta_fake = FakeMTA()
    s = await make_stack(
        tmp_path, mta_fake, listen_proto="milter:", max_recipients=2
    )
    try:

        def script(mta: MTA) -> Any:
            mta.connect()
            mta.conn.send_macro(mt.SMFIC_MAIL, i="Q")
            mta.conn.send(mt.SMFIC_MAIL, args=["<a@b>"])
            return [
                mta.conn.send_ar(mt.SMFIC_RCPT, args=[f"<r{i}@example.com>"])
                for i in range(3)
            ]

        got = await run(s.port, script)
    finally:
        await s.service.shutdown()
        await mta_fake.stop()
    assert [c for c, _ in got] == ["c", "c", "y"]
    assert got[2][1]["smtpcode"] + " " + got[2][1]["text"] == (
        replies.TOO_MANY_RECIPIENTS
    )


async def test_unix_socket_listener_replaces_a_stale_socket(tmp_path):
    import socket

    path = tmp_path / "milter.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # left behind, as after a crash
    mta_fake = FakeMTA()
    s = await make_stack(tmp_path, mta_fake, listen=[f"milter:unix:{path}"])

    def script() -> Any:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        conn = mt.MilterConnection(sock)
        try:
            return conn.optneg_mta(0x1FF, 0x1FFFFF)
        finally:
            sock.close()

    try:
        actions, _ = await asyncio.to_thread(script)
    finally:
        await s.service.shutdown()
        await mta_fake.stop()
    assert actions & mt.SMFIF_ADDHDRS
