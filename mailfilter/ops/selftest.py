"""`mailfilter --selftest`: does this node work?

Think of `amavisd testkeys` plus `postfix check`.

Each check prints ✓ or ✗ and, for ✗, one line saying how to fix it. Then
built-in test messages go through the real scanners and the real policy,
without delivery, and each verdict is shown. Exit status 0 only when every
check passes. `--quick` keeps what a load balancer's health check needs
(our listeners, 10025, clamd and spamd answering PING) and scans nothing,
so it stays well under a second even on a node busy with mail.
The EICAR and GTUBE strings are assembled from halves at run time, so the
installed package never looks like malware or spam itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from mailfilter.ops.check import Check
from mailfilter.ops.checks_node import (
    check_downstream,
    check_listener,
    check_postfix,
    check_writable,
)
from mailfilter.ops.checks_scanners import (
    check_clamd,
    check_pipeline,
    check_spamd,
)
from mailfilter.ops.checks_spamd import check_spamd_children

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mailfilter.config import Config
    from mailfilter.pipeline import Context


async def run(config: Config, *, quick: bool, as_json: bool) -> int:
    """Run the checks, print the report, return the exit status."""
    started = time.monotonic()
    checks: list[Check] = []
    context = _context(config, checks)
    steps: list[Callable[[], Awaitable[list[Check]]]] = [
        lambda: check_listener(config),
        lambda: check_downstream(config),
    ]
    if context is not None:
        steps += [
            lambda: check_clamd(context, quick=quick),
            lambda: check_spamd(context, quick=quick),
        ]
    if not quick:
        steps += [
            lambda: check_writable(config),
            lambda: check_postfix(config, context),
            lambda: check_spamd_children(config),
        ]
        if context is not None:
            steps.append(lambda: check_pipeline(context))
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
            print(f"{c.mark} {c.name:<28} {c.detail}")
            if (not c.ok or c.warn) and c.fix:
                print(f"    fix: {c.fix}")
        print(
            f"{'all checks passed' if ok else 'SOME CHECKS FAILED'} "
            f"in {elapsed:.2f} s"
        )
    return 0 if ok else 1


def _context(config: Config, checks: list[Check]) -> Context | None:
    from mailfilter.wiring import build_context

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
