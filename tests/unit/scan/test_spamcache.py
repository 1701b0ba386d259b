"""The spam result cache: what its key ignores, its TTL and its bound."""

from __future__ import annotations

import asyncio

from mailfilter.decision.verdict import ScanResult, SpamReport
from mailfilter.scan.spamcache import SpamCache, cache_key

BODY = b"From: a@b.test\r\nSubject: offer\r\n\r\nbuy now\r\n"


def received(ip: str, queue_id: str, rcpt: str, when: str) -> bytes:
    """Our MTA's trace field, folded as Postfix writes it."""
    return (
        f"Received: from mx.sender.test (mx.sender.test [{ip}])\r\n"
        f"\tby mx.ours.test (Postfix) with ESMTP id {queue_id}\r\n"
        f"\tfor <{rcpt}>; {when}\r\n"
    ).encode()


def test_copies_differing_only_in_our_trace_field_share_a_key():
    """Queue id, recipient and time of our Received line are ignored."""
    one = received("192.0.2.1", "4Q1", "a@ours.test", "Tue, 1 Dec 2026")
    two = received("192.0.2.1", "4Q2", "b@ours.test", "Wed, 2 Dec 2026")
    assert cache_key(one + BODY) == cache_key(two + BODY)


def test_the_client_and_the_content_are_in_the_key():
    """Another client (its DNSBL answers), or other bytes: another key."""
    base = received("192.0.2.1", "4Q1", "a@ours.test", "x") + BODY
    other_ip = received("198.51.100.7", "4Q1", "a@ours.test", "x") + BODY
    other_body = received("192.0.2.1", "4Q1", "a@ours.test", "x") + (
        BODY.replace(b"buy now", b"buy later")
    )
    older_hop = received("192.0.2.1", "4Q1", "a@ours.test", "x") + (
        b"Received: from elsewhere by mx.sender.test; x\r\n" + BODY
    )
    keys = {cache_key(m) for m in (base, other_ip, other_body, older_hop)}
    assert len(keys) == 4
    # Without any Received field the whole message is the key.
    assert cache_key(BODY) != cache_key(b"X" + BODY)


class CountingScanner:
    """Answers a fixed spam score and counts how often it was asked."""

    name = "spamassassin"

    def __init__(self, ok: bool = True) -> None:
        self.calls = 0
        self.ok = ok

    async def scan(self, content: bytes) -> ScanResult:
        self.calls += 1
        if not self.ok:
            return ScanResult(self.name, ok=False, error="down")
        return ScanResult(self.name, spam=SpamReport(score=7.5, required=5.0))

    async def aclose(self) -> None:
        pass


async def test_a_repeat_within_the_ttl_is_answered_from_memory():
    """Second copy: no scan; after the TTL: a scan again."""
    now = [0.0]
    inner = CountingScanner()
    cache = SpamCache(inner, ttl=300, size=10, clock=lambda: now[0])
    first = await cache.scan(received("192.0.2.1", "1", "a@x", "t") + BODY)
    second = await cache.scan(received("192.0.2.1", "2", "b@x", "u") + BODY)
    assert inner.calls == 1
    assert second == first
    assert (cache.hits, cache.misses) == (1, 1)
    now[0] = 301.0
    await cache.scan(BODY)
    await cache.scan(received("192.0.2.1", "3", "c@x", "v") + BODY)
    assert inner.calls == 3


async def test_failures_are_never_cached():
    """A spamd failure is asked again next time."""
    inner = CountingScanner(ok=False)
    cache = SpamCache(inner, ttl=300, size=10)
    await cache.scan(BODY)
    await cache.scan(BODY)
    assert inner.calls == 2
    assert len(cache) == 0


async def test_the_cache_holds_at_most_size_entries():
    """The least recently used entry goes first."""
    inner = CountingScanner()
    cache = SpamCache(inner, ttl=300, size=3)
    for i in range(10):
        await cache.scan(BODY + str(i).encode())
    assert len(cache) == 3
    await cache.scan(BODY + b"9")  # still there
    await cache.scan(BODY + b"0")  # evicted long ago
    assert inner.calls == 11


class GatedScanner(CountingScanner):
    """Holds every scan until `gate` is set; raises when `fail` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.fail = False

    async def scan(self, content: bytes) -> ScanResult:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            self.fail = False  # only the first scan fails
            raise ConnectionResetError("spamd went away")
        return ScanResult(self.name, spam=SpamReport(score=7.5, required=5.0))


def test_copies_arriving_together_share_one_scan():
    """Bulk copies in parallel sessions: one scan, every copy answered."""

    async def go() -> tuple[GatedScanner, SpamCache, list[ScanResult]]:
        inner = GatedScanner()
        cache = SpamCache(inner, ttl=300, size=10)
        tasks = [asyncio.ensure_future(cache.scan(BODY)) for _ in range(5)]
        await asyncio.sleep(0)
        inner.gate.set()
        return inner, cache, await asyncio.gather(*tasks)

    inner, cache, results = asyncio.run(go())
    assert inner.calls == 1
    assert all(r.spam is not None and r.spam.score == 7.5 for r in results)
    assert (cache.hits, cache.misses) == (4, 1)


def test_a_failed_shared_scan_leaves_each_waiting_copy_its_own_scan():
    """The first scan raises: the copies waiting for it scan themselves,
    and the failure reaches only the session that owned it."""

    async def go() -> tuple[GatedScanner, list[object]]:
        inner = GatedScanner()
        inner.fail = True
        cache = SpamCache(inner, ttl=300, size=10)
        tasks = [asyncio.ensure_future(cache.scan(BODY)) for _ in range(3)]
        await asyncio.sleep(0)
        inner.gate.set()
        return inner, await asyncio.gather(*tasks, return_exceptions=True)

    inner, results = asyncio.run(go())
    assert isinstance(results[0], ConnectionResetError)
    assert all(isinstance(r, ScanResult) and r.ok for r in results[1:])
    assert inner.calls == 3


def test_a_waiting_copy_that_gives_up_does_not_cancel_the_shared_scan():
    """A waiter's deadline cancels the waiter only."""

    async def go() -> tuple[GatedScanner, ScanResult]:
        inner = GatedScanner()
        cache = SpamCache(inner, ttl=300, size=10)
        owner = asyncio.ensure_future(cache.scan(BODY))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(cache.scan(BODY))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        inner.gate.set()
        return inner, await owner

    inner, result = asyncio.run(go())
    assert result.ok
    assert inner.calls == 1
