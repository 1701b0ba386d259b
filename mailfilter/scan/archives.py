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
import json
import lzma
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from mailfilter.scan.filetype import CONTAINERS, HEAD, short_types

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mailfilter.decision.policy import DecodingLimits

CHUNK = 1 << 20


class OverLimits(Exception):  # noqa: N818 - amavis's word for it
    """A decoding limit was hit; the text is amavis's hold reason."""


class Undecodable(Exception):  # noqa: N818
    """An archive (or one member) could not be read."""


class Budget:
    """What is left of the decoding limits for one message."""

    def __init__(self, limits: DecodingLimits, size: int) -> None:
        self.limits = limits
        self.quota = limits.quota(size)
        self.left = self.quota
        self.files = 0

    def enter(self, depth: int) -> None:
        """Account for decoding at nesting `depth` (the message is 0)."""
        if depth > self.limits.max_depth:
            raise OverLimits(
                f"Maximum decoding depth ({self.limits.max_depth}) exceeded"
            )

    def file(self) -> None:
        """Account for one more part or member."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise OverLimits(
                f"Maximum number of files ({self.limits.max_files}) exceeded"
            )

    def charge(self, size: int) -> None:
        """Account for `size` decoded bytes."""
        self.left -= max(size, 0)
        if self.left < 0:
            raise OverLimits(f"Exceeded storage quota ({self.quota} bytes)")


@dataclass(frozen=True, slots=True)
class Member:
    """One archive member: its name, and its bytes (or only their head)."""

    name: str
    data: bytes = b""
    encrypted: bool = False


def is_container(types: tuple[str, ...]) -> bool:
    """Whether content of these short types is unpacked further."""
    return not CONTAINERS.isdisjoint(types)


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
            yield from _unar(data, budget, timeout)
        else:
            yield from _7z(data, kind, budget, timeout)
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


def _run(args: list[str], timeout: float) -> str:
    """Run an unpacker; its stdout as text. Never through a shell."""
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Undecodable(f"{pathlib.Path(args[0]).name} timed out") from exc
    return (done.stdout + done.stderr).decode("utf-8", "replace")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Undecodable(f"{name} not installed")
    return path


def _7z(
    data: bytes, kind: str, budget: Budget, timeout: float
) -> Iterator[Member]:
    """7z, cab, arj (and other formats 7z reads) through p7zip."""
    seven = _tool("7z")
    with tempfile.TemporaryDirectory(prefix="mailfilter-") as tmp:
        source = pathlib.Path(tmp) / f"archive{kind}"
        source.write_bytes(data)
        # A dummy password: 7z must never wait for one on stdin.
        listing = _run([seven, "l", "-slt", "-pX", "--", str(source)], timeout)
        if "Wrong password" in listing or "encrypted archive" in listing:
            budget.file()
            yield Member("", encrypted=True)
            return
        entries = _7z_entries(listing)
        plain = _account(entries, budget)
        yield from (
            Member(e["Path"], encrypted=True)
            for e in entries
            if e.get("Encrypted") == "+"
        )
        if plain:
            out = pathlib.Path(tmp) / "out"
            _run(
                [seven, "x", "-y", "-pX", f"-o{out}", "--", str(source)],
                timeout,
            )
            yield from _extracted(out, plain)


def _7z_entries(listing: str) -> list[dict[str, str]]:
    """The `Path = ...` blocks after the ---------- line of `7z l -slt`."""
    _, _, body = listing.partition("\n----------\n")
    entries = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(" = ", 1)
            for line in block.splitlines()
            if " = " in line
        )
        if "Path" in fields and not fields.get("Attributes", "").startswith(
            "D"
        ):
            entries.append(fields)
    return entries


def _account(entries: list[dict[str, str]], budget: Budget) -> list[str]:
    """Charge every listed member before extracting; names to read back."""
    plain = []
    for entry in entries:
        budget.file()
        if entry.get("Encrypted") != "+":
            budget.charge(int(entry.get("Size") or 0))
            plain.append(entry["Path"])
    return plain


def _extracted(out: pathlib.Path, names: list[str]) -> Iterator[Member]:
    """Read back extracted regular files (never following links)."""
    for name in names:
        path = out / name
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as stream:
                head = stream.read(HEAD)
                rest = (
                    stream.read() if is_container(short_types(head)) else b""
                )
            yield Member(name, head + rest)
        else:
            yield Member(name)


def _unar(data: bytes, budget: Budget, timeout: float) -> Iterator[Member]:
    """rar through lsar (listing, JSON) and unar (extraction)."""
    lsar, unar = _tool("lsar"), _tool("unar")
    with tempfile.TemporaryDirectory(prefix="mailfilter-") as tmp:
        source = pathlib.Path(tmp) / "archive.rar"
        source.write_bytes(data)
        try:
            listing = json.loads(
                _run([lsar, "-j", "--", str(source)], timeout)
            )
        except json.JSONDecodeError as exc:
            raise Undecodable("rar: unreadable listing") from exc
        entries = [
            {
                "Path": str(e.get("XADFileName", "")),
                "Size": str(e.get("XADFileSize", 0)),
                "Encrypted": "+" if e.get("XADIsEncrypted") else "-",
            }
            for e in listing.get("lsarContents", [])
            if not e.get("XADIsDirectory")
        ]
        plain = _account(entries, budget)
        yield from (
            Member(e["Path"], encrypted=True)
            for e in entries
            if e["Encrypted"] == "+"
        )
        if plain:
            out = pathlib.Path(tmp) / "out"
            _run(
                [
                    unar,
                    "-q",
                    "-f",
                    "-D",
                    "-nr",
                    "-p",
                    "X",
                    "-o",
                    str(out),
                    "--",
                    str(source),
                ],
                timeout,
            )
            yield from _extracted(out, plain)
