"""List and extract archive members under amavis's decoding limits.

zip, tar, gzip, bzip2 and xz are read in memory with the stdlib; 7z, cab
and arj go through `7z` (p7zip-full) and rar through `lsar`/`unar`, run
without a shell in a private temporary directory with a timeout. A member
is read only as far as needed: its first bytes always (for its content
type), all of it only when it is itself an archive to descend into.

Limits are counted while reading (`Budget`): the number of members, the
nesting depth, and the expansion quota, charged with the larger of the
declared and the decoded size *before* decoding, so a zip bomb or an
overlapping zip ends at its first over-large member. Hitting a limit
raises `OverLimits`, an archive we cannot read raises `Undecodable`;
`scanners.banned` turns both into UNCHECKED verdicts. Encrypted members
are yielded with their names, so the name rules still apply.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from typing import TYPE_CHECKING, Any

from mailfilter.scan.budget import (
    CHUNK,
    Budget,
    Member,
    OverLimits,
    Undecodable,
    read_member,
)
from mailfilter.scan.filetype import HEAD, is_container, short_types
from mailfilter.scan.tnef import tnef_members
from mailfilter.scan.unpackers import sevenzip_members, unar_members
from mailfilter.scan.ziparchive import zip_members

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def members(
    data: bytes, kind: str, budget: Budget, timeout: float
) -> Iterator[Member]:
    """Members of an archive of short type `kind` (".zip", ".gz", ...)."""
    try:
        if kind == ".zip":
            yield from zip_members(data, budget, timeout)
        elif kind == ".tnef":
            yield from tnef_members(data, budget)
        elif kind == ".tar":
            yield from _tar(data, budget)
        elif kind in _STREAMS:
            yield from _stream(data, kind, budget)
        elif kind == ".rar":
            yield from unar_members(data, budget, timeout)
        else:
            yield from sevenzip_members(data, kind, budget, timeout)
    except (OverLimits, Undecodable):
        raise
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        zlib.error,
        lzma.LZMAError,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        UnicodeError,
        LookupError,
        struct.error,
    ) as exc:
        raise Undecodable(f"{kind[1:]}: {type(exc).__name__}") from exc


def _tar(data: bytes, budget: Budget) -> Iterator[Member]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            budget.file()
            stream = archive.extractfile(info) if info.isfile() else None
            if stream is not None:
                budget.charge(info.size)
                yield Member(info.name, read_member(stream, info.size, budget))
            elif not info.isdir():
                # A link or device is still a name the reader sees.
                yield Member(info.name)


_STREAMS: dict[str, Callable[[], Any]] = {
    ".gz": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    ".bz2": bz2.BZ2Decompressor,
    ".xz": lzma.LZMADecompressor,
}


def _stream(data: bytes, kind: str, budget: Budget) -> Iterator[Member]:
    """A compressed stream holds one member, named after gzip's FNAME.

    gzip, bzip2 and xz all allow several compressed members one after the
    other, and `gzip -d`, `bzip2 -d` and `xz -d` output them all, joined:
    so does this. The FNAME of every gzip member is a name of the member.
    """
    budget.file()
    names: list[str] = []
    head = b""
    keep: bool | None = None
    parts: list[bytes] = []
    for chunk in _inflate_all(data, kind, names):
        budget.charge(len(chunk))
        if keep is None:
            head += chunk
            if len(head) >= HEAD:
                keep = is_container(short_types(head))
                parts.append(head if keep else head[:HEAD])
        elif keep:
            parts.append(chunk)
    first = names[0] if names else ""
    yield Member(first, b"".join(parts) if keep is not None else head)
    yield from (Member(name) for name in dict.fromkeys(names[1:]) if name)


def _inflate_all(data: bytes, kind: str, names: list[str]) -> Iterator[bytes]:
    """Every member of a multi-member stream, in order.

    Zero bytes after a member are padding (xz requires allowing it, gzip
    ignores it); anything else must be another member, or the decoder
    raises and the archive is undecodable.
    """
    pending = data
    while pending:
        if kind == ".gz":
            names.append(_gzip_name(pending))
        decoder = _STREAMS[kind]()
        yield from _inflate(decoder, pending)
        if not decoder.eof:
            return  # truncated: what decoded is checked
        pending = decoder.unused_data.lstrip(b"\0")


def _inflate(decoder: Any, data: bytes) -> Iterator[bytes]:
    """Decompressed chunks of at most CHUNK bytes (bounded memory)."""
    pending = data
    while not decoder.eof:
        if isinstance(decoder, type(zlib.decompressobj())):
            chunk = decoder.decompress(pending, CHUNK)
            pending = decoder.unconsumed_tail
            if not chunk and not pending:
                return
        else:
            if decoder.needs_input and not pending:
                return
            chunk = decoder.decompress(pending, CHUNK)
            pending = b""
        yield chunk


def _gzip_name(data: bytes) -> str:
    """The original file name stored in a gzip header (RFC 1952 FNAME)."""
    if len(data) < 10 or not data[3] & 0x08:
        return ""
    start = 10
    if data[3] & 0x04:  # FEXTRA
        start += 2 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\0", start, start + 1024)
    return data[start:end].decode("latin-1") if end > start else ""
