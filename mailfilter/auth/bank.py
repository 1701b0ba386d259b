"""Policy banks: what the filter does for mail from outside (INBOUND) and
for mail our own users send (ORIGINATING, amavis's
`$policy_bank{'ORIGINATING'}`).

A bank is chosen by the listener the message arrived on. Per bank:
verify or not, sign or not, which scanners and which policy file (those
two live in the bank's pipeline context), and what a DMARC failure under
`p=reject` does. Local domains decide who gets spam header fields and
subject tags (amavis `@local_domains_maps`).

Decisions here are pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mailfilter.decision.verdict import Action, Decision, Verdict

if TYPE_CHECKING:
    from mailfilter.auth.authresults import Results
    from mailfilter.auth.dns import Resolver
    from mailfilter.auth.keystore import SigningKey

DMARC_TAG = "***DMARC-FAIL*** "


@dataclass(frozen=True)
class Verify:
    """How a bank verifies: DNS, its budget, and our authserv-id."""

    resolver: Resolver
    authserv_id: str
    dns_seconds: float
    dns_lookups: int


@dataclass(frozen=True)
class Bank:
    """One policy bank's authentication settings."""

    name: str  # "INBOUND" or "ORIGINATING", for the log
    verify: Verify | None = None
    # Signing keys by domain; None turns signing off for the bank.
    sign_keys: dict[str, list[SigningKey]] | None = None
    dmarc_reject: str = "quarantine"
    # Lower-case domains; empty means every recipient is local.
    local_domains: tuple[str, ...] = field(default=())

    def is_local(self, address: str) -> bool:
        """Whether `address` is in one of the local domains (or below)."""
        if not self.local_domains:
            return True
        domain = address.rpartition("@")[2].lower().rstrip(".")
        return any(
            domain == d or domain.endswith("." + d) for d in self.local_domains
        )


def for_recipient(
    bank: Bank,
    decision: Decision,
    results: Results | None,
    rcpt: str,
    dmarc_reject: str | None = None,
) -> Decision:
    """The decision after local domains and the DMARC action are applied.

    `dmarc_reject` is the recipient's own choice (a `[[recipient]]` entry
    of the policy); None leaves the bank's.
    """
    if not bank.is_local(rcpt):
        # amavis adds spam fields and tags for local recipients only.
        decision = replace(
            decision, spam_headers=False, spam_flag=False, subject_tag=""
        )
    if results is None or results.dmarc is None:
        return decision
    dmarc = results.dmarc
    if dmarc.result != "fail" or dmarc.policy != "reject":
        return decision
    action = dmarc_reject or bank.dmarc_reject
    return _dmarc_reject(action, decision, dmarc.domain)


def _dmarc_reject(action: str, decision: Decision, domain: str) -> Decision:
    if action == "none" or decision.action is not Action.PASS:
        return decision  # a block already decided wins
    note = f"DMARC fail, {domain} publishes p=reject"
    notes = (*decision.notes, note)
    if action == "tag":
        return replace(
            decision,
            subject_tag=DMARC_TAG + decision.subject_tag,
            notes=notes,
        )
    # Counted as spam in the log line: mailgraph and amavis-logwatch know
    # no DMARC category, and a forged From is what spam filters catch.
    return replace(
        decision,
        verdict=Verdict.SPAM,
        action=Action.DISCARD if action == "quarantine" else Action.REJECT,
        quarantine=True,
        reason=f"DMARC: {domain} p=reject",
        detail="dmarc=fail",
        notes=notes,
    )
