"""Attachments inside TNEF (winmail.dat, application/ms-tnef), as amavis.

Outlook wraps attachments in TNEF ([MS-OXTNEF]); a client that decodes it
(Outlook, Thunderbird with an add-on, many webmails) shows the files
inside, so the banned rules must see their names and bytes. A stream is a
signature, a key, then attributes: level (message 1, attachment 2), id,
length, data, checksum. An attachment starts at attAttachRendData; its
names are attAttachTitle and the MAPI properties of attAttachment (long
file name, file name, display name), its bytes attAttachData or the
attach-data property, which may hold an embedded message (itself TNEF,
unpacked in turn as a member).

Standard library only: the format is small, and a parser we own fails
the way we want, as `Undecodable` for anything it cannot follow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailfilter.scan.budget import Budget, Member, Undecodable

if TYPE_CHECKING:
    from collections.abc import Iterator

SIGNATURE = b"\x78\x9f\x3e\x22"
_RENDDATA = 0x00069002
_TITLE = 0x00018010
_DATA = 0x0006800F
_ATTACHMENT = 0x00069005
# MAPI property ids that name an attachment, and the one that holds it.
_NAME_PROPS = frozenset({0x3707, 0x3704, 0x3001, 0x370D, 0x3708})
_DATA_PROP = 0x3701
_FIXED = {
    0x0001: 4,  # PT_NULL
    0x0002: 4,  # PT_SHORT, padded
    0x0003: 4,  # PT_LONG
    0x0004: 4,  # PT_FLOAT
    0x0005: 8,  # PT_DOUBLE
    0x0006: 8,  # PT_CURRENCY
    0x0007: 8,  # PT_APPTIME
    0x000A: 4,  # PT_ERROR
    0x000B: 4,  # PT_BOOLEAN, padded
    0x0014: 8,  # PT_I8
    0x0040: 8,  # PT_SYSTIME
    0x0048: 16,  # PT_CLSID
}
_STRING8, _UNICODE, _BINARY, _OBJECT = 0x001E, 0x001F, 0x0102, 0x000D
_MULTI = 0x1000


@dataclass(slots=True)
class _Attachment:
    names: list[str] = field(default_factory=list)
    data: bytes = b""


def tnef_members(data: bytes, budget: Budget) -> Iterator[Member]:
    """Each attachment of a TNEF stream: its names and its bytes."""
    for attachment in _attachments(data):
        budget.file()
        budget.charge(len(attachment.data))
        names = list(dict.fromkeys(n for n in attachment.names if n))
        first = names[0] if names else ""
        yield Member(first, attachment.data)
        yield from (Member(name) for name in names[1:])


def _attachments(data: bytes) -> Iterator[_Attachment]:
    """Attachments one by one, so the member limit stops a flood early."""
    if not data.startswith(SIGNATURE):
        raise Undecodable("tnef: no signature")
    current: _Attachment | None = None
    pos = 6
    while pos < len(data):
        if pos + 9 > len(data):
            raise Undecodable("tnef: truncated attribute")
        level, attr, size = struct.unpack_from("<BII", data, pos)
        body = data[pos + 9 : pos + 9 + size]
        pos += 9 + size + 2
        if len(body) < size or pos > len(data) or level not in {1, 2}:
            raise Undecodable("tnef: bad attribute")
        if attr == _RENDDATA or (level == 2 and current is None):
            if current is not None:
                yield current
            current = _Attachment()
        if level == 2 and current is not None:
            _apply(current, attr, body)
    if current is not None:
        yield current


def _apply(current: _Attachment, attr: int, body: bytes) -> None:
    """One attachment-level attribute: a name or the bytes."""
    if attr == _TITLE:
        current.names.append(_string8(body))
    elif attr == _DATA:
        current.data = body
    elif attr == _ATTACHMENT:
        for prop, value in _properties(body):
            if prop in _NAME_PROPS and isinstance(value, str):
                current.names.append(value)
            elif prop == _DATA_PROP and isinstance(value, bytes):
                current.data = current.data or value


def _string8(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("cp1252", "replace")


def _properties(block: bytes) -> Iterator[tuple[int, str | bytes | None]]:
    """(property id, value) of a MAPI property list; strings decoded."""
    reader = _Reader(block)
    for _ in range(reader.u32()):
        kind, prop = reader.u16(), reader.u16()
        if prop >= 0x8000:  # named property: GUID, then an id or a name
            reader.take(16)
            if reader.u32() == 0:
                reader.u32()
            else:
                reader.padded(reader.u32())
        base = kind & ~_MULTI
        if base in _FIXED and not kind & _MULTI:
            reader.take(_FIXED[base])
            yield prop, None
            continue
        if base in _FIXED:
            reader.take(_FIXED[base] * reader.u32())
            yield prop, None
            continue
        if base not in {_STRING8, _UNICODE, _BINARY, _OBJECT}:
            raise Undecodable(f"tnef: property type {kind:#06x}")
        for _ in range(reader.u32()):
            raw = reader.padded(reader.u32())
            yield prop, _value(base, raw)


def _value(base: int, raw: bytes) -> str | bytes:
    if base == _STRING8:
        return _string8(raw)
    if base == _UNICODE:
        return raw.decode("utf-16-le", "replace").split("\0", 1)[0]
    # An object starts with the 16-byte interface id of what it holds.
    return raw[16:] if base == _OBJECT else raw


class _Reader:
    """Little-endian fields of a property block; short data is Undecodable."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise Undecodable("tnef: truncated properties")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def padded(self, size: int) -> bytes:
        chunk = self.take(size)
        self.take(-size % 4)
        return chunk

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])
