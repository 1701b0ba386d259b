"""`mailfilter release MAIL_ID [--to RCPT]`: like amavisd-release.

Finds the message in the quarantine by its mail_id and reinjects it to
the forward listener (10025), to its original recipients or to the ones
given. Logged as amavis does: `Quarantined message release`; the caller
sets up logging (`mailfilter.logsetup`), as for the service. Addresses
come from the envelope of a hostile message: they are escaped before they
reach the terminal or the log.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from mailfilter.addresses import parse_endpoint
from mailfilter.decision.amavislog import clean
from mailfilter.downstream.reinject import Downstream, DownstreamError
from mailfilter.smtp.envelope import Recipient
from mailfilter.store.quarantine import Quarantine

if TYPE_CHECKING:
    from mailfilter.config import Config

log = logging.getLogger("mailfilter.release")


async def release(config: Config, mail_id: str, to: list[str] | None) -> int:
    """Reinject one quarantined message; 0 when 10025 accepted it."""
    try:
        found = await asyncio.to_thread(
            Quarantine(config.quarantine).find, mail_id
        )
    except KeyError as exc:
        print(f"mailfilter: {exc.args[0]}", file=sys.stderr)
        return 1
    rcpts = tuple(Recipient(r) for r in (to or found.recipients))
    if not rcpts:
        print("mailfilter: no recipients known; use --to", file=sys.stderr)
        return 2
    downstream = Downstream(parse_endpoint(config.forward))
    try:
        answers = await downstream.deliver(found.sender, rcpts, found.content)
    except DownstreamError as exc:
        print(f"mailfilter: release failed: {exc}", file=sys.stderr)
        return 75
    finally:
        await downstream.aclose()
    ok = all(a.code < 300 for a in answers)
    for rcpt, answer in zip(rcpts, answers, strict=True):
        print(f"<{_shown(rcpt.address)}>: {clean(str(answer))}")
    log.info(
        "(rel-%s) Quarantined message release (miscategorized): %s <%s> -> %s",
        mail_id,
        mail_id,
        _shown(found.sender),
        ",".join(f"<{_shown(r.address)}>" for r in rcpts),
    )
    return 0 if ok else 1


def _shown(address: str) -> str:
    """An envelope address safe for one log line (bytes kept visible)."""
    raw = address.encode("utf-8", "surrogateescape")
    return clean(raw.decode("utf-8", "backslashreplace"))
