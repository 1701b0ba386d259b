"""Deliver one message into a Maildir, safely on a shared cluster filesystem.

The algorithm is docs/maildir-on-shared-storage.md, "The delivery algorithm":
random unique name; create `tmp/<name>` with O_EXCL|O_NOFOLLOW, 0600; write
(short writes looped), fsync, fstat, close (checked: NFS reports write errors
at close); publish by link() into `new/<name>,S=<size>,W=<vsize>`, never by a
rename that could overwrite; unlink the tmp name; fsync new/. Success is
returned only after all of it. An EEXIST (or, with the rename fallback, ENOENT)
whose target carries our inode is a retried-RPC artefact and counts as success
(Postfix sane_link); a real collision never overwrites, it picks a new name.

Everything below the root is opened relative to directory fds with
O_NOFOLLOW, so no symlink inside the Maildir is followed. The root itself
may be an administrator's symlink. Failures before publishing remove the
tmp file and raise `DeliveryError`; a failure after publishing (fsync of
new/) raises a temporary error too, so delivery is at-least-once.
Readers' files (dovecot-uidlist, indexes) are never touched. Quota policy
is in `quota`, folder names in `folders`, error classes in `errors`.
"""

# os.* on purpose: fd-relative calls (dir_fd=) have no pathlib form, and
# pathlib costs start-up time in the CLI.
# ruff: noqa: PTH118

from __future__ import annotations

import errno
import os
import time

from maildir import folders, layout, names, publish
from maildir.errors import DeliveryError, from_oserror, over_quota

# typing and pathlib are imported lazily or for mypy only: together they
# cost more start-up time than the rest of `maildir-deliver`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

#: Test hook, called with the name of each step just completed (see
#: tests/integration/test_maildir_crash.py). None in production.
step_hook: Callable[[str], None] | None = None

DAY = 24 * 3600.0
_CHUNK = 1 << 20
_ESTALE_TRIES = 3
_TMP_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
)


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


def to_lf(message: bytes) -> bytes:
    """CRLF -> LF, as Postfix local(8) stores mail; bare CRs are kept."""
    return message.replace(b"\r\n", b"\n")


def _create_tmp(tmp_fd: int, host: str) -> tuple[str, int]:
    for _ in range(publish.NAME_TRIES):
        name = names.unique_name(host)
        try:
            return name, os.open(name, _TMP_FLAGS, 0o600, dir_fd=tmp_fd)
        except FileExistsError:
            continue
    raise DeliveryError(
        "no unique tmp/ name after retries", temporary=True, dsn="4.3.0"
    )


def _write_all(fd: int, data: bytes, deadline: float) -> os.stat_result:
    view = memoryview(data)
    while view:
        done = os.write(fd, view[:_CHUNK])
        view = view[done:]
        _step("write")
        if time.monotonic() > deadline:
            raise DeliveryError(
                "delivery deadline exceeded", temporary=True, dsn="4.4.7"
            )
    _step("written")
    os.fsync(fd)
    _step("fsynced")
    st = os.fstat(fd)
    if st.st_size != len(data):
        raise DeliveryError(
            "short file after write", temporary=True, dsn="4.3.0"
        )
    return st


def _quota_check(
    root_fd: int, root: str, size: int, *, tempfail: bool
) -> bool:
    """Refuse early when over quota; True if maildirsize exists."""
    try:
        os.stat("maildirsize", dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False  # no quota: do not even import the quota module
    from maildir import quota

    if not quota.check(root, size):
        raise over_quota("mailbox is over quota", temporary=tempfail)
    return True


def _store(
    box_fd: int, data: bytes, vsize: int, host: str, deadline: float
) -> str:
    """tmp -> new in one folder; returns the name in new/."""
    tmp_fd = folders.ensure_subdir(box_fd, "tmp")
    new_fd = fd = -1
    name = ""
    published = False
    try:
        new_fd = folders.ensure_subdir(box_fd, "new")
        name, fd = _create_tmp(tmp_fd, host)
        _step("opened")
        st = _write_all(fd, data, deadline)
        os.close(fd)  # checked: NFS reports deferred write errors here
        fd = -1
        _step("closed")
        target, tmp_left = publish.publish(tmp_fd, new_fd, name, st, vsize)
        published = True
        _step("linked")
        if tmp_left:
            _unlink_quiet(tmp_fd, name)
            _step("unlinked")
        _sync_new(new_fd)
        _step("dirsynced")
        return target
    finally:
        if fd >= 0:
            os.close(fd)
        if name and not published:
            _unlink_quiet(tmp_fd, name)
        for dir_fd in (tmp_fd, new_fd):
            if dir_fd >= 0:
                os.close(dir_fd)


def _unlink_quiet(dir_fd: int, name: str) -> None:
    # A leftover tmp/ file is harmless: readers ignore tmp/ and the 36 h
    # cleaner removes it. Failing a published delivery would duplicate it.
    try:  # noqa: SIM105 - contextlib costs start-up time
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _sync_new(new_fd: int) -> None:
    try:
        os.fsync(new_fd)
    except OSError as exc:
        # Published but maybe not durable: defer, accepting a duplicate.
        raise from_oserror(
            exc, "fsync new/ (message may be duplicated)"
        ) from exc


def deliver(
    root: str | os.PathLike[str],
    message: bytes,
    *,
    folder: str | None = None,
    create: bool = True,
    create_folder: bool = True,
    hostname: str | None = None,
    quota_tempfail: bool = False,
    timeout: float = DAY,
) -> Path:
    """Deliver `message` to the Maildir at `root` (or its `folder`).

    Returns the path of the new file in new/. `create`: make the Maildir
    if it is missing (its parent must exist). `folder`: logical Maildir++
    name ('Junk', 'a.b'); an invalid or unsafe one (symlink) means INBOX,
    as does a missing one when `create_folder` is false. Raises
    DeliveryError; nothing is left in new/ unless the error says so.
    """
    from pathlib import Path

    return Path(
        deliver_path(
            os.fspath(root),
            message,
            folder=folder,
            create=create,
            create_folder=create_folder,
            hostname=hostname,
            quota_tempfail=quota_tempfail,
            timeout=timeout,
        )
    )


def deliver_path(
    root: str,
    message: bytes,
    *,
    folder: str | None = None,
    create: bool = True,
    create_folder: bool = True,
    hostname: str | None = None,
    quota_tempfail: bool = False,
    timeout: float = DAY,
) -> str:
    """`deliver()` returning a str; used by the CLI to avoid pathlib."""
    data = to_lf(message)
    deadline = time.monotonic() + timeout
    host = names.host_part(hostname)
    try:
        root_fd = layout.open_root(root, create_root=create)
    except OSError as exc:
        raise from_oserror(exc, f"open maildir {root}") from exc
    try:
        has_quota = _quota_check(
            root_fd, root, len(data), tempfail=quota_tempfail
        )
        fsname, target = _deliver_retrying(
            root_fd, data, folder, host, deadline, create_folder=create_folder
        )
        if has_quota and fsname != ".Trash":
            _quota_add(root, len(data))
    except OSError as exc:
        raise from_oserror(exc, f"deliver to {root}") from exc
    finally:
        os.close(root_fd)
    return os.path.join(root, fsname, "new", target)


def _deliver_retrying(
    root_fd: int,
    data: bytes,
    folder: str | None,
    host: str,
    deadline: float,
    *,
    create_folder: bool,
) -> tuple[str, str]:
    """(fsname, name in new/); retries a stale handle (ESTALE) from scratch."""
    vsize = len(data) + data.count(b"\n")
    for attempt in range(_ESTALE_TRIES):
        try:
            fsname, box_fd = layout.open_box(
                root_fd, folder, create_folder=create_folder
            )
            try:
                return fsname, _store(box_fd, data, vsize, host, deadline)
            finally:
                os.close(box_fd)
        except OSError as exc:
            # Nothing was published (errors after that are DeliveryError),
            # so a fresh lookup after ESTALE cannot duplicate the message.
            if exc.errno != errno.ESTALE or attempt + 1 >= _ESTALE_TRIES:
                raise
    raise AssertionError  # pragma: no cover - loop always returns/raises


def _quota_add(root: str, size: int) -> None:
    from maildir import quota

    # Accounting is approximate by design; the mail is already delivered.
    try:  # noqa: SIM105 - contextlib costs start-up time
        quota.add(root, size)
    except OSError:
        pass
