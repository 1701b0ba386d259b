"""The Authentication-Results field (RFC 8601) we add.

Our own formatter rather than `authres`: we emit four method kinds with
fixed properties, and the field must go through `headers.fold` like every
field we add (control characters neutralised, folded at spaces). Values
that come from the message or DNS (domains, selectors) are reduced to the
characters a domain or token may hold, so they cannot break the syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailfilter.decision.headers import fold

if TYPE_CHECKING:
    from mailfilter.auth.dkimverify import Signature
    from mailfilter.auth.dmarc import Result as DmarcResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+/=-]")


@dataclass(frozen=True, slots=True)
class Results:
    """Everything verified about one message."""

    dkim: tuple[Signature, ...] = ()
    arc: str = "none"
    spf: str = "none"
    spf_mailfrom: str = ""
    spf_helo: str = "none"
    helo: str = ""
    dmarc: DmarcResult | None = None
    notes: tuple[str, ...] = field(default=())

    def dkim_pass_domains(self) -> tuple[str, ...]:
        """Domains of the DKIM signatures that verified."""
        return tuple(s.domain for s in self.dkim if s.result == "pass")


def _safe(text: str) -> str:
    return _UNSAFE.sub("", text)[:253] or "unknown"


def format_field(authserv_id: str, results: Results) -> bytes:
    """One folded Authentication-Results field, CRLF-terminated."""
    parts = [_safe(authserv_id)]
    if not results.dkim:
        parts.append("dkim=none")
    parts.extend(
        f"dkim={sig.result} header.d={_safe(sig.domain)} "
        f"header.s={_safe(sig.selector)} header.a={_safe(sig.algorithm)}"
        f" header.b={_safe(sig.b)}"
        for sig in results.dkim
    )
    parts.append(f"arc={results.arc}")
    if results.spf_mailfrom:
        parts.append(
            f"spf={results.spf} smtp.mailfrom={_safe(results.spf_mailfrom)}"
        )
    else:
        parts.append(f"spf={results.spf}")
    if results.helo:
        parts.append(f"spf={results.spf_helo} smtp.helo={_safe(results.helo)}")
    dmarc = results.dmarc
    if dmarc is None or not dmarc.domain:
        parts.append(f"dmarc={dmarc.result if dmarc else 'none'}")
    else:
        parts.append(
            f"dmarc={dmarc.result} (p={dmarc.policy}) "
            f"header.from={_safe(dmarc.domain)}"
        )
    return fold("Authentication-Results", "; ".join(parts))
