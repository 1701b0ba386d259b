"""`mailfilter --selftest`: does this node work?

Think of `amavisd testkeys` plus `postfix check`.

Each check prints ✓ or ✗ and, for ✗, one line saying how to fix it. Then
built-in test messages go through the real scanners and the real policy,
without delivery, and each verdict is shown. Exit status 0 only when every
check passes. `--quick` keeps what a keepalived/ldirectord health check
needs (listener, scanners, 10025) and stays well under a second.
The EICAR and GTUBE strings are assembled from halves at run time, so the
installed package never looks like malware or spam itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mailfilter.addresses import parse_endpoint
from mailfilter.decision.decide import decide
from mailfilter.decision.verdict import Action, Verdict
from mailfilter.ops import testmessages
from mailfilter.scan.clamav import ClamAV
from mailfilter.scan.spamassassin import SpamAssassin

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mailfilter.config import Config
    from mailfilter.pipeline import Context


S = TypeVar("S")


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


async def run(config: Config, *, quick: bool, as_json: bool) -> int:
    """Run the checks, print the report, return the exit status."""
    started = time.monotonic()
    checks: list[Check] = []
    context = _context(config, checks)
    steps: list[Callable[[], Awaitable[list[Check]]]] = [
        lambda: _listener(config),
        lambda: _downstream(config),
    ]
    if context is not None:
        steps += [lambda: _clamd(context), lambda: _spamd(context)]
    if not quick:
        steps += [lambda: _writable(config), lambda: _postfix(config, context)]
        if context is not None:
            steps.append(lambda: _pipeline(context))
    for found in await asyncio.gather(*(step() for step in steps)):
        checks.extend(found)
    if context is not None:
        for scanner in context.scanners:
            await scanner.aclose()
    elapsed = time.monotonic() - started
    ok = all(c.ok for c in checks)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "seconds": round(elapsed, 3),
                    "checks": [asdict(c) for c in checks],
                },
                indent=2,
            )
        )
    else:
        for c in checks:
            print(f"{'✓' if c.ok else '✗'} {c.name:<28} {c.detail}")
            if not c.ok and c.fix:
                print(f"    fix: {c.fix}")
        print(
            f"{'all checks passed' if ok else 'SOME CHECKS FAILED'} "
            f"in {elapsed:.2f} s"
        )
    return 0 if ok else 1


def _context(config: Config, checks: list[Check]) -> Context | None:
    from mailfilter.app import build_context

    try:
        context = build_context(config)
    except Exception as exc:
        checks.append(
            Check(
                "settings and policy",
                False,
                str(exc),
                "correct the file and key named above",
            )
        )
        return None
    checks.append(
        Check("settings and policy", True, f"{config.source}; {config.policy}")
    )
    return context


async def _listener(config: Config) -> list[Check]:
    out = []
    for text in config.listen:
        ep = parse_endpoint(text)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(ep.host, ep.port), 3
            )
            greeting = (await asyncio.wait_for(reader.readline(), 3)).decode()
            writer.write(b"QUIT\r\n")
            writer.close()
            good = greeting.startswith("220 ")
            out.append(
                Check(
                    f"listener {text}",
                    good,
                    greeting.strip()[:60],
                    "is `mailfilter` running with these settings?",
                )
            )
        except (OSError, TimeoutError) as exc:
            out.append(
                Check(
                    f"listener {text}",
                    False,
                    str(exc)[:80],
                    "start mailfilter (systemctl start mailfilter)",
                )
            )
    return out


async def _downstream(config: Config) -> list[Check]:
    from mailfilter.downstream.reinject import Downstream

    downstream = Downstream(parse_endpoint(config.forward))
    try:
        caps = await asyncio.wait_for(downstream.capabilities(), 5)
    except Exception as exc:
        return [
            Check(
                f"reinjection {config.forward}",
                False,
                str(exc)[:100],
                "add the 127.0.0.1:10025 smtpd from "
                "deploy/postfix/master.cf.snippet and `postfix reload`",
            )
        ]
    finally:
        await downstream.aclose()
    wanted = ("XFORWARD", "DSN", "SMTPUTF8", "8BITMIME", "PIPELINING")
    missing = [w for w in wanted if w not in caps]
    offered = " ".join(w for w in wanted if w in caps)
    return [
        Check(
            f"reinjection {config.forward}",
            not missing,
            f"offers {offered}"
            + (f"; missing {' '.join(missing)}" if missing else ""),
            "set smtpd_authorized_xforward_hosts=127.0.0.0/8 on 10025",
        )
    ]


async def _clamd(context: Context) -> list[Check]:
    scanner = _scanner(context, ClamAV)
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
    result = await scanner.scan(testmessages.EICAR.encode())
    found = bool(result.viruses)
    age = _db_age(version)
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


def _db_age(version: str) -> float | None:
    from email.utils import parsedate_to_datetime

    parts = version.split("/")
    if len(parts) < 3:
        return None
    try:
        when = parsedate_to_datetime(parts[2].strip() + " +0000")
    except (TypeError, ValueError):
        return None
    return time.time() - when.timestamp()


async def _spamd(context: Context) -> list[Check]:
    scanner = _scanner(context, SpamAssassin)
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


async def _writable(config: Config) -> list[Check]:
    out = []
    root = Path(config.quarantine)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
        out.append(Check("quarantine writable", True, str(root)))
    except OSError as exc:
        out.append(
            Check(
                "quarantine writable",
                False,
                str(exc)[:100],
                f"mkdir -p {root} && chown mailfilter {root}",
            )
        )
    if config.log_to == "syslog":
        good = Path("/dev/log").exists()
        out.append(
            Check(
                "syslog socket",
                good,
                "/dev/log",
                'start rsyslog/journald, or set log_to = "stderr"',
            )
        )
    return out


async def _postfix(config: Config, context: Context | None) -> list[Check]:
    from mailfilter.ops import postfixcheck

    try:
        main, master, overrides = await asyncio.to_thread(
            postfixcheck.read, os.environ.get("MAIL_CONFIG")
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return [
            Check("postfix recipe", True, f"not readable ({exc}); skipped")
        ]
    port = int(config.listen[0].rsplit(":", 1)[-1])
    forward_port = int(config.forward.rsplit(":", 1)[-1])
    r = postfixcheck.recipe(main, master, overrides, forward_port)
    budget = config.scan_timeout + config.forward_timeout
    feed = r.transport.maxproc if r.transport else 0
    checks = [
        Check(
            "postfix content_filter",
            r.content_filter.endswith(f":{port}"),
            r.content_filter or "(unset)",
            f"content_filter = scan:[127.0.0.1]:{port} (main.cf.snippet)",
        ),
        Check(
            "postfix 10025 listener",
            r.listener is not None,
            r.listener.name if r.listener else "missing",
            "add deploy/postfix/master.cf.snippet and `postfix reload`",
        ),
        Check(
            "data_done_timeout",
            r.data_done_timeout > budget,
            f"{r.data_done_timeout}s vs our budget {budget:.0f}s",
            "raise smtp_data_done_timeout or lower scan/forward timeouts",
        ),
        Check(
            "maxproc vs max_connections",
            0 < feed <= config.max_connections,
            f"{feed} <= {config.max_connections}",
            "lower the scan transport's maxproc or raise max_connections",
        ),
    ]
    if r.listener is not None:
        checks.append(
            Check(
                "10025 maxproc",
                r.listener.maxproc >= feed,
                f"{r.listener.maxproc} >= {feed}",
                "raise the 10025 listener's maxproc in master.cf",
            )
        )
    clamav = _scanner(context, ClamAV)
    threads = await clamav.threads() if clamav is not None else None
    if threads is not None:
        checks.append(
            Check(
                "clamd MaxThreads",
                threads >= feed,
                f"{threads} >= {feed}",
                "raise MaxThreads in clamd.conf",
            )
        )
    return checks


def _scanner(context: Context | None, kind: type[S]) -> S | None:
    """The scanner of that class in the context, if it is switched on."""
    if context is None:
        return None
    return next((s for s in context.scanners if isinstance(s, kind)), None)


async def _pipeline(context: Context) -> list[Check]:
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
