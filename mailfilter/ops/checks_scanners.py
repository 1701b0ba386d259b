"""Selftest checks of the scanners: clamd, spamd, and the built-in test
messages through the real scanners and policy (without delivery).

The EICAR and GTUBE strings are assembled from halves at run time, so the
installed package never looks like malware or spam itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from mailfilter.decision.decide import decide
from mailfilter.decision.verdict import Action, Verdict
from mailfilter.ops import testmessages
from mailfilter.ops.check import Check, scanner_of
from mailfilter.scan.clamav import ClamAV
from mailfilter.scan.spamassassin import SpamAssassin

if TYPE_CHECKING:

    from mailfilter.pipeline import Context


async def check_clamd(context: Context, *, quick: bool = False) -> list[Check]:
    """clamd answers PING; unless `quick`, also its database and EICAR.

    `quick` is the load balancer's health check: a scan would queue
    behind real mail on a busy node and make a healthy node look dead.
    """
    scanner = scanner_of(context, ClamAV)
    if scanner is None:
        return [Check("clamd", True, "off (--clamd off)")]
    try:
        version = await asyncio.wait_for(scanner.ping(), 5)
    except Exception as exc:
        return [
            Check(
                "clamd",
                False,
                f"{type(exc).__name__}: {exc}"[:100],
                "start clamd (systemctl start clamav-daemon) and check "
                "its LocalSocket matches --clamd",
            )
        ]
    if quick:
        return [Check("clamd", True, version)]
    result = await scanner.scan(testmessages.EICAR.encode())
    found = bool(result.viruses)
    age = db_age(version)
    return [
        Check("clamd", True, version),
        Check(
            "clamd signature age",
            age is None or age < 7 * 86400,
            "unknown (unofficial database)"
            if age is None
            else f"{age / 86400:.1f} days",
            "run freshclam",
        ),
        Check(
            "clamd detects EICAR",
            found,
            ", ".join(result.viruses) or result.error or "not detected",
            "clamd has no signatures: run freshclam",
        ),
    ]


def db_age(version: str) -> float | None:
    from email.utils import parsedate_to_datetime

    parts = version.split("/")
    if len(parts) < 3:
        return None
    try:
        when = parsedate_to_datetime(parts[2].strip() + " +0000")
    except (TypeError, ValueError):
        return None
    return time.time() - when.timestamp()


async def check_spamd(context: Context, *, quick: bool = False) -> list[Check]:
    """spamd answers PING; unless `quick`, also scores GTUBE as spam."""
    scanner = scanner_of(context, SpamAssassin)
    if scanner is None:
        return [Check("spamd", True, "off (--spamd off)")]
    try:
        await asyncio.wait_for(scanner.ping(), 5)
    except Exception as exc:
        return [
            Check(
                "spamd",
                False,
                f"{type(exc).__name__}: {exc}"[:100],
                "start spamd (systemctl start spamd) on --spamd",
            )
        ]
    if quick:
        return [Check("spamd", True, "PONG")]
    result = await scanner.scan(
        testmessages.message("gtube", testmessages.GTUBE + "\n")
    )
    score = result.spam.score if result.spam else None
    return [
        Check("spamd", True, "PONG"),
        Check(
            "spamd scores GTUBE as spam",
            score is not None and score >= 100,
            f"score {score}" if score is not None else result.error,
            "check spamd's rules: sa-update or /usr/share/spamassassin",
        ),
    ]


async def check_pipeline(context: Context) -> list[Check]:
    out = []
    for name, data, acceptable in testmessages.test_messages():
        results = await asyncio.gather(
            *(s.scan(data) for s in context.scanners)
        )
        decision = decide(results, context.policy, "postmaster@example.org")
        off = {
            s
            for s in ("clamav", "spamassassin")
            if s not in {x.name for x in context.scanners}
        }
        expected = set(acceptable)
        if "clamav" in off and Verdict.INFECTED in expected:
            expected |= {Verdict.BANNED, Verdict.CLEAN, Verdict.UNCHECKED}
        if "spamassassin" in off and Verdict.SPAM in expected:
            expected |= {Verdict.CLEAN, Verdict.UNCHECKED}
        good = decision.verdict in expected or (
            decision.action is Action.TEMPFAIL and bool(off)
        )
        detail = f"{decision.verdict.value} -> {decision.action.value}"
        if decision.detail:
            detail += f" ({decision.detail[:60]})"
        out.append(
            Check(
                f"pipeline: {name}",
                good,
                detail,
                "see the policy file and the scanner checks above",
            )
        )
    return out
