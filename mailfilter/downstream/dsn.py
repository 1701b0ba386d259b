"""Delivery status notifications for recipients refused downstream.

With SMTP input there is one reply per message, so when 10025 refuses some
recipients with 5xx and takes the others, Postfix cannot be told which
failed. amavis then sends the bounce itself (docs/amavis-compat.md, "One reply
for all recipients" rule 4); so do we, so a refused recipient is reported,
never silently lost. The null sender never gets one (RFC 3464 §2, no loops),
and NOTIFY=NEVER is honoured.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from typing import TYPE_CHECKING

from mailfilter.decision.headers import header_block_end
from mailfilter.downstream.connection import Reply
from mailfilter.smtp.envelope import Recipient

if TYPE_CHECKING:
    from mailfilter.downstream.reinject import Downstream
    from mailfilter.smtp.envelope import Envelope

log = logging.getLogger("mailfilter.verdict")


def wanted(envelope: Envelope, rcpt: Recipient) -> bool:
    """Whether the sender asked for (or gets by default) a failure notice."""
    if not envelope.sender:
        return False
    return rcpt.notify is None or "FAILURE" in rcpt.notify


def build(
    envelope: Envelope,
    failed: list[tuple[Recipient, Reply]],
    *,
    reporting_mta: str,
    mail_id: str,
) -> bytes:
    """A multipart/report (RFC 3464) with the original header attached."""
    boundary = f"DSN.{mail_id}"
    date = email.utils.formatdate(localtime=True)
    lines = [
        f"From: MAILER-DAEMON@{reporting_mta}",
        f"To: <{envelope.sender}>",
        "Subject: Undelivered mail returned to sender",
        f"Date: {date}",
        f"Message-ID: <DSN.{mail_id}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f' boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Your message could not be delivered to these recipients:",
        "",
    ]
    lines += [f"  <{r.address}>: {reply}" for r, reply in failed]
    lines += [
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Amavis-Mail-Id: {mail_id}",
    ]
    if envelope.params.envid:
        lines.append(f"Original-Envelope-Id: {envelope.params.envid}")
    lines.append(f"Arrival-Date: {date}")
    for rcpt, reply in failed:
        lines += [
            "",
            f"Final-Recipient: rfc822; {rcpt.address}",
            *([f"Original-Recipient: {rcpt.orcpt}"] if rcpt.orcpt else []),
            "Action: failed",
            f"Status: {reply.enhanced}",
            f"Diagnostic-Code: smtp; {reply}",
        ]
    lines += [
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    head = envelope.content[: header_block_end(envelope.content)]
    text = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"
    return text + head.rstrip(b"\r\n") + f"\r\n\r\n--{boundary}--\r\n".encode()


async def report_refused(
    downstream: Downstream,
    envelope: Envelope,
    per_rcpt: list[str],
    *,
    myhostname: str,
    mail_id: str,
    log_id: str,
    seconds: float,
) -> None:
    """Mixed outcome under SMTP: report refused recipients ourselves.

    Never raises. The message was answered 2xx for the others, whose
    copies are delivered: any failure here (10025, the connection, our own
    bug) must not become a 4xx, which would duplicate them. It is logged
    loudly instead.
    """
    try:
        failed = [
            (rcpt, Reply(int(text[:3]), text[4:]))
            for rcpt, text in zip(envelope.recipients, per_rcpt, strict=True)
            if text.startswith("5") and wanted(envelope, rcpt)
        ]
        if not failed:
            return
        notice = build(
            envelope, failed, reporting_mta=myhostname, mail_id=mail_id
        )
        async with asyncio.timeout(seconds):
            (answer,) = await downstream.deliver(
                "", (Recipient(envelope.sender),), notice
            )
        if answer.code >= 300:
            raise ConnectionError(str(answer))
    except Exception as exc:
        log.error(  # noqa: TRY400 - a known failure, no traceback
            "(%s) (!!)DSN to <%s> failed: %r", log_id, envelope.sender, exc
        )
        return
    log.info(
        "(%s) DSN sent to <%s> for %d refused recipient(s)",
        log_id,
        envelope.sender,
        len(failed),
    )
