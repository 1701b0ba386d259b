"""Maildir++ quota (maildirsize) and the 36-hour tmp/ cleaner."""

from __future__ import annotations

import errno
import io
import os
import sys
import time

import pytest

import maildir
from maildir import cli, errors, quota, routing


def usage_file(root, text, age=0.0):
    path = root / "maildirsize"
    path.write_text(text)
    if age:
        old = time.time() - age
        os.utime(path, (old, old))


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1000S", quota.Quota(1000, None)),
        ("10C", quota.Quota(None, 10)),
        ("1000S,10C", quota.Quota(1000, 10)),
        ("0S,5C", quota.Quota(None, 5)),
    ],
)
def test_parse_definition(text, parsed):
    """S-only, C-only and S+C definitions parse; 0 means no limit."""
    assert parsed == quota.parse_definition(text)


@pytest.mark.parametrize(
    ("definition", "size", "fits"),
    [
        ("1000S", 10, True),
        ("1000S", 11, False),
        ("2C", 1, True),
        ("1C", 1, False),
        ("1000S,2C", 10, True),
        ("1000S,1C", 10, False),
    ],
)
def test_boundaries(tmp_path, definition, size, fits):
    """990 bytes/1 message used: exactly at the limit fits, one more does not."""
    root = maildir.create(tmp_path / "M")
    usage_file(root, f"{definition}\n990 1\n")
    assert fits == quota.check(root, size)


def test_stale_single_line_over_quota_is_trusted(tmp_path):
    """Over quota, one line, mtime < 15 min: reject without recounting."""
    root = maildir.create(tmp_path / "M")
    usage_file(root, "1000S\n5000 3\n")
    assert not quota.check(root, 10)
    assert "1000S\n5000 3\n" == (root / "maildirsize").read_text()


@pytest.mark.parametrize(
    ("lines", "age"), [("5000 3\n1 1\n", 0.0), ("5000 3\n", 16 * 60.0)]
)
def test_over_quota_recounts(tmp_path, lines, age):
    """Over quota with >1 line or an old file: recount, then accept."""
    root = maildir.create(tmp_path / "M")
    maildir.deliver(root, b"x" * 100)
    usage_file(root, "1000S\n" + lines, age)
    assert quota.check(root, 10)
    assert (100, 1) == quota.totals(root)


def test_big_file_is_recalculated(tmp_path):
    """A maildirsize of 5120 bytes or more is rebuilt from the mailbox."""
    root = maildir.create(tmp_path / "M")
    usage_file(root, "100000S\n" + "1 1\n" * 2000)
    assert quota.check(root, 10)
    assert (0, 0) == quota.totals(root)
    assert 5120 > (root / "maildirsize").stat().st_size


def test_delivery_appends_and_folders_use_parent(tmp_path):
    """Each delivery appends one line to the root's file, also for folders."""
    root = maildir.create(tmp_path / "M")
    quota.set_quota(root, quota.Quota(10_000, 100))
    maildir.deliver(root, b"a" * 10)
    maildir.deliver(root, b"b" * 20, folder="Junk")
    assert (30, 2) == quota.totals(root)
    assert not (root / ".Junk" / "maildirsize").exists()


def test_trash_is_excluded_from_recount(tmp_path):
    """Messages in .Trash do not count (Maildir++)."""
    root = maildir.create(tmp_path / "M")
    maildir.deliver(root, b"a" * 10, folder="Trash")
    maildir.deliver(root, b"b" * 20)
    assert (20, 1) == (quota.set_quota(root, quota.Quota(1000)).size, 1)


@pytest.mark.parametrize(
    ("tempfail", "dsn", "code"), [(False, "5.2.2", 77), (True, "4.2.2", 75)]
)
def test_over_quota_delivery(tmp_path, tempfail, dsn, code):
    """Over quota: 5.2.2/77 by default, 4.2.2/75 with quota_tempfail."""
    root = maildir.create(tmp_path / "M")
    quota.set_quota(root, quota.Quota(100))
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(root, b"x" * 101, quota_tempfail=tempfail)
    assert (dsn, code) == (info.value.dsn, info.value.exit_code)
    assert [] == list((root / "new").iterdir())


def test_no_maildirsize_means_no_quota(tmp_path):
    """Without maildirsize, nothing is enforced and no file is created."""
    root = maildir.create(tmp_path / "M")
    assert quota.check(root, 10**12)
    maildir.deliver(root, b"x")
    assert not (root / "maildirsize").exists()


def test_clean_tmp(tmp_path):
    """tmp/ files older than 36 h go; fresh and dot-files stay."""
    root = maildir.create(tmp_path / "M")
    maildir.create_folder(root, "Junk")
    for box in (root, root / ".Junk"):
        (box / "tmp" / "stale").write_bytes(b"x")
        (box / "tmp" / ".nfs0001").write_bytes(b"x")
    later = time.time() + 37 * 3600
    assert [] == maildir.clean_tmp(root, now=time.time() + 35 * 3600)
    removed = maildir.clean_tmp(root, now=later)
    assert {root / "tmp" / "stale", root / ".Junk" / "tmp" / "stale"} == set(
        removed
    )
    assert [".nfs0001"] == [p.name for p in (root / "tmp").iterdir()]


@pytest.mark.parametrize(
    ("code", "temporary", "dsn"),
    [
        (errno.ENOSPC, True, "4.3.0"),
        (errno.EIO, True, "4.3.0"),
        (errno.ESTALE, True, "4.2.0"),
        (errno.EAGAIN, True, "4.2.0"),
        (errno.EACCES, True, "4.2.0"),
        (errno.EDQUOT, True, "4.2.2"),
        (errno.EFBIG, False, "5.2.2"),
        (errno.ELOOP, True, "4.3.0"),
    ],
)
def test_errno_mapping(code, temporary, dsn):
    """errno -> temporary flag and DSN, unknown errnos temporary."""
    err = errors.from_oserror(OSError(code, os.strerror(code)), "x")
    assert (temporary, dsn) == (err.temporary, err.dsn)


@pytest.mark.parametrize(
    ("msg", "spam"),
    [
        (b"X-Spam-Flag: YES\r\n\r\nb", True),
        (b"x-spam-flag:  yes\n\nb", True),
        (b"X-Spam-Flag:\n YES\n\nb", True),
        (b"X-Spam-Flag: NO\n\nb", False),
        (b"Subject: x\n\nX-Spam-Flag: YES\n", False),
    ],
)
def test_is_spam(msg, spam):
    """Only a header X-Spam-Flag: YES (any case, folded) marks spam."""
    assert spam == routing.is_spam(msg)


def test_choose_precedence():
    """Spam beats an explicit folder, which beats the extension."""
    spam = b"X-Spam-Flag: YES\n\n"
    assert ("Junk", True) == routing.choose(
        spam, folder="F", extension="e", spam_folder="Junk"
    )
    assert ("F", True) == routing.choose(
        b"\n", folder="F", extension="e", spam_folder="Junk"
    )
    assert ("e", False) == routing.choose(b"\n", extension="e")
    assert (None, False) == routing.choose(b"\n", extension="../x")


def run_cli(monkeypatch, capsys, argv, data):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = cli.main(argv)
    return code, capsys.readouterr().out


def test_cli_delivers_and_routes_spam(tmp_path, monkeypatch, capsys):
    """Spam goes to --spam-folder; a leading From_ line is dropped."""
    data = b"From a@b Thu Jan  1 00:00:00 2026\nX-Spam-Flag: YES\n\nhi\n"
    code, _ = run_cli(
        monkeypatch,
        capsys,
        ["--maildir", str(tmp_path / "M"), "--spam-folder=Junk"],
        data,
    )
    assert 0 == code
    [path] = (tmp_path / "M" / ".Junk" / "new").iterdir()
    assert b"X-Spam-Flag: YES\n\nhi\n" == path.read_bytes()


def test_cli_extension_needs_existing_folder(tmp_path, monkeypatch, capsys):
    """--extension picks an existing folder; a missing one means INBOX."""
    root = maildir.create(tmp_path / "M")
    maildir.create_folder(root, "lists")
    run_cli(
        monkeypatch,
        capsys,
        ["--maildir", str(root), "--extension", "lists"],
        b"a\n",
    )
    run_cli(
        monkeypatch,
        capsys,
        ["--maildir", str(root), "--extension", "../../etc"],
        b"b\n",
    )
    run_cli(
        monkeypatch,
        capsys,
        ["--maildir", str(root), "--extension", "other"],
        b"c\n",
    )
    assert 1 == len(list((root / ".lists" / "new").iterdir()))
    assert 2 == len(list((root / "new").iterdir()))
    assert ["lists"] == maildir.list_folders(root)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["--bogus"], 64), (["--maildir"], 64), (["--no-create=1"], 64)],
)
def test_cli_usage(monkeypatch, capsys, argv, expected):
    """Bad command lines exit 64 EX_USAGE."""
    assert expected == run_cli(monkeypatch, capsys, argv, b"")[0]


def test_cli_missing_mount_is_75(tmp_path, monkeypatch, capsys):
    """A Maildir under a missing parent exits 75 with a 4.x.x line."""
    code, out = run_cli(
        monkeypatch, capsys, ["--maildir", str(tmp_path / "x" / "M")], b"a\n"
    )
    assert (75, "4.2.0") == (code, out.split()[0])


def test_cli_over_quota_is_77(tmp_path, monkeypatch, capsys):
    """Over quota exits 77 (5.2.2) like deliverquota; 75 with --quota-tempfail."""
    root = maildir.create(tmp_path / "M")
    quota.set_quota(root, quota.Quota(5))
    assert (
        77
        == run_cli(monkeypatch, capsys, ["--maildir", str(root)], b"123456\n")[
            0
        ]
    )
    assert (
        75
        == run_cli(
            monkeypatch,
            capsys,
            ["--maildir", str(root), "--quota-tempfail"],
            b"123456\n",
        )[0]
    )


def test_cli_filesystem_quota_is_75(tmp_path, monkeypatch, capsys):
    """EDQUOT from the filesystem exits 75 with 4.2.2, even without
    --quota-tempfail (that flag is about the Maildir++ quota only)."""
    root = maildir.create(tmp_path / "M")
    real = os.write

    def write(fd, data):
        if "/M/tmp/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        return real(fd, data)

    monkeypatch.setattr(maildir.delivery.os, "write", write)
    code, out = run_cli(monkeypatch, capsys, ["--maildir", str(root)], b"a\n")
    assert (75, "4.2.2") == (code, out.split()[0])
    assert [] == list((root / "new").iterdir())
    assert [] == list((root / "tmp").iterdir())


def test_cli_unexpected_error_is_75(tmp_path, monkeypatch, capsys):
    """A bug inside delivery defers (75), never bounces."""

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(cli.delivery, "deliver_path", boom)
    assert (
        75
        == run_cli(monkeypatch, capsys, ["--maildir", str(tmp_path)], b"a\n")[
            0
        ]
    )
