"""The SMTP/LMTP side that Postfix talks to: aiosmtpd glue, SMTP only.

`FilterSMTP` speaks amavis's dialect (docs/amavis-compat.md, "The SMTP and LMTP
server"): its greeting, EHLO list (PIPELINING, ENHANCEDSTATUSCODES, 8BITMIME,
SMTPUTF8, DSN, XFORWARD), MAIL/RCPT parameters and reply texts. What happens to
a message is the pipeline's business; this module only builds the `Envelope`.

aiosmtpd traps handled here (docs/performance-and-reliability.md,
"aiosmtpd"):
- DATA is read in large chunks, not line by line (`datareader`): a 20 MB
  message costs milliseconds, not a stalled loop;
- a handler exception becomes 451, never aiosmtpd's default 500, and
  after DATA under LMTP one 451 per recipient, never a single reply that
  leaves Postfix waiting for the others;
- replies aiosmtpd sends itself are put in our words (`dialect`);
- processing is shielded from connection loss and runs under its own
  deadline, so the idle timer never cuts a long scan and a lost connection
  never leaves a half-done reinjection;
- the host name is set explicitly (no getfqdn() per connection).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from mailfilter.smtp import params as smtpparams
from mailfilter.smtp import replies
from mailfilter.smtp.datareader import CHUNK, read_data
from mailfilter.smtp.dialect import AmavisDialect
from mailfilter.smtp.envelope import Client, Envelope, MailParams, Recipient

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiosmtpd.smtp import Session

log = logging.getLogger("mailfilter.smtp")
_EHLO_KEYWORDS = (
    "VRFY",
    "PIPELINING",
    "SIZE {size}",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "SMTPUTF8",
    "DSN",
    "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
)


class FilterSMTP(AmavisDialect):
    """One Postfix connection; `app.Service` builds one per connection."""

    # The StreamReader limit. DATA is read in chunks of up to this size;
    # command lines are still held to RFC 5321's 512 octets by aiosmtpd.
    line_length_limit = CHUNK

    def __init__(
        self,
        process: Callable[[Envelope], Awaitable[list[str]]],
        *,
        helo_name: str,
        local_addr: tuple[str, int],
        lmtp: bool,
        size_limit: int,
        max_recipients: int,
        idle_timeout: float,
        busy_timeout: float,
    ) -> None:
        super().__init__(
            None,
            data_size_limit=size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=helo_name,
            ident=("LMTP" if lmtp else "ESMTP") + " amavis service ready",
            timeout=idle_timeout,
        )
        self._process = process
        self._limit = size_limit
        self._lmtp = lmtp
        self._local_addr = local_addr
        self._lmtp_listener = lmtp
        self._max_recipients = max_recipients
        self._busy_timeout = busy_timeout
        self._xforward: dict[str, str | None] = {}
        self._reset_transaction()

    # -- transaction state -------------------------------------------------

    def _sess(self) -> Session:
        session = self.session
        assert session is not None  # set in connection_made
        return session

    def _rset(self) -> None:
        self._set_rset_state()  # type: ignore[no-untyped-call]
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self._sender: str | None = None
        self._params = MailParams()
        self._rcpts: list[Recipient] = []

    # -- greeting and session commands -------------------------------------

    async def smtp_EHLO(self, hostname: str | None) -> None:
        """EHLO: amavis's keyword list, in its order.

        See docs/amavis-compat.md, "EHLO keywords".
        """
        await self._hello(hostname, "EHLO")

    async def smtp_LHLO(self, hostname: str | None) -> None:
        """LHLO switches the connection to LMTP (one reply per recipient)."""
        await self._hello(hostname, "LHLO")

    async def _hello(self, hostname: str | None, verb: str) -> None:
        if not hostname:
            await self._reply(replies.HELO_SYNTAX.format(verb=verb))
            return
        self._rset()
        self._xforward = {}
        self._sess().extended_smtp = True
        self._sess().host_name = hostname
        self._lmtp = verb == "LHLO" or self._lmtp_listener
        lines = [self.hostname]
        lines += [k.format(size=self._limit) for k in _EHLO_KEYWORDS]
        text = (
            "\r\n".join(f"250-{line}" for line in lines[:-1])
            + f"\r\n250 {lines[-1]}"
        )
        await self._reply(text)

    async def smtp_HELO(self, hostname: str | None) -> None:
        """HELO: plain SMTP, no extensions."""
        if not hostname:
            await self._reply(replies.HELO_SYNTAX.format(verb="HELO"))
            return
        self._rset()
        self._sess().extended_smtp = False
        self._sess().host_name = hostname
        self._lmtp = self._lmtp_listener
        await self._reply(f"250 {self.hostname}")

    async def smtp_NOOP(self, arg: str | None) -> None:
        """NOOP."""
        await self._reply(replies.NOOP)

    async def smtp_RSET(self, arg: str | None) -> None:
        """RSET ends the transaction and forgets XFORWARD."""
        self._rset()
        self._xforward = {}
        await self._reply(replies.RSET)

    async def smtp_QUIT(self, arg: str | None) -> None:
        """QUIT."""
        await self._reply(replies.QUIT.format(helo=self.hostname), flush=True)
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self.transport is not None:
            self.transport.close()

    # -- XFORWARD (XFORWARD_README) ------------------------------------------

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        """XFORWARD: client facts from Postfix, applied at the next MAIL."""
        if self._sender is not None:
            await self._reply(replies.XFORWARD_IN_TRANSACTION)
            return
        try:
            attrs = smtpparams.parse_xforward(arg or "")
        except smtpparams.ParamError as exc:
            await self._reply(exc.reply)
            return
        if not attrs:
            await self._reply(replies.XFORWARD_SYNTAX)
            return
        self._xforward.update(attrs)
        await self._reply(replies.XFORWARD_OK)

    # -- the transaction -----------------------------------------------------

    async def smtp_MAIL(self, arg: str | None) -> None:
        """MAIL FROM with SIZE, BODY, SMTPUTF8, RET, ENVID."""
        if await self.check_helo_needed():
            return
        if self._sender is not None:
            await self._reply(replies.NESTED_MAIL)
            return
        try:
            sender, params = smtpparams.split_address(arg or "", "FROM:")
            mail = smtpparams.parse_mail(params)
        except smtpparams.ParamError as exc:
            await self._reply(exc.reply)
            return
        if mail.size is not None and mail.size > self._limit:
            await self._reply(replies.DECLARED_TOO_BIG.format(size=mail.size))
            return
        self._sender, self._params = sender, mail
        await self._reply(replies.MAIL_OK.format(addr=f"<{sender}>"))

    async def smtp_RCPT(self, arg: str | None) -> None:
        """RCPT TO with NOTIFY and ORCPT."""
        if await self.check_helo_needed():
            return
        if self._sender is None:
            await self._reply(replies.NEED_MAIL)
            return
        if len(self._rcpts) >= self._max_recipients:
            await self._reply(replies.TOO_MANY_RECIPIENTS)
            return
        try:
            address, params = smtpparams.split_address(arg or "", "TO:")
            if not address:
                raise smtpparams.ParamError(replies.BAD_ADDRESS)
            rcpt = smtpparams.parse_rcpt(address, params)
        except smtpparams.ParamError as exc:
            await self._reply(exc.reply)
            return
        self._rcpts.append(rcpt)
        await self._reply(replies.RCPT_OK.format(addr=f"<{address}>"))

    async def smtp_DATA(self, arg: str | None) -> None:
        """DATA: read, hand to the pipeline, answer after reinjection."""
        if await self.check_helo_needed():
            return
        lmtp = self._lmtp
        if self._sender is None:
            await self._reply(replies.NEED_MAIL)
            return
        if not self._rcpts:
            await self._reply(
                replies.NO_VALID_RECIPIENTS_LMTP
                if lmtp
                else replies.NO_VALID_RECIPIENTS
            )
            return
        if arg:
            await self._reply(replies.DATA_SYNTAX)
            return
        # LMTP: one final reply per accepted recipient, whatever happens;
        # Postfix's LMTP client waits for each until its timeout.
        count = len(self._rcpts) if lmtp else 1
        await self._reply(replies.DATA_GO_AHEAD, flush=True)
        try:
            data = await read_data(self._reader, self._limit)
        except (ConnectionError, asyncio.IncompleteReadError):
            raise  # the client is gone: nobody to answer
        except Exception as exc:
            # Where the data ends is unknown: the rest of the message must
            # never be read as commands. Answer, then hang up.
            await self._final([self._trouble(exc)] * count)
            if self.transport is not None:
                self.transport.close()
            return
        if data.content is None:
            self._finish_transaction()
            await self._final([replies.TOO_BIG.format(size=data.size)] * count)
            return
        try:
            envelope = self._envelope(data.content, lmtp, data.dot_lines)
        except Exception as exc:  # our bug: 4xx, never a lost reply
            self._finish_transaction()
            await self._final([self._trouble(exc)] * count)
            return
        self._finish_transaction()
        # The scan and reinjection may take minutes: keep the idle timer
        # from closing the connection under it.
        self._reset_timeout(self._busy_timeout)
        try:
            answers = await self._run(envelope)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            answers = [self._trouble(exc)] * count
        if len(answers) != count:
            log.error("(!!)%d replies for %d recipients", len(answers), count)
            answers = [self._trouble(ValueError())] * count
        await self._final(answers)
        self._reset_timeout()

    async def _final(self, answers: list[str]) -> None:
        """The final reply (SMTP) or replies (LMTP), sent together."""
        for text in answers:
            self._queue(text)
        await self._flush()

    def _trouble(self, error: Exception) -> str:
        log.error("(!!)TROUBLE in SMTP session: %r", error)
        return replies.TEMPFAIL_INTERNAL.format(
            log_id="-", section="smtp", error=type(error).__name__
        )

    def _finish_transaction(self) -> None:
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        self._reset_transaction()
        self._xforward = {}

    async def _run(self, envelope: Envelope) -> list[str]:
        # Shielded: if Postfix drops the connection, the message still
        # finishes (reinjected or not), so nothing is left half-done.
        task = asyncio.ensure_future(self._process(envelope))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            log.warning(
                "(!)client %s went away during processing; finishing anyway",
                self._sess().peer,
            )
            raise

    def _envelope(
        self, content: bytes, lmtp: bool, dot_lines: bool
    ) -> Envelope:
        x = self._xforward
        client = Client(
            name=x.get("NAME"),
            addr=x.get("ADDR"),
            port=x.get("PORT"),
            proto=x.get("PROTO"),
            helo=x.get("HELO"),
            ident=x.get("IDENT"),
            source=x.get("SOURCE"),
        )
        return Envelope(
            sender=self._sender or "",
            recipients=tuple(self._rcpts),
            content=content,
            params=self._params,
            client=client,
            lmtp=lmtp,
            local_addr=self._local_addr,
            helo=self._sess().host_name or "",
            peer=_peer_host(self._sess().peer),
            dot_lines=dot_lines,
        )

    async def handle_exception(self, error: Exception) -> str:
        """Our own bug must never reach Postfix as 5xx.

        See docs/engineering-rules.md, Rule 1.
        """
        return self._trouble(error)


def _peer_host(peer: object) -> str:
    """The address part of aiosmtpd's `session.peer` (a tuple or a str)."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return ""
