"""`mailfilter scan FILE.eml`: the verdict for one file, without delivery.

The same scanners and policy as the service; prints each scanner's result
and the decision, as a quick way to try a policy change on real mail.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mailfilter.decision.decide import decide

if TYPE_CHECKING:
    from mailfilter.config import Config


async def scan_file(config: Config, path: str) -> int:
    """`mailfilter scan FILE.eml`: verdict without delivery."""
    from mailfilter.wiring import build_context

    context = build_context(config)
    data = await asyncio.to_thread(Path(path).read_bytes)
    if b"\r\n" not in data:
        data = data.replace(b"\n", b"\r\n")
    results = await asyncio.gather(*(s.scan(data) for s in context.scanners))
    decision = decide(results, context.policy, "postmaster")
    for result in results:
        print(
            f"{result.scanner}: ok={result.ok} {result.error} "
            f"viruses={list(result.viruses)} banned={list(result.banned)} "
            f"unchecked={list(result.unchecked)} "
            f"spam={result.spam.score if result.spam else '-'}"
        )
    print(
        f"verdict: {decision.verdict.value} action: {decision.action.value} "
        f"{decision.reason}"
    )
    for scanner in context.scanners:
        await scanner.aclose()
    sys.stdout.flush()
    return 0
