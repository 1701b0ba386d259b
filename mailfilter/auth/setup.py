"""Building the two banks' authentication settings from the settings table.

Keys are read here (start and SIGHUP), so a broken key file stops a
reload instead of failing messages one by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailfilter.auth import keystore
from mailfilter.auth.bank import Bank, Verify
from mailfilter.auth.dns import Resolver

if TYPE_CHECKING:
    from mailfilter.config import Config


def banks(config: Config, hostname: str) -> tuple[Bank, Bank]:
    """The INBOUND and the ORIGINATING bank."""
    resolver = Resolver(list(config.dns_servers), config.dns_timeout)
    verify = Verify(
        resolver,
        config.authserv_id or hostname,
        config.dns_budget,
        config.dns_lookups,
    )
    keys = None
    if config.inbound_sign or config.originating_sign:
        keys = keystore.load(config.dkim_keys)
    local = tuple(d.lower().rstrip(".") for d in config.local_domains)
    inbound = Bank(
        "INBOUND",
        verify=verify if config.inbound_verify else None,
        sign_keys=keys if config.inbound_sign else None,
        dmarc_reject=config.inbound_dmarc_reject,
        local_domains=local,
    )
    originating = Bank(
        "ORIGINATING",
        verify=verify if config.originating_verify else None,
        sign_keys=keys if config.originating_sign else None,
        dmarc_reject=config.originating_dmarc_reject,
        local_domains=local,
    )
    return inbound, originating
