"""LMTP delivery server for Postfix `virtual_transport = lmtp:...` -> Maildir.

Maps each recipient to a Maildir through a root template such as
`/srv/mail/{domain}/{user}/Maildir`, routes `user+ext` to folder `ext`
and `X-Spam-Flag: YES` to the spam folder (`maildir.routing`), and stores
with `maildir.deliver` in a worker thread (fsync never blocks the loop).
After DATA it answers once per accepted recipient (RFC 2033 §4.2).

Reply policy (docs/engineering-rules.md, Rule 1): storage trouble and our own
bugs answer 451 4.x.x so Postfix retries, a full mailbox that can clear
(filesystem quota EDQUOT, or --quota-tempfail) 452 4.2.2; only a permanent
cause answers 5xx (the Maildir++ quota 552 5.2.2, unknown user 550 5.1.1
when auto-create is off, a malformed address 550 5.1.3). A missing mount
(--mount-check) is 451, never "unknown user". The Maildir layer itself is
`maildir`; TLS, auth and queueing are Postfix's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.lmtp import LMTP

import maildir
from maildir import routing
from mailfilter.delivery.replies import (
    R250_DELIVERED,
    R250_RCPT,
    R451_INTERNAL,
    R451_MOUNT,
    R451_STORE,
    R452_MAILBOX_FULL,
    R550_BAD_ADDRESS,
    R550_STORE,
    R552_MAILBOX_FULL,
    R552_TOO_BIG,
)
from mailfilter.delivery.routing import (
    Config,
    make_parents,
    rcpt_refusal,
    resolve,
    store_ok,
)

log = logging.getLogger("mailfilter.lmtp_delivery")


def _reply_for(error: maildir.DeliveryError) -> str:
    """The reply for a failed delivery: 4xx whenever it may clear."""
    if error.temporary:
        if error.dsn == "4.2.2":
            return R452_MAILBOX_FULL
        template = R451_STORE
    elif error.dsn == "5.2.2":
        return R552_MAILBOX_FULL
    else:
        template = R550_STORE
    text = str(error).replace("\r", " ").replace("\n", " ")[:200]
    return template.format(dsn=error.dsn, reason=text)


class DeliveryHandler:
    """aiosmtpd handler: RCPT checks the mailbox, DATA stores per recipient."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self,
        _server: Any,
        _session: Any,
        envelope: Any,
        address: str,
        _rcpt_options: list[str],
    ) -> str:
        """Accept a recipient whose Maildir exists (or may be created)."""
        target = resolve(self.config, address)
        if target is None:
            return R550_BAD_ADDRESS
        config = self.config
        if config.mount_check or not config.auto_create:
            # stat() on a cluster mount can block: one trip off the loop.
            refused = await asyncio.to_thread(
                rcpt_refusal, config, target.root
            )
            if refused:
                return refused
        envelope.rcpt_tos.append(address)
        return R250_RCPT

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, _server: Any, _session: Any, envelope: Any
    ) -> str:
        """One reply line per accepted recipient, in RCPT order."""
        content: bytes = envelope.original_content or b""
        replies = await asyncio.gather(
            *(
                self._deliver_one(rcpt, envelope.mail_from, content)
                for rcpt in envelope.rcpt_tos
            )
        )
        # aiosmtpd writes the string plus CRLF: joined lines become the
        # per-recipient replies LMTP requires.
        return "\r\n".join(replies)

    async def _deliver_one(
        self, rcpt: str, mail_from: str | None, content: bytes
    ) -> str:
        try:
            return await self._store(rcpt, mail_from, content)
        except maildir.DeliveryError as exc:
            log.warning("delivery to %r failed: %s", rcpt, exc)
            return _reply_for(exc)
        except Exception:
            log.exception("delivery to %r crashed", rcpt)
            return R451_INTERNAL

    async def _store(
        self, rcpt: str, mail_from: str | None, content: bytes
    ) -> str:
        config = self.config
        target = resolve(config, rcpt)
        if target is None:
            return R550_BAD_ADDRESS
        size_limit = config.max_message_size
        if size_limit and len(content) > size_limit:
            return R552_TOO_BIG
        # The mount check stats a path: off the loop, and only when asked.
        if config.mount_check and not await asyncio.to_thread(
            store_ok, config
        ):
            return R451_MOUNT
        folder, create_folder = routing.choose(
            content,
            extension=target.extension,
            spam_folder=config.spam_folder,
            create_extension_folders=config.create_extension_folders,
        )
        message = _trace_headers(mail_from, rcpt) + content
        if config.auto_create:
            await asyncio.to_thread(make_parents, config, target.root)
        path = await asyncio.to_thread(
            maildir.deliver,
            target.root,
            message,
            folder=folder,
            create=config.auto_create,
            create_folder=create_folder,
            hostname=config.maildir_hostname,
            quota_tempfail=config.quota_tempfail,
        )
        log.info("delivered to %r as %s", rcpt, path.name)
        return R250_DELIVERED

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected error is temporary for the client (never 5xx)."""
        log.error("LMTP session error: %r", error)
        return R451_INTERNAL


def _trace_headers(mail_from: str | None, rcpt: str) -> bytes:
    """Return-Path and Delivered-To, as Postfix local(8) and Dovecot add."""
    sender = (mail_from or "").translate({13: None, 10: None, 0: None})
    return f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode(
        "utf-8", "surrogateescape"
    )


def make_protocol(config: Config, hostname: str = "localhost") -> LMTP:
    """An LMTP protocol instance (one per connection)."""
    # data_size_limit=None: aiosmtpd would answer an oversize message with
    # a single 552, which desynchronises an LMTP client expecting one reply
    # per recipient; the size is checked per recipient in _store instead.
    return LMTP(
        DeliveryHandler(config),
        hostname=hostname,
        data_size_limit=None,
        enable_SMTPUTF8=True,
        decode_data=False,
    )


async def start(
    config: Config, host: str, port: int, hostname: str = "localhost"
) -> asyncio.Server:
    """Listen on host:port (port 0 picks a free one)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: make_protocol(config, hostname), host, port
    )
