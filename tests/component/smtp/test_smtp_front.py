"""The SMTP side as Postfix sees it: greeting, EHLO, parameters, replies."""

from __future__ import annotations

import asyncio

from mailfilter.smtp import replies
from tests.component.smtpclient import Client

BODY = (
    b"From: a@example.org\r\nTo: u@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
)


async def test_greeting_is_amavis(stack):
    """The banner is amavis's, with the listening address as helo name."""
    client, greeting = await Client.connect(stack.port)
    assert "220 [127.0.0.1] ESMTP amavis service ready" == greeting
    await client.close()


async def test_ehlo_lists_amavis_keywords_in_order(stack):
    """EHLO offers what amavis offers, XFORWARD last."""
    client, _ = await Client.connect(stack.port)
    reply = await client.cmd("EHLO postfix.test")
    keywords = [line[4:] for line in reply.split("\r\n")]
    assert [
        "[127.0.0.1]",
        "VRFY",
        "PIPELINING",
        "SIZE 52428800",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SMTPUTF8",
        "DSN",
        "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
    ] == keywords
    await client.close()


async def test_mail_and_rcpt_replies(stack):
    """MAIL and RCPT answers use amavis's texts, null sender included."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    assert replies.MAIL_OK.format(addr="<>") == await client.cmd(
        "MAIL FROM:<> SIZE=100 BODY=8BITMIME"
    )
    assert replies.RCPT_OK.format(addr="<u@example.com>") == await client.cmd(
        "RCPT TO:<u@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@example.com"
    )
    await client.close()


async def test_bad_parameters_are_refused_with_amavis_codes(stack):
    """Unknown or malformed parameters get amavis's 5xx syntax replies."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    assert (await client.cmd("MAIL FROM:<a@b> FOO=1")).startswith("504 5.5.4")
    assert (
        await client.cmd("MAIL FROM:<a@b> BODY=BINARYMIME")
    ) == replies.BODY_SYNTAX
    assert (await client.cmd("MAIL FROM:<a@b> RET=ALL")).startswith(
        "501 5.5.4"
    )
    await client.cmd("MAIL FROM:<a@b>")
    assert (
        await client.cmd("RCPT TO:<u@example.com> NOTIFY=NEVER,SUCCESS")
    ).startswith("501 5.5.4")
    assert (await client.cmd("RCPT TO:<u@example.com> BAR=1")).startswith(
        "555 5.5.4"
    )
    assert replies.NESTED_MAIL == await client.cmd("MAIL FROM:<a@b>")
    await client.close()


async def test_xforward_outside_transaction_only(stack):
    """XFORWARD is accepted before MAIL and refused inside a transaction."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    assert replies.XFORWARD_OK == await client.cmd(
        "XFORWARD NAME=mx.example.org ADDR=192.0.2.7 PORT=4711"
    )
    assert (await client.cmd("XFORWARD BOGUS=1")).startswith("501 5.5.4")
    await client.cmd("MAIL FROM:<a@b>")
    assert replies.XFORWARD_IN_TRANSACTION == await client.cmd(
        "XFORWARD IDENT=ABC"
    )
    await client.close()


async def test_data_without_recipients(stack):
    """DATA with no valid recipient gets amavis's 554 5.1.1."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    await client.cmd("MAIL FROM:<a@b>")
    assert replies.NO_VALID_RECIPIENTS == await client.cmd("DATA")
    await client.close()


async def test_recipient_limit(stack):
    """1100 recipients are taken; the 1101st gets 452 4.5.3 (amavis)."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    await client.cmd("MAIL FROM:<a@b>")
    lines = b"".join(
        f"RCPT TO:<u{i}@example.com>\r\n".encode() for i in range(1101)
    )
    client.writer.write(lines)
    answers = [await client.reply() for _ in range(1101)]
    assert 1100 == sum(a.startswith("250 2.1.5") for a in answers)
    assert replies.TOO_MANY_RECIPIENTS == answers[-1]
    await client.close()


async def test_size_limit_gives_552(tmp_path):
    """A message over message_size_limit is refused with 552 after the dot."""
    from tests.component.conftest import make_stack
    from tests.component.fakes import FakeMTA

    s = await make_stack(tmp_path, FakeMTA(), message_size_limit=1000)
    client, _ = await Client.connect(s.port)
    reply = await client.send(
        "a@b", ["u@example.com"], BODY + b"x" * 2000 + b"\r\n"
    )
    assert reply.startswith("552 5.3.4")
    assert [] == s.mta.transactions
    # The connection is still usable afterwards.
    assert (
        await client.send("a@b", ["u@example.com"], BODY, ehlo=False)
    ).startswith("250 2.0.0")
    await client.close()
    await s.service.shutdown()
    await s.mta.stop()


async def test_pipelined_transaction_in_one_write(stack):
    """A client that pipelines EHLO..DATA and the body gets every reply in order."""
    client, _ = await Client.connect(stack.port)
    client.writer.write(
        b"EHLO p\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n"
    )
    ehlo = await client.reply()
    assert ehlo.startswith("250-[127.0.0.1]")
    assert (await client.reply()).startswith("250 2.1.0")
    assert (await client.reply()).startswith("250 2.1.5")
    assert (await client.reply()).startswith("354")
    client.writer.write(BODY + b".\r\nQUIT\r\n")
    assert (await client.reply()).startswith("250 2.0.0 from MTA(")
    assert (await client.reply()).startswith("221 2.0.0")
    client.writer.close()


async def test_unknown_and_unimplemented_commands(stack):
    """NOOP, RSET, VRFY and EXPN answer as amavis does."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    assert replies.NOOP == await client.cmd("NOOP")
    assert replies.RSET == await client.cmd("RSET")
    assert replies.VRFY == await client.cmd("VRFY root")
    assert (await client.cmd("EXPN list")).startswith("502 5.5.1")
    await client.close()


async def test_concurrent_connections_are_independent(stack):
    """Ten clients at once each get their own 250."""

    async def one(i: int) -> str:
        client, _ = await Client.connect(stack.port)
        reply = await client.send(f"s{i}@b", [f"u{i}@example.com"], BODY)
        await client.close()
        return reply

    answers = await asyncio.gather(*(one(i) for i in range(10)))
    assert all(a.startswith("250 2.0.0 from MTA(") for a in answers)
    assert 10 == len(stack.mta.transactions)


async def test_no_nagle_delay_on_either_side(stack):
    """TCP_NODELAY is on for Postfix's connection and for the 10025 one.

    With Nagle's algorithm a small reply can wait up to ~40 ms for a
    delayed ACK (docs/performance-and-reliability.md, "Published
    figures"); small replies must go out at once.
    """
    import socket

    client, _ = await Client.connect(stack.port)
    await client.send("a@b", ["u@example.com"], BODY)
    (session,) = stack.service._sessions
    server_sock = session.transport.get_extra_info("socket")
    (conn,) = stack.service.pipeline.context.downstream._idle
    client_sock = conn.writer.get_extra_info("socket")
    options = [
        s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        for s in (server_sock, client_sock)
    ]
    await client.close()
    assert [1, 1] == options
