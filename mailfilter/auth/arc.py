"""ARC chain validation (RFC 8617) with dkimpy; sealing is not done.

The chain result is none (no ARC sets), pass, fail, or temperror when a
key of the chain could not be looked up (dkimpy alone would call that
fail). Keys come from a `KeyTable` filled beforehand.
"""

from __future__ import annotations

import logging

import dkim

from mailfilter.auth import fields
from mailfilter.auth.keys import KeyTable, header_keys

_QUIET = logging.getLogger("mailfilter.auth.dkimpy")
_ARC_SIGNED = ("arc-seal", "arc-message-signature")


def chain_keys(message: bytes) -> list[str]:
    """Key names the ARC-Seal and ARC-Message-Signature fields need."""
    return header_keys(message, _ARC_SIGNED)


def validate(message: bytes, keys: KeyTable, names: list[str]) -> str:
    """none, pass, fail or temperror for the ARC chain of `message`."""
    head, _ = fields.split_fields(message)
    if not any(fields.field_name(f).startswith("arc-") for f in head):
        return "none"
    if any(keys.state(n) == "temperror" for n in names):
        return "temperror"
    try:
        verdict, _, _ = dkim.arc_verify(
            message, logger=_QUIET, dnsfunc=keys.dnsfunc
        )
    except Exception:
        # DKIMException, and plain errors dkimpy raises on malformed sets.
        return "fail"
    if verdict == dkim.CV_Pass:
        return "pass"
    if verdict == dkim.CV_None:
        return "none"
    return "fail"
