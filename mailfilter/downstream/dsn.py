"""Delivery status notifications for recipients refused downstream.

With SMTP input there is one reply per message, so when 10025 refuses some
recipients with 5xx and takes the others, Postfix cannot be told which
failed. amavis then sends the bounce itself (docs/amavis-compat.md, "One reply
for all recipients" rule 4); so do we, so a refused recipient is reported,
never silently lost. The null sender never gets one (RFC 3464 §2, no loops),
and NOTIFY=NEVER is honoured.
"""

from __future__ import annotations

import email.utils
from typing import TYPE_CHECKING

from mailfilter.decision.headers import header_block_end

if TYPE_CHECKING:
    from mailfilter.downstream.reinject import Reply
    from mailfilter.smtp.envelope import Envelope, Recipient


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
