"""SPF (RFC 7208) for the envelope sender and the HELO name.

Our own small evaluator rather than pyspf: pyspf resolves synchronously
through its own DNS layer, so it would need a thread per check and could
not share the message's DNS budget. This one awaits `dns.Resolver` and
keeps RFC 7208's limits: 10 terms that cause DNS lookups, 2 void
lookups, 10 MX or A names per mechanism. `ptr` is treated as not
matching (RFC 7208 §5.5: "SHOULD NOT be used"); `exp=` is not fetched
(no explanation is returned after an after-queue check).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter.auth.dns import TempError

if TYPE_CHECKING:
    from mailfilter.auth.dns import Budget, Resolver

_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MAX_TERMS = 10
_MAX_VOID = 2
_MAX_NAMES = 10
_MACRO = re.compile(
    r"%\{([slodiphcrtv])(\d*)(r?)([-.+,/_=]*)\}", re.IGNORECASE
)


class PermError(Exception):
    """The record is broken (syntax, limits): result `permerror`."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What SPF checks: the client IP, the domain, and the macro facts."""

    ip: str
    sender: str  # local@domain (postmaster@helo for the HELO check)
    helo: str

    @property
    def domain(self) -> str:
        """The domain part of the sender."""
        return self.sender.rpartition("@")[2]


@dataclass(slots=True)
class _State:
    identity: Identity
    resolver: Resolver
    budget: Budget
    terms: int = 0
    voids: int = 0


async def check(identity: Identity, resolver: Resolver, budget: Budget) -> str:
    """pass, fail, softfail, neutral, none, temperror or permerror."""
    try:
        ipaddress.ip_address(identity.ip)
    except ValueError:
        return "none"  # no client address known (local submission)
    if not _valid_domain(identity.domain):
        return "none"
    state = _State(identity, resolver, budget)
    try:
        return await _evaluate(state, identity.domain, top=True)
    except TempError:
        return "temperror"
    except PermError:
        return "permerror"


async def _record(state: _State, domain: str) -> str | None:
    texts = await state.resolver.txt(domain, state.budget)
    spf = [t for t in texts if re.match(r"v=spf1( |$)", t, re.IGNORECASE)]
    if len(spf) > 1:
        raise PermError("more than one SPF record")
    return spf[0] if spf else None


async def _evaluate(state: _State, domain: str, *, top: bool) -> str:
    record = await _record(state, domain)
    if record is None:
        if top:
            return "none"
        raise PermError(f"no SPF record at {domain}")  # include/redirect
    redirect = None
    for term in record.split()[1:]:
        name, sep, value = term.partition("=")
        if sep and re.fullmatch(r"[a-z][a-z0-9_.-]*", name, re.IGNORECASE):
            if name.lower() == "redirect":
                redirect = value
            continue  # exp= and unknown modifiers are ignored
        qualifier = _QUALIFIERS.get(term[0], "")
        mechanism = term[1:] if qualifier else term
        if await _matches(state, domain, mechanism):
            return qualifier or "pass"
    if redirect is not None:
        _count(state)
        target = _expand(state, redirect, domain)
        return await _evaluate(state, target, top=False)
    return "neutral"


def _count(state: _State) -> None:
    state.terms += 1
    if state.terms > _MAX_TERMS:
        raise PermError("more than 10 DNS-querying terms")


async def _matches(state: _State, domain: str, mechanism: str) -> bool:
    kind, _, arg = mechanism.partition(":")
    kind, _, cidr = kind.partition("/")
    kind = kind.lower()
    if kind == "all" and not arg:
        return True
    if kind in ("ip4", "ip6"):
        network = arg + (f"/{cidr}" if cidr else "")
        return _in_network(state.identity.ip, network)
    if kind not in ("a", "mx", "include", "exists", "ptr"):
        raise PermError(f"unknown mechanism {mechanism!r}")
    _count(state)
    if kind == "ptr":
        return False
    target, cidrs = _target(state, domain, mechanism)
    if kind == "include":
        result = await _evaluate(state, target, top=False)
        return result == "pass"
    if kind == "exists":
        return bool(await _void_aware(state, target, "A"))
    hosts = [target]
    if kind == "mx":
        hosts = await _void_aware(state, target, "MX")
        if len(hosts) > _MAX_NAMES:
            raise PermError("more than 10 MX names")
    for host in hosts:
        for address in await _void_aware(state, host, "A"):
            if _in_network(state.identity.ip, address, cidrs):
                return True
    return False


def _target(
    state: _State, domain: str, mechanism: str
) -> tuple[str, tuple[str, str]]:
    """The domain-spec of a/mx/include/exists and its dual CIDR lengths."""
    _, sep, spec = mechanism.partition(":")
    head = mechanism if not sep else spec
    cidr4 = cidr6 = ""
    match = re.search(r"/(\d+)?(?://(\d+))?$", head)
    if match:
        cidr4, cidr6 = match.group(1) or "", match.group(2) or ""
        head = head[: match.start()]
    target = _expand(state, head, domain) if sep else domain
    if not _valid_domain(target):
        raise PermError(f"bad domain-spec in {mechanism!r}")
    return target, (cidr4, cidr6)


async def _void_aware(state: _State, name: str, kind: str) -> list[str]:
    if kind == "MX":
        found = await state.resolver.mx(name, state.budget)
    else:
        found = await state.resolver.addresses(name, state.budget)
    if not found:
        state.voids += 1
        if state.voids > _MAX_VOID:
            raise PermError("more than 2 void lookups")
    return found


def _in_network(
    ip: str, network: str, cidrs: tuple[str, str] = ("", "")
) -> bool:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    try:
        base = ipaddress.ip_address(network.partition("/")[0])
        length = network.partition("/")[2]
        if not length:
            length = cidrs[0] if base.version == 4 else cidrs[1]
        net = ipaddress.ip_network(
            f"{base}/{length or base.max_prefixlen}", strict=False
        )
    except ValueError as exc:
        raise PermError(f"bad network {network!r}") from exc
    return address.version == net.version and address in net


def _expand(state: _State, spec: str, domain: str) -> str:
    """Macro expansion (RFC 7208 §7) for the letters a receiver knows."""
    identity = state.identity
    ip = ipaddress.ip_address(identity.ip)
    if ip.version == 4:
        dotted = str(ip)
    else:
        dotted = ".".join(ip.exploded.replace(":", ""))
    values = {
        "s": identity.sender,
        "l": identity.sender.rpartition("@")[0] or "postmaster",
        "o": identity.domain,
        "d": domain,
        "i": dotted,
        "h": identity.helo,
        "v": "in-addr" if ip.version == 4 else "ip6",
        "p": "unknown",
    }

    def one(match: re.Match[str]) -> str:
        letter, digits, reverse, delimiters = match.groups()
        if letter.lower() not in values:
            raise PermError(f"macro %{{{letter}}} not allowed here")
        parts = re.split(
            "[" + re.escape(delimiters or ".") + "]", values[letter.lower()]
        )
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits) :] if int(digits) else parts
        return ".".join(parts)

    text = _MACRO.sub(one, spec)
    if re.search(r"%[^%_-]", text.replace("%%", "")):
        raise PermError(f"bad macro in {spec!r}")
    return text.replace("%%", "%").replace("%_", " ").replace("%-", "%20")


def _valid_domain(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return (
        len(labels) > 1
        and all(0 < len(label) < 64 for label in labels)
        and len(name) < 254
    )
