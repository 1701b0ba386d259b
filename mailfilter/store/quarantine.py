"""Quarantine: blocked messages kept in one Maildir per kind.

Written with the project's own `maildir` library (fsync, tmp then new), so
an admin reads the quarantine with Dovecot or mutt, and the copy is on disk
before we answer Postfix: if it cannot be written, the message tempfails
instead of being discarded (never lose mail). The envelope travels in
X-Envelope-* fields, as amavis writes them (docs/amavis-compat.md, "Quarantine
and release"), so `release` can reinject the message to its original
recipients.

Only the lines we write are trusted. Unlike amavis, which starts with
Return-Path and finds a file by its name, the first line of every file is
our `X-Quarantine-ID: <mail_id>` (Maildir names are not ours to choose),
written before any byte of the message, and
`find` compares that line alone: a sender who puts someone else's id (or
our envelope fields) into the message cannot have it released in place of
the other message, nor add recipients. Our block has a fixed order, one
address per line, so it is parsed exactly; whatever follows is the message.
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
_MAIL_ID = re.compile(r"[A-Za-z0-9_-]{6,40}")


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A message found in the quarantine."""

    path: Path
    mail_id: str
    sender: str
    recipients: tuple[str, ...]
    content: bytes  # what follows our block: added fields and the message


class Quarantine:
    """The quarantine root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def store(
        self, envelope: Envelope, verdict: Verdict, mail_id: str, added: bytes
    ) -> str:
        """Write the message; returns the path for the log, `kind/new/name`."""
        if not _MAIL_ID.fullmatch(mail_id):
            # The lookup relies on the id being ours and of this form.
            raise ValueError(f"not a mail_id: {mail_id!r}")
        kind = KINDS[verdict]
        # One address per line, every line but the last ending in ",":
        # `_parse` knows where our block ends without trusting the message.
        rcpts = ",\r\n ".join(f"<{r.address}>" for r in envelope.recipients)
        head = (
            f"{_id_line(mail_id)}\r\n"
            f"Return-Path: <{envelope.sender}>\r\n"
            f"Delivered-To: {kind}-quarantine\r\n"
            f"X-Envelope-From: <{envelope.sender}>\r\n"
            f"X-Envelope-To: {rcpts}\r\n"
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
        """The quarantined message with this mail_id (KeyError if none).

        Only the first line of each file is read: it is ours, so the
        match cannot be forged from inside a message, and the cost per
        file does not grow with its recipients or headers.
        """
        if not _MAIL_ID.fullmatch(mail_id):
            raise KeyError(f"not a mail_id: {mail_id!r}")
        wanted = _id_line(mail_id).encode("ascii")
        for path in sorted(self.root.glob("*/[nc][eu][wr]/*")):
            try:
                with path.open("rb") as handle:
                    first = handle.readline(len(wanted) + 3)
            except FileNotFoundError:  # expunged by an admin meanwhile
                continue
            if first.rstrip(b"\r\n") == wanted and first.endswith(b"\n"):
                return _parse(path, mail_id)
        raise KeyError(f"no quarantined message with mail_id {mail_id}")


def _id_line(mail_id: str) -> str:
    return f"X-Quarantine-ID: <{mail_id}>"


def _bracketed(value: bytes) -> str | None:
    """The address in `<...>` (None if the value is not one)."""
    if not (value.startswith(b"<") and value.endswith(b">")):
        return None
    # As written by `store`: the bytes of the envelope, undecodable ones
    # kept, so 10025 gets back exactly the addresses Postfix gave us.
    return value[1:-1].decode("utf-8", "surrogateescape")


_FIXED = (b"X-Quarantine-ID: ", b"Return-Path: ", b"Delivered-To: ")


def _parse(path: Path, mail_id: str) -> Quarantined:
    """Split our block (exactly as `store` writes it) from the message."""
    lines = path.read_bytes().replace(b"\r\n", b"\n").split(b"\n")
    damaged = KeyError(f"{path}: not a quarantine file in our format")
    if len(lines) < len(_FIXED) + 2 or not all(
        line.startswith(name)
        for line, name in zip(lines, _FIXED, strict=False)
    ):
        raise damaged
    sender_line = lines[len(_FIXED)]
    sender = _bracketed(sender_line.removeprefix(b"X-Envelope-From: "))
    index = len(_FIXED) + 1
    if not sender_line.startswith(b"X-Envelope-From: ") or sender is None:
        raise damaged
    value = lines[index].removeprefix(b"X-Envelope-To: ")
    if len(value) == len(lines[index]):
        raise damaged
    rcpts: list[str] = []
    # Our list ends at the first address line without a trailing comma;
    # an address cannot hold a line break, so the message cannot extend it.
    while value:
        address = _bracketed(value.removesuffix(b","))
        if address is None:
            raise damaged
        rcpts.append(address)
        if not value.endswith(b","):
            break
        index += 1
        if index >= len(lines) or not lines[index].startswith(b" "):
            raise damaged
        value = lines[index][1:]
    content = b"\r\n".join(lines[index + 1 :])
    return Quarantined(path, mail_id, sender, tuple(rcpts), content)
