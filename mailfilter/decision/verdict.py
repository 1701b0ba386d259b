"""The vocabulary shared by scanners, the decision and the pipeline.

Scanners return `ScanResult`s; `decide.decide()` turns them and the policy
into a `Decision` per recipient; the pipeline carries decisions out. All
frozen, so a decision can be computed, compared and tested without I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Verdict(enum.StrEnum):
    """amavis content categories, named as they appear in its log lines."""

    INFECTED = "INFECTED"
    BANNED = "BANNED"
    UNCHECKED = "UNCHECKED"
    SPAM = "SPAM"
    SPAMMY = "SPAMMY"
    BAD_HEADER = "BAD-HEADER"
    CLEAN = "CLEAN"

    @property
    def rank(self) -> int:
        """amavis ccat precedence: higher wins (CC_VIRUS=9 ... CC_CLEAN=1)."""
        return _RANK[self]


_RANK = {
    Verdict.INFECTED: 9,
    Verdict.BANNED: 8,
    Verdict.UNCHECKED: 7,
    Verdict.SPAM: 6,
    Verdict.SPAMMY: 5,
    Verdict.BAD_HEADER: 4,
    Verdict.CLEAN: 1,
}


class Action(enum.StrEnum):
    """What happens to a recipient's copy (amavis destinies, less BOUNCE).

    BOUNCE is left out on purpose: an after-queue bounce goes to a sender
    that is forged more often than not (Postfix BACKSCATTER_README).
    """

    PASS = "pass"
    DISCARD = "discard"
    REJECT = "reject"
    TEMPFAIL = "tempfail"


@dataclass(frozen=True, slots=True)
class SpamReport:
    """What spamd said about one message."""

    score: float
    required: float
    # (rule name, points) in the order spamd listed them.
    tests: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One scanner's finding about one message.

    `ok` False means the scanner could not give an answer (down, timed out,
    protocol error): `error` says why, and the policy decides whether that
    tempfails or passes the message.
    """

    scanner: str
    ok: bool = True
    error: str = ""
    # Virus names, e.g. "Eicar-Signature" (clamd).
    viruses: tuple[str, ...] = ()
    # Banned parts in amavis %F form:
    # "application/x-msdownload,.exe,a.exe"
    banned: tuple[str, ...] = ()
    # Why (part of) the message could not be checked: "encrypted",
    # "over limits: ...", "ambiguous content", "unparseable: ...".
    unchecked: tuple[str, ...] = ()
    # Header problems (BAD-HEADER), e.g. "duplicate header field MIME-Version"
    bad_header: tuple[str, ...] = ()
    spam: SpamReport | None = None
    elapsed: float = 0.0
    # Skipped on purpose (e.g. message above the spam size limit).
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one recipient (or a group sharing the outcome)."""

    verdict: Verdict
    action: Action
    quarantine: bool = False
    # Text after "id=<log_id> - " in the reply, amavis style:
    # "INFECTED: Eicar-Signature", "BANNED: ...", "spam", "UNCHECKED: ...".
    reason: str = ""
    # Text in parentheses after the verdict in the log line ("" for none).
    detail: str = ""
    # Header decisions (docs/amavis-compat.md, "Header fields").
    virus_scanned: bool = True
    spam_headers: bool = False
    spam_flag: bool = False
    tag_level: float | None = None
    tag2_level: float | None = None
    subject_tag: str = ""
    # Extra reasons the decision was taken, for logs and --json output.
    notes: tuple[str, ...] = field(default=())
