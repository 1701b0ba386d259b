"""Failures that are not verdicts answer 4xx; poison messages get a verdict."""

from __future__ import annotations

import asyncio

import pytest

from mailfilter.scan import banned
from tests.component.conftest import make_stack, one_message
from tests.component.fakes import FakeMTA
from tests.component.smtpclient import Client

EXE = (
    b"Subject: invoice\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=run.exe\r\n\r\nMZxx\r\n--b--\r\n"
)


async def test_quarantine_unwritable_tempfails_instead_of_discarding(tmp_path):
    """A banned message whose quarantine copy cannot be written gets 451, not a discard."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    reply, s = await one_message(
        tmp_path, FakeMTA(), EXE, quarantine=str(blocker / "q")
    )
    assert reply.startswith("451 4.5.0 Error in processing")
    assert [] == s.mta.transactions


async def test_banned_is_discarded_and_quarantined(tmp_path):
    """The default policy discards a banned .exe with amavis's reply and keeps a copy."""
    reply, s = await one_message(tmp_path, FakeMTA(), EXE)
    assert reply.startswith("250 2.7.0 Ok, discarded, id=")
    assert "- BANNED: " in reply
    (copy,) = (s.quarantine / "banned" / "new").iterdir()
    assert b"X-Envelope-To: <u@example.com>" in copy.read_bytes()


async def test_poison_message_is_quarantined_not_retried(
    tmp_path, monkeypatch
):
    """If our parser crashes on a message it becomes UNCHECKED: the copy
    is kept, the default policy does not deliver it, and Postfix gets a
    final answer (no retry loop)."""

    def explode(content, policy):
        raise RecursionError("parser bug")

    monkeypatch.setattr(banned, "check", explode)
    monkeypatch.setattr(banned, "_cheap", lambda content: True)
    reply, s = await one_message(
        tmp_path, FakeMTA(), b"Subject: odd\r\n\r\nx\r\n"
    )
    assert reply.startswith("250 2.7.0 Ok, discarded, id=")
    assert "UNCHECKED" in reply
    assert [] == s.mta.transactions
    assert 1 == len(list((s.quarantine / "unchecked" / "new").iterdir()))


async def test_pipeline_bug_answers_451_never_5xx(tmp_path, monkeypatch):
    """An exception in our own pipeline reaches Postfix as 451, not aiosmtpd's 500."""
    from mailfilter import pipeline

    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(pipeline, "decide", broken)
    reply, s = await one_message(tmp_path, FakeMTA())
    assert reply.startswith("451 4.5.0 Error in processing, id=")
    assert [] == s.mta.transactions


@pytest.mark.parametrize("limit", [2])
async def test_over_max_connections_gets_421(tmp_path, limit):
    """Past max_connections a new session gets 421 (Postfix retries), the others carry on."""
    s = await make_stack(tmp_path, FakeMTA(), max_connections=limit)
    clients = [await Client.connect(s.port) for _ in range(limit)]
    extra, greeting = await Client.connect(s.port)
    assert greeting.startswith("421 4.3.2")
    for client, _ in clients:
        assert (
            await client.send(
                "a@b", ["u@example.com"], b"Subject: x\r\n\r\nx\r\n"
            )
        ).startswith("250")
        await client.close()
    extra.writer.close()
    await s.service.shutdown()
    await s.mta.stop()


async def test_reload_during_a_message_lets_it_finish_on_the_old_context(
    tmp_path,
):
    """SIGHUP's reload mid-message: the message passes, the old context is retired later, not closed at once."""
    s = await make_stack(tmp_path, FakeMTA(errors={"dot": "delay:0.5"}))
    client, _ = await Client.connect(s.port)
    sending = asyncio.ensure_future(
        client.send("a@b", ["u@example.com"], b"Subject: x\r\n\r\nx\r\n")
    )
    await asyncio.sleep(0.2)
    old = s.service.pipeline.context
    s.service.reload()
    assert s.service.pipeline.context is not old
    assert [old] == list(s.service._retiring.values())
    assert (await sending).startswith("250 2.0.0 from MTA(")
    await client.close()
    await s.service.shutdown()
    await s.mta.stop()
    assert {} == s.service._retiring
