"""SpamAssassin through spamd, with aiospamc (asyncio).

One REPORT request gives the score, the required score and the report
table, from which the rules hit and their points are read (amavis puts
`tests=[RULE=points, ...]` in X-Spam-Status; SYMBOLS gives names only).
Messages above the policy's size limit are not sent (`Hits: -` in the
log, as amavis skips them), and a spamd failure is returned, not raised.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import aiospamc

from mailfilter.verdict import ScanResult, SpamReport

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


class SpamAssassin:
    """The spamd scanner."""

    name = "spamassassin"

    def __init__(
        self, endpoint: Endpoint, *, timeout: float, max_size: int
    ) -> None:
        self.endpoint = endpoint
        self.timeout = aiospamc.Timeout(total=timeout, connection=10)
        self.max_size = max_size

    async def scan(self, content: bytes) -> ScanResult:
        """REPORT the message to spamd."""
        start = time.monotonic()
        if len(content) > self.max_size:
            return ScanResult(self.name, skipped=True)
        try:
            response = await aiospamc.report(
                content,
                host=self.endpoint.host,
                port=self.endpoint.port,
                timeout=self.timeout,
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
        await aiospamc.ping(
            host=self.endpoint.host,
            port=self.endpoint.port,
            timeout=self.timeout,
        )

    async def aclose(self) -> None:
        """Nothing to release: aiospamc opens a connection per request."""
