"""The scanner protocol and the registry of scanners.

A scanner takes the raw message bytes and returns a `ScanResult`. It never
raises for a problem of its own service (down, slow, garbage): it returns
`ok=False` with the reason, so the policy decides. It may raise only for
our own bugs, which the pipeline turns into a tempfail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailfilter.decision.verdict import ScanResult


# The one scanner that is expensive (100-150 ms of CPU per message): the
# pipeline asks it last, and only where its answer can matter.
SPAM_SCANNER = "spamassassin"


class Scanner(Protocol):
    """One content check (clamd, spamd, banned files)."""

    name: str

    async def scan(self, content: bytes) -> ScanResult:
        """Scan one message (CRLF line ends, as received)."""
        ...

    async def aclose(self) -> None:
        """Release connections and executors."""
        ...
