"""Archives opened through Debian's unpackers (7z), as subprocesses."""

from __future__ import annotations

import shutil

import pytest

from mailfilter.decision.policy import DecodingLimits
from mailfilter.scan.archives import Budget, Member, OverLimits, members
from tests.support import corpus

LIMITS = DecodingLimits(14, 1500, 102400, 300 << 20, 5, 500)
needs_7z = pytest.mark.skipif(
    shutil.which("7z") is None, reason="7z (p7zip-full) not installed"
)


def listing(data, kind, size=None, limits=LIMITS):
    """Members of an archive under the limits."""
    budget = Budget(limits, len(data) if size is None else size)
    return list(members(data, kind, budget, 10.0))


@needs_7z
def test_7z_members():
    """7z archives are listed and extracted through the 7z tool."""
    data = corpus.seven_zip({"invoice.exe": corpus.pe_exe(), "a.txt": b"hi"})
    got = {m.name: m.data for m in listing(data, ".7z")}
    assert {"invoice.exe": corpus.pe_exe(), "a.txt": b"hi"} == got


@needs_7z
def test_cab_members():
    """Cabinet files are read through 7z: listed names first, then data."""
    assert [
        Member("invoice.exe"),
        Member("invoice.exe", b"MZ\x90\x00"),
    ] == listing(corpus.cab_of("invoice.exe", b"MZ\x90\x00"), ".cab")


@needs_7z
def test_7z_over_quota_before_extracting():
    """A 7z whose listed sizes exceed the quota stops before extraction."""
    data = corpus.seven_zip({"zeros.bin": b"\0" * 3_000_000})
    with pytest.raises(OverLimits):
        listing(data, ".7z")
