"""LMTP input: every accepted recipient gets its own final reply, whatever
happens after DATA; Postfix's LMTP client otherwise waits for the missing
ones until its timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mailfilter.smtp import replies, server
from tests.component.conftest import make_stack
from tests.component.fakes import FakeMTA
from tests.component.smtpclient import Client

if TYPE_CHECKING:
    from pathlib import Path

RCPTS = ("u@example.com", "v@example.com", "w@example.com")


async def lmtp_replies(
    tmp_path: Path, body: bytes, **overrides: object
) -> tuple[list[str], str]:
    """Send one message over LMTP to three recipients.

    Returns the three final replies and the reply to a NOOP after them
    (proof that no fourth reply is pending and the session is in step).
    """
    s = await make_stack(
        tmp_path, FakeMTA(lmtp=True), listen_proto="lmtp:", **overrides
    )
    try:
        client, _ = await Client.connect(s.port)
        await client.cmd("LHLO postfix.test")
        await client.cmd("MAIL FROM:<a@b>")
        for rcpt in RCPTS:
            await client.cmd(f"RCPT TO:<{rcpt}>")
        assert (await client.cmd("DATA")).startswith("354")
        client.writer.write(body + b".\r\n")
        answers = [await client.reply(timeout=5) for _ in RCPTS]
        after = await client.cmd("NOOP", timeout=5)
        await client.close()
    finally:
        await s.service.shutdown()
        await s.mta.stop()
    return answers, after


async def test_over_the_size_limit_one_reply_per_recipient(tmp_path):
    """A message over message_size_limit: a 552 for each recipient."""
    body = b"Subject: x\r\n\r\n" + b"x" * 3000 + b"\r\n"
    answers, after = await lmtp_replies(
        tmp_path, body, message_size_limit=1000
    )
    assert [replies.TOO_BIG.format(size=len(body) + 3)] * 3 == answers
    assert replies.NOOP == after


@pytest.mark.parametrize("where", ["_envelope", "_run"])
async def test_exception_in_the_handler_one_reply_per_recipient(
    tmp_path, monkeypatch, where
):
    """Our own bug after DATA: a 451 for each recipient, never one 4xx
    (aiosmtpd's handle_exception) for all."""

    def broken(self: object, *args: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(server.FilterSMTP, where, broken)
    answers, after = await lmtp_replies(tmp_path, b"Subject: x\r\n\r\nx\r\n")
    assert 3 == len(answers)
    assert all(a.startswith("451 4.5.0 Error in processing") for a in answers)
    assert replies.NOOP == after
