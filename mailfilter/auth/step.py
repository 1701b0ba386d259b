"""The per-message authentication step the pipeline calls.

`verify()` runs before scanning on a verifying bank: it removes forged
Authentication-Results fields carrying our authserv-id, checks DKIM, ARC,
SPF (MAIL FROM and HELO) and DMARC under one DNS budget, and returns the
field to add. `sign()` runs last on a signing bank, over exactly the
bytes that are reinjected. Neither ever raises into the pipeline for a
DNS or signature problem: those are results, not failures.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import dkim

from mailfilter.auth import arc, dkimverify, dmarc, fields, sign, spf
from mailfilter.auth.authresults import Results, format_field
from mailfilter.auth.dns import Budget
from mailfilter.auth.keys import KeyTable

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailfilter.auth.bank import Bank, Verify
    from mailfilter.smtp.envelope import Envelope

log = logging.getLogger("mailfilter.auth")
_T = TypeVar("_T")

# Above this size the CPU part (hashing, RSA) runs in a worker thread, so
# one large message cannot stall the other connections.
_INLINE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Verified:
    """The message without forged fields, our field, and the results."""

    content: bytes
    field: bytes
    results: Results


async def verify(
    bank: Bank, envelope: Envelope, content: bytes, log_id: str
) -> Verified | None:
    """Check the message; None when the bank does not verify."""
    settings = bank.verify
    if settings is None:
        return None
    content, removed = fields.remove_ours(content, settings.authserv_id)
    if removed:
        log.info(
            "(%s) removed %d Authentication-Results field(s) claiming %s",
            log_id,
            removed,
            settings.authserv_id,
        )
    try:
        results = await _check(settings, envelope, content)
    except Exception:
        # Our bug or a library's on hostile input: the message must still
        # get a verdict (never a 4xx loop), and unverified is not "pass".
        log.exception("(%s) (!)authentication checks failed", log_id)
        results = Results(
            arc="temperror",
            spf="temperror",
            spf_helo="temperror",
            dmarc=dmarc.Result("temperror"),
        )
    dmarc_result = results.dmarc or dmarc.Result("none")
    log.info(
        "(%s) auth: dkim=%s arc=%s spf=%s dmarc=%s (p=%s) from=%s",
        log_id,
        ",".join(s.result for s in results.dkim) or "none",
        results.arc,
        results.spf,
        dmarc_result.result,
        dmarc_result.policy,
        dmarc_result.domain or "-",
    )
    return Verified(
        content, format_field(settings.authserv_id, results), results
    )


async def _check(
    settings: Verify, envelope: Envelope, content: bytes
) -> Results:
    budget = Budget(settings.dns_seconds, settings.dns_lookups)
    resolver = settings.resolver
    ip = (
        (envelope.client.addr or "")
        .removeprefix("IPV6:")
        .removeprefix("ipv6:")
    )
    helo = envelope.client.helo or ""
    sender = envelope.sender or (f"postmaster@{helo}" if helo else "")
    dkim_names = dkimverify.signature_keys(content)
    arc_names = arc.chain_keys(content)
    keys = KeyTable()
    mailfrom, helo_result, _ = await asyncio.gather(
        spf.check(spf.Identity(ip, sender, helo), resolver, budget),
        spf.check(
            spf.Identity(ip, f"postmaster@{helo}", helo), resolver, budget
        ),
        keys.fetch(dkim_names + arc_names, resolver, budget),
    )
    signatures, chain = await _cpu(
        len(content), _verify_cpu, content, keys, arc_names
    )
    evidence = dmarc.Evidence(
        fields.from_domain(content) or "",
        mailfrom,
        sender.rpartition("@")[2],
        tuple(s.domain for s in signatures if s.result == "pass"),
    )
    if fields.from_domain(content) is None and fields.values(content, "from"):
        policy = dmarc.Result("permerror")  # several From or addresses
    else:
        policy = await dmarc.check(evidence, resolver, budget)
    return Results(
        dkim=tuple(signatures),
        arc=chain,
        spf=mailfrom,
        spf_mailfrom=sender if ip else "",
        spf_helo=helo_result,
        helo=helo if ip else "",
        dmarc=policy,
    )


def _verify_cpu(
    content: bytes, keys: KeyTable, arc_names: list[str]
) -> tuple[list[dkimverify.Signature], str]:
    return dkimverify.verify_all(content, keys), arc.validate(
        content, keys, arc_names
    )


async def _cpu(size: int, func: Callable[..., _T], *args: Any) -> _T:
    if size <= _INLINE_LIMIT:
        return func(*args)
    return await asyncio.to_thread(func, *args)


async def signed(bank: Bank, prefix: bytes, body: bytes, log_id: str) -> bytes:
    """`prefix` with DKIM-Signature fields on top, when the bank signs."""
    if bank.sign_keys is None:
        return prefix
    message = prefix + body
    domain = sign.signing_domain(message, bank.sign_keys)
    if not domain:
        log.info(
            "(%s) not DKIM-signed: no key for the From domain %s",
            log_id,
            fields.from_domain(message) or "(none)",
        )
        return prefix
    keys = bank.sign_keys[domain]
    try:
        added = await _cpu(len(message), sign.sign, message, keys)
    except dkim.DKIMException as exc:
        # A broken key file must not stop outgoing mail; say it loudly.
        log.error(  # noqa: TRY400 - a known failure, no traceback
            "(%s) (!)not DKIM-signed: d=%s: %s", log_id, domain, exc
        )
        return prefix
    except Exception:
        # dkimpy failing on a message it cannot parse: pass it unsigned
        # rather than tempfail it forever.
        log.exception("(%s) (!)not DKIM-signed: d=%s", log_id, domain)
        return prefix
    log.info(
        "(%s) DKIM-signed d=%s s=%s",
        log_id,
        domain,
        ",".join(k.selector for k in keys),
    )
    return added + prefix
