"""The process as systemd drives it: SIGTERM drains, SIGHUP reloads."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.component.fakes import FakeMTA
from tests.component.smtpclient import Client
from tests.support.filter import REPO, start_filter
from tests.support.ports import free_port

BODY = b"Subject: x\r\n\r\nx\r\n"


@pytest.fixture
def started():
    """Filters a test started; any still running at the end are killed."""
    procs = []
    yield procs
    for mf in procs:
        if mf.proc.poll() is None:
            mf.kill()


async def wait_exit(proc, timeout: float = 20) -> int:
    """Wait for a subprocess without blocking the loop."""
    for _ in range(int(timeout * 20)):
        if proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.05)
    raise TimeoutError


async def sigterm_during_delivery(tmp_path, started, mta, *extra):
    """Start a filter, send one message, SIGTERM it half a second in.

    Returns the reply the client got and the filter process.
    """
    await mta.start()
    port = free_port()
    mf = await asyncio.to_thread(
        start_filter, tmp_path, port, mta.port, extra=list(extra)
    )
    started.append(mf)
    client, _ = await Client.connect(port)
    sending = asyncio.ensure_future(
        client.send("a@b", ["u@example.com"], BODY)
    )
    await asyncio.sleep(0.5)
    mf.proc.send_signal(signal.SIGTERM)
    reply = await sending
    client.writer.close()
    return reply, mf


async def test_sigterm_lets_in_flight_message_finish(tmp_path, started):
    """A message being reinjected when SIGTERM arrives still gets its 250."""
    mta = FakeMTA(errors={"dot": "delay:1.0"})
    reply, mf = await sigterm_during_delivery(tmp_path, started, mta)
    assert reply.startswith("250 2.0.0 from MTA(")
    assert 0 == await wait_exit(mf.proc)
    assert 1 == len(mta.transactions)
    await mta.stop()


async def test_sigterm_past_the_deadline_answers_421(tmp_path, started):
    """A message that cannot finish within shutdown_timeout: 421, Postfix retries."""
    mta = FakeMTA(errors={"dot": "hang"})
    reply, mf = await sigterm_during_delivery(
        tmp_path, started, mta, "--shutdown-timeout", "0.5"
    )
    assert reply.startswith("421 4.3.2")
    await wait_exit(mf.proc)
    await mta.stop()


async def test_sighup_with_a_broken_file_keeps_the_old_settings(
    tmp_path, started
):
    """SIGHUP with a broken settings file is refused, logged, and mail still flows."""
    first = FakeMTA()
    await first.start()
    port = free_port()
    conf = tmp_path / "mf.toml"
    conf.write_text(f'forward = "127.0.0.1:{first.port}"\n')
    mf = await asyncio.to_thread(
        start_filter, tmp_path, port, first.port, extra=["--config", str(conf)]
    )
    started.append(mf)
    client, _ = await Client.connect(port)
    assert (await client.send("a@b", ["u@example.com"], BODY)).startswith(
        "250"
    )
    conf.write_text("forward = [\n")  # broken
    os.kill(mf.proc.pid, signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert "reload failed, keeping the old settings" in mf.log()
    assert (
        await client.send("a@b", ["u@example.com"], BODY, ehlo=False)
    ).startswith("250")
    await client.close()
    mf.stop()
    assert 2 == len(first.transactions)
    await first.stop()


async def test_sighup_switches_policy(tmp_path, started):
    """After SIGHUP a new policy file applies to new messages."""
    mta = FakeMTA()
    await mta.start()
    policy = tmp_path / "policy.toml"
    text = (REPO / "policy/default.toml").read_text()
    policy.write_text(text)
    port = free_port()
    mf = await asyncio.to_thread(
        start_filter, tmp_path, port, mta.port, policy=policy
    )
    started.append(mf)
    exe = (
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=run.exe\r\n\r\nMZxx\r\n--b--\r\n"
    )
    client, _ = await Client.connect(port)
    assert (await client.send("a@b", ["u@example.com"], exe)).startswith(
        "250 2.7.0 Ok, discarded"
    )
    # The new policy lets banned files pass (destiny pass).
    new = text.replace(
        '[destiny.BANNED]\naction = "discard"',
        '[destiny.BANNED]\naction = "pass"',
    )
    assert new != text, "policy/default.toml layout changed; update this test"
    policy.write_text(new)
    os.kill(mf.proc.pid, signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert (
        await client.send("a@b", ["u@example.com"], exe, ehlo=False)
    ).startswith("250 2.0.0 from MTA(")
    await client.close()
    mf.stop()
    await mta.stop()
