"""The reply texts Postfix logs for each outcome.

They follow docs/amavis-compat.md, "Final replies".

Pure functions from outcomes to reply strings: what a blocked recipient
gets, how a downstream reply is wrapped, what a failed reinjection says,
and amavis's rule for one reply covering several recipients.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailfilter.decision.verdict import Action, Decision, Verdict
from mailfilter.smtp import replies

if TYPE_CHECKING:
    from mailfilter.downstream.reinject import DownstreamError, Reply

_BLOCKED = {
    Action.DISCARD: replies.DISCARDED,
    Action.REJECT: replies.REJECTED,
    Action.TEMPFAIL: replies.TEMPFAILED,
}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe(text: str) -> str:
    """Reply text that cannot end the reply line early (names, virus
    names and banned file names come from the message)."""
    return _CONTROL.sub("?", text)[:400]


def blocked(decision: Decision, log_id: str) -> str:
    """The reply for a recipient whose copy is not passed."""
    if (
        decision.action is Action.TEMPFAIL
        and decision.verdict is Verdict.UNCHECKED
    ):
        # A scanner whose failure is fatal did not answer
        # (docs/amavis-compat.md, "When a scanner fails").
        return replies.TEMPFAIL_INTERNAL.format(
            log_id=log_id, section="check_mail", error=safe(decision.reason)
        )
    return _BLOCKED[decision.action].format(
        log_id=log_id, reason=safe(decision.reason)
    )


def relayed(answer: Reply, log_id: str, label: str) -> str:
    """Postfix's view of a downstream reply (amavis Out/SMTP.pm:57-76)."""
    proto, _, rest = label.partition(":")
    host, _, port = rest.rpartition(":")
    detail = f"from MTA({label}): {answer}"
    if answer.code >= 500:
        return replies.REJECTED_DOWNSTREAM.format(
            code=answer.code, enh=answer.enhanced, log_id=log_id, detail=detail
        )
    if answer.code >= 400:
        return replies.TEMPFAIL_MTA.format(log_id=log_id, detail=detail)
    return replies.RELAYED.format(
        code=answer.code,
        enh=answer.enhanced,
        proto=proto,
        host=host.strip("[]"),
        port=port,
        reply=answer,
    )


def downstream_failure(
    exc: DownstreamError | TimeoutError, log_id: str, label: str
) -> str:
    """The 4xx for a reinjection that failed as a whole.

    See docs/amavis-compat.md, "When 10025 refuses or is down".
    """
    if isinstance(exc, TimeoutError):
        return replies.TEMPFAIL_TIMEOUT.format(
            section="forwarding", log_id=log_id
        )
    if exc.section == "fwd-connect":
        return replies.TEMPFAIL_CONNECT.format(
            log_id=log_id, detail=exc.detail
        )
    return replies.TEMPFAIL_MTA.format(
        log_id=log_id,
        detail=f"from MTA({label}) during {exc.section}: {exc.detail}",
    )


def one_response_for_all(per_rcpt: list[str], log_id: str) -> str:
    """One SMTP reply for all recipients (amavis rfc2821_2822_Tools.pm).

    1. any 4xx: the first one (Postfix retries every recipient);
    2. all discarded: the first discard reply;
    3. only discards and 5xx: the first 5xx (Postfix bounces);
    4. otherwise the first 2xx from downstream, noting the others.
    """
    tempfails = [r for r in per_rcpt if r.startswith("4")]
    if tempfails:
        return tempfails[0]
    discards = [r for r in per_rcpt if r.startswith("250 2.7.0")]
    rejects = [r for r in per_rcpt if r.startswith("5")]
    if len(discards) == len(per_rcpt):
        return discards[0]
    if rejects and len(discards) + len(rejects) == len(per_rcpt):
        return rejects[0]
    relayed = [r for r in per_rcpt if r.startswith("2") and r not in discards]
    reply = relayed[0] if relayed else f"250 2.5.0 Ok, id={log_id}"
    if rejects:
        reply += replies.MIXED_SUFFIX.format(count=len(rejects), what="REJECT")
    if discards:
        reply += replies.MIXED_SUFFIX.format(
            count=len(discards), what="DISCARD"
        )
    return reply


def settle_after_delivery(
    per_rcpt: list[str], delivered: list[int], log_id: str
) -> list[str]:
    """SMTP input: no 4xx once any recipient's copy is delivered.

    A 4xx would make Postfix send the whole message again, duplicating
    the delivered copies. The recipients that failed temporarily become
    `NOT_DELIVERED_AFTER_PARTIAL` (5xx), which the mixed reply notes and
    the DSN reports to the sender.
    """
    if not delivered:
        return per_rcpt
    return [
        replies.NOT_DELIVERED_AFTER_PARTIAL.format(
            log_id=log_id, detail=safe(text)
        )
        if text.startswith("4")
        else text
        for text in per_rcpt
    ]


def after_trouble(
    known: dict[int, str],
    delivered: list[int],
    count: int,
    *,
    lmtp: bool,
    log_id: str,
    error: str,
) -> list[str]:
    """The replies when our own code failed part-way through a message.

    Nothing delivered: a 4xx for all (Postfix retries). Something
    delivered: LMTP keeps the 2xx of the delivered recipients and 4xx the
    rest; SMTP answers the first delivered reply, since a 4xx would
    duplicate the delivered copies (the failure is logged loudly).
    """
    tempfail = replies.TEMPFAIL_INTERNAL.format(
        log_id=log_id, section="check_mail", error=safe(error)
    )
    if lmtp:
        return [known[i] if i in delivered else tempfail for i in range(count)]
    if delivered:
        return [known[delivered[0]]]
    return [tempfail]
