"""A tiny raw SMTP client for tests: exact bytes out, exact replies in."""

from __future__ import annotations

import asyncio
import contextlib


class Client:
    """Speaks to the filter; `cmd()` returns the (possibly multi-line) reply."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> tuple[Client, str]:
        """Connect and read the greeting."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        return client, await client.reply()

    async def reply(self, timeout: float = 30) -> str:
        """One full reply, lines joined by CRLF."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError("closed")
            lines.append(
                line.decode("utf-8", "surrogateescape").rstrip("\r\n")
            )
            if line[3:4] != b"-":
                return "\r\n".join(lines)

    async def cmd(self, text: str | bytes, timeout: float = 30) -> str:
        """Send one command line, return its reply."""
        data = text if isinstance(text, bytes) else text.encode()
        self.writer.write(data + b"\r\n")
        return await self.reply(timeout)

    async def send(
        self,
        sender: str,
        rcpts: list[str],
        body: bytes,
        *,
        mail_params: str = "",
        ehlo: bool = True,
    ) -> str:
        """A whole transaction, lock-step; returns the final reply."""
        if ehlo:
            await self.cmd("EHLO postfix.test")
        r = await self.cmd(f"MAIL FROM:<{sender}>{mail_params}")
        assert r.startswith("250"), r
        for rcpt in rcpts:
            r = await self.cmd(f"RCPT TO:<{rcpt}>")
            assert r.startswith("250"), r
        r = await self.cmd("DATA")
        assert r.startswith("354"), r
        stuffed = body.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        self.writer.write(stuffed + b".\r\n")
        return await self.reply()

    async def close(self) -> None:
        """QUIT and close."""
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self.cmd("QUIT", timeout=5)
        self.writer.close()
