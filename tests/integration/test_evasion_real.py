"""EICAR in every container, and the evasion corpus, through the real scanners."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from mailfilter.addresses import parse_endpoint
from mailfilter.decision.decide import decide
from mailfilter.decision.policyfile import load_policy
from mailfilter.decision.verdict import Action, Verdict
from mailfilter.scan.banned import BannedScanner
from mailfilter.scan.clamav import ClamAV
from tests.support import corpus
from tests.support.samples import eicar

pytestmark = pytest.mark.integration
POLICY = load_policy(
    Path(__file__).resolve().parents[2] / "policy/default.toml"
)


async def verdict_of(clamd, data: bytes):
    """The default policy's decision with real clamd and the banned engine."""
    scanners = [
        ClamAV(
            parse_endpoint(clamd.address, unix_ok=True), timeout=30, workers=4
        ),
        BannedScanner(POLICY.banned),
    ]
    results = await asyncio.gather(*(s.scan(data) for s in scanners))
    for s in scanners:
        await s.aclose()
    return results, decide(results, POLICY, "u@example.com")


@pytest.mark.parametrize(
    ("name", "data"),
    corpus.containers(eicar(), "readme.txt"),
    ids=[n for n, _ in corpus.containers(eicar(), "readme.txt")],
)
async def test_eicar_is_caught_in_every_container(clamd, name, data):
    """clamd finds EICAR inside each container; the message is never passed clean."""
    results, decision = await verdict_of(clamd, data)
    clam = results[0]
    assert clam.ok, clam.error
    # Fail closed: not even an UNCHECKED copy is delivered by default.
    assert Action.PASS != decision.action, decision
    if not name.startswith("encrypted"):
        assert "Eicar-Test-Signature.UNOFFICIAL" in clam.viruses, (name, clam)
        assert Verdict.INFECTED is decision.verdict


def _tool(args: list[str], cwd: Path) -> None:
    if shutil.which(args[0]) is None:
        pytest.skip(f"{args[0]} not installed")
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def _two_member_tar_gz(tmp: Path) -> bytes:
    """`tar cf` then `gzip` of each half: gzip -d gives the whole tar."""
    (tmp / "readme.txt").write_bytes(corpus.TEXT)
    (tmp / "invoice.exe").write_bytes(corpus.TEXT)
    _tool(["tar", "cf", "all.tar", "readme.txt", "invoice.exe"], tmp)
    tar = (tmp / "all.tar").read_bytes()
    (tmp / "h1").write_bytes(tar[:1024])
    (tmp / "h2").write_bytes(tar[1024:])
    _tool(["gzip", "-n", "h1", "h2"], tmp)
    return (tmp / "h1.gz").read_bytes() + (tmp / "h2.gz").read_bytes()


def _deflate64_zip(tmp: Path) -> bytes:
    """A PE named notes.txt in a zip 7z writes with Deflate64."""
    (tmp / "notes.txt").write_bytes(corpus.pe_exe() + bytes(4096))
    _tool(["7z", "a", "-tzip", "-mm=Deflate64", "d64.zip", "notes.txt"], tmp)
    return (tmp / "d64.zip").read_bytes()


def _two_stream_xz(tmp: Path) -> bytes:
    """Two xz streams, the second a tar holding setup.scr."""
    (tmp / "setup.scr").write_bytes(corpus.TEXT)
    _tool(["tar", "cf", "s.tar", "setup.scr"], tmp)
    (tmp / "pad").write_bytes(corpus.TEXT)
    _tool(["xz", "-k", "pad", "s.tar"], tmp)
    return (tmp / "s.tar.xz").read_bytes() + (tmp / "pad.xz").read_bytes()


@pytest.mark.parametrize(
    ("name", "build", "filename"),
    [
        ("two-member tar.gz", _two_member_tar_gz, "files.tar.gz"),
        ("Deflate64 zip", _deflate64_zip, "files.zip"),
        ("two-stream xz", _two_stream_xz, "files.xz"),
    ],
)
async def test_archives_made_by_real_tools_are_not_delivered(
    clamd, tmp_path, name, build, filename
):
    """Archives written by tar, gzip, xz and 7z: the program inside is found."""
    message = corpus.with_attachment(build(tmp_path), filename)
    results, decision = await verdict_of(clamd, message)
    assert results[1].banned, (name, results[1])
    assert Action.PASS != decision.action, (name, decision)


async def test_unchecked_is_quarantined_not_delivered(clamd):
    """An encrypted archive is UNCHECKED: discarded and quarantined."""
    data = corpus.encrypted_zip({"minutes.txt": corpus.TEXT})
    _, decision = await verdict_of(
        clamd, corpus.with_attachment(data, "m.zip", "application/zip")
    )
    assert (Verdict.UNCHECKED, Action.DISCARD, True) == (
        decision.verdict,
        decision.action,
        decision.quarantine,
    )


@pytest.mark.parametrize("case", corpus.ordinary_cases(), ids=lambda c: c.name)
async def test_ordinary_mail_passes_clean_with_real_clamd(clamd, case):
    """Newsletters, office documents, images, invites, signed mail: zero false positives."""
    _, decision = await verdict_of(clamd, case.data)
    assert Verdict.CLEAN is decision.verdict, (case.name, decision)
    assert Action.PASS is decision.action
