"""maildir.deliver: the tmp -> new protocol, its errors and corner cases."""

from __future__ import annotations

import errno
import os
import stat

import pytest

import maildir
from maildir import delivery, names, publish

MSG = b"From: a@example.org\r\nSubject: t\r\n\r\nhello\r\n"


def files(path):
    return sorted(p.name for p in path.iterdir())


def test_deliver_basic(tmp_path):
    """A message lands in new/ with LF endings, S=/W= sizes and mode 0600."""
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG)
    assert root / "new" == path.parent
    assert MSG.replace(b"\r\n", b"\n") == path.read_bytes()
    assert path.name.endswith(f",S={len(MSG) - 4},W={len(MSG)}")
    assert 0o600 == stat.S_IMODE(path.stat().st_mode)
    assert 0o700 == stat.S_IMODE(root.stat().st_mode)
    assert [] == files(root / "tmp")
    assert ["cur", "new", "tmp"] == files(root)


@pytest.mark.parametrize(
    "content", [b"", b"no newline", b"a\0b\nc\r\n", b"bare\rcr\n"]
)
def test_content_edge_cases(tmp_path, content):
    """Empty, NUL, bare-CR and unterminated messages are stored faithfully."""
    path = maildir.deliver(tmp_path / "M", content)
    stored = content.replace(b"\r\n", b"\n")
    assert stored == path.read_bytes()
    vsize = len(stored) + stored.count(b"\n")
    assert path.name.endswith(f",S={len(stored)},W={vsize}")


def test_umask_is_honoured(tmp_path):
    """A restrictive umask removes bits from the 0600 file."""
    old = os.umask(0o277)
    try:
        path = maildir.deliver(tmp_path / "M", MSG)
    finally:
        os.umask(old)
    assert 0o400 == stat.S_IMODE(path.stat().st_mode)


def test_missing_parent_is_temporary(tmp_path):
    """A missing parent (mount absent) defers and creates nothing."""
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(tmp_path / "mnt" / "user" / "M", MSG)
    assert (True, "4.2.0", 75) == (
        info.value.temporary,
        info.value.dsn,
        info.value.exit_code,
    )
    assert [] == files(tmp_path)


def test_no_create_is_temporary(tmp_path):
    """With create=False a missing Maildir defers rather than bounces."""
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(tmp_path / "M", MSG, create=False)
    assert info.value.temporary
    assert [] == files(tmp_path)


def test_steps_in_order(tmp_path, monkeypatch):
    """write, fsync, close, link, unlink, fsync(new/) happen in that order."""
    seen = []
    monkeypatch.setattr(delivery, "step_hook", seen.append)
    maildir.deliver(tmp_path / "M", MSG)
    assert [
        "opened",
        "write",
        "written",
        "fsynced",
        "closed",
        "linked",
        "unlinked",
        "dirsynced",
    ] == seen


def test_genuine_collision_never_overwrites(tmp_path, monkeypatch):
    """A name already in new/ is left alone; the message gets a new name."""
    root = maildir.create(tmp_path / "M")
    taken = names.new_name("A", len(b"x"), 1)
    (root / "new" / taken).write_bytes(b"old")
    seq = iter(["A", "B"])
    monkeypatch.setattr(names, "unique_name", lambda host=None: next(seq))
    path = maildir.deliver(root, b"x")
    assert "B,S=1,W=1" == path.name
    assert b"old" == (root / "new" / taken).read_bytes()
    assert [] == files(root / "tmp")


def test_tmp_name_collision_retries(tmp_path, monkeypatch):
    """An existing tmp/ name is not reused (O_EXCL) and not touched."""
    root = maildir.create(tmp_path / "M")
    (root / "tmp" / "A").write_bytes(b"other")
    seq = iter(["A", "B"])
    monkeypatch.setattr(names, "unique_name", lambda host=None: next(seq))
    path = maildir.deliver(root, b"x")
    assert path.name.startswith("B,")
    assert b"other" == (root / "tmp" / "A").read_bytes()


def test_spurious_eexist_after_link_is_success(tmp_path, monkeypatch):
    """EEXIST for a link that did happen (same inode) counts as delivered."""
    real = os.link

    def link_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise FileExistsError(errno.EEXIST, "lost reply")

    monkeypatch.setattr(publish.os, "link", link_then_fail)
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG)
    assert [path.name] == files(root / "new")
    assert [] == files(root / "tmp")


def test_exdev_falls_back_to_rename(tmp_path, monkeypatch):
    """Without hard links (EXDEV) the file is renamed into new/."""

    def no_link(*args, **kwargs):
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(publish.os, "link", no_link)
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG)
    assert [path.name] == files(root / "new")
    assert [] == files(root / "tmp")


def test_enoent_after_successful_rename_is_success(tmp_path, monkeypatch):
    """ENOENT from a rename that did happen (our inode in new/) is success."""
    real = os.rename

    def no_link(*args, **kwargs):
        raise OSError(errno.EPERM, "no hard links")

    def rename_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise FileNotFoundError(errno.ENOENT, "lost reply")

    monkeypatch.setattr(publish.os, "link", no_link)
    monkeypatch.setattr(publish.os, "rename", rename_then_fail)
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG)
    assert [path.name] == files(root / "new")


def _fail_on(monkeypatch, module, name, code, *, times=10**6, when=None):
    real = getattr(module.os, name)
    count = {"n": 0}

    def fake(*args, **kwargs):
        if (when is None or when(*args)) and count["n"] < times:
            count["n"] += 1
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(module.os, name, fake)
    return count


@pytest.mark.parametrize(
    ("call", "code", "dsn", "temporary", "exit_code"),
    [
        ("write", errno.ENOSPC, "4.3.0", True, 75),
        ("write", errno.EIO, "4.3.0", True, 75),
        # A filesystem quota clears when raised or freed: defer, never
        # bounce (a shared quota would bounce every mail of the outage).
        ("write", errno.EDQUOT, "4.2.2", True, 75),
        ("close", errno.EDQUOT, "4.2.2", True, 75),
        ("fsync", errno.EDQUOT, "4.2.2", True, 75),
        ("write", errno.EFBIG, "5.2.2", False, 77),
        ("fsync", errno.EIO, "4.3.0", True, 75),
        ("close", errno.EIO, "4.3.0", True, 75),
        ("link", errno.EIO, "4.3.0", True, 75),
        ("link", errno.ESTALE, "4.2.0", True, 75),
    ],
)
def test_errors_leave_nothing(  # noqa: PLR0917 - parametrized
    tmp_path, monkeypatch, call, code, dsn, temporary, exit_code
):
    """A failing syscall before publishing leaves new/ and tmp/ empty."""
    root = maildir.create(tmp_path / "M")
    module = publish if call == "link" else delivery
    when = (
        (lambda fd, *rest: fd > 2 and not stat.S_ISDIR(os.fstat(fd).st_mode))
        if call in {"fsync", "close"}
        else None
    )
    _fail_on(
        monkeypatch,
        module,
        call,
        code,
        times=1 if call == "close" else 10**6,
        when=when,
    )
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(root, MSG)
    assert (dsn, temporary, exit_code) == (
        info.value.dsn,
        info.value.temporary,
        info.value.exit_code,
    )
    assert [] == files(root / "new")
    assert [] == files(root / "tmp")


def test_estale_is_retried(tmp_path, monkeypatch):
    """One ESTALE on opening the tmp file is retried and then succeeds."""
    root = maildir.create(tmp_path / "M")
    count = _fail_on(
        monkeypatch,
        delivery,
        "open",
        errno.ESTALE,
        times=1,
        when=lambda path, flags, *rest: bool(flags & os.O_EXCL),
    )
    maildir.deliver(root, MSG)
    assert 1 == count["n"]
    assert 1 == len(files(root / "new"))


def test_dir_fsync_failure_after_publish(tmp_path, monkeypatch):
    """fsync(new/) failing defers although the file is visible (at-least-once)."""
    root = maildir.create(tmp_path / "M")
    _fail_on(
        monkeypatch,
        delivery,
        "fsync",
        errno.EIO,
        when=lambda fd: stat.S_ISDIR(os.fstat(fd).st_mode),
    )
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(root, MSG)
    assert info.value.temporary
    assert 1 == len(files(root / "new"))


def test_deadline_aborts_and_removes_tmp(tmp_path):
    """A delivery past its deadline aborts, temporary, tmp/ cleaned."""
    root = maildir.create(tmp_path / "M")
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(root, MSG, timeout=-1)
    assert "4.4.7" == info.value.dsn
    assert [] == files(root / "tmp")
    assert [] == files(root / "new")


def test_folder_delivery_and_autocreate(tmp_path):
    """Folder mail goes to .Name/new; the folder is created with its marker."""
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG, folder="Junk")
    assert root / ".Junk" / "new" == path.parent
    assert (root / ".Junk" / "maildirfolder").is_file()


def test_missing_folder_without_create_goes_to_inbox(tmp_path):
    """create_folder=False and no folder -> INBOX, nothing created."""
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG, folder="Nope", create_folder=False)
    assert root / "new" == path.parent
    assert ["cur", "new", "tmp"] == files(root)


@pytest.mark.parametrize("folder", ["../../etc", "a/b", "INBOX..x", "x" * 300])
def test_invalid_folder_goes_to_inbox(tmp_path, folder):
    """An invalid folder name never reaches the filesystem: INBOX instead."""
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG, folder=folder)
    assert root / "new" == path.parent
    assert ["M"] == files(tmp_path)


def test_planted_symlink_folder_is_refused(tmp_path):
    """.Junk -> elsewhere is not followed; the mail goes to INBOX."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = maildir.create(tmp_path / "M")
    (root / ".Junk").symlink_to(outside)
    path = maildir.deliver(root, MSG, folder="Junk")
    assert root / "new" == path.parent
    assert [] == files(outside)


def test_planted_symlink_subdir_is_refused(tmp_path):
    """A symlinked tmp/ inside a folder is not followed: delivery defers."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = maildir.create(tmp_path / "M")
    maildir.create_folder(root, "Junk")
    (root / ".Junk" / "tmp").rmdir()
    (root / ".Junk" / "tmp").symlink_to(outside)
    with pytest.raises(maildir.DeliveryError):
        maildir.deliver(root, MSG, folder="Junk")
    assert [] == files(outside)


def test_hostile_hostname(tmp_path):
    """A hostname with '/', ':' and ',S=' still yields one file in new/."""
    root = tmp_path / "M"
    path = maildir.deliver(root, MSG, hostname="a/b:c,S=1\n")
    assert [path.name] == files(root / "new")
    assert 1 == path.name.count(",S=")
    assert ":" not in path.name
