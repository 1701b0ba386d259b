"""Quarantine: blocked messages kept in one Maildir per kind.

Written with the project's own `maildir` library (fsync, tmp then new), so
an admin reads the quarantine with Dovecot or mutt, and the copy is on disk
before we answer Postfix: if it cannot be written, the message tempfails
instead of being discarded (never lose mail). The envelope travels in
X-Envelope-* fields, as amavis writes them (docs/amavis-compat.md, "Quarantine
and release"), so `release` can reinject the message to its original
recipients.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import maildir
from mailfilter.decision.verdict import Verdict

if TYPE_CHECKING:
    from mailfilter.smtp.envelope import Envelope

KINDS = {
    Verdict.INFECTED: "virus",
    Verdict.BANNED: "banned",
    Verdict.SPAM: "spam",
    Verdict.SPAMMY: "spam",
    Verdict.UNCHECKED: "unchecked",
    Verdict.BAD_HEADER: "badh",
    Verdict.CLEAN: "clean",
}
_HEAD_BYTES = 16384


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A message found in the quarantine."""

    path: Path
    mail_id: str
    sender: str
    recipients: tuple[str, ...]
    content: bytes  # the original message, without our envelope fields


class Quarantine:
    """The quarantine root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def store(
        self, envelope: Envelope, verdict: Verdict, mail_id: str, added: bytes
    ) -> str:
        """Write the message; returns the path for the log, `kind/new/name`."""
        kind = KINDS[verdict]
        rcpts = ",\r\n ".join(f"<{r.address}>" for r in envelope.recipients)
        head = (
            f"Return-Path: <{envelope.sender}>\r\n"
            f"Delivered-To: {kind}-quarantine\r\n"
            f"X-Envelope-From: <{envelope.sender}>\r\n"
            f"X-Envelope-To: {rcpts}\r\n"
            f"X-Quarantine-ID: <{mail_id}>\r\n"
        ).encode("utf-8", "surrogateescape")
        # maildir.deliver makes the kind's Maildir, not its parents.
        self.root.mkdir(parents=True, exist_ok=True)
        path = maildir.deliver(
            self.root / kind, head + added + envelope.content
        )
        return f"{kind}/new/{path.name}"

    async def astore(
        self, envelope: Envelope, verdict: Verdict, mail_id: str, added: bytes
    ) -> str:
        """`store` in a thread: fsync must not block the event loop."""
        return await asyncio.to_thread(
            self.store, envelope, verdict, mail_id, added
        )

    def find(self, mail_id: str) -> Quarantined:
        """The quarantined message with this mail_id (KeyError if none)."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{6,40}", mail_id):
            raise KeyError(f"not a mail_id: {mail_id!r}")
        needle = f"X-Quarantine-ID: <{mail_id}>".encode()
        for path in sorted(self.root.glob("*/[nc][eu][wr]/*")):
            with path.open("rb") as handle:
                head = handle.read(_HEAD_BYTES)
            end = head.find(b"\n\n")
            if needle in (head if end < 0 else head[:end]):
                return _parse(path, mail_id)
        raise KeyError(f"no quarantined message with mail_id {mail_id}")


def _parse(path: Path, mail_id: str) -> Quarantined:
    """Split our envelope fields from the stored message."""
    data = path.read_bytes().replace(b"\r\n", b"\n")
    lines = data.split(b"\n")
    sender = ""
    rcpts: list[str] = []
    index = 0
    current = b""
    ours = (
        b"return-path:",
        b"delivered-to:",
        b"x-envelope-from:",
        b"x-envelope-to:",
        b"x-quarantine-id:",
    )
    while index < len(lines):
        line = lines[index]
        if line[:1] in (b" ", b"\t") and current == b"x-envelope-to:":
            rcpts += re.findall(r"<([^>]*)>", line.decode("utf-8", "replace"))
        elif line.lower().startswith(ours):
            current = line.split(b":", 1)[0].lower() + b":"
            text = line.decode("utf-8", "replace")
            if current == b"x-envelope-from:":
                sender = re.findall(r"<([^>]*)>", text)[0]
            elif current == b"x-envelope-to:":
                rcpts += re.findall(r"<([^>]*)>", text)
        else:
            break
        index += 1
    content = b"\r\n".join(lines[index:])
    return Quarantined(path, mail_id, sender, tuple(rcpts), content)
