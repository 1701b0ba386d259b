"""The milter session state machine, packet by packet, without a network.

The pipeline is replaced by a recorder: these tests are about what the
session builds from Postfix's steps, not about decisions.
"""

from __future__ import annotations

import struct

import pytest

from mailfilter.milter import codec
from mailfilter.milter.session import MilterSession
from mailfilter.smtp import replies


class Recorder:
    """Takes the envelope the session hands over; answers pass."""

    def __init__(self) -> None:
        self.seen = []

    async def __call__(self, envelope, keep):
        self.seen.append(envelope)
        await keep.deliver(envelope.sender, envelope.recipients, b"")
        return ["250 2.0.0 Ok"] * len(envelope.recipients)


def pkt(command: bytes, *parts: bytes) -> codec.Packet:
    return codec.Packet(command, b"".join(p + b"\0" for p in parts))


def macro(stage: bytes, *parts: bytes) -> codec.Packet:
    return codec.Packet(codec.MACRO, stage + pkt(b"", *parts).payload)


async def start(protocol: int = 0x1FFFFF, limit: int = 1000):
    rec = Recorder()
    s = MilterSession(
        rec, local_addr=("127.0.0.1", 1), size_limit=limit, max_recipients=5
    )
    await s.handle(
        codec.Packet(codec.OPTNEG, struct.pack("!III", 6, 0x1FF, protocol))
    )
    return s, rec


async def transaction(s: MilterSession, header_value: bytes = b" v") -> list:
    await s.handle(macro(b"M", b"i", b"QID"))
    await s.handle(pkt(codec.MAIL, b"<a@b>", b"BODY=8BITMIME", b"SMTPUTF8"))
    await s.handle(pkt(codec.RCPT, b"<u@example.com>"))
    await s.handle(pkt(codec.HEADER, b"Subject", header_value))
    await s.handle(codec.Packet(codec.EOH))
    await s.handle(codec.Packet(codec.BODY, b"line\r\n"))
    return await s.handle(codec.Packet(codec.BODYEOB))


async def test_envelope_built_from_the_steps():
    s, rec = await start()
    await s.handle(
        codec.Packet(
            codec.CONNECT,
            b"c.example\x004" + struct.pack("!H", 4000) + b"192.0.2.1\0",
        )
    )
    await s.handle(pkt(codec.HELO, b"helo.example"))
    out = await transaction(s, b" two\n\tlines")
    (env,) = rec.seen
    assert env.sender == "a@b"
    assert [r.address for r in env.recipients] == ["u@example.com"]
    assert env.params.body == "8BITMIME"
    assert env.params.smtputf8
    assert env.client.ident == "QID"
    assert env.client.addr == "192.0.2.1"
    assert env.helo == "helo.example"
    # A folded field arrives with bare LF; the pipeline sees CRLF.
    assert env.content == b"Subject: two\r\n\tlines\r\n\r\nline\r\n"
    assert out[-1] == codec.encode(codec.ACCEPT)


async def test_space_after_colon_restored_without_leadspc():
    s, rec = await start(protocol=0x1FFFFF & ~codec.P_HDR_LEADSPC)
    await transaction(s, b"v")
    assert rec.seen[0].content.startswith(b"Subject: v\r\n")


async def test_header_replies_only_when_the_mta_waits_for_them():
    s, _ = await start(protocol=0)
    await s.handle(pkt(codec.MAIL, b"<a@b>"))
    out = await s.handle(pkt(codec.HEADER, b"X", b"y"))
    assert out == [codec.encode(codec.CONTINUE)]
    s, _ = await start()
    await s.handle(pkt(codec.MAIL, b"<a@b>"))
    assert await s.handle(pkt(codec.HEADER, b"X", b"y")) == []


async def test_abort_forgets_the_message_and_the_next_one_starts_clean():
    s, rec = await start()
    await s.handle(pkt(codec.MAIL, b"<x@y>"))
    await s.handle(pkt(codec.RCPT, b"<old@example.com>"))
    await s.handle(pkt(codec.HEADER, b"Old", b" 1"))
    await s.handle(codec.Packet(codec.ABORT))
    with pytest.raises(codec.MilterProtocolError):
        await s.handle(codec.Packet(codec.BODYEOB))
    await transaction(s)
    (env,) = rec.seen
    assert b"Old" not in env.content
    assert [r.address for r in env.recipients] == ["u@example.com"]


async def test_oversized_message_refused_without_keeping_it():
    s, rec = await start(limit=10)
    out = await transaction(s)
    # "Subject: v" CRLF and "line" CRLF: 18 bytes.
    assert out == [
        codec.encode(
            codec.REPLYCODE, codec.reply_code(replies.TOO_BIG.format(size=18))
        )
    ]
    assert rec.seen == []


async def test_quit_nc_resets_connection_state():
    s, rec = await start()
    await s.handle(pkt(codec.HELO, b"first"))
    await s.handle(macro(b"C", b"{client_addr}", b"192.0.2.9"))
    await s.handle(codec.Packet(codec.QUIT_NC))
    await transaction(s)
    assert rec.seen[0].helo == ""
    assert rec.seen[0].client.addr is None


async def test_quit_closes():
    s, _ = await start()
    assert await s.handle(codec.Packet(codec.QUIT)) == []
    assert s.closed


async def test_unknown_command_is_a_protocol_error():
    s, _ = await start()
    with pytest.raises(codec.MilterProtocolError):
        await s.handle(codec.Packet(b"Z"))


async def test_message_macros_end_with_the_message():
    s, rec = await start()
    await s.handle(macro(b"C", b"j", b"mx.test"))
    await transaction(s)  # sends {i}=QID with MAIL
    await s.handle(pkt(codec.MAIL, b"<a@b>"))  # no macros this time
    await s.handle(pkt(codec.RCPT, b"<u@example.com>"))
    await s.handle(codec.Packet(codec.BODYEOB))
    assert rec.seen[0].client.ident == "QID"
    assert rec.seen[1].client.ident is None  # not the previous message's
    assert s.macros == {"j": "mx.test"}  # the connection's stay


async def test_a_stage_resent_replaces_its_macros():
    s, _ = await start()
    await s.handle(macro(b"M", b"i", b"A", b"{auth_type}", b"PLAIN"))
    await s.handle(macro(b"M", b"i", b"B"))
    assert s.macros == {"i": "B"}
