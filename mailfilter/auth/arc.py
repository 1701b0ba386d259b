"""ARC chain validation (RFC 8617) with dkimpy; sealing is not done.

The chain result is none (no ARC sets), pass, fail, or temperror when a
key of the chain could not be looked up (dkimpy alone would call that
fail). Keys come from a `KeyTable` filled beforehand.
"""

from __future__ import annotations

import logging

import dkim

from mailfilter.auth.keys import KeyTable, key_name

_QUIET = logging.getLogger("mailfilter.auth.dkimpy")
_ARC_SIGNED = (b"arc-seal", b"arc-message-signature")


def chain_keys(message: bytes) -> list[str]:
    """Key names the ARC-Seal and ARC-Message-Signature fields need."""
    headers, _ = dkim.rfc822_parse(message)
    names = []
    for name, value in headers:
        if bytes(name).lower() in _ARC_SIGNED:
            key = key_name(bytes(value))
            if key is not None:
                names.append(key)
    return names


def validate(message: bytes, keys: KeyTable, names: list[str]) -> str:
    """none, pass, fail or temperror for the ARC chain of `message`."""
    if not names and b"arc-" not in message[:65536].lower():
        return "none"
    if any(keys.state(n) == "temperror" for n in names):
        return "temperror"
    try:
        verdict, _, _ = dkim.arc_verify(
            message, logger=_QUIET, dnsfunc=keys.dnsfunc
        )
    except dkim.DKIMException:
        return "fail"
    if verdict == dkim.CV_Pass:
        return "pass"
    if verdict == dkim.CV_None:
        return "none"
    return "fail"
