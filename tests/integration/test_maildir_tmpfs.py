"""Disk full, inode exhaustion and a missing mount on a real tmpfs.

Covers docs/maildir-on-shared-storage.md, "How it is tested" #7, #14.

Needs root (or CAP_SYS_ADMIN) to mount a small tmpfs in a temp dir; the
tests skip with the reason when the mount is refused. Every failure must be
temporary (75 / 4.x.x, never 74), remove its tmp file and leave new/ alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import maildir

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {proc.stderr.decode().strip()}")


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False, capture_output=True)


def cli(root: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from maildir.cli import main; sys.exit(main())",
            "--maildir",
            str(root),
        ],
        input=data,
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_disk_full(small_fs):
    """ENOSPC while writing: exit 75 / 4.3.0, tmp removed, new/ untouched."""
    mount_tmpfs(small_fs, "size=64k,nr_inodes=100")
    root = maildir.create(small_fs / "M")
    first = maildir.deliver(root, b"small\n")
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(root, b"x" * 200_000)
    assert (True, "4.3.0") == (info.value.temporary, info.value.dsn)
    proc = cli(root, b"x" * 200_000)
    assert 75 == proc.returncode, proc.stdout
    assert proc.stdout.startswith(b"4.3.0")
    assert [first.name] == [p.name for p in (root / "new").iterdir()]
    assert [] == list((root / "tmp").iterdir())


def test_inode_exhaustion(small_fs):
    """No inode for the tmp file: 75 / temporary, nothing left behind."""
    mount_tmpfs(small_fs, "size=1m,nr_inodes=8")
    root = maildir.create(small_fs / "M")
    n = 0
    while True:
        try:
            (small_fs / f"filler{n}").touch()
        except OSError:
            break
        n += 1
    with pytest.raises(maildir.DeliveryError) as info:
        maildir.deliver(root, b"hello\n")
    assert info.value.temporary
    assert 75 == cli(root, b"hello\n").returncode
    assert [] == list((root / "new").iterdir())
    assert [] == list((root / "tmp").iterdir())


def test_missing_mount_creates_nothing(tmp_path):
    """Mountpoint present but not mounted: defer, no Maildir at the mountpoint."""
    mnt = tmp_path / "lustre"
    mnt.mkdir()
    proc = cli(mnt / "example.org" / "user" / "Maildir", b"hi\n")
    assert 75 == proc.returncode
    assert [] == list(mnt.iterdir())


def test_repeated_fills_never_74(small_fs):
    """Even when the disk fills during fsync/close the status is never 74."""
    mount_tmpfs(small_fs, "size=16k,nr_inodes=50")
    root = maildir.create(small_fs / "M")
    codes = {cli(root, os.urandom(3000)).returncode for _ in range(10)}
    assert codes <= {0, 75}
    assert 75 in codes
