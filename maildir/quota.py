"""Maildir++ quota: the `maildirsize` file shared with Courier and Dovecot.

Format (README.maildirquota): line 1 is the limit (`10000000S,1000C`), every
further line is `<bytes> <count>`; totals are the sums. Deliveries append one
line with O_APPEND (a single small write, so appenders on other hosts do not
interleave on a local FS or Lustre; NFS is the known exception, which the
regular recount repairs). Recount rules follow Courier and Dovecot: the file
is missing its totals, is >= 5120 bytes, or the totals say "over" and the
file has more than one usage line or is at least 15 minutes old. The scheme
is lock-free and approximate by design; it never blocks a delivery.

The file is only ever replaced whole (a new file renamed over it) and
always keeps the limit as line 1: the limit lives nowhere else, so a file
removed by a racing recount would lift the quota for good. Courier can
unlink it because it rebuilds line 1 from the account database; we cannot.

Quota applies only when `maildirsize` exists (set it with `set_quota`).
Folders (`maildirfolder` marker) are accounted in the parent's file, which
is why callers pass the Maildir root, never a folder path. Trash is excluded.
"""

# os.* where pathlib would stat twice or hide the lstat/nofollow intent.
# ruff: noqa: PTH105, PTH116, PTH118, PTH208

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

FILENAME = "maildirsize"
MAX_FILE = 5120
STALE_SECS = 15 * 60
# Recounts raced by a delivery or an expunge before settling for the last.
RECOUNT_TRIES = 3
_SIZE_IN_NAME = re.compile(r",S=(\d+)")
_EXCLUDED = {".Trash"}


@dataclass(frozen=True)
class Quota:
    """Limits; None (or 0 in the file) means no limit for that part."""

    size: int | None = None
    count: int | None = None

    def definition(self) -> str:
        """The first line of maildirsize, e.g. '1000S,10C'."""
        parts = []
        if self.size:
            parts.append(f"{self.size}S")
        if self.count:
            parts.append(f"{self.count}C")
        return ",".join(parts)


@dataclass(frozen=True)
class Usage:
    """What maildirsize says, and facts about the file itself."""

    quota: Quota
    size: int
    count: int
    lines: int
    file_size: int
    mtime: float

    def over(self, size: int, count: int = 1) -> bool:
        """Would adding size/count exceed a limit? (equal is still fine)."""
        limit_s, limit_c = self.quota.size, self.quota.count
        return bool(
            (limit_s and size > 0 and self.size + size > limit_s)
            or (limit_c and count > 0 and self.count + count > limit_c)
        )


def parse_definition(text: str) -> Quota:
    """Parse '10000000S,1000C' (either part optional)."""
    size = count = None
    for raw in text.strip().split(","):
        item = raw.strip()
        if not item:
            continue
        if item[-1] not in "SC" or not item[:-1].isdigit():
            raise ValueError(f"bad maildirsize quota item {item!r}")
        if item[-1] == "S":
            size = int(item[:-1]) or None
        else:
            count = int(item[:-1]) or None
    return Quota(size, count)


def read(root: str | os.PathLike[str]) -> Usage | None:
    """Current usage from root/maildirsize, or None when there is no quota."""
    path = Path(root) / FILENAME
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read(MAX_FILE + 1)
    except FileNotFoundError:
        return None
    lines = data.decode("ascii", "replace").split("\n")
    quota = parse_definition(lines[0])
    size = count = nlines = 0
    for line in lines[1:]:
        fields = line.split()
        if len(fields) != 2:  # a torn last line is skipped, not fatal
            continue
        try:
            size += int(fields[0])
            count += int(fields[1])
        except ValueError:
            continue
        nlines += 1
    return Usage(quota, size, count, nlines, len(data), st.st_mtime)


def _message_size(dirpath: str, name: str) -> int | None:
    found = _SIZE_IN_NAME.search(name)
    if found:
        return int(found.group(1))
    try:
        return os.lstat(os.path.join(dirpath, name)).st_size
    except FileNotFoundError:  # moved or expunged meanwhile
        return None


def _scan_dirs(root: Path) -> list[Path]:
    dirs = [root / "new", root / "cur"]
    with os.scandir(root) as entries:
        for entry in entries:
            if (
                entry.name.startswith(".")
                and entry.name not in {".", "..", *_EXCLUDED}
                and entry.is_dir(follow_symlinks=False)
            ):
                dirs += [Path(entry.path) / "new", Path(entry.path) / "cur"]
    return dirs


def _mtimes(dirs: list[Path]) -> list[int]:
    out = []
    for d in dirs:
        try:
            out.append(os.stat(d).st_mtime_ns)
        except FileNotFoundError:
            out.append(-1)
    return out


def _count(dirs: list[Path]) -> tuple[int, int]:
    size = count = 0
    for d in dirs:
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            got = _message_size(str(d), name)
            if got is not None:
                size += got
                count += 1
    return size, count


def recalculate(root: str | os.PathLike[str], quota: Quota) -> Usage:
    """Count the mailbox and replace maildirsize (Courier's algorithm)."""
    base = Path(root)
    for attempt in range(1, RECOUNT_TRIES + 1):
        dirs = _scan_dirs(base)
        before = _mtimes(dirs)
        size, count = _count(dirs)
        text = f"{quota.definition()}\n{size} {count}\n"
        if attempt == RECOUNT_TRIES:
            # Still racing: keep these totals (off by the racing messages
            # at most) plus an empty usage line. Two lines make the next
            # "over" verdict recount instead of trusting them (see check).
            text += "0 0\n"
        # Written before the second look at the directories: a delivery
        # that appended its line to the file we replace is seen as a race.
        _write_file(base, text)
        if _mtimes(dirs) == before:
            break
    lines = text.count("\n") - 1
    return Usage(quota, size, count, lines, len(text), time.time())


def _write_file(base: Path, text: str) -> None:
    from maildir import names

    tmp = base / "tmp" / f"{names.unique_name()}.maildirsize"
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
    )
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, base / FILENAME)


def set_quota(root: str | os.PathLike[str], quota: Quota) -> Usage:
    """Install a limit and count current usage (like `maildirmake -q`)."""
    return recalculate(root, quota)


def check(
    root: str | os.PathLike[str],
    size: int,
    count: int = 1,
    *,
    now: float | None = None,
) -> bool:
    """True when a message of `size` bytes fits (always true without quota)."""
    usage = read(root)
    if usage is None:
        return True
    # No usage line at all: `maildirmake -q` writes only the limit.
    if usage.file_size >= MAX_FILE or usage.lines == 0:
        usage = recalculate(root, usage.quota)
    if not usage.over(size, count):
        return True
    current = time.time() if now is None else now
    if usage.lines > 1 or current - usage.mtime >= STALE_SECS:
        usage = recalculate(root, usage.quota)
    return not usage.over(size, count)


def add(root: str | os.PathLike[str], size: int, count: int = 1) -> None:
    """Append one `<size> <count>` line, if the Maildir has a quota."""
    path = Path(root) / FILENAME
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return
    try:
        # One write() per line: O_APPEND keeps concurrent lines whole.
        os.write(fd, f"{size} {count}\n".encode("ascii"))
    finally:
        # Dovecot closes at once "to force a flush with NFS".
        os.close(fd)


def totals(root: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(bytes, messages) according to maildirsize, or None without quota."""
    usage = read(root)
    return None if usage is None else (usage.size, usage.count)
