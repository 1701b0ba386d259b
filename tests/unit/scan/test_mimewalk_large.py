"""Large parts: found and typed without copying or decoding them in full."""

from __future__ import annotations

import io
import random
import tracemalloc
import zipfile
from pathlib import Path

from mailfilter.decision.policyfile import load_policy
from mailfilter.scan.banned import check
from tests.support.corpus import pe_exe, with_attachment

_RNG = random.Random(20261127)  # fixed bytes: the same test every run
POLICY = load_policy(
    Path(__file__).resolve().parents[3] / "policy/default.toml"
).banned


def test_large_plain_attachment_is_not_decoded_in_full():
    """A 6 MB random attachment is typed from its head: the walk stays small in memory."""
    msg = with_attachment(
        _RNG.randbytes(6_000_000), "data.bin", "application/octet-stream"
    )
    tracemalloc.start()
    try:
        found = check(msg, POLICY)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [] == found.banned
    assert peak < 2_000_000


def test_large_zip_is_still_opened():
    """A zip above the lazy threshold is decoded in full and its .exe is found."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("filler.bin", _RNG.randbytes(400_000))
        archive.writestr("setup.exe", b"MZ" + b"\0" * 100)
    msg = with_attachment(buf.getvalue(), "files.zip", "application/zip")
    assert len(msg) > 262144
    (banned,) = check(msg, POLICY).banned
    assert banned.endswith("setup.exe")
    assert ".exe-ms" in banned


def test_large_executable_behind_a_harmless_name_is_typed_from_its_head():
    """An MZ header at the start of a big .pdf attachment still makes it .exe-ms."""
    pe = pe_exe() + _RNG.randbytes(600_000)
    msg = with_attachment(pe, "report.pdf", "application/pdf")
    assert any(".exe" in b for b in check(msg, POLICY).banned)
