"""Policy banks in the running service: the listener a message arrives on
chooses its scanners, its policy and whether it is signed or verified."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailfilter.auth import keystore
from tests.component.conftest import make_stack
from tests.component.fakes import FakeMTA
from tests.component.smtpclient import Client
from tests.support.ports import free_port

if TYPE_CHECKING:
    from pathlib import Path

EXE = (
    b"From: u@ours.test\r\nSubject: tool\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=run.exe\r\n\r\nMZxx\r\n--b--\r\n"
)
PLAIN = b"From: u@ours.test\r\nTo: x@theirs.test\r\nSubject: s\r\n\r\nhi\r\n"


async def send(port: int, body: bytes) -> str:
    client, _ = await Client.connect(port)
    reply = await client.send("u@ours.test", ["x@theirs.test"], body)
    await client.close()
    return reply


async def test_each_listener_uses_its_banks_scanners(tmp_path: Path) -> None:
    oport = free_port()
    s = await make_stack(
        tmp_path,
        FakeMTA(),
        listen_originating=[f"127.0.0.1:{oport}"],
        originating_scanners=[],
        originating_sign=False,
    )
    try:
        inbound = await send(s.port, EXE)
        originating = await send(oport, EXE)
    finally:
        await s.service.shutdown()
        await s.mta.stop()
    assert "- BANNED: " in inbound
    assert originating.startswith("250 2.0.0 from MTA")
    assert len(s.mta.transactions) == 1


async def test_only_the_originating_listener_signs(tmp_path: Path) -> None:
    keys = tmp_path / "dkim"
    keystore.generate(keys, "ours.test", "ed", ed25519=True)
    oport = free_port()
    s = await make_stack(
        tmp_path,
        FakeMTA(),
        listen_originating=[f"127.0.0.1:{oport}"],
        dkim_keys=str(keys),
    )
    try:
        await send(s.port, PLAIN)
        await send(oport, PLAIN)
    finally:
        await s.service.shutdown()
        await s.mta.stop()
    inbound, originating = (t.data for t in s.mta.transactions)
    assert b"DKIM-Signature:" not in inbound
    assert originating.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert b" d=ours.test;" in originating


async def test_hostile_headers_get_a_verdict_not_a_retry_loop(
    tmp_path: Path,
) -> None:
    """Headers dkimpy cannot parse, with DNS unreachable: delivered with
    our field saying what could not be checked, never 4xx."""
    body = (
        b" continuation of nothing\r\n"
        b"DKIM-Signature: v=1; d=ours.test; s=x; h=from; bh=x; b=abc\r\n"
        b"Authentication-Results: mx.ours.test; dkim=pass\r\n" + PLAIN
    )
    s = await make_stack(
        tmp_path,
        FakeMTA(),
        inbound_verify=True,
        authserv_id="mx.ours.test",
        dns_servers=[f"127.0.0.1:{free_port()}"],  # nobody answers
        dns_budget=2.0,
    )
    try:
        reply = await send(s.port, body)
    finally:
        await s.service.shutdown()
        await s.mta.stop()
    assert reply.startswith("250 2.0.0 from MTA")
    (delivered,) = (t.data for t in s.mta.transactions)
    assert delivered.startswith(b"Authentication-Results: mx.ours.test;")
    assert b"dkim=permerror" in delivered
    assert b"mx.ours.test; dkim=pass" not in delivered
