"""Publishing a finished tmp/ file into new/ without ever overwriting.

link() is the first choice: on a name collision it fails with EEXIST
instead of silently replacing another message as rename() would. An EEXIST
(or ENOENT after rename) whose target carries our own (st_dev, st_ino) is
an NFS retried-RPC artefact and means success (Postfix sane_link). Where
hard links are impossible (EXDEV across Lustre MDTs, EPERM/ENOTSUP on some
filesystems) we fall back to rename() after checking the target is free,
as Courier/maildrop do on EXDEV. Name generation is in `names`; the rest of
the delivery (write, fsync, cleanup) in `delivery`.
"""

from __future__ import annotations

import errno
import os

from maildir import names
from maildir.errors import DeliveryError

NAME_TRIES = 10
_NO_LINK = {
    errno.EXDEV,
    errno.EPERM,
    errno.ENOTSUP,
    errno.EMLINK,
    errno.ENOSYS,
}


def _same_file(dir_fd: int, name: str, st: os.stat_result) -> bool:
    try:
        other = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _rename_publish(
    tmp_fd: int, new_fd: int, name: str, target: str, st: os.stat_result
) -> bool:
    """Fallback publish; True if published under `target`, False: collision."""
    if _same_file(new_fd, target, st):
        return True
    try:
        os.stat(target, dir_fd=new_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        return False  # taken: rename() would overwrite it
    try:
        os.rename(name, target, src_dir_fd=tmp_fd, dst_dir_fd=new_fd)
    except FileNotFoundError:
        # rename(2) BUGS: on NFS it may have happened although it "failed".
        if not _same_file(new_fd, target, st):
            raise
    return True


def publish(
    tmp_fd: int, new_fd: int, name: str, st: os.stat_result, vsize: int
) -> tuple[str, bool]:
    """Make the message visible in new/: (new name, tmp name still there)."""
    base = name
    for _ in range(NAME_TRIES):
        target = names.new_name(base, st.st_size, vsize)
        try:
            os.link(
                name,
                target,
                src_dir_fd=tmp_fd,
                dst_dir_fd=new_fd,
                follow_symlinks=False,
            )
        except FileExistsError:
            if _same_file(new_fd, target, st):
                return target, True  # our own link; the reply got lost
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            if _rename_publish(tmp_fd, new_fd, name, target, st):
                return target, False
        else:
            return target, True
        base = names.unique_name()  # genuine collision: never overwrite
    raise DeliveryError("no free name in new/", temporary=True, dsn="4.3.0")
