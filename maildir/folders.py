"""Maildir++ folders: names, mUTF-7 encoding, safe opening, create/remove.

A folder "a.b" lives in `<root>/.a.b/` (flat; "." separates levels), each a
full maildir plus an empty `maildirfolder` marker (Courier maildir(5)).
Component names are stored in modified UTF-7 ("Résumé" -> `R&AOk-sum&AOk-`),
like Courier and Dovecot without `:UTF-8`.

Names from outside (a recipient extension) go through `from_extension()`,
which returns None (= INBOX) for anything unsafe: traversal, "/", control
characters, empty components, over-long names. Folder directories are
opened relative to the root's fd with O_NOFOLLOW, so a planted symlink
(`.Junk -> /etc`) is refused instead of followed. Delivery itself is in
`deliver`; quota accounting in `quota`.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # see delivery.py: typing/pathlib cost start-up
if TYPE_CHECKING:
    from pathlib import Path

MARKER = "maildirfolder"
SUBDIRS = ("tmp", "new", "cur")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
NOFOLLOW_DIR = DIR_FLAGS | os.O_NOFOLLOW
# Leaves room for the dot and for Dovecot's own suffixes under NAME_MAX.
_FS_NAME_MAX = 200


class FolderNameError(ValueError):
    """A folder name that must not reach the filesystem."""


def _encode_run(run: str) -> str:
    import base64

    raw = base64.b64encode(run.encode("utf-16-be")).decode("ascii")
    return "&" + raw.rstrip("=").replace("/", ",") + "-"


def mutf7_encode(name: str) -> str:
    """Modified UTF-7 (RFC 3501 5.1.3) of one folder component."""
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def mutf7_decode(name: str) -> str:
    """Inverse of `mutf7_encode`; raises FolderNameError on bad input."""
    out: list[str] = []
    i = 0
    while i < len(name):
        if name[i] != "&":
            out.append(name[i])
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            raise FolderNameError(f"unterminated &-sequence in {name!r}")
        chunk = name[i + 1 : end].replace(",", "/")
        if not chunk:
            out.append("&")
        else:
            import base64

            padded = chunk + "=" * (-len(chunk) % 4)
            try:
                out.append(base64.b64decode(padded).decode("utf-16-be"))
            except ValueError as exc:
                raise FolderNameError(f"bad mUTF-7 in {name!r}") from exc
        i = end + 1
    return "".join(out)


def _check_component(part: str) -> None:
    if not part:
        raise FolderNameError("empty folder level (leading, trailing or '..')")
    for ch in part:
        code = ord(ch)
        if (
            ch == "/"
            or code < 0x20
            or code == 0x7F
            or 0xD800 <= code <= 0xDFFF
        ):
            raise FolderNameError(f"forbidden character {ch!r}")


def normalise(name: str) -> str | None:
    """Canonical logical name: None for INBOX, else 'a.b' (strips 'INBOX.').

    Every leading 'INBOX.' goes, so the result is a fixed point: the name
    returned is the folder the mail is stored in ('INBOX.INBOX.Junk' is
    'Junk', 'INBOX.INBOX' is INBOX).
    """
    while name[:6].upper() == "INBOX.":
        name = name[6:]
    if name.upper() == "INBOX":
        return None
    if name.startswith("~"):
        raise FolderNameError("names starting with '~' are home paths")
    for part in name.split("."):
        _check_component(part)
    return name


def fs_name(name: str | None) -> str:
    """Directory name under the root for a logical folder ('' = INBOX)."""
    logical = normalise(name) if name is not None else None
    if logical is None:
        return ""
    encoded = "." + ".".join(mutf7_encode(p) for p in logical.split("."))
    if len(encoded.encode("ascii")) > _FS_NAME_MAX:
        raise FolderNameError("folder name too long")
    return encoded


def logical_name(dirname: str) -> str:
    """Logical folder name for an on-disk `.a.b` directory name."""
    if not dirname.startswith(".") or dirname in {".", ".."}:
        raise FolderNameError(f"not a Maildir++ folder: {dirname!r}")
    return ".".join(mutf7_decode(p) for p in dirname[1:].split("."))


def from_extension(ext: str | bytes | None) -> str | None:
    """Folder for a recipient extension (`user+Junk`); None means INBOX."""
    if ext is None:
        return None
    if isinstance(ext, bytes):
        try:
            ext = ext.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        fs_name(ext)
        return normalise(ext)
    except FolderNameError:
        return None


def open_dir(parent_fd: int, name: str) -> int:
    """Open a directory below parent_fd without following a symlink."""
    return os.open(name, NOFOLLOW_DIR, dir_fd=parent_fd)


def ensure_subdir(parent_fd: int, name: str, mode: int = 0o700) -> int:
    """Open parent/name, creating it if missing (a racing mkdir is fine)."""
    try:
        return open_dir(parent_fd, name)
    except FileNotFoundError:
        pass
    try:  # noqa: SIM105 - contextlib costs start-up time
        os.mkdir(name, mode, dir_fd=parent_fd)
    except FileExistsError:
        pass
    return open_dir(parent_fd, name)


def _build_folder(root_fd: int, build: str) -> None:
    """Make a complete folder (tmp/new/cur + marker) under root/tmp/build."""
    tmp_fd = ensure_subdir(root_fd, "tmp")
    try:
        os.mkdir(build, 0o700, dir_fd=tmp_fd)
        box_fd = open_dir(tmp_fd, build)
    finally:
        os.close(tmp_fd)
    try:
        for sub in SUBDIRS:
            os.mkdir(sub, 0o700, dir_fd=box_fd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        os.close(os.open(MARKER, flags, 0o600, dir_fd=box_fd))
        os.fsync(box_fd)
    finally:
        os.close(box_fd)


def open_folder(root_fd: int, fsname: str, *, create: bool) -> int:
    """Open the folder directory `fsname` under root_fd, maybe creating it.

    A new folder is assembled in root/tmp/ and renamed into place, so other
    hosts and readers never see a folder without tmp/new/cur or marker.
    """
    try:
        return open_dir(root_fd, fsname)
    except FileNotFoundError:
        if not create:
            raise
    from maildir import names

    build = f"{names.unique_name()}.folder"
    _build_folder(root_fd, build)
    try:
        os.rename(
            f"tmp/{build}", fsname, src_dir_fd=root_fd, dst_dir_fd=root_fd
        )
        os.fsync(root_fd)
    except OSError:
        # Another host won the race (ENOTEMPTY/EEXIST); use theirs.
        _remove_tree(root_fd, f"tmp/{build}")
    return open_dir(root_fd, fsname)


def _remove_tree(root_fd: int, relpath: str) -> None:
    import shutil

    shutil.rmtree(relpath, dir_fd=root_fd, ignore_errors=True)


def create_folder(root: str | os.PathLike[str], name: str) -> Path:
    """Create folder `name` (e.g. 'Junk', 'a.b') under an existing Maildir."""
    fsname = fs_name(name)
    if not fsname:
        raise FolderNameError("INBOX is the Maildir itself")
    root_fd = os.open(root, DIR_FLAGS)
    try:
        os.close(open_folder(root_fd, fsname, create=True))
    finally:
        os.close(root_fd)
    from pathlib import Path

    return Path(root) / fsname


def list_folders(root: str | os.PathLike[str]) -> list[str]:
    """Logical names of the folders under root (symlinks are not folders)."""
    found: list[str] = []
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.name.startswith(".") or entry.name in {".", ".."}:
                continue
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                continue
            try:
                found.append(logical_name(entry.name))
            except FolderNameError:
                continue
    return sorted(found)


def remove_folder(root: str | os.PathLike[str], name: str) -> None:
    """Remove a folder and its mail (sub-levels `.a.b` of `.a` stay)."""
    fsname = fs_name(name)
    if not fsname:
        raise FolderNameError("cannot remove INBOX")
    root_fd = os.open(root, DIR_FLAGS)
    try:
        from maildir import names

        # Rename out of sight first so readers never see half a folder.
        gone = f"tmp/{names.unique_name()}.deleted"
        os.rename(fsname, gone, src_dir_fd=root_fd, dst_dir_fd=root_fd)
        _remove_tree(root_fd, gone)
    finally:
        os.close(root_fd)
