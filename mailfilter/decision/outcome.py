"""What happened to one message: the job, its outcome, and how both are
written down - our header fields on the passed copy, and the amavis log
line(s) that mailgraph and amavis-logwatch count.

Pure formatting over the pipeline's results; the pipeline does the I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mailfilter.decision import amavislog, headers
from mailfilter.decision.verdict import (
    Decision,
    ScanResult,
    SpamReport,
    Verdict,
)

if TYPE_CHECKING:
    from mailfilter.smtp.envelope import Envelope, Recipient

log = logging.getLogger("mailfilter.verdict")


@dataclass(frozen=True)
class Job:
    """One message on its way through the pipeline."""

    envelope: Envelope
    content: bytes  # line ends normalised
    log_id: str
    mail_id: str
    quarantine: str  # where the quarantine copy is, "" if none
    spam: SpamReport | None
    dot_lines: bool = True  # a line of `content` may start with "."
    auth_field: bytes = b""  # our Authentication-Results field, if any


@dataclass
class Outcome:
    """Final reply per recipient and what the log line says."""

    replies: dict[int, str] = field(default_factory=dict)
    # Recipients whose copy 10025 took (2xx after DATA), and those whose
    # reinjection failed temporarily: with SMTP input a 4xx is safe only
    # while `delivered` is empty.
    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    passed: list[tuple[Decision, list[int], list[str]]] = field(
        default_factory=list
    )
    blocked: list[tuple[Decision, list[int], str]] = field(
        default_factory=list
    )


def added_fields(
    job: Job,
    decision: Decision,
    rcpts: tuple[Recipient, ...],
    *,
    virus_scanned: str,
    myhostname: str,
) -> bytes:
    """Our header fields for one recipient group, in amavis's order.

    The order is docs/amavis-compat.md, "Header fields".
    """
    envelope, mail_id, spam = job.envelope, job.mail_id, job.spam
    fields: list[tuple[str, str]] = []
    if job.quarantine:
        fields.append(("X-Quarantine-ID", f"<{mail_id}>"))
    if decision.virus_scanned:
        fields.append(("X-Virus-Scanned", virus_scanned))
    if decision.verdict in (Verdict.INFECTED, Verdict.BANNED):
        fields.append(("X-Amavis-Alert", decision.reason))
    if decision.spam_headers and spam is not None:
        fields += headers.spam_fields(spam, decision)
    fields.extend(_notes(decision))
    protocol = "UTF8SMTP" if envelope.params.smtputf8 else "ESMTP"
    if envelope.lmtp:
        protocol = "LMTP"
    fields.append(
        headers.received(
            helo=envelope.client.helo or envelope.helo,
            client_addr=envelope.client.addr or envelope.peer or None,
            myhostname=myhostname,
            local_addr=envelope.local_addr,
            protocol=protocol,
            mail_id=mail_id,
            recipients=[r.address for r in rcpts],
        )
    )
    if headers.needs_subject_field(envelope.content, decision.subject_tag):
        fields.append(("Subject", decision.subject_tag.strip()))
    return b"".join(headers.fold(name, value) for name, value in fields)


def _notes(decision: Decision) -> list[tuple[str, str]]:
    return [
        ("X-Amavis-Alert", note)
        for note in decision.notes
        if note.startswith("spam checks skipped")
    ]


def log_outcome(
    job: Job, results: list[ScanResult], outcome: Outcome, elapsed: int
) -> None:
    """The amavis line(s) for one message: Passed ... and/or Blocked ..."""
    envelope, log_id = job.envelope, job.log_id
    mail_id, quarantine = job.mail_id, job.quarantine
    spam = next((r.spam for r in results if r.spam is not None), None)
    base = amavislog.Summary(
        log_id=log_id,
        passed=True,
        category="",
        actions=[],
        client_addr=envelope.client.addr or envelope.peer or None,
        client_port=envelope.client.port,
        sender=envelope.sender,
        recipients=[],
        queue_id=envelope.client.ident,
        message_id=amavislog.message_id(envelope.content),
        mail_id=mail_id,
        hits=spam.score if spam else None,
        size=len(envelope.content),
        elapsed_ms=elapsed,
    )
    for decision, indexes, queued in outcome.passed:
        tagged = decision.spam_flag or decision.subject_tag
        actions = ["RelayedTaggedInbound" if tagged else "RelayedInbound"]
        if quarantine:
            actions.append("Quarantined")
        log.info(
            "%s",
            replace(
                base,
                category=_category(decision),
                actions=actions,
                recipients=[envelope.recipients[i].address for i in indexes],
                quarantine=quarantine,
                queued_as=queued,
            ).line(),
        )
    for decision, indexes, kind in outcome.blocked:
        mta = kind == "mta"
        actions = [f"{_BLOCKED_WORD[kind]}Inbound"]
        if quarantine and not mta:
            actions.append("Quarantined")
        log.info(
            "%s",
            replace(
                base,
                passed=False,
                actions=actions,
                category="MTA-BLOCKED" if mta else _category(decision),
                recipients=[envelope.recipients[i].address for i in indexes],
                quarantine="" if mta else quarantine,
            ).line(),
        )


_BLOCKED_WORD = {
    "discard": "Discarded",
    "reject": "Rejected",
    "tempfail": "TempFailed",
    "mta": "TempFailed",
}


def _category(decision: Decision) -> str:
    if decision.detail and decision.verdict in (
        Verdict.INFECTED,
        Verdict.BANNED,
    ):
        return f"{decision.verdict.value} ({amavislog.clean(decision.detail)})"
    return decision.verdict.value
