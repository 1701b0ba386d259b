"""From the pipeline's per-recipient answers to milter replies. Pure.

After DATA a milter can only answer for the message as a whole, so when
recipients' decisions differ the strictest wins (docs/milter.md,
"Per-recipient decisions"):

1. any tempfail (4xx): the message is tempfailed with that reply;
2. else any reject (5xx): the message is rejected with that reply, so the
   sender learns it at SMTP time and nothing is bounced later;
3. else every recipient discarded: Postfix discards the message;
4. else the message is accepted: discarded recipients are deleted from it
   (their copy is in our quarantine when the policy says so) and the header
   edits of the first passed recipient group are applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter.decision.headers import header_block_end
from mailfilter.milter import codec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailfilter.milter.keep import Kept
    from mailfilter.smtp.envelope import Recipient

_DISCARDED = "250 2.7.0"
# One header field: name, colon, the rest up to the next unfolded line.
_FIELD = re.compile(rb"([^:\r\n]+):(.*?)\r\n(?![ \t])", re.DOTALL)
# Postfix adds its own; a second one from us would name a hop that the
# message never took.
_NOT_ADDED = frozenset({"received"})


@dataclass(frozen=True, slots=True)
class Plan:
    """What to tell Postfix at end of message."""

    final: str  # "accept" | "discard" | "reply"
    reply: str = ""
    delete: tuple[str, ...] = ()  # recipients to remove
    insert: tuple[tuple[str, str], ...] = ()  # fields on top, in order
    # (occurrence from 1, name, new raw value; "" deletes)
    change: tuple[tuple[int, str, str], ...] = ()


def plan(
    answers: Sequence[str],
    kept: Sequence[Kept],
    original: bytes,
    recipients: Sequence[Recipient],
) -> Plan:
    """The strictest-wins rule of the module docstring."""
    for first in ("4", "5"):
        hit = next((a for a in answers if a.startswith(first)), None)
        if hit is not None:
            return Plan("reply", reply=hit)
    if not kept:
        if answers and all(a.startswith(_DISCARDED) for a in answers):
            return Plan("discard", reply=answers[0])
        # Nothing passed and nothing refused: cannot happen; fail closed.
        return Plan("reply", reply=answers[0] if answers else "")
    delete = tuple(
        r.address
        for r, a in zip(recipients, answers, strict=False)
        if a.startswith(_DISCARDED)
    )
    copy = kept[0]
    return Plan(
        "accept",
        delete=delete,
        insert=tuple(
            (name, value)
            for name, value in fields(copy.prefix)
            if name.lower() not in _NOT_ADDED
        ),
        change=header_changes(original, copy.content),
    )


def fields(block: bytes) -> list[tuple[str, str]]:
    """(name, raw value after the colon) of each field in a header block."""
    return [
        (
            m.group(1).decode("utf-8", "surrogateescape"),
            m.group(2).decode("utf-8", "surrogateescape"),
        )
        for m in _FIELD.finditer(block)
    ]


def header_changes(
    original: bytes, edited: bytes
) -> tuple[tuple[int, str, str], ...]:
    """CHGHEADER edits that turn `original`'s header into `edited`'s.

    Our edits only delete fields (forged X-Spam-*) or change one in place
    (the Subject tag), so each name's occurrences are matched in order.
    Deletions come last and from the highest occurrence down, so earlier
    indexes stay valid whatever way the MTA counts deleted fields.
    """
    if edited is original:
        return ()
    before = _by_name(fields(original[: header_block_end(original)]))
    after = _by_name(fields(edited[: header_block_end(edited)]))
    changes: list[tuple[int, str, str]] = []
    deletes: list[tuple[int, str, str]] = []
    for key, (name, values) in before.items():
        new = after.get(key, (name, []))[1]
        if len(new) == len(values):
            changes += [
                (i + 1, name, b)
                for i, (a, b) in enumerate(zip(values, new, strict=True))
                if a != b
            ]
            continue
        j = 0
        for i, value in enumerate(values):
            if j < len(new) and new[j] == value:
                j += 1
            else:
                deletes.append((i + 1, name, ""))
    deletes.sort(key=lambda d: (d[1].lower(), -d[0]))
    return tuple(changes + deletes)


def _by_name(
    items: list[tuple[str, str]],
) -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {}
    for name, value in items:
        out.setdefault(name.lower(), (name, []))[1].append(value)
    return out


def packets(
    plan: Plan, *, negotiated: int, leading_space: bool, hold: bool = False
) -> list[bytes]:
    """The reply packets for `plan`, within the negotiated actions.

    With `hold`, a discarded message goes to Postfix's hold queue
    (SMFIR_QUARANTINE, then accept) instead of away.
    """
    if plan.final == "reply":
        # Postfix, like Sendmail, reads "%%" as "%".
        text = plan.reply.replace("%", "%%")
        return [codec.encode(codec.REPLYCODE, codec.reply_code(text))]
    if plan.final == "discard":
        if hold and negotiated & codec.ACT_QUARANTINE:
            reason = codec.reply_code(plan.reply or "discarded")
            return [
                codec.encode(codec.QUARANTINE, reason),
                codec.encode(codec.ACCEPT),
            ]
        return [codec.encode(codec.DISCARD)]
    out: list[bytes] = []
    if plan.delete:
        if not negotiated & codec.ACT_DELRCPT:
            raise codec.MilterProtocolError("MTA cannot delete recipients")
        out += [
            codec.encode(codec.DELRCPT, codec.reply_code(f"<{r}>"))
            for r in plan.delete
        ]
    if plan.insert and negotiated & codec.ACT_ADDHDRS:
        out += [
            codec.encode(
                codec.INSHEADER,
                codec.insert_header(i, name, _value(value, leading_space)),
            )
            for i, (name, value) in enumerate(plan.insert)
        ]
    if plan.change and negotiated & codec.ACT_CHGHDRS:
        out += [
            codec.encode(
                codec.CHGHEADER,
                codec.change_header(
                    index, name, _value(value, leading_space) if value else ""
                ),
            )
            for index, name, value in plan.change
        ]
    out.append(codec.encode(codec.ACCEPT))
    return out


def _value(raw: str, leading_space: bool) -> str:
    """A field value as the MTA wants it: folded lines joined by LF."""
    value = raw.replace("\r\n", "\n")
    if not leading_space and value.startswith(" "):
        return value[1:]
    return value
