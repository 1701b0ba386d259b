"""Remove stale files from tmp/ (36 hours, maildir(5)).

A delivery aborts after 24 h, so a tmp/ file whose ctime is older than 36 h
belongs to nobody (qmail uses atime; Courier and Dovecot use ctime, which
nothing can set backwards). The 12 h margin absorbs moderate clock skew
between hosts on the shared mount. Dot-files (NFS silly-renames) and
anything that is not a regular file are skipped, except the folder build
directories that `folders` leaves behind after a crash. Scheduling the
cleaner is the operator's job (cron/systemd timer on one host).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

MAX_AGE = 36 * 3600.0
_BUILD_SUFFIXES = (".folder", ".deleted")


def _clean_dir(tmp: Path, cutoff: float) -> list[Path]:
    removed: list[Path] = []
    try:
        entries = list(os.scandir(tmp))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if st.st_ctime >= cutoff:
            continue
        path = Path(entry.path)
        if stat.S_ISREG(st.st_mode):
            path.unlink(missing_ok=True)
            removed.append(path)
        elif stat.S_ISDIR(st.st_mode) and entry.name.endswith(_BUILD_SUFFIXES):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def clean_tmp(
    root: str | os.PathLike[str],
    *,
    max_age: float = MAX_AGE,
    now: float | None = None,
) -> list[Path]:
    """Remove stale tmp/ files of the Maildir and all its folders."""
    base = Path(root)
    cutoff = (time.time() if now is None else now) - max_age
    removed = _clean_dir(base / "tmp", cutoff)
    with os.scandir(base) as entries:
        boxes = [
            Path(e.path)
            for e in entries
            if e.name.startswith(".")
            and e.name not in {".", ".."}
            and e.is_dir(follow_symlinks=False)
        ]
    for box in boxes:
        removed += _clean_dir(box / "tmp", cutoff)
    return removed
