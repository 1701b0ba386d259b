"""amavis's answers to the commands that carry no mail.

VRFY, HELP, EXPN, TURN, ETRN, SEND, SOML, SAML, AUTH and STARTTLS get
amavis's fixed replies (docs/amavis-compat.md, "Fixed replies"), and the
replies aiosmtpd sends on its own (unknown commands, over-long or empty
lines, an idle timeout) are put in our words (`foreign`), so that Postfix
only ever sees the named replies of `replies.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AnyStr, cast

from mailfilter.smtp import foreign, replies
from mailfilter.smtp.batching import BatchedReplies

if TYPE_CHECKING:
    import asyncio


class AmavisDialect(BatchedReplies):
    """The mail-less commands and aiosmtpd's own replies, amavis style."""

    hostname: str

    async def smtp_VRFY(self, arg: str | None) -> None:
        """VRFY is never answered truthfully, as in amavis."""
        await self._reply(replies.VRFY)

    async def smtp_HELP(self, arg: str | None) -> None:
        """HELP."""
        await self._reply(replies.HELP)

    async def smtp_EXPN(self, arg: str | None) -> None:
        """EXPN is not implemented (amavis's text)."""
        await self._reply(replies.NOT_IMPLEMENTED.format(command="EXPN"))

    # amavis answers these "not implemented", as it does EXPN.
    async def smtp_TURN(self, arg: str | None) -> None:
        """TURN: not implemented."""
        await self._reply(replies.NOT_IMPLEMENTED.format(command="TURN"))

    async def smtp_ETRN(self, arg: str | None) -> None:
        """ETRN: not implemented."""
        await self._reply(replies.NOT_IMPLEMENTED.format(command="ETRN"))

    async def smtp_SEND(self, arg: str | None) -> None:
        """SEND: not implemented."""
        await self._reply(replies.NOT_IMPLEMENTED.format(command="SEND"))

    async def smtp_SOML(self, arg: str | None) -> None:
        """SOML: not implemented."""
        await self._reply(replies.NOT_IMPLEMENTED.format(command="SOML"))

    async def smtp_SAML(self, arg: str | None) -> None:
        """SAML: not implemented."""
        await self._reply(replies.NOT_IMPLEMENTED.format(command="SAML"))

    # AUTH and STARTTLS are off (docs/amavis-compat.md): amavis then does
    # not know them, so neither do we (aiosmtpd would answer 500/454 in
    # its own words).
    async def smtp_AUTH(self, arg: str | None) -> None:
        """AUTH is off: an unknown command."""
        await self._reply(replies.UNKNOWN_COMMAND.format(command="AUTH"))

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        """STARTTLS is off: an unknown command."""
        await self._reply(replies.UNKNOWN_COMMAND.format(command="STARTTLS"))

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd's own replies, in our words (`foreign`)."""
        if isinstance(status, str):
            await super().push(foreign.ours(status))
        else:
            await super().push(status)

    def _timeout_cb(self) -> None:
        """Idle timeout: say so before closing, as amavis does."""
        transport = cast("asyncio.WriteTransport | None", self.transport)
        if transport is not None and not transport.is_closing():
            transport.write(
                (replies.TIMEOUT.format(helo=self.hostname) + "\r\n").encode()
            )
        super()._timeout_cb()  # type: ignore[no-untyped-call]
