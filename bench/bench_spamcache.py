"""The spam result cache: memory per entry and hit rate with repeats.

    .venv/bin/python bench/bench_spamcache.py [--messages 3000]

Memory: 10,000 cached results with a realistic rule list (30 rules),
measured with tracemalloc. Hit rate: the benchmark corpus in which one
message in three is a repeat of an earlier one, each repeat arriving in
its own transaction (its own Received line, queue id and recipient), as
bulk mail does. The inner scanner here counts scans instead of asking
spamd: the hit rate depends on the key and the corpus, not on spamd.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import corpus  # noqa: E402
from mailfilter.decision.verdict import ScanResult, SpamReport  # noqa: E402
from mailfilter.scan.spamcache import SpamCache  # noqa: E402


def rules() -> tuple[tuple[str, float], ...]:
    """A fresh rule list per result, as spamd's answers are parsed."""
    return tuple((f"RULE_NUMBER_{i:02d}", 0.5 + i / 10) for i in range(30))


class Counting:
    name = "spamassassin"

    def __init__(self) -> None:
        self.calls = 0

    async def scan(self, _content: bytes) -> ScanResult:
        self.calls += 1
        return ScanResult(self.name, spam=SpamReport(3.1, 5.0, rules()))

    async def aclose(self) -> None:
        pass


def transaction(body: bytes, n: int) -> bytes:
    return (
        b"Received: from mx.sender.test (mx.sender.test [192.0.2.9])\r\n"
        b"\tby mx.ours.test (Postfix) with ESMTP id "
        + f"Q{n:08d}".encode()
        + f"\r\n\tfor <u{n}@ours.test>; Tue, 1 Dec 2026\r\n".encode()
        + body
    )


async def memory(entries: int) -> float:
    cache = SpamCache(Counting(), ttl=300, size=entries)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(entries):
        await cache.scan(b"Subject: %d\r\n\r\nbody\r\n" % i)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return grown / entries


async def hit_rate(messages: int) -> tuple[int, int, int]:
    rng = random.Random(7)
    unique = [m.data for m in corpus.generate(messages * 2 // 3, seed=3)]
    stream = list(unique)
    stream += [rng.choice(unique) for _ in range(messages - len(unique))]
    rng.shuffle(stream)
    inner = Counting()
    cache = SpamCache(inner, ttl=300, size=10_000)
    for n, body in enumerate(stream):
        await cache.scan(transaction(body, n))
    return len(stream), cache.hits, inner.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--entries", type=int, default=2000)
    args = parser.parse_args()
    per_entry = asyncio.run(memory(args.entries))
    total, hits, scans = asyncio.run(hit_rate(args.messages))
    print(f"memory: {per_entry:.0f} bytes per entry, "
          f"{per_entry * args.entries / 2**20:.1f} MiB for {args.entries}")
    print(f"hit rate: {hits}/{total} = {hits / total:.1%} "
          f"({scans} spamd scans for {total} messages)")


if __name__ == "__main__":
    main()
