"""SpamAssassin through spamd, with aiospamc (asyncio).

One REPORT request gives the score, the required score and the report
table, from which the rules hit and their points are read (amavis puts
`tests=[RULE=points, ...]` in X-Spam-Status; SYMBOLS gives names only).

The aiospamc client is built once: its convenience functions (`report()`,
`ping()`) build two TLS contexts per call even over plain TCP, about
17 ms of CPU each time (measured in bench/bench_scan.py).

Messages above the policy's size are truncated, not skipped, as amavis
does with $sa_mail_body_size_limit: spamd scores the header and the start
of the body. A spamd failure is returned, not raised.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import aiospamc
from aiospamc.client import Client
from aiospamc.connections import TcpConnectionManager
from aiospamc.requests import Request

from mailfilter.decision.verdict import ScanResult, SpamReport
from mailfilter.scan import SPAM_SCANNER

if TYPE_CHECKING:
    from mailfilter.addresses import Endpoint

# " 2.7 MISSING_DATE           Missing Date: header"
_ROW = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s", re.MULTILINE)


def parse_report(body: str) -> tuple[tuple[str, float], ...]:
    """Rules and points from spamd's report table."""
    _, sep, table = body.partition("---- ----")
    if not sep:
        return ()
    return tuple((name, float(pts)) for pts, name in _ROW.findall(table))


def truncate(content: bytes, limit: int) -> bytes:
    """At most `limit` bytes, cut at a line end, header always whole."""
    if len(content) <= limit:
        return content
    head_end = content.find(b"\r\n\r\n")
    cut = max(limit, head_end + 4 if head_end >= 0 else 0)
    line_end = content.rfind(b"\r\n", 0, cut)
    return content[: line_end + 2 if line_end > 0 else cut]


class SpamAssassin:
    """The spamd scanner."""

    name = SPAM_SCANNER

    def __init__(
        self, endpoint: Endpoint, *, timeout: float, max_size: int
    ) -> None:
        self.endpoint = endpoint
        self.max_size = max_size
        timeouts = aiospamc.Timeout(total=timeout, connection=10)
        self._client = Client(
            TcpConnectionManager(
                endpoint.host, endpoint.port, timeout=timeouts
            )
        )

    async def scan(self, content: bytes) -> ScanResult:
        """REPORT the message (or its first `max_size` bytes) to spamd."""
        start = time.monotonic()
        try:
            response = await self._client.request(
                Request("REPORT", body=truncate(content, self.max_size))
            )
            spam = response.headers["Spam"]
        except Exception as exc:
            return ScanResult(
                self.name,
                ok=False,
                error=f"{type(exc).__name__}: {exc}"[:200],
                elapsed=time.monotonic() - start,
            )
        body = response.body.decode("utf-8", "replace")
        report = SpamReport(
            score=float(spam.score),
            required=float(spam.threshold),
            tests=parse_report(body),
        )
        return ScanResult(
            self.name, spam=report, elapsed=time.monotonic() - start
        )

    async def ping(self) -> None:
        """PING spamd, for the selftest."""
        await self._client.request(Request("PING"))

    async def aclose(self) -> None:
        """Nothing to release: aiospamc opens a connection per request."""
