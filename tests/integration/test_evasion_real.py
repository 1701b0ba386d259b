"""EICAR in every container, and the evasion corpus, through the real scanners."""

from __future__ import annotations

import asyncio
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
    assert (
        Action.PASS != decision.action or decision.verdict is Verdict.UNCHECKED
    ), decision
    if not name.startswith("encrypted"):
        assert "Eicar-Test-Signature.UNOFFICIAL" in clam.viruses, (name, clam)
        assert Verdict.INFECTED is decision.verdict


@pytest.mark.parametrize("case", corpus.ordinary_cases(), ids=lambda c: c.name)
async def test_ordinary_mail_passes_clean_with_real_clamd(clamd, case):
    """Newsletters, office documents, images, invites, signed mail: zero false positives."""
    _, decision = await verdict_of(clamd, case.data)
    assert Verdict.CLEAN is decision.verdict, (case.name, decision)
    assert Action.PASS is decision.action
