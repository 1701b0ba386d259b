"""One mail transaction on an open connection: commands, body, replies.

XFORWARD, MAIL and RCPT (with the DSN, BODY and SMTPUTF8 parameters the
server offers) and DATA go out in one pipelined write (RFC 2920); the
body follows as received, dot-stuffed, in as few writes and copies as its
size allows. After a 4xx RCPT under SMTP input nothing is sent: the
transaction is reset, or, if DATA was already accepted, the connection is
dropped without the final dot (FILTER_README), so a retry by Postfix can
never deliver twice.

A connection taken from the pool may have been closed by the server in
the meantime (its idle timer, a restart). Such a connection is probed: an
RSET goes first in the same pipelined write, and if its reply does not come
back as 250, nothing else on that connection can have been acted on, so
`StaleConnection` lets the caller start over on a new one.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter.downstream.connection import Conn, DownstreamError, Reply
from mailfilter.smtp import xtext
from mailfilter.smtp.wire import dot_stuff

if TYPE_CHECKING:
    from mailfilter.smtp.envelope import Client, MailParams, Recipient


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
class Outgoing:
    """One message to hand over: envelope, our header fields, the body."""

    sender: str
    recipients: tuple[Recipient, ...]
    prefix: bytes
    content: bytes
    params: MailParams
    client: Client
    dot_lines: bool = True  # False: no line of content starts with "."


class StaleConnectionError(ConnectionError):
    """A pooled connection failed its probe; nothing was sent on it."""


async def transaction(
    conn: Conn,
    lmtp: bool,
    out: Outgoing,
    smtp_input: bool,
    *,
    probe: bool = False,
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
    if probe:
        commands.insert(0, b"RSET\r\n")
    try:
        replies = await _send_commands(conn, commands, pipelining, probe)
    except StaleConnectionError:
        raise
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


async def _abandon(conn: Conn, go_ahead: Reply | None) -> None:
    """End a transaction that must not deliver anything."""
    if go_ahead is not None and go_ahead.code == 354:
        # Already in DATA: the only safe way out is to drop the connection
        # without sending "." (FILTER_README).
        conn.close()
        raise DownstreamError("fwd-data-cmd", "transaction abandoned")
    try:
        await _rset(conn)
    except (OSError, ConnectionError, asyncio.IncompleteReadError):
        # The outcome is known already; a failed RSET only means this
        # connection is not reused. Raising here would turn a known
        # outcome into a 4xx for the whole message.
        conn.close()


async def _send_commands(
    conn: Conn, commands: list[bytes], pipelining: bool, probe: bool
) -> list[Reply]:
    written = False
    if probe:
        # With PIPELINING the RSET leaves with the rest: no extra round
        # trip. Nothing is acted on before its reply is read, and no body
        # is sent before every reply is, so giving up here is always safe.
        first = b"".join(commands) if pipelining else commands[0]
        try:
            conn.writer.write(first)
            await conn.writer.drain()
            rset = await conn.read_reply()
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
            raise StaleConnectionError(str(exc)) from exc
        if rset.code != 250:
            raise StaleConnectionError(str(rset))
        commands = commands[1:]
        written = pipelining
    if pipelining:
        if not written:
            conn.writer.write(b"".join(commands))
            await conn.writer.drain()
        return [await conn.read_reply() for _ in commands]
    replies = []
    for command in commands:
        conn.writer.write(command)
        replies.append(await conn.read_reply())
    return replies


async def _send_data(
    conn: Conn,
    lmtp: bool,
    out: Outgoing,
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


async def _write_body(conn: Conn, out: Outgoing) -> None:
    """Prefix, dot-stuffed body and the final dot, with as few copies as
    the size allows: small messages go out in one send, large ones in
    slices of a memoryview, so the transport never buffers a full copy."""
    body = dot_stuff(out.content, dot_lines=out.dot_lines)
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


async def _rset(conn: Conn) -> None:
    conn.writer.write(b"RSET\r\n")
    reply = await conn.read_reply()
    if reply.code != 250:
        raise ConnectionError(f"RSET refused: {reply}")
