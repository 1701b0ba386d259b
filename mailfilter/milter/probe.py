"""Is a milter listener answering? Option negotiation, as Postfix starts.

Used by the selftest: an SMTP greeting check would wrongly fail here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from mailfilter.milter import codec
from mailfilter.milter.server import read_packet

if TYPE_CHECKING:
    from mailfilter.addresses import Endpoint

# What Postfix 3.x offers: every v6 action and protocol bit.
_OFFER = codec.optneg(codec.VERSION, 0x1FF, 0x1FFFFF)


_DEADLINE = 3.0  # seconds for the whole exchange


async def negotiate(endpoint: Endpoint) -> str:
    """The negotiated "actions=0x.. protocol=0x.."; raises on failure."""
    async with asyncio.timeout(_DEADLINE):
        if endpoint.proto == "unix":
            reader, writer = await asyncio.open_unix_connection(endpoint.path)
        else:
            reader, writer = await asyncio.open_connection(
                endpoint.host, endpoint.port
            )
        try:
            writer.write(_OFFER)
            packet = await read_packet(reader)
            if packet is None or packet.command != codec.OPTNEG:
                raise codec.MilterProtocolError("no OPTNEG reply")
            _version, actions, protocol = codec.parse_optneg(packet)
            writer.write(codec.encode(codec.QUIT))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    return f"milter v6 actions=0x{actions:x} protocol=0x{protocol:x}"
