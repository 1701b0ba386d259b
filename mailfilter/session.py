"""One Postfix connection as the service sees it: counted against
max_connections, holding a processing slot from DATA until its message is
done (even when the client has gone), and closed when the client closes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from mailfilter.smtp import replies
from mailfilter.smtp.server import FilterSMTP

log = logging.getLogger("mailfilter.app")

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable

    from mailfilter.app import Service
    from mailfilter.smtp.envelope import Envelope


BACKLOG = 4096


class Session(FilterSMTP):
    """A FilterSMTP that the service can count and close."""

    def __init__(self, service: Service, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._service = service
        self._holders = 0
        self._uncounted = self._process
        self._process = self._counted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Past max_connections: 421 and close (Postfix retries)."""
        sessions = self._service._sessions
        if len(sessions) >= self._service.config.max_connections:
            writer = cast("asyncio.WriteTransport", transport)
            writer.write((replies.SHUTTING_DOWN + "\r\n").encode())
            transport.close()
            return
        sessions.add(self)
        try:
            super().connection_made(transport)
        except Exception:
            # asyncio would drop the connection without a word; say why.
            log.exception("(!!)cannot start an SMTP session")
            sessions.discard(self)
            transport.close()

    def eof_received(self) -> bool | None:
        """The client closed its side: close ours too.

        aiosmtpd cancels its command loop on EOF but keeps the transport
        half-open; when that happens before the greeting (port probes,
        health checks, a client's connect timeout), nothing closes it until
        idle_timeout, and the session keeps a max_connections slot that
        long. Nothing more can be said to a client that has gone, and a
        message already being processed holds its own slot.
        """
        super().eof_received()
        return False

    def connection_lost(self, error: Exception | None) -> None:
        """Forget the session."""
        if self not in self._service._sessions:
            return
        self._service._sessions.discard(self)
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str | None) -> None:
        """Hold a processing slot from DATA until processing ends.

        Two holders share the slot: this command (until the reply is
        sent, or the client is gone) and the processing task (until the
        message is done, even when nobody waits for it any more). It is
        given back when both have let go, so the drain on SIGTERM waits
        for orphaned processing, and never cuts a reply about to be sent.
        """
        # Waiting for a slot is not idleness.
        self._reset_timeout(self._busy_timeout)
        if not await self._service.slots.admit():
            await self._reply(replies.BUSY)
            return
        self._holders = 1
        try:
            await super().smtp_DATA(arg)
        finally:
            self._let_go()

    def _counted(self, envelope: Envelope) -> Awaitable[list[str]]:
        # Called synchronously as the processing task is created: the
        # task holds the slot from then on, with no await in between.
        self._holders += 1
        return self._process_then_let_go(envelope)

    async def _process_then_let_go(self, envelope: Envelope) -> list[str]:
        try:
            return await self._uncounted(envelope)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            self._service.slots.release()

    def say_goodbye(self) -> None:
        """421 and close (shutdown)."""
        transport = cast("asyncio.WriteTransport | None", self.transport)
        if transport is not None and not transport.is_closing():
            transport.write((replies.SHUTTING_DOWN + "\r\n").encode())
            transport.close()
