"""Archives read by external unpackers: 7z (7z, cab, arj, ...) and unar.

Each runs without a shell, in a private temporary directory, with a
timeout and a cap on the size of any file it writes, and never waits for
a password (a dummy one is given). Every listed member is charged to the
budget before anything is extracted.

An unpacker that fails is never taken as "nothing inside": a listing
that exits non-zero, or that lists nothing for a non-empty archive, is
undecodable, and so is an extraction that exits non-zero or leaves fewer
files than were listed. Listed names are checked as names only; data is
read from the extraction directory itself, by walking it, never by
joining a listed name to a host path (an absolute name or `..` would read
a file of the host), and never through a link.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
from typing import TYPE_CHECKING

from mailfilter.scan.budget import Budget, Member, Undecodable
from mailfilter.scan.filetype import HEAD, is_container, short_types

if TYPE_CHECKING:
    from collections.abc import Iterator

# Largest file an unpacker may write: a member lying about its size ends
# the tool (SIGXFSZ) instead of filling the disk.
MAX_FILE = 300 << 20
_ENCRYPTED_HEADERS = ("Wrong password", "Can not open encrypted archive")


def _run(args: list[str], timeout: float) -> tuple[int, str, str]:
    """Run an unpacker: exit status, stdout, stderr. Never via a shell."""
    tool = pathlib.Path(args[0]).name
    limit = shutil.which("prlimit")
    if limit is not None:
        args = [limit, f"--fsize={MAX_FILE}", "--", *args]
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Undecodable(f"{tool} timed out") from exc
    return (
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Undecodable(f"{name} not installed")
    return path


def sevenzip_members(
    data: bytes, kind: str, budget: Budget, timeout: float
) -> Iterator[Member]:
    """7z, cab, arj (and other formats 7z reads) through p7zip."""
    seven = _tool("7z")
    with tempfile.TemporaryDirectory(prefix="mailfilter-") as tmp:
        source = pathlib.Path(tmp) / f"archive{kind}"
        source.write_bytes(data)
        # A dummy password: 7z must never wait for one on stdin.
        code, out, err = _run(
            [seven, "l", "-slt", "-pX", "--", str(source)], timeout
        )
        blocks = _7z_blocks(out)
        if code != 0 and not blocks and _encrypted_headers(out + err):
            budget.file()
            yield Member("", encrypted=True)
            return
        _listing_ok("7z", code, len(blocks), len(data))
        entries = [
            b for b in blocks if not b.get("Attributes", "").startswith("D")
        ]
        plain = _account(entries, budget)
        yield from _listed(entries)
        if plain:
            target = pathlib.Path(tmp) / "out"
            code, _, _ = _run(
                [seven, "x", "-y", "-pX", f"-o{target}", "--", str(source)],
                timeout,
            )
            yield from _extracted(target, "7z", code, len(plain))


def sevenzip_files(data: bytes, kind: str, timeout: float) -> dict[str, bytes]:
    """Every regular file 7z extracts, by path inside the archive.

    For members another reader could name but not decode; the caller has
    charged their sizes already.
    """
    seven = _tool("7z")
    with tempfile.TemporaryDirectory(prefix="mailfilter-") as tmp:
        source = pathlib.Path(tmp) / f"archive{kind}"
        source.write_bytes(data)
        target = pathlib.Path(tmp) / "out"
        code, _, _ = _run(
            [seven, "x", "-y", "-pX", f"-o{target}", "--", str(source)],
            timeout,
        )
        if code != 0:
            # 7z leaves empty or partial files behind on a data error.
            raise Undecodable(f"7z: extraction failed (exit {code})")
        return dict(_walk(target))


def _encrypted_headers(text: str) -> bool:
    return any(marker in text for marker in _ENCRYPTED_HEADERS)


def _listing_ok(tool: str, code: int, count: int, size: int) -> None:
    """A failed listing, or an empty one of a non-empty archive: unclean."""
    if code != 0:
        raise Undecodable(f"{tool}: listing failed (exit {code})")
    if count == 0 and size > 0:
        raise Undecodable(f"{tool}: empty listing")


def _7z_blocks(listing: str) -> list[dict[str, str]]:
    """The `Path = ...` blocks after the ---------- line of `7z l -slt`."""
    # Split on "\n" only: a name may hold \f, \v or U+2028, which
    # str.splitlines() would take for line ends.
    _, _, body = listing.replace("\r\n", "\n").partition("\n----------\n")
    entries = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(" = ", 1) for line in block.split("\n") if " = " in line
        )
        if "Path" in fields:
            entries.append(fields)
    return entries


def _account(entries: list[dict[str, str]], budget: Budget) -> list[str]:
    """Charge every listed member before extracting; names to read back."""
    plain = []
    for entry in entries:
        budget.file()
        if entry.get("Encrypted") != "+":
            size = entry.get("Size") or "0"
            budget.charge(int(size) if size.isdigit() else 0)
            plain.append(entry["Path"])
    return plain


def _listed(entries: list[dict[str, str]]) -> Iterator[Member]:
    """Every listed name, checked before anything is extracted."""
    for entry in entries:
        yield Member(entry["Path"], encrypted=entry.get("Encrypted") == "+")


def _extracted(
    target: pathlib.Path, tool: str, code: int, listed: int
) -> Iterator[Member]:
    """Members read back from the extraction directory, then its verdict."""
    found = 0
    for name, content in _walk(target):
        found += 1
        yield Member(name, content)
    if code != 0:
        raise Undecodable(f"{tool}: extraction failed (exit {code})")
    if found < listed:
        raise Undecodable(f"{tool}: {listed - found} member(s) not extracted")


def _walk(root: pathlib.Path) -> Iterator[tuple[str, bytes]]:
    """Regular files under `root`, by relative path, never via a link."""
    base = root.resolve()
    for folder, dirs, files in os.walk(base, followlinks=False):
        dirs.sort()
        for file in sorted(files):
            path = pathlib.Path(folder) / file
            if not path.resolve().is_relative_to(base):
                continue
            content = _read_regular(path)
            if content is not None:
                yield path.relative_to(base).as_posix(), content


def _read_regular(path: pathlib.Path) -> bytes | None:
    """The head of a regular file (all of it for an archive); links: None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        head = stream.read(HEAD)
        rest = stream.read() if is_container(short_types(head)) else b""
    return head + rest


def unar_members(
    data: bytes, budget: Budget, timeout: float
) -> Iterator[Member]:
    """rar through lsar (listing, JSON) and unar (extraction)."""
    lsar, unar = _tool("lsar"), _tool("unar")
    with tempfile.TemporaryDirectory(prefix="mailfilter-") as tmp:
        source = pathlib.Path(tmp) / "archive.rar"
        source.write_bytes(data)
        code, out, _ = _run([lsar, "-j", "--", str(source)], timeout)
        try:
            listing = json.loads(out)
        except json.JSONDecodeError as exc:
            raise Undecodable("rar: unreadable listing") from exc
        contents = listing.get("lsarContents", [])
        _listing_ok("rar", code, len(contents), len(data))
        entries = [
            {
                "Path": str(e.get("XADFileName", "")),
                "Size": str(e.get("XADFileSize", 0)),
                "Encrypted": "+" if e.get("XADIsEncrypted") else "-",
            }
            for e in contents
            if not e.get("XADIsDirectory")
        ]
        plain = _account(entries, budget)
        yield from _listed(entries)
        if plain:
            target = pathlib.Path(tmp) / "out"
            code, _, _ = _run(
                [
                    unar,
                    "-q",
                    "-f",
                    "-D",
                    "-nr",
                    "-p",
                    "X",
                    "-o",
                    str(target),
                    "--",
                    str(source),
                ],
                timeout,
            )
            yield from _extracted(target, "unar", code, len(plain))
