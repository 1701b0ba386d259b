"""Whatever a client sends, the reply is one of ours (replies.py), never
one of aiosmtpd's own texts."""

from __future__ import annotations

import pytest

from mailfilter.smtp import replies
from tests.component.smtpclient import Client


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("FOO bar", replies.UNKNOWN_COMMAND.format(command="FOO")),
        (
            "AUTH PLAIN AGEAYg==",
            replies.UNKNOWN_COMMAND.format(command="AUTH"),
        ),
        ("STARTTLS", replies.UNKNOWN_COMMAND.format(command="STARTTLS")),
        ("TURN", replies.NOT_IMPLEMENTED.format(command="TURN")),
        ("ETRN example.com", replies.NOT_IMPLEMENTED.format(command="ETRN")),
        ("SEND FROM:<a@b>", replies.NOT_IMPLEMENTED.format(command="SEND")),
        ("SOML FROM:<a@b>", replies.NOT_IMPLEMENTED.format(command="SOML")),
        ("SAML FROM:<a@b>", replies.NOT_IMPLEMENTED.format(command="SAML")),
        ("NOOP " + "x" * 600, replies.LINE_TOO_LONG),
        ("MAIL FROM:<" + "a" * 1000 + "@b>", replies.LINE_TOO_LONG),
        ("", replies.BAD_SYNTAX),
    ],
)
async def test_command_gets_the_named_reply(stack, line, expected):
    """Unknown, unimplemented and over-long commands: amavis's texts."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    assert expected == await client.cmd(line)
    # The session is still in step afterwards.
    assert replies.NOOP == await client.cmd("NOOP")
    await client.close()


async def test_line_longer_than_the_stream_limit(stack):
    """A command line longer than the reader's buffer: one named reply."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    assert replies.LINE_TOO_LONG == await client.cmd(b"NOOP " + b"x" * 600_000)
    assert replies.NOOP == await client.cmd("NOOP")
    await client.close()


async def test_mail_before_helo(stack):
    """MAIL before HELO/EHLO gets our 503 with an enhanced code."""
    client, _ = await Client.connect(stack.port)
    assert replies.NEED_HELO.format(verb="HELO") == await client.cmd(
        "MAIL FROM:<a@b>"
    )
    await client.close()
