"""Replies to pipelined commands leave together (RFC 2920 section 3.2).

Postfix sends MAIL, RCPT... and DATA in one packet. aiosmtpd writes each
reply at once, so a pipelining client gets one small packet per command,
and with Nagle's algorithm on either side that costs a round trip each.
`BatchedReplies` queues replies while more command lines are buffered and
sends them in one write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AnyStr

from mailfilter.smtp.lean import LeanSMTP

if TYPE_CHECKING:
    from typing import Any


class BatchedReplies(LeanSMTP):
    """aiosmtpd's SMTP with a reply queue that pipelined commands share."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[bytes] = []

    async def _reply(self, text: str, *, flush: bool = False) -> None:
        """Queue a reply; send the queue unless more commands are waiting.

        With a pipelining client (Postfix sends MAIL, RCPT... and DATA in
        one packet), the replies then leave in one packet too (RFC 2920
        §3.2 allows it) instead of one send each. A reply the client must
        see before it sends more (354, the final reply, QUIT) is sent at
        once, as is anything when no further command line is buffered.
        """
        self._queue(text)
        # CPython's StreamReader keeps unread bytes in `_buffer`.
        waiting = b"\n" in self._reader._buffer  # type: ignore[attr-defined]
        if flush or not waiting:
            await self._flush()

    def _queue(self, text: str) -> None:
        self._pending.append(text.encode("utf-8", "surrogateescape") + b"\r\n")

    async def _flush(self) -> None:
        if self._pending:
            self._writer.write(b"".join(self._pending))
            self._pending.clear()
            await self._writer.drain()

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd's own replies: send ours first, keep the order."""
        await self._flush()
        await super().push(status)
