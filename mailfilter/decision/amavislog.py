"""The one-line summary per message, in amavis's format.

The format is docs/amavis-compat.md, "The per-message line".

mailgraph, amavis-logwatch and home-grown scripts parse these lines, so
the shape is amavis's to the character. Every field that an attacker
controls (addresses, Message-ID, file and virus names) goes through
`clean()` first: control characters made visible, length capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailfilter.decision.headers import header_block_end, score_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MESSAGE_ID = re.compile(rb"(?im)^Message-ID[ \t]*:[ \t]*(.*(?:\r\n[ \t].*)*)")
MAX_FIELD = 200


def clean(text: str, limit: int = MAX_FIELD) -> str:
    """Make attacker text safe for one syslog line."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def message_id(content: bytes) -> str:
    """The Message-ID header value, unfolded, or ""."""
    match = _MESSAGE_ID.search(content, 0, header_block_end(content))
    if not match:
        return ""
    raw = re.sub(rb"\r\n[ \t]+", b" ", match.group(1)).strip()
    return raw.decode("utf-8", "replace")


@dataclass
class Summary:
    """Everything one log line says about one message (or recipient group)."""

    log_id: str
    passed: bool
    category: str  # "CLEAN", "INFECTED (Eicar...)", "MTA-BLOCKED", ...
    actions: list[
        str
    ]  # ["RelayedInbound"], ["DiscardedInbound", "Quarantined"]
    client_addr: str | None
    client_port: str | None
    sender: str
    recipients: list[str]
    queue_id: str | None
    message_id: str
    mail_id: str
    hits: float | None
    size: int
    elapsed_ms: int
    quarantine: str = ""
    queued_as: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The text after the syslog frame: `(id) Passed CLEAN {...}, ...`."""
        parts = [
            (
                f"({self.log_id}) {'Passed' if self.passed else 'Blocked'} "
                f"{self.category} {{{','.join(self.actions)}}}"
            )
        ]
        who = ""
        if self.client_addr:
            who = f"[{clean(self.client_addr, 60)}]"
            if self.client_port:
                who += f":{clean(self.client_port, 8)}"
            who += " "
        rcpts = ",".join(f"<{clean(r)}>" for r in self.recipients)
        parts.append(f"{who}<{clean(self.sender)}> -> {rcpts}")
        if self.quarantine:
            parts.append(f"quarantine: {self.quarantine}")
        if self.queue_id:
            parts.append(f"Queue-ID: {clean(self.queue_id, 40)}")
        if self.message_id:
            parts.append(f"Message-ID: {clean(self.message_id)}")
        parts.append(f"mail_id: {self.mail_id}")
        hits = "-" if self.hits is None else score_text(self.hits)
        parts.append(f"Hits: {hits}")
        parts.append(f"size: {self.size}")
        if self.queued_as:
            parts.append(f"queued_as: {'/'.join(self.queued_as)}")
        parts.append(f"{self.elapsed_ms} ms")
        return ", ".join(parts)


_QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)$")


def queued_as(reply_text: str) -> str:
    """Postfix's queue id from `250 2.0.0 Ok: queued as X`, else the text."""
    match = _QUEUED_AS.search(reply_text)
    return match.group(1) if match else clean(reply_text, 80)
