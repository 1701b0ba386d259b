"""The policy as frozen objects: what a policy file says, once validated.

The policy is data (docs/engineering-rules.md, "Policy is data"):
banned-file rules, decoding limits, spam levels, a destiny per verdict,
what a scanner failure does, and per-recipient overrides. Reading and
validating a file is `policyfile.load_policy()`; applying the policy is
left to `decide.decide()` (verdicts and actions) and `scan.banned` (rules
and limits). `policy/README.md` documents every key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import re
    from collections.abc import Mapping

    from mailfilter.decision.verdict import Action, Verdict


# What a DMARC failure under the sender's p=reject may do: add the header
# only, tag the subject, discard with a quarantine copy, or reject (554).
# The banks' settings and the per-recipient entries take these.
DMARC_ACTIONS = ("none", "tag", "quarantine", "reject")


class PolicyError(ValueError):
    """A policy file is unreadable or invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class BannedRule:
    """One ordered rule: a regex tried against every key of a part's path."""

    pattern: re.Pattern[str]
    # True makes the rule an exception (amavis `[ qr'...' => 0 ]`).
    allow: bool = False
    # Prefixed to %F as "<comment>:" like amavis's (?#comment).
    comment: str = ""


@dataclass(frozen=True, slots=True)
class DecodingLimits:
    """amavis $MAXLEVELS, $MAXFILES and the expansion quota.

    See docs/amavis-compat.md, "Decoding limits".
    """

    max_depth: int
    max_files: int
    min_expansion_quota: int
    max_expansion_quota: int
    min_expansion_factor: int
    max_expansion_factor: int

    def quota(self, size: int) -> int:
        """Bytes that decoding a message of `size` bytes may produce."""
        return max(
            self.min_expansion_quota,
            size * self.min_expansion_factor,
            min(self.max_expansion_quota, size * self.max_expansion_factor),
        )


@dataclass(frozen=True, slots=True)
class BannedPolicy:
    """Everything the banned-file scanner needs, and nothing else."""

    rules: tuple[BannedRule, ...]
    limits: DecodingLimits
    # Seconds an external unpacker (7z, lsar, cabextract, arj) may run.
    tool_timeout: float


@dataclass(frozen=True, slots=True)
class SpamPolicy:
    """SpamAssassin levels (compared with >=) and the size limit."""

    tag_level: float
    tag2_level: float
    kill_level: float
    # Messages larger than this (bytes) skip spamd (logged `Hits: -`).
    max_size: int


@dataclass(frozen=True, slots=True)
class Destiny:
    """What happens to a recipient's copy for one verdict."""

    action: Action
    quarantine: bool
    # Prepended to the Subject when the copy is passed ("" for none).
    subject_tag: str


@dataclass(frozen=True, slots=True)
class RecipientOverride:
    """Per-recipient settings; None means "not set here"."""

    # "user@example.org" or "@example.org", lower case.
    match: str
    spam_lover: bool | None = None
    virus_lover: bool | None = None
    banned_lover: bool | None = None
    unchecked_lover: bool | None = None
    bad_header_lover: bool | None = None
    bypass_spam_checks: bool | None = None
    bypass_virus_checks: bool | None = None
    bypass_banned_checks: bool | None = None
    tag_level: float | None = None
    tag2_level: float | None = None
    kill_level: float | None = None
    # What a DMARC failure under the sender's p=reject does for this
    # recipient (none, tag, quarantine, reject); None: the bank's setting.
    dmarc_reject: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """One loaded policy file."""

    source: str
    banned: BannedPolicy
    spam: SpamPolicy
    destinies: Mapping[Verdict, Destiny]
    # Scanner name ("clamav", "spamassassin", "banned") -> TEMPFAIL|PASS.
    scanner_failure: Mapping[str, Action]
    recipients: tuple[RecipientOverride, ...] = ()
    # Policy banks per front door ("content_filter", "milter", "proxy"):
    # destinies that differ from `destinies` for mail through that door
    # (decision/doors.py).
    doors: Mapping[str, Mapping[Verdict, Destiny]] | None = None
