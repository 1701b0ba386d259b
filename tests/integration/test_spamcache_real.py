"""The spam result cache in front of a real spamd: bulk copies are
scored once, and the copy's answer is the real one."""

from __future__ import annotations

import pytest

from mailfilter.addresses import parse_endpoint
from mailfilter.scan.spamassassin import SpamAssassin
from mailfilter.scan.spamcache import SpamCache
from tests.support.samples import gtube

pytestmark = pytest.mark.integration


def copy_for(rcpt: str, queue_id: str) -> bytes:
    """One transaction of a bulk message, as our Postfix hands it over."""
    return (
        "Received: from mx.bulk.test (mx.bulk.test [192.0.2.9])\r\n"
        f"\tby mx.ours.test (Postfix) with ESMTP id {queue_id}\r\n"
        f"\tfor <{rcpt}>; Tue,  1 Dec 2026 05:00:00 +0000 (UTC)\r\n"
        "From: news@bulk.test\r\nTo: undisclosed-recipients:;\r\n"
        "Subject: weekly offer\r\nMessage-ID: <w1@bulk.test>\r\n\r\n"
        f"{gtube()}\r\n"
    ).encode()


async def test_bulk_copies_are_scored_once(spamd):
    """Three recipients in three transactions: one spamd scan."""
    real = SpamAssassin(
        parse_endpoint(spamd.address), timeout=60, max_size=204800
    )
    cache = SpamCache(real, ttl=300, size=100)
    try:
        results = [
            await cache.scan(copy_for(f"u{i}@ours.test", f"4QX{i}"))
            for i in range(3)
        ]
    finally:
        await cache.aclose()
    assert (cache.misses, cache.hits) == (1, 2)
    scores = {r.spam.score for r in results if r.spam is not None}
    assert len(scores) == 1
    assert scores.pop() >= 100  # GTUBE, really scored by spamd
