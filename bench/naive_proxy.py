"""The "naive aiosmtpd -> aiosmtplib proxy" the issue compares against.

An aiosmtpd server whose handle_DATA sends each message on with
aiosmtplib.send() (a new connection per message, no pipelining), the way
most Python examples do it. Measured in the same run as mailfilter, it
turns the issue's "about 0.14 of the loopback limit on a 2-core machine"
into a figure of this machine.

    python -m bench.naive_proxy LISTEN_PORT FORWARD_PORT
"""

from __future__ import annotations

import asyncio
import sys

import aiosmtplib
from aiosmtpd.smtp import SMTP


class Relay:
    """aiosmtpd handler: forward every message with aiosmtplib."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def handle_DATA(self, _server, _session, envelope) -> str:  # noqa: N802
        await aiosmtplib.send(
            envelope.original_content,
            sender=envelope.mail_from,
            recipients=envelope.rcpt_tos,
            hostname="127.0.0.1",
            port=self.port,
        )
        return "250 2.0.0 Ok"


async def main(listen: int, forward: int) -> None:
    """Serve until killed."""
    relay = Relay(forward)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(relay, hostname="naive", enable_SMTPUTF8=True),
        "127.0.0.1",
        listen,
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
