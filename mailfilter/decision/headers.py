"""Header fields we add, and the few edits we make, all on raw bytes.

The message is never re-serialised (docs/engineering-rules.md, Rule 6:
re-folding breaks DKIM). New fields are prepended as bytes in amavis's order
(docs/amavis-compat.md, "Header fields"); the two edits amavis also makes -
removing forged X-Spam-* fields and tagging the Subject - touch only the lines
concerned.
"""

from __future__ import annotations

import email.utils
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailfilter.decision.verdict import Decision, SpamReport

# amavis $remove_existing_spam_headers: a sender must not be able to
# pre-set the flag that users' filters (and our Junk routing) trust. Field
# names are matched in any letter case, with any blanks before the colon
# (mail clients and Python's `email` accept both), together with every
# folded continuation line; the last field may lack its line end.
_SPAM_FIELDS = re.compile(
    rb"(?im)^X-Spam-(?:Flag|Score|Level|Status|Report|Checker-Version|Tests)"
    rb"[ \t]*:[^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*"
)
_SUBJECT = re.compile(rb"(?im)^Subject[ \t]*:[ \t]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_block_end(content: bytes) -> int:
    """Offset just after the blank line ending the header (or the end)."""
    if content.startswith(b"\r\n"):
        return 2
    end = content.find(b"\r\n\r\n")
    return len(content) if end < 0 else end + 4


def score_text(score: float) -> str:
    """Score rounded to 3 decimals, trailing zeros dropped (amavis)."""
    text = f"{score:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def spam_fields(
    report: SpamReport, decision: Decision
) -> list[tuple[str, str]]:
    """X-Spam-Flag, -Score, -Level and -Status, in amavis format."""
    score = report.score
    level = "*" * min(64, max(0, int(score)))
    tests = ", ".join(f"{n}={score_text(s)}" for n, s in report.tests)
    status = (
        f"{'Yes' if decision.spam_flag else 'No'}, score={score_text(score)}"
    )
    if decision.tag_level is not None:
        status += f" tagged_above={score_text(decision.tag_level)}"
    if decision.tag2_level is not None:
        status += f" required={score_text(decision.tag2_level)}"
    status += f" tests=[{tests}] autolearn=disabled"
    return [
        ("X-Spam-Flag", "YES" if decision.spam_flag else "NO"),
        ("X-Spam-Score", score_text(score)),
        ("X-Spam-Level", level),
        ("X-Spam-Status", status),
    ]


def fold(name: str, value: str) -> bytes:
    """One header field as CRLF bytes, folded at spaces near 78 columns.

    Control characters in the value (it may quote the message's own file
    or virus names) become "?", so a value can never add a header line.
    """
    words = _CONTROL.sub("?", value).split(" ")
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > 78 and line.strip() != f"{name}:":
            lines.append(line)
            line = "\t" + word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    text = "\r\n".join(lines) + "\r\n"
    return text.encode("utf-8", "surrogateescape")


def received(
    *,
    helo: str,
    client_addr: str | None,
    myhostname: str,
    local_addr: tuple[str, int],
    protocol: str,
    mail_id: str,
    recipients: list[str],
) -> tuple[str, str]:
    """Our Received field, amavis form (rfc2821_2822_Tools.pm:163-204)."""
    source = f"from {helo or 'unknown'} ([{client_addr or '127.0.0.1'}])"
    value = (
        f"{source} by localhost ({myhostname} [{local_addr[0]}]) "
        f"(mailfilter, port {local_addr[1]}) with {protocol} id {mail_id}"
    )
    if len(recipients) == 1:
        value += f" for <{recipients[0]}>"
    value += "; " + email.utils.formatdate(localtime=True)
    return ("Received", value)


def edit(content: bytes, *, strip_spam: bool, subject_tag: str) -> bytes:
    """Remove forged X-Spam-* fields and tag the Subject, in the header only.

    Returns `content` itself (no copy) when nothing changes.
    """
    end = header_block_end(content)
    head = content[:end]
    new_head = head
    if strip_spam and b"x-spam-" in head.lower():
        new_head = _SPAM_FIELDS.sub(b"", new_head)
    if subject_tag:
        tag = subject_tag.encode("utf-8")
        match = _SUBJECT.search(new_head)
        if match:
            rest = new_head[match.end() :]
            if not rest.startswith(tag):
                new_head = new_head[: match.end()] + tag + rest
    if new_head is head:
        return content
    return new_head + content[end:]


def needs_subject_field(content: bytes, subject_tag: str) -> bool:
    """amavis creates a Subject field when tagging a message without one."""
    if not subject_tag:
        return False
    return _SUBJECT.search(content[: header_block_end(content)]) is None
