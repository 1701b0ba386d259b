"""Selftest check "spamd children": spamd's children against what feeds
them (the Postfix transport in content_filter) and what runs them (the
cores).

Too few children: Postfix opens up to maxproc sessions, and the sessions
beyond spamd's children wait in spamd's accept queue, eating into our
spamd_timeout. Too many: they only wait for a CPU, each holding 30-100 MB.
Both are warnings, never failures: mail still flows. What cannot be found
(spamd elsewhere, /proc not readable, no postconf) is reported as unknown.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from typing import TYPE_CHECKING

from mailfilter.addresses import parse_endpoint
from mailfilter.ops import postfixcheck, spamdproc
from mailfilter.ops.check import Check

if TYPE_CHECKING:
    from mailfilter.config import Config
    from mailfilter.ops.postfixcheck import Service
    from mailfilter.ops.spamdproc import SpamdOptions

NAME = "spamd children"
# With -L SpamAssassin is pure CPU (about 0.1-0.15 s a message), so a
# child beyond a couple per core only queues for the CPU while holding
# 30-100 MB. Without -L a child spends most of its time waiting on DNS
# (RBLs, URIBLs), so many more per core stay busy.
SPAMD_CHILDREN_PER_CORE = 2
SPAMD_CHILDREN_PER_CORE_NETWORK = 8


def judge(
    options: SpamdOptions,
    cores: int,
    transport: Service | None,
    postfix_unknown: str = "",
) -> Check:
    """The check from spamd's options, the cores and the feeding
    transport (None with the reason in `postfix_unknown`)."""
    children = options.children
    per_core = (
        SPAMD_CHILDREN_PER_CORE
        if options.local
        else SPAMD_CHILDREN_PER_CORE_NETWORK
    )
    limit = cores * per_core
    mode = "-L: local tests only" if options.local else "network tests"
    parts = [f"{children} ({mode})"]
    starved = transport is not None and children < transport.maxproc
    if transport is None:
        parts.append(f"postfix maxproc unknown ({postfix_unknown})")
    elif starved:
        parts.append(
            f"fewer than {transport.name} maxproc {transport.maxproc}: "
            "sessions wait in spamd's queue"
        )
    else:
        parts.append(f"{transport.name} maxproc {transport.maxproc}")
    crowded = children > limit
    if crowded:
        parts.append(
            f"more than {limit} for {cores} cores: they queue for the CPU"
        )
    else:
        parts.append(f"{cores} cores take up to {limit}")
    return Check(
        NAME,
        True,
        "; ".join(parts),
        _fix(children, limit, transport) if starved or crowded else "",
        warn=starved or crowded,
    )


def _fix(children: int, limit: int, transport: Service | None) -> str:
    """One line that settles both rules: children = maxproc <= limit."""
    name = transport.name if transport else ""
    maxproc = transport.maxproc if transport else 0
    if maxproc > limit:
        # Raising the children to maxproc would overload the CPU.
        return (
            f"lower {name}'s maxproc in master.cf to {limit} and set "
            f"spamd's --max-children to {limit}"
        )
    if children > limit:
        return f"lower spamd's --max-children to {limit}"
    return (
        f"lower {name}'s maxproc in master.cf to {children}, or raise "
        f"spamd's --max-children to {maxproc}"
    )


async def check_spamd_children(config: Config) -> list[Check]:
    """The check for the spamd in the settings ([] when it is off)."""
    if config.spamd == "off":
        return []
    endpoint = parse_endpoint(config.spamd)
    try:
        found = await asyncio.to_thread(
            spamdproc.find, endpoint.host, endpoint.port
        )
    except spamdproc.UnknownError as exc:
        return [Check(NAME, True, f"unknown ({exc})")]
    transport, reason = await asyncio.to_thread(feeding_transport, config)
    cores = len(os.sched_getaffinity(0))
    return [judge(found.options, cores, transport, reason)]


def feeding_transport(config: Config) -> tuple[Service | None, str]:
    """The transport named in content_filter, or None and why not."""
    try:
        main, master, overrides = postfixcheck.read(
            os.environ.get("MAIL_CONFIG")
        )
    except subprocess.CalledProcessError as exc:
        # postconf's own last word ("fatal: open .../main.cf: ..."), not
        # the whole command line.
        said = (exc.stderr or "").strip().splitlines()[-1:]
        return None, (
            re.sub(r"^\S*postconf: ", "", said[0])[:100]
            if said
            else f"postconf exited {exc.returncode}"
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"postconf: {exc}"[:100]
    forward_port = int(config.forward.rsplit(":", 1)[-1])
    r = postfixcheck.recipe(main, master, overrides, forward_port)
    if r.transport is None:
        wanted = r.content_filter or "content_filter is unset"
        return None, f"no unix transport for {wanted}"
    return r.transport, ""
