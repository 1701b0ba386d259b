"""Archives read by external unpackers: 7z (7z, cab, arj, ...) and unar.

Each runs without a shell, in a private temporary directory, with a
timeout, and never waits for a password (a dummy one is given). Every
listed member is charged to the budget before anything is extracted.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import tempfile
from typing import TYPE_CHECKING

from mailfilter.scan.budget import Budget, Member, Undecodable
from mailfilter.scan.filetype import HEAD, is_container, short_types

if TYPE_CHECKING:
    from collections.abc import Iterator



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


def sevenzip_members(
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


def unar_members(
    data: bytes, budget: Budget, timeout: float
) -> Iterator[Member]:
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
