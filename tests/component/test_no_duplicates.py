"""SMTP input gets one reply for all recipients: a 4xx only while nothing
was delivered, or Postfix's retry delivers the delivered copies again."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailfilter.downstream import dsn
from tests.component.conftest import REPO, make_stack
from tests.component.fakes import FakeMTA
from tests.component.smtpclient import Client
from tests.support.ports import free_port

if TYPE_CHECKING:
    from pathlib import Path

BODY = b"Subject: x\r\nMessage-ID: <m@x>\r\n\r\nx\r\n"
EXE = (
    b"Subject: invoice\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=run.exe\r\n\r\nMZxx\r\n"
    b"--b--\r\n"
)
# With EXE, two recipients who both receive it under different decisions
# (BANNED but a banned lover, CLEAN because banned checks are bypassed),
# so each is reinjected as its own group, LOVER's first.
LOVER = "lover@x.example"
NOBANNED = "nobanned@x.example"
PLAIN = "u@example.com"
NOAV = "noav@x.example"


def policy_with_overrides(tmp_path: Path) -> Path:
    """The default policy plus two per-recipient bypass entries."""
    path = tmp_path / "policy.toml"
    path.write_text(
        (REPO / "policy/default.toml").read_text()
        + f'\n[[recipient]]\nmatch = "{LOVER}"\nbanned_lover = true\n'
        + f'\n[[recipient]]\nmatch = "{NOBANNED}"\nbypass_banned_checks = true\n'
        + f'\n[[recipient]]\nmatch = "{NOAV}"\nbypass_virus_checks = true\n'
    )
    return path


async def send(
    tmp_path: Path,
    mta: FakeMTA,
    rcpts: list[str],
    body: bytes = EXE,
    **overrides: object,
) -> str:
    """One message from a@example.org through a fresh stack."""
    s = await make_stack(
        tmp_path,
        mta,
        policy=str(policy_with_overrides(tmp_path)),
        **overrides,
    )
    try:
        client, _ = await Client.connect(s.port)
        reply = await client.send("a@example.org", rcpts, body)
        await client.close()
    finally:
        await s.service.shutdown()
        await mta.stop()
    return reply


async def test_smtp_group_tempfail_reinjects_no_other_group(tmp_path):
    """clamd down with scanner_failure.clamav = tempfail: the recipient who
    bypasses virus checks would pass, the other must wait. With SMTP input
    nothing is reinjected and the one reply is 4xx, so the retry cannot
    duplicate the bypassing recipient's copy."""
    mta = FakeMTA()
    reply = await send(
        tmp_path,
        mta,
        [NOAV, PLAIN],
        BODY,
        clamd=f"127.0.0.1:{free_port()}",
    )
    assert reply.startswith("451 4.5.0 Error in processing"), reply
    assert [] == mta.transactions


async def test_lmtp_group_tempfail_keeps_per_recipient_replies(tmp_path):
    """The same with LMTP input: the bypassing recipient is delivered and
    gets 250, the other 451; Postfix retries only that one."""
    mta = FakeMTA()
    s = await make_stack(
        tmp_path,
        mta,
        listen_proto="lmtp:",
        policy=str(policy_with_overrides(tmp_path)),
        clamd=f"127.0.0.1:{free_port()}",
    )
    client, _ = await Client.connect(s.port)
    await client.cmd("LHLO postfix.test")
    await client.cmd("MAIL FROM:<a@example.org>")
    await client.cmd(f"RCPT TO:<{NOAV}>")
    await client.cmd(f"RCPT TO:<{PLAIN}>")
    await client.cmd("DATA")
    client.writer.write(BODY + b".\r\n")
    answers = [await client.reply(timeout=10) for _ in range(2)]
    await client.close()
    await s.service.shutdown()
    await mta.stop()
    assert answers[0].startswith("250 2.0.0 from MTA(")
    assert answers[1].startswith("451 4.5.0")
    (txn,) = mta.transactions
    assert [NOAV] == txn.recipients


async def test_later_group_failing_after_a_delivery_is_no_4xx(tmp_path):
    """The first group is delivered, the second's RCPT gets 4xx: answering
    4xx would make Postfix deliver the first copy again. The reply is the
    2xx, and the sender gets a DSN for the recipient that was not."""
    mta = FakeMTA(errors={f"rcpt:{NOBANNED}": "451 4.3.0 try later"})
    reply = await send(tmp_path, mta, [LOVER, NOBANNED])
    assert reply.startswith("250 2.0.0 from MTA("), reply
    assert reply.endswith(", but 1 REJECT")
    message, notice = mta.transactions
    assert [LOVER] == message.recipients
    assert ["a@example.org"] == notice.recipients
    assert f"Final-Recipient: rfc822; {NOBANNED}".encode() in notice.data


async def test_first_group_failing_stops_the_others(tmp_path):
    """The first group's reinjection fails with 4xx: nothing else is
    reinjected, so the 4xx (and Postfix's retry) duplicates nothing."""
    mta = FakeMTA(errors={f"rcpt:{LOVER}": "451 4.3.0 try later"})
    reply = await send(tmp_path, mta, [LOVER, NOBANNED])
    assert reply.startswith("451 4."), reply
    assert [] == mta.transactions


async def test_connection_error_during_rset_after_delivery_is_no_4xx(
    tmp_path,
):
    """The DSN's RCPT is refused and the RSET after it loses the
    connection: the delivered recipient must keep its 2xx."""
    mta = FakeMTA(
        errors={
            f"rcpt:{NOBANNED}": "550 5.1.1 no such user",
            "rcpt:a@example.org": "550 5.1.1 no such sender",
            "rset": "drop",
        }
    )
    reply = await send(tmp_path, mta, [LOVER, NOBANNED])
    assert reply.startswith("250 2.0.0 from MTA("), reply
    (message,) = mta.transactions
    assert [LOVER] == message.recipients


async def test_dsn_bug_after_delivery_is_no_4xx(tmp_path, monkeypatch):
    """Our own bug while building the DSN: logged, never a 4xx that would
    duplicate the delivered copy."""

    def broken(*args: object, **kwargs: object) -> bytes:
        raise KeyError("bug")

    monkeypatch.setattr(dsn, "build", broken)
    mta = FakeMTA(errors={f"rcpt:{NOBANNED}": "550 5.1.1 no such user"})
    reply = await send(tmp_path, mta, [LOVER, NOBANNED])
    assert reply.startswith("250 2.0.0 from MTA("), reply
    (message,) = mta.transactions
    assert [LOVER] == message.recipients


async def test_bug_after_a_delivery_answers_the_delivered_reply(
    tmp_path, monkeypatch
):
    """An exception in our code once a copy is delivered (here in the log
    line) answers the delivered 2xx, not a 4xx."""
    from mailfilter import pipeline

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(pipeline, "log_outcome", broken)
    mta = FakeMTA()
    reply = await send(tmp_path, mta, [PLAIN], BODY)
    assert reply.startswith("250 2.0.0 from MTA("), reply
    assert 1 == len(mta.transactions)


async def test_stale_pooled_connection_is_probed_and_replaced(tmp_path):
    """10025 closed the pooled connection with a 421 (its idle timer)
    before the next message: that message still goes through, on a new
    connection, instead of getting the 421 as a 4xx."""
    mta = FakeMTA(idle_close=0.3)
    s = await make_stack(tmp_path, mta)
    client, _ = await Client.connect(s.port)
    first = await client.send("a@b", [PLAIN], BODY)
    await asyncio.sleep(0.8)
    second = await client.send("a@b", [PLAIN], BODY, ehlo=False)
    await client.close()
    await s.service.shutdown()
    await mta.stop()
    assert first.startswith("250 2.0.0 from MTA(")
    assert second.startswith("250 2.0.0 from MTA("), second
    assert 2 == len(mta.transactions)
    assert 2 == mta.connections
