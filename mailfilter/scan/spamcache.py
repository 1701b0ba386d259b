"""A short-lived cache of spam results, so bulk mail is scored once.

Bulk mail reaches many recipients in separate transactions: the same
bytes, except the trace field our own MTA prepends (its Received line,
with a fresh queue id, the recipient and the time). SpamAssassin spends
100-150 ms of CPU on each copy. `SpamCache` keys a result by a digest of
what the sender controls and answers a copy seen again within `ttl`
seconds from memory.

The key is the SHA-256 of the message without the topmost Received
field, plus that field's `from` clause (the client's HELO, reverse name
and address), so mail from another client is never answered with this
client's DNSBL results. What the key ignores, and which rules could
notice: the time and queue id of our Received line (rules comparing the
Date field with the receive time, e.g. DATE_IN_PAST_*/DATE_IN_FUTURE_*,
shift by at most the TTL), and anything that changes between two scans
of the same bytes (DNSBL/URIBL answers, Bayes and TxRep learning). Within
a TTL of minutes these differences are the same a scan a few minutes
earlier would have seen, which is what the cache returns.

Copies of a bulk message often arrive together, in parallel sessions:
a copy whose twin is being scanned right now waits for that scan's
answer instead of starting another one. If that scan fails, each copy
waiting for it is scanned on its own.

Memory is bounded by `size` entries of one digest and one `ScanResult`
each: about 5 KiB with a 30-rule report (bench/bench_spamcache.py), so
the default 2,000 entries stay under 10 MiB. Only answers are cached,
never a failure or a skipped scan.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailfilter.decision.verdict import ScanResult
    from mailfilter.scan import Scanner

# The topmost Received field, unfolded: its `from` clause runs up to
# " by " (RFC 5321 section 4.4 order: from, by, via, with, id, for; date).
_RECEIVED = re.compile(
    rb"\AReceived:[ \t]*(.*?)(?=\r?\n(?![ \t]))", re.DOTALL | re.IGNORECASE
)
_FROM_CLAUSE = re.compile(
    rb"\A(from\s.*?)(?:\s+by\s|;|\Z)", re.DOTALL | re.IGNORECASE
)


def cache_key(content: bytes) -> bytes:
    """The digest of what the sender controls (see the module text)."""
    digest = hashlib.sha256()
    match = _RECEIVED.match(content)
    if match is None:
        digest.update(b"\0")
        digest.update(content)
        return digest.digest()
    clause = _FROM_CLAUSE.match(match.group(1))
    digest.update(b"\1")
    digest.update(b" ".join(clause.group(1).split()) if clause else b"")
    digest.update(b"\0")
    rest = content[match.end() :]
    digest.update(rest.removeprefix(b"\r\n").removeprefix(b"\n"))
    return digest.digest()


class SpamCache:
    """A scanner that answers repeats of the same message from memory."""

    def __init__(
        self,
        scanner: Scanner,
        *,
        ttl: float,
        size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = scanner.name
        # The scanner itself: the selftest talks to it directly.
        self.inner = scanner
        self._scanner = scanner
        self._ttl, self._size, self._clock = ttl, size, clock
        self._entries: OrderedDict[bytes, tuple[float, ScanResult]] = (
            OrderedDict()
        )
        # Scans under way, by key: copies arriving meanwhile await the
        # future, which gets the answer, or None if the scan raised.
        self._pending: dict[bytes, asyncio.Future[ScanResult | None]] = {}
        self.hits = 0  # answered from memory or by a scan under way
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def scan(self, content: bytes) -> ScanResult:
        """The cached result of a recent identical message, or a scan."""
        key = cache_key(content)
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]
        pending = self._pending.get(key)
        if pending is not None:
            # shield: a waiter's deadline must not cancel the shared scan.
            shared = await asyncio.shield(pending)
            if shared is not None and _cacheable(shared):
                self.hits += 1
                return shared
            self.misses += 1
            return await self._scanner.scan(content)
        self.misses += 1
        future: asyncio.Future[ScanResult | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[key] = future
        result: ScanResult | None = None
        try:
            result = await self._scanner.scan(content)
        finally:
            del self._pending[key]
            future.set_result(result)
        if _cacheable(result):
            self._entries[key] = (now, result)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return result

    async def aclose(self) -> None:
        """Close the wrapped scanner; forget every entry."""
        self._entries.clear()
        await self._scanner.aclose()


def _cacheable(result: ScanResult) -> bool:
    """Only answers: never a failure or a skipped scan."""
    return result.ok and not result.skipped and result.spam is not None
