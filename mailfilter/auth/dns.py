"""Asynchronous DNS with a per-message budget (dnspython's asyncio resolver).

A message's checks share one `Budget`: a deadline and a lookup count. A
lookup that times out, gets SERVFAIL or finds the budget spent raises
`TempError`; the checks turn that into `temperror`, and a temperror never
blocks mail by itself. A name that does not exist, or has no record of the
type, is an empty answer (the checks need to tell that from a failure:
no SPF record is `none`, an unreachable one is `temperror`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailfilter.addresses import parse_endpoint


class TempError(Exception):
    """DNS could not answer now (timeout, SERVFAIL, budget spent)."""


@dataclass
class Budget:
    """Time and lookups one message may spend on DNS."""

    seconds: float
    lookups: int
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = asyncio.get_running_loop().time() + self.seconds

    def spend(self) -> None:
        """Nothing more for this message: later lookups fail at once."""
        self.lookups = 0

    def take(self) -> float:
        """Account for one lookup; returns the time left for it."""
        left = self.deadline - asyncio.get_running_loop().time()
        if self.lookups <= 0 or left <= 0:
            raise TempError("DNS budget for this message spent")
        self.lookups -= 1
        return left


class Resolver:
    """TXT, A, AAAA and MX lookups against a configured server list."""

    def __init__(self, servers: list[str], timeout: float) -> None:
        resolver = dns.asyncresolver.Resolver(configure=not servers)
        if servers:
            # "HOST" or "HOST:PORT"; tests run a DNS server on a free port.
            resolver.nameservers = [_nameserver(text) for text in servers]
        resolver.timeout = timeout  # per server try
        # One lookup gets one try per server; dnspython would otherwise
        # retry a silent server until the message's whole budget is gone.
        self._lookup_cap = timeout * max(1, len(resolver.nameservers))
        # TTL-respecting cache: keys and policies repeat across messages.
        resolver.cache = dns.resolver.LRUCache(10000)
        self._resolver = resolver

    async def txt(self, name: str, budget: Budget) -> list[str]:
        """TXT records of `name`, character-strings joined."""
        answer = await self._query(name, dns.rdatatype.TXT, budget)
        return [
            b"".join(rdata.strings).decode("utf-8", "replace")
            for rdata in answer
        ]

    async def addresses(self, name: str, budget: Budget) -> list[str]:
        """A and AAAA records of `name`, as text."""
        found: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            answer = await self._query(name, rdtype, budget)
            found.extend(rdata.to_text() for rdata in answer)
        return found

    async def mx(self, name: str, budget: Budget) -> list[str]:
        """MX host names of `name`, lowest preference first."""
        answer = await self._query(name, dns.rdatatype.MX, budget)
        ranked = sorted(answer, key=lambda rdata: rdata.preference)
        return [r.exchange.to_text(omit_final_dot=True) for r in ranked]

    async def _query(
        self, name: str, rdtype: dns.rdatatype.RdataType, budget: Budget
    ) -> list[Any]:  # dnspython's rdata classes are untyped per type
        left = min(budget.take(), self._lookup_cap)
        try:
            answer = await self._resolver.resolve(
                name,
                rdtype,
                lifetime=left,
                search=False,
                raise_on_no_answer=False,
            )
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout as exc:
            # The resolver did not answer in time: the next lookups of
            # this message would wait as long, so they fail at once (a
            # server that is down costs one timeout per message, not the
            # whole budget). The results are temperror either way.
            budget.spend()
            raise TempError(f"{name}: {type(exc).__name__}") from exc
        except (
            dns.resolver.NoNameservers,  # SERVFAIL or REFUSED from all
            dns.resolver.NoResolverConfiguration,
        ) as exc:
            raise TempError(f"{name}: {type(exc).__name__}") from exc
        except dns.exception.DNSException as exc:
            # A malformed name (label too long, ...) cannot exist.
            if isinstance(exc, dns.name.NameTooLong | dns.name.LabelTooLong):
                return []
            raise TempError(f"{name}: {type(exc).__name__}") from exc
        if answer.rrset is None:
            return []
        return list(answer.rrset)


def _nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    if ":" not in text or (text.count(":") > 1 and "[" not in text):
        return dns.nameserver.Do53Nameserver(text, 53)
    endpoint = parse_endpoint(text)
    return dns.nameserver.Do53Nameserver(endpoint.host, endpoint.port)
