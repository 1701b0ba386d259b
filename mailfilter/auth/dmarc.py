"""DMARC (RFC 7489): alignment of the From domain with SPF and DKIM.

Our own small evaluator: the `dmarc` package evaluates with its own
synchronous DNS lookups, and `checkdmarc` is a record auditor, not a
receiver-side check. This one awaits `dns.Resolver`; the organizational
domain comes from the Public Suffix List shipped in `publicsuffixlist`
(no network). `pct` sampling is not applied: a failing message is always
reported with the published policy, and the bank's setting decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from publicsuffixlist import PublicSuffixList

from mailfilter.auth.dns import TempError

if TYPE_CHECKING:
    from mailfilter.auth.dns import Budget, Resolver

_PSL = PublicSuffixList()


@dataclass(frozen=True, slots=True)
class Evidence:
    """What DMARC aligns: the SPF and DKIM results with their domains."""

    from_domain: str
    spf: str
    spf_domain: str
    dkim_pass_domains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Result:
    """pass/fail/none/temperror/permerror and the policy that applies."""

    result: str
    policy: str = "none"  # none, quarantine or reject (p= or sp=)
    domain: str = ""


def org_domain(domain: str) -> str:
    """The organizational domain (RFC 7489 §3.2)."""
    return _PSL.privatesuffix(domain.lower()) or domain.lower()


def parse(record: str) -> dict[str, str] | None:
    """Tags of a DMARC record, or None if it is not one."""
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    if tags.get("v") != "DMARC1" or "p" not in tags:
        return None
    return tags


async def _lookup(
    domain: str, resolver: Resolver, budget: Budget
) -> dict[str, str] | None:
    texts = await resolver.txt(f"_dmarc.{domain}", budget)
    records = [t for t in texts if t.replace(" ", "").startswith("v=DMARC1")]
    if len(records) != 1:
        return None  # RFC 7489 §6.6.3: none, or more than one, is none
    return parse(records[0])


async def check(
    evidence: Evidence, resolver: Resolver, budget: Budget
) -> Result:
    """Evaluate the From domain's published policy."""
    domain = evidence.from_domain.lower().rstrip(".")
    if not domain:
        return Result("none")
    org = org_domain(domain)
    try:
        tags = await _lookup(domain, resolver, budget)
        subdomain = tags is None and org != domain
        if tags is None and org != domain:
            tags = await _lookup(org, resolver, budget)
    except TempError:
        return Result("temperror", domain=domain)
    if tags is None:
        return Result("none", domain=domain)
    policy = tags["p"].lower()
    if subdomain:
        policy = tags.get("sp", policy).lower()
    if policy not in ("none", "quarantine", "reject"):
        return Result("permerror", domain=domain)
    aligned = _aligned(evidence, domain, tags)
    return Result("pass" if aligned else "fail", policy, domain)


def _aligned(evidence: Evidence, domain: str, tags: dict[str, str]) -> bool:
    def same(other: str, mode: str) -> bool:
        other = other.lower().rstrip(".")
        if mode == "s":
            return other == domain
        return bool(other) and org_domain(other) == org_domain(domain)

    spf_ok = evidence.spf == "pass" and same(
        evidence.spf_domain, tags.get("aspf", "r").lower()
    )
    dkim_ok = any(
        same(d, tags.get("adkim", "r").lower())
        for d in evidence.dkim_pass_domains
    )
    return spf_ok or dkim_ok
