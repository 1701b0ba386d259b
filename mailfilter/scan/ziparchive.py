"""Zip archives: every name any unzip tool could show, then the data.

A zip names each member twice, in its central directory and in the local
header before the data, and may add an Info-ZIP Unicode Path field
(0x7075) to either; tools differ in which they show (Python and Windows
Explorer read the central directory, streaming unzippers and some
antivirus engines read local headers, 7z prefers the Unicode Path). A
file may also carry junk before the archive or several archives one
after another. So names come first, from all of these places, and the
banned rules see every one of them before any data is read.

The data is read with the standard library for the methods it knows
(stored, deflate, bzip2, lzma). A member with another method (Deflate64,
PPMd, ...) or one the library refuses is read with 7z; if that fails too,
the member is undecodable, never skipped.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import zipfile
import zlib
from typing import TYPE_CHECKING

from mailfilter.scan.budget import (
    CHUNK,
    Budget,
    Member,
    Undecodable,
    read_member,
)
from mailfilter.scan.filetype import HEAD, is_container, short_types
from mailfilter.scan.unpackers import sevenzip_files

if TYPE_CHECKING:
    from collections.abc import Iterator

_READABLE = frozenset(
    {
        zipfile.ZIP_STORED,
        zipfile.ZIP_DEFLATED,
        zipfile.ZIP_BZIP2,
        zipfile.ZIP_LZMA,
    }
)
_LOCAL = b"PK\x03\x04"
_UNICODE_PATH = 0x7075
_READ_ERRORS = (
    zipfile.BadZipFile,
    NotImplementedError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
)


def zip_members(
    data: bytes, budget: Budget, timeout: float
) -> Iterator[Member]:
    """Members of a zip: every name first-hand, then data where readable."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        known: set[str] = set()
        unread: list[zipfile.ZipInfo] = []
        for info in archive.infolist():
            budget.file()
            encrypted = bool(info.flag_bits & 0x1)
            known.add(info.filename)
            for alias in _extra_names(info.extra):
                known.add(alias)
                yield Member(alias, encrypted=encrypted)
            if encrypted:
                yield Member(info.filename, encrypted=True)
                continue
            if info.is_dir():
                continue
            # Charged first: an overlapping or bomb member stops here.
            budget.charge(info.file_size)
            member = _read(archive, info, budget)
            if member is None:
                unread.append(info)
                yield Member(info.filename)  # the name is checked now
            else:
                yield member
        yield from _local_entries(data, known, budget)
        if unread:
            yield from _with_7z(data, unread, timeout)


def _read(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget
) -> Member | None:
    """The member read by the standard library, or None if it cannot."""
    if info.compress_type not in _READABLE:
        return None
    try:
        with archive.open(info) as stream:
            return Member(
                info.filename, read_member(stream, info.file_size, budget)
            )
    except _READ_ERRORS:
        return None


def _with_7z(
    data: bytes, unread: list[zipfile.ZipInfo], timeout: float
) -> Iterator[Member]:
    """Members the standard library could not read, read by 7z."""
    first = unread[0]
    what = f"zip: {first.filename!r} (method {first.compress_type})"
    try:
        files = sevenzip_files(data, ".zip", timeout)
    except Undecodable as exc:
        raise Undecodable(f"{what}: {exc}") from exc
    missing = []
    for info in unread:
        content = files.get(info.filename.lstrip("/"))
        if content is None:
            missing.append(info)
        else:
            yield Member(info.filename, content)
    if missing:
        raise Undecodable(f"{what}: {len(missing)} member(s) not read")


def _extra_names(extra: bytes) -> list[str]:
    """Names in Info-ZIP Unicode Path extra fields (0x7075)."""
    names = []
    pos = 0
    while pos + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if kind == _UNICODE_PATH and len(body) > 5:
            names.append(body[5:].decode("utf-8", "replace"))
        pos += 4 + size
    return names


def _local_entries(
    data: bytes, known: set[str], budget: Budget
) -> Iterator[Member]:
    """Entries whose local header name no central directory entry has.

    They are what a streaming unzipper shows: a local name that differs
    from the central one, or the members of a zip hidden before another.
    """
    pos = data.find(_LOCAL)
    while 0 <= pos <= len(data) - 30:
        (flags, method, size, name_len, extra_len) = struct.unpack_from(
            "<2xHH8xI4xHH", data, pos + 4
        )
        start = pos + 30
        raw = data[start : start + name_len]
        extra = data[start + name_len : start + name_len + extra_len]
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        names = [name, *_extra_names(extra)]
        body = start + name_len + extra_len
        for alias in names:
            if alias and alias not in known:
                known.add(alias)
                budget.file()
                if flags & 0x1:
                    yield Member(alias, encrypted=True)
                else:
                    content = _local_data(data, body, method, size, budget)
                    yield Member(alias, content)
        pos = data.find(_LOCAL, pos + 4)


def _local_data(
    data: bytes, start: int, method: int, size: int, budget: Budget
) -> bytes:
    """What a local entry holds, read as a streaming unzipper would."""
    end = start + size if size else len(data)
    if method == zipfile.ZIP_STORED:
        content = data[start : min(end, start + HEAD)]
        budget.charge(len(content))
        return content
    if method == zipfile.ZIP_DEFLATED:
        decoder = zlib.decompressobj(-zlib.MAX_WBITS)
    elif method == zipfile.ZIP_BZIP2:
        return _bz2_head(data[start:end], budget)
    else:
        return b""
    try:
        head = decoder.decompress(data[start:end], HEAD)
        budget.charge(len(head))
        parts = [head]
        if len(head) == HEAD and is_container(short_types(head)):
            while chunk := decoder.decompress(decoder.unconsumed_tail, CHUNK):
                budget.charge(len(chunk))
                parts.append(chunk)
    except zlib.error:
        return b""
    return b"".join(parts)


def _bz2_head(data: bytes, budget: Budget) -> bytes:
    try:
        head = bz2.BZ2Decompressor().decompress(data, HEAD)
    except (OSError, ValueError, EOFError):
        return b""
    budget.charge(len(head))
    return head
