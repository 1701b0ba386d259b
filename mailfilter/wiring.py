"""Build what one message needs from the settings: the policy, the scanners,
the policy banks (INBOUND and ORIGINATING), the 10025 client, the
quarantine and the metrics, as one `pipeline.Context`.

The service (`app`), the selftest and `mailfilter scan` all build their
context here, so a setting means the same thing in each.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from mailfilter.addresses import parse_endpoint
from mailfilter.auth import setup as authsetup
from mailfilter.decision.policyfile import load_policy
from mailfilter.downstream.reinject import Downstream
from mailfilter.ops import metrics as metricsmod
from mailfilter.pipeline import Context
from mailfilter.store.quarantine import Quarantine

if TYPE_CHECKING:

    from mailfilter.auth import bank as authbank
    from mailfilter.config import Config
    from mailfilter.decision.policy import Policy
    from mailfilter.ops.metrics import MetricsSink
    from mailfilter.scan import Scanner


def release_big_buffers_to_the_os() -> None:
    """Keep glibc from holding on to freed multi-megabyte messages.

    glibc raises its mmap threshold after a large block is freed, so the
    next 20 MB message comes from the heap and stays in RSS after it is
    gone. A fixed threshold keeps large buffers in mmap, returned on free.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def myhostname(config: Config) -> str:
    """Our name, looked up once (never per connection)."""
    return config.hostname or socket.getfqdn()


def build_scanners(config: Config, policy: Policy) -> list[Scanner]:
    """The registry: one literal list, no discovery.

    See docs/engineering-rules.md, Rule 4.
    """
    from mailfilter.scan.banned import BannedScanner
    from mailfilter.scan.clamav import ClamAV
    from mailfilter.scan.spamassassin import SpamAssassin
    from mailfilter.scan.spamcache import SpamCache

    scanners: list[Scanner] = [BannedScanner(policy.banned)]
    if config.clamd != "off":
        scanners.append(
            ClamAV(
                parse_endpoint(config.clamd, unix_ok=True),
                timeout=config.clamd_timeout,
                workers=config.max_connections,
            )
        )
    if config.spamd != "off":
        spamd: Scanner = SpamAssassin(
            parse_endpoint(config.spamd),
            timeout=config.spamd_timeout,
            max_size=policy.spam.max_size,
        )
        if config.spam_cache_ttl > 0:
            spamd = SpamCache(
                spamd, ttl=config.spam_cache_ttl, size=config.spam_cache_size
            )
        scanners.append(spamd)
    return scanners


def build_context(
    config: Config, metrics: MetricsSink | None = None
) -> Context:
    """Everything the pipeline needs, from validated settings."""
    policy = load_policy(Path(config.policy))
    host = myhostname(config)
    domain = host.partition(".")[2] or host
    inbound, originating = authsetup.banks(config, host)
    context = Context(
        policy=policy,
        scanners=build_scanners(config, policy),
        downstream=Downstream(
            parse_endpoint(config.forward),
            helo="localhost",
            max_idle=config.max_connections,
        ),
        quarantine=Quarantine(config.quarantine),
        metrics=metrics or metricsmod.create(enabled=False),
        myhostname=host,
        virus_scanned=config.virus_scanned_header.format(domain=domain),
        scan_timeout=config.scan_timeout,
        forward_timeout=config.forward_timeout,
        bank=inbound,
    )
    _add_originating_bank(config, context, originating)
    return context


def _add_originating_bank(
    config: Config, context: Context, bank: authbank.Bank
) -> None:
    """The ORIGINATING bank's context, keyed by its listeners."""
    from mailfilter.scan.banned import BannedScanner

    policy = context.policy
    if config.originating_policy:
        policy = load_policy(Path(config.originating_policy))
    # clamd and spamd connections are shared; only the banned-file rules
    # come from the bank's own policy.
    scanners: list[Scanner] = [
        BannedScanner(policy.banned) if s.name == "banned" else s
        for s in context.scanners
        if s.name in config.originating_scanners
    ]
    originating = dataclasses.replace(
        context, policy=policy, scanners=scanners, bank=bank, banks={}
    )
    for text in config.listen_originating:
        endpoint = parse_endpoint(text)
        context.banks[endpoint.host, endpoint.port] = originating


async def close_context(context: Context, after: float = 0) -> None:
    if after:
        await asyncio.sleep(after)
    for scanner in context.scanners:
        await scanner.aclose()
    await context.downstream.aclose()
