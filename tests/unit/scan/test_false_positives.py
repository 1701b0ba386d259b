"""Random binary attachments (encrypted or compressed data) are not banned.

libmagic guesses "DOS executable (COM)" or an exotic "executable" for
about 1 in 80 blocks of random bytes; those guesses must not block mail.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mailfilter.decision.policyfile import load_policy
from mailfilter.scan import filetype
from mailfilter.scan.banned import check
from tests.support.corpus import with_attachment

REPO = Path(__file__).resolve().parents[3]
# Seeds whose first 4 KB libmagic calls an executable (found by search).
TRICKY = (169, 198, 242, 409)


@pytest.mark.parametrize("policy_file", ["default.toml", "seed.toml"])
def test_random_blobs_are_never_banned(policy_file):
    """500 random 4 KB attachments, the libmagic-tricky ones included, pass the banned check."""
    policy = load_policy(REPO / "policy" / policy_file).banned
    seeds = [*TRICKY, *range(1000, 1496)]
    banned = {}
    for seed in seeds:
        blob = random.Random(seed).randbytes(4096)
        found = check(
            with_attachment(blob, "backup.bin", "application/octet-stream"),
            policy,
        )
        if found.banned:
            banned[seed] = found.banned
    assert {} == banned


def test_tricky_blobs_really_look_executable_to_libmagic():
    """The chosen seeds do get a weak `.exe` type, so the test above means something."""
    for seed in TRICKY:
        assert ".exe" in filetype.short_types(
            random.Random(seed).randbytes(4096)
        )
