"""max_connections bounds the messages being processed, not only the
connections: a client that hangs up after the final dot leaves its message
running, and that message keeps its slot until it is done."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailfilter.decision.verdict import ScanResult
from mailfilter.smtp import replies, slots
from tests.component.conftest import make_stack
from tests.component.fakes import FakeMTA
from tests.component.smtpclient import Client

if TYPE_CHECKING:
    from pathlib import Path

    from tests.component.conftest import Stack

BODY = b"Subject: x\r\n\r\nx\r\n"


class CountingScanner:
    """A slow scanner that records how many scans run at once."""

    name = "counting"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.done = 0

    async def scan(self, content: bytes) -> ScanResult:
        """Hold the scan open for a while, counting overlap."""
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        self.done += 1
        return ScanResult(self.name, ok=True)

    async def aclose(self) -> None:
        """Nothing to close."""


async def slow_stack(
    tmp_path: Path, seconds: float, **overrides: object
) -> tuple[Stack, CountingScanner]:
    """A stack whose every message takes `seconds` to scan."""
    s = await make_stack(tmp_path, FakeMTA(), **overrides)
    scanner = CountingScanner(seconds)
    ctx = s.service.pipeline.context
    ctx.scanners = [*ctx.scanners, scanner]
    return s, scanner


async def hang_up_after_dot(port: int) -> None:
    """Send one message and close without waiting for the final reply."""
    client, greeting = await Client.connect(port)
    assert greeting.startswith("220"), greeting
    await client.cmd("EHLO postfix.test")
    await client.cmd("MAIL FROM:<a@b>")
    await client.cmd("RCPT TO:<u@example.com>")
    assert (await client.cmd("DATA", timeout=60)).startswith("354")
    client.writer.write(BODY + b".\r\n")
    await client.writer.drain()
    client.writer.close()


async def test_clients_gone_after_the_dot_stay_within_max_connections(
    tmp_path,
):
    """30 clients that hang up after the dot never run more than
    max_connections scans at once, and every message is still delivered."""
    s, scanner = await slow_stack(tmp_path, 0.2, max_connections=2)
    try:
        for _ in range(30):
            await hang_up_after_dot(s.port)
        for _ in range(400):
            if len(s.mta.transactions) == 30:
                break
            await asyncio.sleep(0.05)
    finally:
        await s.service.shutdown()
        await s.mta.stop()
    assert 30 == len(s.mta.transactions)
    assert scanner.most <= 2, scanner.most


async def test_shutdown_waits_for_processing_whose_client_is_gone(tmp_path):
    """SIGTERM's drain waits for a message whose client hung up after the
    dot: it is delivered before the service closes its connections."""
    s, scanner = await slow_stack(tmp_path, 0.5)
    await hang_up_after_dot(s.port)
    await asyncio.sleep(0.2)  # the scan has started; the client is gone
    await s.service.shutdown()
    await s.mta.stop()
    assert 1 == scanner.done
    assert 1 == len(s.mta.transactions)


async def test_data_without_a_free_slot_gets_busy(tmp_path, monkeypatch):
    """When every slot stays taken past the wait, DATA gets a 4xx (the
    message is deferred, the connection stays usable)."""
    monkeypatch.setattr(slots, "ADMIT_WAIT", 0.3)
    s, _ = await slow_stack(tmp_path, 2.0, max_connections=1)
    try:
        await hang_up_after_dot(s.port)
        await asyncio.sleep(0.2)
        client, _ = await Client.connect(s.port)
        await client.cmd("EHLO postfix.test")
        await client.cmd("MAIL FROM:<a@b>")
        await client.cmd("RCPT TO:<u@example.com>")
        assert replies.BUSY == await client.cmd("DATA")
        assert replies.RSET == await client.cmd("RSET")
        await client.close()
    finally:
        await s.service.shutdown()
        await s.mta.stop()
