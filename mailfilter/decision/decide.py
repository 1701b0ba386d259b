"""Turn scanner results and the policy into one recipient's Decision.

Pure: no I/O, no logging, no clock. The scanners found things; this
module says what they mean for one recipient, the way amavis does:

- each finding becomes a verdict (INFECTED, BANNED, UNCHECKED, SPAM,
  SPAMMY, BAD-HEADER), and the verdicts are tried highest rank first;
- the first verdict whose destiny blocks (discard, reject, tempfail) and
  that the recipient does not "love" decides; if none blocks, the copy is
  passed under the highest verdict (amavis "Passed INFECTED" for a lover);
- a recipient that bypasses a check ignores that scanner entirely;
- a scanner that could not answer tempfails or passes per
  `policy.scanner_failure`; a definite discard or reject from the other
  scanners still wins, because retrying would not change it.

Carrying the decision out (replies, headers, quarantine) is left to the
pipeline; the reply and log texts are built there from `reason`/`detail`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mailfilter.decision.policy import RecipientOverride
from mailfilter.decision.verdict import Action, Decision, ScanResult, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailfilter.decision.policy import Policy

# Which per-recipient setting bypasses which scanner (by scanner name).
_BYPASS = {
    "clamav": "bypass_virus_checks",
    "spamassassin": "bypass_spam_checks",
    "banned": "bypass_banned_checks",
}
# Which "lover" setting turns a verdict's blocking destiny into pass.
_LOVER = {
    Verdict.INFECTED: "virus_lover",
    Verdict.BANNED: "banned_lover",
    Verdict.UNCHECKED: "unchecked_lover",
    Verdict.SPAM: "spam_lover",
    Verdict.SPAMMY: "spam_lover",
    Verdict.BAD_HEADER: "bad_header_lover",
}
# amavis names the failed section in "451 4.5.0 Error in processing, ...
# <section> FAILED: <error>" (docs/amavis-compat.md, "When a scanner
# fails").
_SECTION = {"clamav": "virus_scan", "spamassassin": "spam_scan"}
# amavis CC_UNCHECKED minors: the highest found names the reply text.
_UNCHECKED_KINDS = (
    ("ambiguous", "UNCHECKED: ambiguous content"),
    ("over limits", "UNCHECKED: over limits"),
    ("encrypted", "UNCHECKED: encrypted"),
)


@dataclass(slots=True)
class _Facts:
    """What the results say once bypasses and failures are applied."""

    found: dict[Verdict, list[str]] = field(default_factory=dict)
    failures: list[ScanResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    score: float | None = None
    virus_scanned: bool = False

    def add(self, verdict: Verdict, details: Sequence[str]) -> None:
        self.found.setdefault(verdict, []).extend(details)


def decide(
    results: Sequence[ScanResult],
    policy: Policy,
    recipient: str,
    settings: RecipientOverride | None = None,
) -> Decision:
    """Return what happens to `recipient`'s copy of the message.

    `settings` is `recipient_settings(policy, recipient)` when the caller
    has it already (the pipeline merges each recipient's once).
    """
    rcpt = settings or recipient_settings(policy, recipient)
    levels = (
        _level(rcpt.tag_level, policy.spam.tag_level),
        _level(rcpt.tag2_level, policy.spam.tag2_level),
        _level(rcpt.kill_level, policy.spam.kill_level),
    )
    facts = _Facts()
    for result in results:
        if getattr(rcpt, _BYPASS.get(result.scanner, "match")) is True:
            continue
        _collect(facts, result, policy, levels)
    score = facts.score
    base = Decision(
        verdict=Verdict.CLEAN,
        action=Action.PASS,
        virus_scanned=facts.virus_scanned,
        spam_headers=score is not None and score >= levels[0],
        spam_flag=score is not None and score >= levels[1],
        tag_level=None if score is None else levels[0],
        tag2_level=None if score is None else levels[1],
        notes=tuple(facts.notes),
    )
    ranked = sorted(facts.found, key=lambda v: v.rank, reverse=True)
    blocking = [
        v
        for v in ranked
        if policy.destinies[v].action is not Action.PASS
        and getattr(rcpt, _LOVER[v]) is not True
    ]
    if blocking:
        verdict = blocking[0]
        destiny = policy.destinies[verdict]
        # A definite discard/reject stands even if another scanner failed:
        # retrying later would end the same way.
        if destiny.action is not Action.TEMPFAIL or not facts.failures:
            return replace(
                base,
                verdict=verdict,
                action=destiny.action,
                quarantine=destiny.quarantine,
                reason=_reason(verdict, facts.found[verdict]),
                detail=_detail(verdict, facts.found[verdict]),
            )
    if facts.failures:
        return _tempfail(facts, base)
    if not ranked:
        return base
    main = ranked[0]
    destiny = policy.destinies[main]
    return replace(
        base,
        verdict=main,
        quarantine=destiny.quarantine,
        subject_tag=destiny.subject_tag,
        reason=_reason(main, facts.found[main]),
        detail=_detail(main, facts.found[main]),
    )


def _level(override: float | None, default: float) -> float:
    return default if override is None else override


def _collect(
    facts: _Facts,
    result: ScanResult,
    policy: Policy,
    levels: tuple[float, float, float],
) -> None:
    """Add one (not bypassed) scanner result to the facts."""
    if not result.ok:
        _failed(facts, result, policy)
        return
    if result.scanner == "clamav":
        facts.virus_scanned = True
    if result.viruses:
        facts.add(Verdict.INFECTED, result.viruses)
    if result.banned:
        facts.add(Verdict.BANNED, result.banned)
    if result.unchecked:
        facts.add(Verdict.UNCHECKED, result.unchecked)
    if result.bad_header:
        facts.add(Verdict.BAD_HEADER, result.bad_header)
    if result.spam is not None and not result.skipped:
        score = result.spam.score
        facts.score = score
        if score >= levels[2]:
            facts.add(Verdict.SPAM, ())
        elif score >= levels[1]:
            facts.add(Verdict.SPAMMY, ())


def _failed(facts: _Facts, result: ScanResult, policy: Policy) -> None:
    """A scanner could not answer: tempfail later, or carry on."""
    # A scanner the policy does not name fails closed.
    action = policy.scanner_failure.get(result.scanner, Action.TEMPFAIL)
    if action is Action.TEMPFAIL:
        facts.failures.append(result)
    elif result.scanner == "spamassassin":
        facts.notes.append(f"spam checks skipped: {result.error}")
    else:
        # amavis >= 2.7: content a scanner could not look at is UNCHECKED.
        facts.add(
            Verdict.UNCHECKED, (f"{result.scanner} failed: {result.error}",)
        )


def _tempfail(facts: _Facts, base: Decision) -> Decision:
    """Tempfail because a scanner whose failure is fatal did not answer."""
    first = facts.failures[0]
    section = _SECTION.get(first.scanner, first.scanner)
    failed = tuple(f"{r.scanner} failed: {r.error}" for r in facts.failures)
    return replace(
        base,
        verdict=Verdict.UNCHECKED,
        action=Action.TEMPFAIL,
        reason=f"{section} FAILED: {first.error}",
        detail=", ".join(failed),
        notes=(*failed, *base.notes),
    )


def _detail(verdict: Verdict, details: Sequence[str]) -> str:
    """The text in parentheses of the log line (amavis %V / %F)."""
    if verdict in {Verdict.SPAM, Verdict.SPAMMY}:
        return ""
    return ", ".join(dict.fromkeys(details))


def _reason(verdict: Verdict, details: Sequence[str]) -> str:
    """The text after "id=<id> - " in the reply (%smtp_reason_by_ccat)."""
    if verdict is Verdict.INFECTED:
        return f"INFECTED: {_detail(verdict, details)}"
    if verdict is Verdict.BANNED:
        return f"BANNED: {_detail(verdict, details)}"
    if verdict is Verdict.UNCHECKED:
        for word, reason in _UNCHECKED_KINDS:
            if any(d.startswith(word) for d in details):
                return reason
        return "UNCHECKED"
    if verdict is Verdict.BAD_HEADER:
        return f"BAD HEADER: {details[0]}"
    return verdict.value.lower()


def spam_check_needed(
    results: Sequence[ScanResult],
    policy: Policy,
    recipient: str,
    settings: RecipientOverride | None = None,
) -> bool:
    """Whether asking SpamAssassin could change this recipient's copy.

    Not when the recipient bypasses spam checks, nor when the cheaper
    scanners' results already block the copy or tempfail the message: a
    spam score changes nothing there (amavis skips the spam check for
    INFECTED and BANNED mail too). Spam lovers are asked: they still get
    the X-Spam fields.
    """
    rcpt = settings or recipient_settings(policy, recipient)
    if rcpt.bypass_spam_checks:
        return False
    return decide(results, policy, recipient, rcpt).action is Action.PASS


def recipient_settings(policy: Policy, recipient: str) -> RecipientOverride:
    """Merge the matching overrides: for each key the first entry wins."""
    address = recipient.strip().strip("<>").lower()
    local, _, domain = address.rpartition("@")
    # Postfix recipient_delimiter "+": user+ext@d also matches user@d.
    keys = {address, f"{local.partition('+')[0]}@{domain}", f"@{domain}"}
    found: dict[str, Any] = {}
    for entry in policy.recipients:
        if entry.match in keys:
            for name in entry.__slots__:
                value = getattr(entry, name)
                if value is not None:
                    found.setdefault(name, value)
    found["match"] = address
    return RecipientOverride(**found)
