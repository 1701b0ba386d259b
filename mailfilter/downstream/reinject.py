"""Hand a message back to Postfix (10025) and report per-recipient replies.

A small SMTP/LMTP client of our own, on asyncio streams. aiosmtplib cannot
serve on this path: it has no LMTP (one reply per recipient after DATA),
no PIPELINING (its protocol drops replies to commands written together),
and it re-normalises and re-stuffs the body with several full copies. We
need the bytes exactly as received, pipelined commands (Postfix offers
PIPELINING; lock-step costs one round trip per command) and reuse of the
connection across messages, as amavis does.

Contract: `Downstream.deliver()` either returns one final `Reply` per
recipient, or raises `DownstreamError` whose `section` says where it
failed; the caller turns that into a 4xx (docs/engineering-rules.md, Rule 1).
After a 4xx on any RCPT with SMTP input, nothing is sent, so Postfix's retry
can never make a duplicate (amavis Out/SMTP.pm:505-513).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from mailfilter.downstream.connection import (
    Conn,
    DownstreamError,
    Reply,
    read_ehlo,
)
from mailfilter.downstream.transaction import (
    Outgoing,
    StaleConnectionError,
    transaction,
)
from mailfilter.smtp.envelope import Client, MailParams, Recipient

if TYPE_CHECKING:
    from mailfilter.addresses import Endpoint

__all__ = ["Downstream", "DownstreamError", "Reply"]


class Downstream:
    """A cache of connections to one reinjection endpoint."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        helo: str = "localhost",
        max_idle: int = 32,
    ) -> None:
        self.endpoint = endpoint
        self.helo = helo
        self.lmtp = endpoint.proto == "lmtp"
        self._idle: list[Conn] = []
        self._max_idle = max_idle

    @property
    def label(self) -> str:
        """amavis's `smtp:[127.0.0.1]:10025` form, used in replies."""
        proto = "lmtp" if self.lmtp else "smtp"
        return f"{proto}:[{self.endpoint.host}]:{self.endpoint.port}"

    async def aclose(self) -> None:
        """Close every cached connection (QUIT is a courtesy, not needed)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.writer.write(b"QUIT\r\n")
                conn.close()

    async def capabilities(self) -> dict[str, str]:
        """EHLO keywords of the endpoint (for the selftest)."""
        conn = await self._connect()
        caps = dict(conn.caps)
        self._release(conn)
        return caps

    async def deliver(
        self,
        sender: str,
        recipients: tuple[Recipient, ...],
        content: bytes,
        *,
        prefix: bytes = b"",
        params: MailParams | None = None,
        client: Client | None = None,
        smtp_input: bool = True,
        dot_lines: bool = True,
    ) -> list[Reply]:
        """Send one message; a final reply per recipient, in order.

        `prefix` (our header fields) goes on the wire before `content`
        without joining them, so a large message is never copied for it.
        """
        out = Outgoing(
            sender,
            recipients,
            prefix,
            content,
            params or MailParams(),
            client or Client(),
            dot_lines,
        )
        conn, pooled = await self._take()
        try:
            replies = await transaction(
                conn, self.lmtp, out, smtp_input, probe=pooled
            )
        except StaleConnectionError:
            # The server closed it while it sat in the pool; nothing was
            # sent on it. Once more, on a new connection (never probed).
            conn.close()
            conn = await self._connect()
            try:
                replies = await transaction(conn, self.lmtp, out, smtp_input)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        conn.used = time.monotonic()
        self._release(conn)
        return replies

    async def _take(self) -> tuple[Conn, bool]:
        """A connection, and whether it came from the pool."""
        while self._idle:
            conn = self._idle.pop()
            if conn.fresh:
                return conn, True
            conn.close()
        return await self._connect(), False

    def _release(self, conn: Conn) -> None:
        if len(self._idle) < self._max_idle and conn.fresh:
            self._idle.append(conn)
        else:
            conn.close()

    async def _connect(self) -> Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self.endpoint.host, self.endpoint.port, limit=1 << 16
            )
        except OSError as exc:
            raise DownstreamError(
                "fwd-connect",
                f"All attempts (1) failed connecting to {self.label}: "
                f"{exc.strerror or exc}",
            ) from exc
        conn = Conn(reader, writer, {})
        try:
            greeting = await conn.read_reply()
            if greeting.code != 220:
                raise DownstreamError("fwd-connect", str(greeting), greeting)
            verb = "LHLO" if self.lmtp else "EHLO"
            writer.write(f"{verb} {self.helo}\r\n".encode())
            ehlo = await read_ehlo(conn)
            if ehlo.code != 250:
                raise DownstreamError("fwd-ehlo", str(ehlo), ehlo)
        except (OSError, ConnectionError) as exc:
            conn.close()
            raise DownstreamError("fwd-connect", str(exc)) from exc
        except BaseException:
            conn.close()
            raise
        return conn
