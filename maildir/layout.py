"""Maildir layout: create a Maildir and open the delivery target safely.

`create()` makes root, tmp/, new/, cur/ (mode 0700, umask honoured) and
fsyncs the directories so the new entries survive a crash. It never
creates missing parents: on a cluster a missing parent usually means the
shared mount is missing, and mail must then defer, not land on the local
disk under the mountpoint (docs/maildir-on-shared-storage.md, "Error
classification"). `open_box()` resolves a logical folder to a directory fd
without following symlinks and falls back to INBOX when the folder is invalid
or unsafe. Writing is `delivery`.
"""

# os.* on purpose: fd-relative calls (dir_fd=) have no pathlib form, and
# pathlib costs start-up time in the CLI.
# ruff: noqa: PTH102, PTH120

from __future__ import annotations

import errno
import os

from maildir import folders

TYPE_CHECKING = False  # see delivery.py
if TYPE_CHECKING:
    from pathlib import Path


def create(root: str | os.PathLike[str], mode: int = 0o700) -> Path:
    """Create a Maildir (root, tmp, new, cur); the parent must exist.

    Refusing to create missing parents is deliberate: on a cluster, a
    missing parent usually means the shared mount is missing
    (docs/maildir-on-shared-storage.md, "Error classification").
    """
    from pathlib import Path

    _create(os.fspath(root), mode)
    return Path(root)


def _create(path: str, mode: int = 0o700) -> None:
    try:
        os.mkdir(path, mode)
        parent_fd = os.open(os.path.dirname(path) or ".", folders.DIR_FLAGS)
        try:
            os.fsync(parent_fd)
        finally:
            os.close(parent_fd)
    except FileExistsError:
        pass
    fd = os.open(path, folders.DIR_FLAGS)
    try:
        for sub in folders.SUBDIRS:
            os.close(folders.ensure_subdir(fd, sub, mode))
        os.fsync(fd)
    finally:
        os.close(fd)


def open_root(root: str, *, create_root: bool) -> int:
    try:
        return os.open(root, folders.DIR_FLAGS)
    except FileNotFoundError:
        if not create_root:
            raise
    _create(root)
    return os.open(root, folders.DIR_FLAGS)


def open_box(
    root_fd: int, folder: str | None, *, create_folder: bool
) -> tuple[str, int]:
    """(fsname, fd) of the target folder; INBOX if the folder is unusable."""
    try:
        fsname = folders.fs_name(folder) if folder else ""
    except folders.FolderNameError:
        fsname = ""
    if fsname:
        try:
            return fsname, folders.open_folder(
                root_fd, fsname, create=create_folder
            )
        except OSError as exc:
            # ELOOP/ENOTDIR: a symlink or file where the folder should be.
            # ENOENT: folder absent and not to be created. Use INBOX.
            if exc.errno not in {errno.ELOOP, errno.ENOTDIR, errno.ENOENT}:
                raise
    return "", os.dup(root_fd)
