"""DKIM public keys from DNS, fetched before dkimpy runs.

dkimpy asks for keys through a synchronous `dnsfunc`. Calling the network
from there would block the event loop, so the names a message needs are
looked up first, asynchronously and under the message's budget, and
dkimpy is handed a function that only reads that table.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import dkim

from mailfilter.auth import fields
from mailfilter.auth.dns import TempError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mailfilter.auth.dns import Budget, Resolver

# A signature names its key with d= and s=; the rest is dkimpy's job.
_TAG = re.compile(rb"(?:^|;)\s*([ds])\s*=\s*([^;]*)", re.IGNORECASE)
# A key lookup that was not possible: the check says temperror.
UNREACHABLE = "temperror"


def key_name(signature: bytes) -> str | None:
    """`selector._domainkey.domain` of a DKIM or ARC signature value."""
    tags = {
        k.lower(): re.sub(rb"\s+", b"", v) for k, v in _TAG.findall(signature)
    }
    if b"d" not in tags or b"s" not in tags:
        return None
    try:
        name = (tags[b"s"] + b"._domainkey." + tags[b"d"]).decode("ascii")
    except UnicodeDecodeError:
        return None
    return name.lower().rstrip(".")


def header_keys(message: bytes, names: tuple[str, ...]) -> list[str]:
    """Key names of the signature fields called `names` (header only)."""
    found = []
    for field in fields.split_fields(message)[0]:
        if fields.field_name(field) in names:
            key = key_name(field.partition(b":")[2])
            if key is not None:
                found.append(key)
    return found


class KeyTable:
    """Key records by name: text, None (no record) or UNREACHABLE."""

    def __init__(self) -> None:
        self.records: dict[str, str | None] = {}

    async def fetch(
        self, names: Iterable[str], resolver: Resolver, budget: Budget
    ) -> None:
        """Look up every name not known yet, concurrently."""
        wanted = sorted({n for n in names if n not in self.records})

        async def one(name: str) -> None:
            try:
                texts = await resolver.txt(name, budget)
            except TempError:
                self.records[name] = UNREACHABLE
                return
            # RFC 6376 §3.6.2.2: several records make the result undefined;
            # taking the first is what dkimpy's own lookup does.
            self.records[name] = texts[0] if texts else None

        await asyncio.gather(*(one(n) for n in wanted))

    def state(self, name: str | None) -> str:
        """found, missing or temperror, for the result of a signature."""
        if name is None or name not in self.records:
            return "missing"
        record = self.records[name]
        if record is None:
            return "missing"
        return "temperror" if record == UNREACHABLE else "found"

    def dnsfunc(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's lookup interface, answered from the table only."""
        del timeout  # nothing waits here
        text = name.decode("ascii") if isinstance(name, bytes) else name
        record = self.records.get(text.lower().rstrip("."))
        if record == UNREACHABLE:
            raise dkim.DnsTimeoutError(text)
        return None if record is None else record.encode()
