"""LeanSMTP finds the same commands, AUTH mechanisms and hooks as aiosmtpd."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP

from mailfilter.smtp.server import FilterSMTP


def _filter() -> FilterSMTP:
    async def process(envelope: object) -> list[str]:
        return []

    return FilterSMTP(
        process,  # type: ignore[arg-type]
        helo_name="mx.example.org",
        local_addr=("127.0.0.1", 10024),
        lmtp=False,
        size_limit=1000,
        max_recipients=10,
        idle_timeout=10,
        busy_timeout=10,
    )


def test_every_command_method_is_found() -> None:
    async def build() -> FilterSMTP:
        return _filter()

    proto = asyncio.run(build())
    commands = {
        name.removeprefix("smtp_")
        for name in object.__dir__(proto)
        if name.startswith("smtp_")
    }
    assert set(proto._smtp_methods) == commands
    # Our own commands, not only aiosmtpd's.
    assert {"XFORWARD", "LHLO", "DATA", "VRFY"} <= commands
    for name, method in proto._smtp_methods.items():
        assert method.__self__ is proto
        assert method.__func__ is getattr(FilterSMTP, f"smtp_{name}")


def test_auth_mechanisms_and_hooks_match_plain_aiosmtpd() -> None:
    async def build() -> tuple[FilterSMTP, SMTP]:
        return _filter(), SMTP(None)

    lean, plain = asyncio.run(build())
    assert set(lean._auth_methods) == set(plain._auth_methods)
    assert lean._auth_methods  # aiosmtpd's built-in LOGIN and PLAIN
    assert lean._handle_hooks == plain._handle_hooks == {}
    assert not hasattr(lean.event_handler, "handle_exception")
    assert not hasattr(lean.event_handler, "process_message")
