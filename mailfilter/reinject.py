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
failed; the caller turns that into a 4xx (style.md rule 1). After a 4xx
on any RCPT with SMTP input, nothing is sent, so Postfix's retry can never
make a duplicate (amavis Out/SMTP.pm:505-513).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter import xtext
from mailfilter.envelope import Client, MailParams, Recipient
from mailfilter.wire import dot_stuff

if TYPE_CHECKING:
    from mailfilter.addresses import Endpoint

_ENH = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}\b")
IDLE_REUSE_SECONDS = 30.0  # amavis closes cached sessions after 30 s idle
MAX_AGE_SECONDS = 60.0  # ... or 60 s of age (Out/SMTP/Session.pm)


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: code and text (continuation lines joined by space)."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def enhanced(self) -> str:
        """The enhanced status code, made up when the server gave none."""
        match = _ENH.match(self.text)
        if match:
            return match.group(0)
        return f"{self.code // 100}.6.0"

    @property
    def text_without_enhanced(self) -> str:
        """The text after the enhanced code."""
        match = _ENH.match(self.text)
        return self.text[match.end() :].lstrip() if match else self.text


class DownstreamError(Exception):
    """Reinjection failed for the whole message; never a verdict."""

    def __init__(
        self, section: str, detail: str, reply: Reply | None = None
    ) -> None:
        super().__init__(f"{section}: {detail}")
        self.section = section
        self.detail = detail
        self.reply = reply


class _Conn:
    """One open connection, after EHLO/LHLO."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        caps: dict[str, str],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.caps = caps
        self.opened = time.monotonic()
        self.used = self.opened

    async def read_reply(self) -> Reply:
        lines: list[str] = []
        while True:
            raw = await self.reader.readline()
            if not raw.endswith(b"\n"):
                raise ConnectionResetError("connection closed by server")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionError(f"malformed reply {line[:80]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return Reply(int(line[:3]), " ".join(lines))

    def close(self) -> None:
        self.writer.close()

    @property
    def fresh(self) -> bool:
        now = time.monotonic()
        return (
            now - self.used < IDLE_REUSE_SECONDS
            and now - self.opened < MAX_AGE_SECONDS
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )


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
        self._idle: list[_Conn] = []
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
    ) -> list[Reply]:
        """Send one message; a final reply per recipient, in order.

        `prefix` (our header fields) goes on the wire before `content`
        without joining them, so a large message is never copied for it.
        """
        out = _Outgoing(
            sender,
            recipients,
            prefix,
            content,
            params or MailParams(),
            client or Client(),
        )
        conn = await self._take()
        try:
            replies = await _transaction(conn, self.lmtp, out, smtp_input)
        except BaseException:
            conn.close()
            raise
        conn.used = time.monotonic()
        self._release(conn)
        return replies

    async def _take(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if conn.fresh:
                return conn
            conn.close()
        return await self._connect()

    def _release(self, conn: _Conn) -> None:
        if len(self._idle) < self._max_idle and conn.fresh:
            self._idle.append(conn)
        else:
            conn.close()

    async def _connect(self) -> _Conn:
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
        conn = _Conn(reader, writer, {})
        try:
            greeting = await conn.read_reply()
            if greeting.code != 220:
                raise DownstreamError("fwd-connect", str(greeting), greeting)
            verb = "LHLO" if self.lmtp else "EHLO"
            writer.write(f"{verb} {self.helo}\r\n".encode())
            ehlo = await _read_ehlo(conn)
            if ehlo.code != 250:
                raise DownstreamError("fwd-ehlo", str(ehlo), ehlo)
        except (OSError, ConnectionError) as exc:
            conn.close()
            raise DownstreamError("fwd-connect", str(exc)) from exc
        except BaseException:
            conn.close()
            raise
        return conn


async def _read_ehlo(conn: _Conn) -> Reply:
    lines: list[str] = []
    while True:
        raw = await conn.reader.readline()
        if not raw.endswith(b"\n"):
            raise ConnectionResetError("connection closed during EHLO")
        line = raw.decode("ascii", "replace").rstrip("\r\n")
        lines.append(line[4:])
        if line[3:4] != "-":
            break
    for keyword_line in lines[1:]:
        keyword, _, value = keyword_line.partition(" ")
        conn.caps[keyword.upper()] = value
    return Reply(int(line[:3]), lines[0])


def _mail_command(
    sender: str, params: MailParams, caps: dict[str, str]
) -> bytes:
    parts = [f"MAIL FROM:<{sender}>"]
    if params.body and "8BITMIME" in caps:
        parts.append(f"BODY={params.body}")
    if params.smtputf8 and "SMTPUTF8" in caps:
        parts.append("SMTPUTF8")
    if "DSN" in caps:
        if params.ret:
            parts.append(f"RET={params.ret}")
        if params.envid:
            parts.append(f"ENVID={params.envid}")
    return (" ".join(parts) + "\r\n").encode("utf-8", "surrogateescape")


def _rcpt_command(rcpt: Recipient, dsn: bool, null_sender: bool) -> bytes:
    parts = [f"RCPT TO:<{rcpt.address}>"]
    if dsn:
        if rcpt.notify and not null_sender:
            parts.append(f"NOTIFY={rcpt.notify}")
        if rcpt.orcpt:
            parts.append(f"ORCPT={rcpt.orcpt}")
    return (" ".join(parts) + "\r\n").encode("utf-8", "surrogateescape")


def _xforward_command(client: Client, caps: dict[str, str]) -> bytes:
    offered = set(caps.get("XFORWARD", "").upper().split())
    items = []
    for key, value in client.as_items():
        if key in offered:
            clean = re.sub(r'[^\x21-\x7e]|[<>()\\";@]', "?", value)
            items.append(f"{key}={xtext.encode(clean)[:255]}")
    if not items:
        return b""
    return ("XFORWARD " + " ".join(items) + "\r\n").encode("ascii")


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """One message to hand over: envelope, our header fields, the body."""

    sender: str
    recipients: tuple[Recipient, ...]
    prefix: bytes
    content: bytes
    params: MailParams
    client: Client


async def _transaction(
    conn: _Conn, lmtp: bool, out: _Outgoing, smtp_input: bool
) -> list[Reply]:
    caps = conn.caps
    count = len(out.recipients)
    if out.params.body == "8BITMIME" and "8BITMIME" not in caps:
        # amavis: no downgrade (Out/SMTP.pm:369-391); 10025 always offers it.
        bad = Reply(550, "5.6.3 Conversion to 7BIT required but not supported")
        return [bad] * count
    xforward = (
        _xforward_command(out.client, caps) if "XFORWARD" in caps else b""
    )
    commands = [xforward] if xforward else []
    commands.append(_mail_command(out.sender, out.params, caps))
    dsn = "DSN" in caps
    commands += [_rcpt_command(r, dsn, not out.sender) for r in out.recipients]
    pipelining = "PIPELINING" in caps
    if pipelining:
        # RFC 2920: DATA may end a pipelined group; one round trip for all.
        commands.append(b"DATA\r\n")
    try:
        replies = await _send_commands(conn, commands, pipelining)
    except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
        raise DownstreamError("fwd-mail", str(exc)) from exc
    if xforward:
        replies.pop(0)  # a refused XFORWARD is only logged by amavis
    go_ahead = replies.pop() if pipelining else None
    mail_reply, rcpt_replies = replies[0], replies[1:]
    accepted = [i for i, r in enumerate(rcpt_replies) if r.code < 300]
    tempfailed = [r for r in rcpt_replies if 400 <= r.code < 500]
    refused: Reply | None = None
    if mail_reply.code >= 400:
        refused = mail_reply
    elif tempfailed and smtp_input:
        refused = tempfailed[0]
    elif not accepted:
        refused = Reply(550, "no recipient accepted")
    if refused is not None:
        await _abandon(conn, go_ahead)
        if 400 <= refused.code < 500:
            section = "fwd-mail" if refused is mail_reply else "fwd-rcpt"
            raise DownstreamError(section, str(refused), refused)
        return [mail_reply] * count if refused is mail_reply else rcpt_replies
    finals = await _send_data(conn, lmtp, out, len(accepted), go_ahead)
    result = list(rcpt_replies)
    for index, reply in zip(accepted, finals, strict=True):
        result[index] = reply
    return result


async def _abandon(conn: _Conn, go_ahead: Reply | None) -> None:
    """End a transaction that must not deliver anything."""
    if go_ahead is not None and go_ahead.code == 354:
        # Already in DATA: the only safe way out is to drop the connection
        # without sending "." (FILTER_README).
        conn.close()
        raise DownstreamError("fwd-data-cmd", "transaction abandoned")
    await _rset(conn)


async def _send_commands(
    conn: _Conn, commands: list[bytes], pipelining: bool
) -> list[Reply]:
    if pipelining:
        conn.writer.write(b"".join(commands))
        await conn.writer.drain()
        return [await conn.read_reply() for _ in commands]
    replies = []
    for command in commands:
        conn.writer.write(command)
        replies.append(await conn.read_reply())
    return replies


async def _send_data(
    conn: _Conn,
    lmtp: bool,
    out: _Outgoing,
    accepted: int,
    go_ahead: Reply | None,
) -> list[Reply]:
    try:
        if go_ahead is None:
            conn.writer.write(b"DATA\r\n")
            go_ahead = await conn.read_reply()
    except (OSError, ConnectionError) as exc:
        raise DownstreamError("fwd-data-cmd", str(exc)) from exc
    if go_ahead.code != 354:
        if go_ahead.code < 500:
            raise DownstreamError("fwd-data-cmd", str(go_ahead), go_ahead)
        return [go_ahead] * accepted
    try:
        await _write_body(conn, out)
    except (OSError, ConnectionError) as exc:
        raise DownstreamError("fwd-data-contents", str(exc)) from exc
    try:
        count = accepted if lmtp else 1
        finals = [await conn.read_reply() for _ in range(count)]
    except (OSError, ConnectionError) as exc:
        raise DownstreamError("fwd-data-end", str(exc)) from exc
    return finals if lmtp else finals * accepted


_SMALL = 1 << 20  # below this, one write (one send) for everything
_SLICE = 1 << 20  # above it, slices with drain: no 20 MB transport buffer


async def _write_body(conn: _Conn, out: _Outgoing) -> None:
    """Prefix, dot-stuffed body and the final dot, with as few copies as
    the size allows: small messages go out in one send, large ones in
    slices of a memoryview, so the transport never buffers a full copy."""
    body = dot_stuff(out.content)
    prefix = dot_stuff(out.prefix) if out.prefix else b""
    writer = conn.writer
    if len(body) < _SMALL:
        writer.write(b"".join((prefix, body, b".\r\n")))
    else:
        writer.write(prefix)
        view = memoryview(body)
        for start in range(0, len(view), _SLICE):
            writer.write(view[start : start + _SLICE])
            await writer.drain()
        writer.write(b".\r\n")
    await writer.drain()


async def _rset(conn: _Conn) -> None:
    conn.writer.write(b"RSET\r\n")
    reply = await conn.read_reply()
    if reply.code != 250:
        raise ConnectionError(f"RSET refused: {reply}")
