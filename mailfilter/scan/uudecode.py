"""Files uuencoded inside text bodies ("begin 644 name" ... "end").

Old clients (Outlook Express, many Usenet readers) and some webmails
still show a uuencoded block in a text part as an attachment, and amavis
decodes them; so the names and bytes inside go to the banned rules like
any other part. Both forms are read: classic uuencode and `uuencode -m`
("begin-base64"). Decoding is lenient the way uudecode is: a bad line is
skipped, a missing "end" ends the file at the end of the text.
"""

from __future__ import annotations

import binascii
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

_BEGIN = re.compile(
    rb"^begin(-base64)?[ \t]+[0-7]{1,4}[ \t]+([^\r\n]+?)[ \t]*\r?$",
    re.MULTILINE,
)
_END = re.compile(rb"^(?:end|====)[ \t]*\r?$", re.MULTILINE)


def has_uuencoded(text: bytes) -> bool:
    """Whether `text` holds a begin line (cheap test before decoding)."""
    return b"begin" in text and _BEGIN.search(text) is not None


def uu_files(text: bytes, limit: int) -> Iterator[tuple[str, bytes]]:
    """(name, decoded bytes) of each uuencoded file, at most `limit` bytes."""
    pos = 0
    while (begin := _BEGIN.search(text, pos)) is not None:
        end = _END.search(text, begin.end())
        stop = len(text) if end is None else end.start()
        lines = text[begin.end() : stop].split(b"\n")
        name = begin.group(2).decode("utf-8", "replace")
        decode = _base64_line if begin.group(1) else _uu_line
        out = bytearray()
        for line in lines:
            if len(out) > limit:
                break
            out += decode(line.strip(b"\r"))
        yield name, bytes(out[: limit + 1])
        pos = stop if end is None else end.end()


def _uu_line(line: bytes) -> bytes:
    if not line or line in {b"`", b" "}:
        return b""
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        # Some encoders pad short lines; uudecode reads what it can.
        try:
            size = (line[0] - 32) & 63
            return binascii.a2b_uu(line[: 1 + (size + 2) // 3 * 4])
        except binascii.Error:
            return b""


def _base64_line(line: bytes) -> bytes:
    try:
        return binascii.a2b_base64(line)
    except binascii.Error:
        return b""
