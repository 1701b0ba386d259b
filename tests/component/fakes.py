"""A fake reinjection MTA that speaks real SMTP/LMTP on a free port.

It supports PIPELINING (replies are computed per command, so pipelined
input works), records each transaction's raw bytes, and takes an error
queue, like Mailman's testing MTA: each entry is (phase, action) where
phase is "connect", "mail", "rcpt:<addr>", "data", "dot", "rset" and
action is a reply line, "hang", "drop" or "delay:<seconds>" (then carry
on). With `idle_close` set, a connection idle that many seconds gets
"421 ... timeout exceeded" and is closed, as Postfix's smtpd does.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from tests.support.ports import free_port

_ids = itertools.count(1)


@dataclass
class Transaction:
    """One message as the fake MTA saw it."""

    commands: list[str]
    sender: str
    recipients: list[str]
    data: bytes  # as on the wire, dot-stuffed, without the final ".\r\n"


@dataclass
class FakeMTA:
    """The fake downstream; start() it in a running loop."""

    lmtp: bool = False
    caps: tuple[str, ...] = (
        "PIPELINING",
        "SIZE 10240000",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
    )
    errors: dict[str, str] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    idle_close: float = 0.0

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self.port = free_port()
        self._server = await asyncio.start_server(
            self._client, "127.0.0.1", self.port
        )

    async def stop(self) -> None:
        """Close the listener."""
        self._server.close()

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            if await self._inject("connect", writer):
                return
            writer.write(b"220 fake.test ESMTP\r\n")
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _inject(self, phase: str, writer: asyncio.StreamWriter) -> bool:
        action = self.errors.get(phase)
        if action is None:
            return False
        if action == "hang":
            await asyncio.sleep(3600)
        if action.startswith("delay:"):
            await asyncio.sleep(float(action[6:]))
            return False
        if action == "drop":
            writer.close()
            return True
        writer.write(action.encode() + b"\r\n")
        return True

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        commands: list[str] = []
        sender = ""
        rcpts: list[str] = []
        while True:
            try:
                line = await asyncio.wait_for(
                    reader.readuntil(b"\r\n"), self.idle_close or None
                )
            except TimeoutError:
                writer.write(
                    b"421 4.4.2 fake.test Error: timeout exceeded\r\n"
                )
                await writer.drain()
                return
            text = line.decode("utf-8", "surrogateescape").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            commands.append(text)
            if verb in ("EHLO", "LHLO"):
                lines = ["fake.test", *self.caps]
                writer.write(
                    "".join(f"250-{x}\r\n" for x in lines[:-1]).encode()
                    + f"250 {lines[-1]}\r\n".encode()
                )
            elif verb == "XFORWARD":
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == "MAIL":
                if not await self._inject("mail", writer):
                    sender = text[10:].split(">")[0].lstrip("<")
                    writer.write(b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                addr = text[8:].split(">")[0].lstrip("<")
                if not await self._inject(f"rcpt:{addr}", writer):
                    rcpts.append(addr)
                    writer.write(b"250 2.1.5 Ok\r\n")
            elif verb == "DATA":
                if await self._inject("data", writer):
                    continue
                if not rcpts:
                    writer.write(b"554 5.5.1 Error: no valid recipients\r\n")
                    continue
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                await writer.drain()
                data = await self._read_data(reader, writer)
                if data is None:
                    return
                self.transactions.append(
                    Transaction(commands, sender, rcpts, data)
                )
                if not await self._inject("dot", writer):
                    qid = f"FAKE{next(_ids):05d}"
                    for _ in rcpts if self.lmtp else [0]:
                        writer.write(
                            f"250 2.0.0 Ok: queued as {qid}\r\n".encode()
                        )
                commands, sender, rcpts = [], "", []
            elif verb == "RSET":
                commands, sender, rcpts = [], "", []
                if not await self._inject("rset", writer):
                    writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == "NOOP":
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()

    async def _read_data(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes | None:
        if self.errors.get("mid-data") == "drop":
            await reader.read(10)
            writer.close()
            return None
        buf = b""
        while not buf.endswith(b"\r\n.\r\n") and buf != b".\r\n":
            chunk = await reader.read(65536)
            if not chunk:
                return None
            buf += chunk
        return buf[:-3]
