"""One SMTP/LMTP client connection: replies, capabilities, and errors.

The pieces the reinjection client is built from: `Reply` (code, text,
enhanced code), `DownstreamError` (a failure of the whole hand-over, with
the section where it happened), and `Conn` (an open connection after
EHLO/LHLO, with its capabilities and age for reuse).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

_ENH = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}\b")
IDLE_REUSE_SECONDS = 30.0  # amavis closes cached sessions after 30 s idle
MAX_AGE_SECONDS = 60.0  # ... or 60 s of age (Out/SMTP/Session.pm)


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: code and text (continuation lines joined by space)."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def enhanced(self) -> str:
        """The enhanced status code, made up when the server gave none."""
        match = _ENH.match(self.text)
        if match:
            return match.group(0)
        return f"{self.code // 100}.6.0"

    @property
    def text_without_enhanced(self) -> str:
        """The text after the enhanced code."""
        match = _ENH.match(self.text)
        return self.text[match.end() :].lstrip() if match else self.text


class DownstreamError(Exception):
    """Reinjection failed for the whole message; never a verdict."""

    def __init__(
        self, section: str, detail: str, reply: Reply | None = None
    ) -> None:
        super().__init__(f"{section}: {detail}")
        self.section = section
        self.detail = detail
        self.reply = reply


class Conn:
    """One open connection, after EHLO/LHLO."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        caps: dict[str, str],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.caps = caps
        self.opened = time.monotonic()
        self.used = self.opened

    async def read_lines(self) -> tuple[int, list[str]]:
        """One reply: its code and the text of each of its lines."""
        lines: list[str] = []
        while True:
            raw = await self.reader.readline()
            if not raw.endswith(b"\n"):
                raise ConnectionResetError("connection closed by server")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionError(f"malformed reply {line[:80]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    async def read_reply(self) -> Reply:
        """One reply, continuation lines joined by a space."""
        code, lines = await self.read_lines()
        return Reply(code, " ".join(lines))

    def close(self) -> None:
        self.writer.close()

    @property
    def fresh(self) -> bool:
        now = time.monotonic()
        return (
            now - self.used < IDLE_REUSE_SECONDS
            and now - self.opened < MAX_AGE_SECONDS
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )


async def read_ehlo(conn: Conn) -> Reply:
    """The EHLO/LHLO reply; its keywords go into `conn.caps`."""
    code, lines = await conn.read_lines()
    for keyword_line in lines[1:]:
        keyword, _, value = keyword_line.partition(" ")
        conn.caps[keyword.upper()] = value
    return Reply(code, lines[0])
