"""Archive members are listed under the decoding limits."""

from __future__ import annotations

import shutil
import time

import pytest

from mailfilter.decision.policy import DecodingLimits
from mailfilter.scan.archives import (
    Budget,
    Member,
    OverLimits,
    Undecodable,
    members,
)
from tests.support import corpus

LIMITS = DecodingLimits(14, 1500, 102400, 300 << 20, 5, 500)


def listing(data, kind, size=None, limits=LIMITS):
    budget = Budget(limits, len(data) if size is None else size)
    return list(members(data, kind, budget, 10.0))


def test_zip_members_with_data():
    """Zip members come with their names and bytes."""
    data = corpus.zip_of({"a.txt": b"hello", "dir/b.bin": b"\x00\x01"})
    assert [
        Member("a.txt", b"hello"),
        Member("dir/b.bin", b"\x00\x01"),
    ] == listing(data, ".zip")


def test_tar_gzip_bzip2_xz():
    """tar members, and the single member of gzip/bzip2/xz streams."""
    import bz2
    import lzma

    tar = corpus.tar_of({"x/readme.txt": b"hi"})
    assert [Member("x/readme.txt", b"hi")] == listing(tar, ".tar")
    assert [Member("a.exe", b"MZ")] == listing(
        corpus.gzip_of(b"MZ", "a.exe"), ".gz"
    )
    assert [Member("", b"data")] == listing(bz2.compress(b"data"), ".bz2")
    assert [Member("", b"data")] == listing(lzma.compress(b"data"), ".xz")


def test_nested_archive_kept_whole():
    """A member that is itself an archive is returned complete."""
    inner = corpus.zip_of({"a.txt": b"x" * 100_000})
    (member,) = listing(corpus.zip_of({"inner.zip": inner}), ".zip")
    assert inner == member.data


def test_large_plain_member_only_head():
    """A big member that is not an archive is read only up to its head."""
    (member,) = listing(
        corpus.zip_of({"big.txt": b"a" * 500_000}), ".zip", size=10**7
    )
    assert 65536 == len(member.data)


def test_encrypted_member_named():
    """An encrypted zip member is yielded with its name and no data."""
    data = corpus.encrypted_zip({"invoice.exe": corpus.pe_exe()})
    assert [Member("invoice.exe", b"", encrypted=True)] == listing(
        data, ".zip"
    )


def test_zip_bomb_stops_at_quota():
    """A 1 GiB zip bomb stops on the declared size, before inflating."""
    data = corpus.zip_bomb()
    start = time.process_time()
    with pytest.raises(OverLimits, match="Exceeded storage quota"):
        listing(data, ".zip")
    assert time.process_time() - start < 2.0


def test_gzip_bomb_stops_at_quota():
    """A gzip bomb is inflated only up to the quota."""
    with pytest.raises(OverLimits, match="Exceeded storage quota"):
        listing(corpus.gzip_bomb(64), ".gz")


def test_member_count_limit():
    """More members than max_files stops with amavis's reason."""
    limits = DecodingLimits(14, 10, 102400, 300 << 20, 5, 500)
    data = corpus.zip_of({f"f{i}.txt": b"x" for i in range(11)})
    with pytest.raises(
        OverLimits, match=r"Maximum number of files \(10\) exceeded"
    ):
        listing(data, ".zip", limits=limits)


def test_depth_limit():
    """Entering a depth beyond max_depth stops with amavis's reason."""
    budget = Budget(LIMITS, 1000)
    budget.enter(14)
    with pytest.raises(
        OverLimits, match=r"Maximum decoding depth \(14\) exceeded"
    ):
        budget.enter(15)


def test_corrupt_zip_is_undecodable():
    """A zip that cannot be read raises Undecodable naming the format."""
    with pytest.raises(Undecodable, match="zip: BadZipFile"):
        listing(b"PK\x03\x04" + b"\xff" * 100, ".zip")


def test_truncated_gzip_is_not_a_crash():
    """A truncated gzip yields what decoded, without raising."""
    data = corpus.gzip_of(b"hello world" * 100, "a.txt")[:40]
    (member,) = listing(data, ".gz")
    assert "a.txt" == member.name


def test_missing_tool_is_undecodable(monkeypatch):
    """Without the unpacker installed, the archive is Undecodable."""
    # Mocked: the tools are installed here; removing one is the error path.
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(Undecodable, match="not installed"):
        listing(b"Rar!\x1a\x07\x00" + b"\0" * 20, ".rar")
