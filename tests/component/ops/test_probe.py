"""The probe's SMTP side against a loopback aiosmtpd, with injected errors.

The full run with a real IMAP server (Dovecot) is in
tests/integration/test_probe_dovecot.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

import pytest
from aiosmtpd.controller import Controller

from mailfilter.ops import probe, probe_cli
from tests.support.ports import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


class Handler:
    """Accepts mail, or answers with the next injected reply."""

    def __init__(self) -> None:
        self.rcpt_reply: str | None = None
        self.data_reply = "250 2.0.0 Ok: queued as 4XYZ"
        self.messages: list[bytes] = []

    async def handle_RCPT(
        self, server, session, envelope, address, rcpt_options
    ):
        """Refuse when a RCPT reply was injected."""
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        """Keep the message and give the configured reply."""
        self.messages.append(envelope.content)
        return self.data_reply


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Handler]]:
    """An aiosmtpd server on a free loopback port."""
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


def cfg_for(
    port: int, *, timeout: float = 5.0, imap_port: int = 1
) -> probe.ProbeConfig:
    """A probe config aimed at loopback ports."""
    return probe.ProbeConfig(
        smtp=("127.0.0.1", port),
        sender="probe@example.org",
        rcpt="u@example.com",
        imap=("127.0.0.1", imap_port),
        imap_user="u",
        imap_password="p",
        timeout=timeout,
    )


async def test_accepted_message_carries_the_tag(
    smtp: tuple[Controller, Handler],
) -> None:
    """A 250 is success, with the reply text and the tag in the message."""
    controller, handler = smtp
    cfg = cfg_for(controller.port)
    ok, reply = await probe.send(
        cfg, probe.build_message(cfg, "abc.7"), "probe.test"
    )
    assert (True, "250 2.0.0 Ok: queued as 4XYZ") == (ok, reply)
    assert b"X-Mailfilter-Probe: abc.7" in handler.messages[0]


async def test_refused_recipient_is_a_failure(
    smtp: tuple[Controller, Handler],
) -> None:
    """A 550 to RCPT is a failed sample with the server's reply."""
    controller, handler = smtp
    handler.rcpt_reply = "550 5.1.1 no such user"
    cfg = cfg_for(controller.port)
    assert (False, "550 5.1.1 no such user") == await probe.send(
        cfg, probe.build_message(cfg, "abc.1"), "probe.test"
    )


async def test_tempfail_after_data_is_a_failure(
    smtp: tuple[Controller, Handler],
) -> None:
    """A 451 after DATA (e.g. a scanner down) is a failed sample."""
    controller, handler = smtp
    handler.data_reply = "451 4.3.0 scanner unavailable"
    cfg = cfg_for(controller.port)
    assert (False, "451 4.3.0 scanner unavailable") == await probe.send(
        cfg, probe.build_message(cfg, "abc.2"), "probe.test"
    )


async def test_connection_refused_is_a_failure() -> None:
    """Nobody listening is a failure that names the error."""
    cfg = cfg_for(free_port())
    ok, reply = await probe.send(
        cfg, probe.build_message(cfg, "abc.3"), "probe.test"
    )
    assert (False, "SMTPConnectError") == (ok, reply.split(":")[0])


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and never greets: a hung MTA."""

    async def hang(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_hung_server_times_out(silent_server: int) -> None:
    """A server that never answers fails the sample within the timeout."""
    cfg = cfg_for(silent_server, timeout=0.5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ok, reply = await probe.send(
        cfg, probe.build_message(cfg, "abc.4"), "probe.test"
    )
    assert False is ok
    assert "Timeout" in reply
    assert loop.time() - t0 < 10.0


async def test_smtp_timeout_is_separate_from_the_delivery_timeout(
    silent_server: int,
) -> None:
    """--smtp-timeout ends a hung SMTP session long before --timeout."""
    cfg = cfg_for(silent_server, timeout=30.0)
    cfg = dataclasses.replace(cfg, smtp_timeout=0.5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ok, reply = await probe.send(
        cfg, probe.build_message(cfg, "abc.5"), "probe.test"
    )
    assert False is ok
    assert "Timeout" in reply
    assert loop.time() - t0 < 10.0


def test_smtp_timeout_flag() -> None:
    """The flag reaches the config; without it the SMTP timeout is unset."""
    base = ["--smtp", "127.0.0.1:25", "--from", "a@b", "--to", "c@d",
            "--imap-user", "u", "--imap-password", "p"]
    cfg, _ = probe_cli.parse_args([*base, "--smtp-timeout", "5"])
    assert 5.0 == cfg.smtp_timeout
    cfg, _ = probe_cli.parse_args(base)
    assert cfg.smtp_timeout is None


async def test_run_fails_fast_without_imap(
    smtp: tuple[Controller, Handler],
) -> None:
    """If IMAP cannot be reached at start, run() raises ProbeError naming it."""
    controller, _ = smtp
    imap_port = free_port()
    cfg = cfg_for(controller.port, timeout=1.5, imap_port=imap_port)
    with pytest.raises(
        probe.ProbeError, match=f"127.0.0.1:{imap_port}.*Connection"
    ):
        await probe.run(cfg, lambda sample: None, asyncio.Event())
