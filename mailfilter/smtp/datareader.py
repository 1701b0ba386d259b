"""Read one DATA section from an asyncio stream, fast and safely.

aiosmtpd reads DATA line by line in Python (about 1 s per 20 MB, and a
stalled loop meanwhile; docs/performance-and-reliability.md, "Per-line Python
loops"). This reads chunks, finds the end with `bytes.find` and unstuffs with
`bytes.replace`, so a 20 MB message costs milliseconds. Only CRLF.CRLF ends the
data: a bare LF.LF does not (SMTP smuggling, CVE-2023-51764).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter.smtp.wire import has_dot_lines, unstuff

if TYPE_CHECKING:
    import asyncio

_TERMINATOR = b"\r\n.\r\n"
# Also the server's StreamReader limit, so reads come in chunks this big.
CHUNK = 1 << 18


@dataclass(frozen=True, slots=True)
class Data:
    """What arrived: the content (None when over the limit) and its size."""

    content: bytes | None
    size: int
    # Whether a line starts with a dot, so reinjection must re-stuff.
    dot_lines: bool = True


async def read_data(reader: asyncio.StreamReader, limit: int) -> Data:
    """Read up to CRLF.CRLF; keep nothing once past `limit` bytes.

    The buffer starts with a virtual CRLF so that a lone "." as the first
    line ends the data too. Bytes after the final dot (a client that
    pipelines QUIT) go back into the reader.
    """
    buf = bytearray(b"\r\n")
    start = 0
    size = 0
    over = False
    while (end := buf.find(_TERMINATOR, start)) < 0:
        if size > limit:
            over = True  # keep reading to the end, but keep nothing
            del buf[: len(buf) - 4]
        start = max(0, len(buf) - 4)
        chunk = await reader.read(CHUNK)
        if not chunk:
            raise ConnectionResetError("connection lost during DATA")
        size += len(chunk)
        buf += chunk
    over = over or size - 3 > limit
    leftover = bytes(buf[end + len(_TERMINATOR) :])
    if leftover:
        # CPython's StreamReader keeps unread bytes in `_buffer`.
        reader._buffer[:0] = leftover  # type: ignore[attr-defined]
    if over:
        return Data(None, size)
    with memoryview(buf) as view:
        content = bytes(view[2 : end + 2])  # one copy, not two
    del buf
    dots = has_dot_lines(content)
    return Data(unstuff(content) if dots else content, size, dots)
