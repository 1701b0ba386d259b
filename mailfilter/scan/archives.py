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
import tarfile
import zipfile
import zlib
from typing import IO, TYPE_CHECKING, Any

from mailfilter.scan.budget import (
    CHUNK,
    Budget,
    Member,
    OverLimits,
    Undecodable,
)
from mailfilter.scan.filetype import HEAD, is_container, short_types
from mailfilter.scan.unpackers import sevenzip_members, unar_members

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator





def members(
    data: bytes, kind: str, budget: Budget, timeout: float
) -> Iterator[Member]:
    """Members of an archive of short type `kind` (".zip", ".gz", ...)."""
    try:
        if kind == ".zip":
            yield from _zip(data, budget)
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
    ) as exc:
        raise Undecodable(f"{kind[1:]}: {type(exc).__name__}") from exc


def _read(stream: IO[bytes], charged: int, budget: Budget) -> bytes:
    """Read a member's head, and the rest only if it is an archive.

    `charged` bytes (the declared size) are already on the budget; only
    what decodes beyond them is charged here.
    """
    parts = [stream.read(HEAD)]
    if len(parts[0]) == HEAD and is_container(short_types(parts[0])):
        while chunk := stream.read(CHUNK):
            parts.append(chunk)
    data = b"".join(parts)
    budget.charge(len(data) - charged)
    return data


def _zip(data: bytes, budget: Budget) -> Iterator[Member]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            budget.file()
            if info.flag_bits & 0x1:
                yield Member(info.filename, encrypted=True)
            elif not info.is_dir():
                # Charged first: an overlapping or bomb member stops here.
                budget.charge(info.file_size)
                with archive.open(info) as stream:
                    data = _read(stream, info.file_size, budget)
                yield Member(info.filename, data)


def _tar(data: bytes, budget: Budget) -> Iterator[Member]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            budget.file()
            stream = archive.extractfile(info) if info.isfile() else None
            if stream is not None:
                budget.charge(info.size)
                yield Member(info.name, _read(stream, info.size, budget))


_STREAMS: dict[str, Callable[[], Any]] = {
    ".gz": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    ".bz2": bz2.BZ2Decompressor,
    ".xz": lzma.LZMADecompressor,
}


def _stream(data: bytes, kind: str, budget: Budget) -> Iterator[Member]:
    """A compressed stream holds one member, named after gzip's FNAME."""
    budget.file()
    name = _gzip_name(data) if kind == ".gz" else ""
    decoder = _STREAMS[kind]()
    head = b""
    keep: bool | None = None
    parts: list[bytes] = []
    for chunk in _inflate(decoder, data):
        budget.charge(len(chunk))
        if keep is None:
            head += chunk
            if len(head) >= HEAD:
                keep = is_container(short_types(head))
                parts.append(head if keep else head[:HEAD])
        elif keep:
            parts.append(chunk)
    yield Member(name, b"".join(parts) if keep is not None else head)


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
