"""Reinjection: exact bytes, parameters passed on, faults turned into 4xx."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.component.conftest import make_stack, one_message
from tests.component.fakes import FakeMTA
from tests.component.smtpclient import Client

BODY = (
    b"From: a@example.org\r\nTo: u@example.com\r\nSubject: hi\r\n"
    b"Message-ID: <m1@example.org>\r\n\r\n"
    b".leading dot\r\n..two dots\r\n.\r\nline\r\n\r\n"
)


def our_headers_removed(data: bytes) -> bytes:
    """Unstuff the wire data and drop the fields mailfilter prepends."""
    data = data.replace(b"\r\n..", b"\r\n.")
    if data.startswith(b".."):
        data = data[1:]
    ours = re.compile(
        rb"^(?:X-Virus-Scanned|X-Spam-[A-Za-z]+|Received|X-Quarantine-ID|X-Amavis-Alert):.*\r\n(?:[ \t].*\r\n)*"
    )
    while m := ours.match(data):
        data = data[m.end() :]
    return data


async def test_bytes_arrive_unchanged_apart_from_added_headers(stack):
    """The original bytes, dot lines included, reach 10025 unchanged."""
    client, _ = await Client.connect(stack.port)
    reply = await client.send("a@example.org", ["u@example.com"], BODY)
    await client.close()
    assert re.fullmatch(
        rf"250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:{stack.mta.port}\): 250 2\.0\.0 Ok: queued as FAKE\d+",
        reply,
    )
    (txn,) = stack.mta.transactions
    assert BODY == our_headers_removed(txn.data)
    assert txn.data.startswith(b"Received: from postfix.test")


async def test_no_bare_line_ends_are_ever_emitted(stack):
    """A bare CR or LF in the input leaves as CRLF."""
    client, _ = await Client.connect(stack.port)
    body = b"Subject: x\r\n\r\nbare\rcr and bare\nlf\r\n"
    await client.send("a@b", ["u@example.com"], body)
    await client.close()
    data = stack.mta.transactions[0].data
    assert data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n")


async def test_null_sender_and_dsn_parameters_pass_through(stack):
    """MAIL FROM:<>, RET, ENVID, NOTIFY and ORCPT arrive downstream."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    await client.cmd(
        "MAIL FROM:<a@b> RET=HDRS ENVID=QQ+2B1 BODY=8BITMIME SMTPUTF8"
    )
    await client.cmd(
        "RCPT TO:<u@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+2Bx@example.com"
    )
    await client.cmd("DATA")
    client.writer.write(b"Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n.\r\n")
    assert (await client.reply()).startswith("250 2.0.0")
    await client.send(
        "", ["u@example.com"], b"Subject: bounce\r\n\r\nx\r\n", ehlo=False
    )
    await client.close()
    first, second = stack.mta.transactions
    assert (
        "MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1"
        in first.commands
    )
    assert (
        "RCPT TO:<u@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;u+2Bx@example.com"
        in first.commands
    )
    assert "" == second.sender
    assert any(c.startswith("MAIL FROM:<>") for c in second.commands)


async def test_xforward_passed_on_with_queue_id(stack):
    """XFORWARD attributes, IDENT included, are passed to 10025."""
    client, _ = await Client.connect(stack.port)
    await client.cmd("EHLO postfix.test")
    await client.cmd(
        "XFORWARD NAME=mx.example.org ADDR=192.0.2.7 PORT=4711 PROTO=ESMTP"
    )
    await client.cmd(
        "XFORWARD HELO=mx.example.org IDENT=4ABCD123 SOURCE=REMOTE"
    )
    await client.send(
        "a@b", ["u@example.com"], b"Subject: x\r\n\r\nx\r\n", ehlo=False
    )
    await client.close()
    (txn,) = stack.mta.transactions
    xf = [c for c in txn.commands if c.startswith("XFORWARD")]
    assert [
        (
            "XFORWARD ADDR=192.0.2.7 NAME=mx.example.org PORT=4711 PROTO=ESMTP "
            "HELO=mx.example.org SOURCE=REMOTE IDENT=4ABCD123"
        )
    ] == xf


async def test_connection_reused_across_messages(stack):
    """Three messages use one downstream connection."""
    client, _ = await Client.connect(stack.port)
    for i in range(3):
        await client.send(
            "a@b", ["u@example.com"], b"Subject: x\r\n\r\nx\r\n", ehlo=i == 0
        )
    await client.close()
    assert 3 == len(stack.mta.transactions)
    assert 1 == stack.mta.connections


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ({"connect": "drop"}, "451 4."),
        ({"connect": "421 4.3.2 busy"}, "451 4."),
        ({"mail": "451 4.3.0 try later"}, "451 4."),
        ({"rcpt:u@example.com": "450 4.2.0 mailbox busy"}, "451 4."),
        ({"data": "451 4.3.0 not now"}, "451 4."),
        ({"dot": "451 4.3.0 Error: queue file write error"}, "451 4.3.0"),
        ({"mid-data": "drop"}, "451 4."),
    ],
)
async def test_downstream_faults_tempfail(tmp_path, errors, expected):
    """Every downstream failure that is not a 5xx answers 4xx (Postfix keeps the mail)."""
    reply, s = await one_message(tmp_path, FakeMTA(errors=errors))
    assert reply.startswith(expected), reply


async def test_rcpt_tempfail_sends_no_data(tmp_path):
    """After a 4xx RCPT with SMTP input nothing is sent, so no duplicate can follow."""
    reply, s = await one_message(
        tmp_path,
        FakeMTA(errors={"rcpt:v@example.com": "452 4.5.3 later"}),
        rcpts=("u@example.com", "v@example.com"),
    )
    assert reply.startswith("451")
    assert [] == s.mta.transactions


async def test_refused_connection_tempfails(tmp_path):
    """10025 not listening: 451 in amavis's fwd-connect form."""
    mta = FakeMTA()
    s = await make_stack(tmp_path, mta)
    await mta.stop()
    await asyncio.sleep(0.05)
    client, _ = await Client.connect(s.port)
    reply = await client.send(
        "a@b", ["u@example.com"], b"Subject: x\r\n\r\nx\r\n"
    )
    await client.close()
    await s.service.shutdown()
    assert reply.startswith("451 4.5.0 id=")
    assert "during fwd-connect" in reply


async def test_hanging_downstream_times_out_with_4xx(tmp_path):
    """A 10025 that never answers the final dot gets a 4xx within forward_timeout."""
    reply, s = await one_message(
        tmp_path, FakeMTA(errors={"dot": "hang"}), forward_timeout=1.0
    )
    assert reply.startswith("450 4.4.2 Timed out")


async def test_all_recipients_rejected_downstream_gives_5xx(tmp_path):
    """A 5xx from 10025 for every recipient is passed on as 5xx."""
    reply, s = await one_message(
        tmp_path,
        FakeMTA(errors={"rcpt:u@example.com": "550 5.1.1 no such user"}),
    )
    assert reply.startswith("550 5.1.1 id=")
    assert "Rejected by next-hop MTA" in reply


async def test_lmtp_input_gets_one_reply_per_recipient(tmp_path):
    """With LMTP in and out, each recipient gets its own final reply."""
    mta = FakeMTA(
        lmtp=True, errors={"rcpt:v@example.com": "550 5.1.1 unknown"}
    )
    s = await make_stack(tmp_path, mta, listen_proto="lmtp:")
    client, greeting = await Client.connect(s.port)
    assert greeting.endswith("LMTP amavis service ready")
    await client.cmd("LHLO postfix.test")
    await client.cmd("MAIL FROM:<a@b>")
    for r in ("u@example.com", "v@example.com", "w@example.com"):
        await client.cmd(f"RCPT TO:<{r}>")
    await client.cmd("DATA")
    client.writer.write(b"Subject: x\r\n\r\nx\r\n.\r\n")
    answers = [await client.reply() for _ in range(3)]
    await client.close()
    await s.service.shutdown()
    await mta.stop()
    assert answers[0].startswith("250 2.0.0 from MTA(lmtp:")
    assert answers[1].startswith("550 5.1.1")
    assert answers[2].startswith("250 2.0.0 from MTA(lmtp:")


async def test_mixed_downstream_refusal_sends_a_dsn(tmp_path):
    """SMTP input, one recipient refused downstream: the others are delivered
    and the sender gets a DSN for the refused one (never a silent loss)."""
    s = await make_stack(
        tmp_path,
        FakeMTA(errors={"rcpt:v@example.com": "550 5.1.1 no such user"}),
    )
    client, _ = await Client.connect(s.port)
    await client.cmd("EHLO postfix.test")
    await client.cmd("MAIL FROM:<a@example.org> ENVID=E1")
    await client.cmd("RCPT TO:<u@example.com>")
    await client.cmd("RCPT TO:<v@example.com> ORCPT=rfc822;v@example.com")
    await client.cmd("DATA")
    client.writer.write(
        b"Subject: x\r\nMessage-ID: <mixed@x>\r\n\r\nx\r\n.\r\n"
    )
    reply = await client.reply()
    await client.close()
    await s.service.shutdown()
    await s.mta.stop()
    assert reply.startswith("250 2.0.0 from MTA(")
    assert reply.endswith(", but 1 REJECT")
    message, notice = s.mta.transactions
    assert ["u@example.com"] == message.recipients
    assert "" == notice.sender
    assert ["a@example.org"] == notice.recipients
    assert b"Final-Recipient: rfc822; v@example.com" in notice.data
    assert b"Status: 5.1.1" in notice.data
    assert b"Original-Envelope-Id: E1" in notice.data
    assert b"Message-ID: <mixed@x>" in notice.data


@pytest.mark.parametrize("end", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"])
async def test_smuggling_sequences_never_split_a_message(stack, end):
    """A bare-LF/CR "end of data" inside DATA stays content: one message downstream, no bare line ends."""
    client, _ = await Client.connect(stack.port)
    smuggled = (
        b"Subject: x\r\n\r\nhello"
        + end
        + b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n"
    )
    reply = await client.send("a@b", ["u@example.com"], smuggled)
    await client.close()
    assert reply.startswith("250 2.0.0 from MTA(")
    (txn,) = stack.mta.transactions
    assert ["u@example.com"] == txn.recipients
    data = txn.data
    assert data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n")
    assert b"\r\n.\r\n" not in data
