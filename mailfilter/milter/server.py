"""The milter listener: asyncio streams in front of `MilterSession`.

`--listen milter:HOST:PORT` or `milter:unix:/path`. Each packet waits at
most `idle_timeout`; the end-of-message step runs under `busy_timeout`
(scan budget plus margin). Anything that is not milter protocol, or a
deadline passed, closes the connection: Postfix then applies its
`milter_default_action` (tempfail in the shipped recipe), so a broken
filter defers mail instead of passing it unscanned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailfilter.milter import codec
from mailfilter.milter.session import MilterSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailfilter.addresses import Endpoint
    from mailfilter.milter.session import Process

log = logging.getLogger("mailfilter.milter")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits, from the settings."""

    size_limit: int
    max_recipients: int
    idle_timeout: float
    busy_timeout: float
    # Discarded messages go to Postfix's hold queue instead of away.
    hold: bool = False


async def read_packet(
    reader: asyncio.StreamReader,
) -> codec.Packet | None:
    """The next packet, or None at a clean end of stream."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise codec.MilterProtocolError("truncated packet") from exc
        return None
    length = codec.packet_length(head)
    data = await reader.readexactly(length)
    return codec.Packet(data[:1], data[1:])


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    session: MilterSession,
    limits: Limits,
) -> None:
    """Run one connection to its end; never raises.

    Postfix writes header fields and body chunks without waiting for us
    (SMFIP_NR_HDR, SMFIP_NR_BODY), so one read often holds many packets:
    they are handled together and their replies written in one go.
    """
    buffer = bytearray()
    try:
        while not session.closed:
            async with asyncio.timeout(limits.idle_timeout):
                data = await reader.read(1 << 18)
            if not data:
                if buffer:
                    raise codec.MilterProtocolError("truncated packet")
                break
            buffer += data
            out: list[bytes] = []
            for packet in _complete_packets(buffer):
                out += await _handle(session, packet, limits)
                if session.closed:
                    break
            if out:
                writer.write(b"".join(out))
                await writer.drain()
    except (
        codec.MilterProtocolError,
        ConnectionError,
        TimeoutError,
    ) as exc:
        log.warning("(!)milter connection closed: %s", exc or type(exc))
    except Exception:
        log.exception("(!!)milter connection failed")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _complete_packets(buffer: bytearray) -> list[codec.Packet]:
    """Take every complete packet off the front of `buffer`."""
    packets = []
    start = 0
    while len(buffer) - start >= 4:  # the length prefix is 4 bytes
        length = codec.packet_length(bytes(buffer[start : start + 4]))
        end = start + 4 + length
        if end > len(buffer):
            break
        packets.append(
            codec.Packet(
                bytes(buffer[start + 4 : start + 5]),
                bytes(buffer[start + 5 : end]),
            )
        )
        start = end
    del buffer[:start]
    return packets


async def _handle(
    session: MilterSession, packet: codec.Packet, limits: Limits
) -> list[bytes]:
    if packet.command == codec.BODYEOB:
        async with asyncio.timeout(limits.busy_timeout):
            return await session.handle(packet)
    return await session.handle(packet)


async def start(
    endpoint: Endpoint, process: Process, settings: Callable[[], Limits]
) -> asyncio.Server:
    """Listen on `endpoint` (TCP or a unix socket).

    `settings` is asked per connection, so a SIGHUP reload applies to the
    next connection, as with the SMTP listeners.
    """
    local = (endpoint.host or endpoint.path, endpoint.port)

    async def accept(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = settings()
        session = MilterSession(
            process,
            local_addr=local,
            size_limit=limits.size_limit,
            max_recipients=limits.max_recipients,
            hold=limits.hold,
        )
        await serve_connection(reader, writer, session, limits)

    if endpoint.proto == "unix":
        _remove_stale_socket(Path(endpoint.path))
        return await asyncio.start_unix_server(
            accept, path=endpoint.path, limit=1 << 18
        )
    return await asyncio.start_server(
        accept,
        host=endpoint.host,
        port=endpoint.port,
        reuse_address=True,
        limit=1 << 18,
    )


def _remove_stale_socket(path: Path) -> None:
    """A socket left by a crashed run would make the bind fail; a file
    that is not a socket is never removed."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
