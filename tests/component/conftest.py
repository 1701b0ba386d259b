"""Fixtures: an in-process mailfilter service in front of a FakeMTA."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mailfilter import config as configmod
from mailfilter.app import Service
from tests.component.fakes import FakeMTA
from tests.support.ports import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    """The service under test and its fake downstream."""

    service: Service
    mta: FakeMTA
    port: int
    quarantine: Path


async def make_stack(tmp_path: Path, mta: FakeMTA, **overrides: Any) -> Stack:
    """Start a FakeMTA and a mailfilter Service with scanners off."""
    await mta.start()
    port = free_port()
    settings: dict[str, Any] = {
        "listen": [overrides.pop("listen_proto", "") + f"127.0.0.1:{port}"],
        "forward": ("lmtp:" if mta.lmtp else "") + f"127.0.0.1:{mta.port}",
        "clamd": "off",
        "spamd": "off",
        "policy": str(REPO / "policy/default.toml"),
        "quarantine": str(tmp_path / "quarantine"),
        "hostname": "filter.test.invalid",
        "log_to": "stderr",
        # Mail authentication has its own tests (tests/unit/auth,
        # tests/integration/test_auth_*.py); these keep the bytes as sent.
        "inbound_verify": False,
        "listen_originating": [],
    }
    settings.update(overrides)
    config = configmod.load(None, settings)
    service = Service(config, None, settings)
    await service.start()
    return Stack(service, mta, port, tmp_path / "quarantine")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A service in front of a plain SMTP FakeMTA."""
    s = await make_stack(tmp_path, FakeMTA())
    yield s
    await s.service.shutdown()
    await s.mta.stop()
    await asyncio.sleep(0)


SIMPLE = b"Subject: x\r\n\r\nx\r\n"


async def one_message(
    tmp_path: Path,
    mta: FakeMTA,
    body: bytes = SIMPLE,
    *,
    rcpts: tuple[str, ...] = ("u@example.com",),
    **overrides: Any,
) -> tuple[str, Stack]:
    """Start a stack, send one message from a@b, stop; (reply, stack)."""
    from tests.component.smtpclient import Client

    s = await make_stack(tmp_path, mta, **overrides)
    try:
        client, _ = await Client.connect(s.port)
        reply = await client.send("a@b", list(rcpts), body)
        await client.close()
    finally:
        await s.service.shutdown()
        await s.mta.stop()
    return reply, s
