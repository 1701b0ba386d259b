"""DKIM verification of every signature on a message (dkimpy).

Each signature gets its own result (RFC 8601 §2.7.1): pass; fail (the
signature or the body hash does not verify); permerror (broken
signature, no key or a malformed key published); temperror (the key
could not be looked up). dkimpy's verification is CPU only here: keys
come from a `KeyTable` filled beforehand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dkim

from mailfilter.auth.fields import field_name, split_fields
from mailfilter.auth.keys import KeyTable, header_keys, key_name

# dkimpy logs every failed signature at ERROR; those are the sender's
# problem, reported in Authentication-Results, not ours.
_QUIET = logging.getLogger("mailfilter.auth.dkimpy")
_QUIET.setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class Signature:
    """One DKIM-Signature field's result and the facts RFC 8601 shows."""

    result: str
    domain: str
    selector: str
    algorithm: str
    b: str  # the first characters of b=, to tell signatures apart

    @property
    def key_name(self) -> str:
        """Where the public key lives."""
        return f"{self.selector}._domainkey.{self.domain}"


def signature_keys(message: bytes) -> list[str]:
    """Key names the DKIM-Signature fields of `message` need."""
    return header_keys(message, ("dkim-signature",))


def verify_all(message: bytes, keys: KeyTable) -> list[Signature]:
    """A result for each DKIM-Signature field, top one first."""
    try:
        checker = dkim.DKIM(message, logger=_QUIET, minkey=1024)
    except Exception:
        # dkimpy refuses a header block it cannot parse (a line without a
        # colon, ...); the message still gets a verdict, never a retry.
        return [
            Signature("permerror", *_facts(field.partition(b":")[2]))
            for field in split_fields(message)[0]
            if field_name(field) == "dkim-signature"
        ]
    fields = [v for n, v in checker.headers if n.lower() == b"dkim-signature"]
    results = []
    for index, value in enumerate(fields):
        facts = _facts(value)
        state = keys.state(key_name(value))
        if state != "found" or not facts[0]:
            # No key published: permerror; not reachable: temperror.
            result = "temperror" if state == "temperror" else "permerror"
        else:
            result = _verify_one(checker, index, keys)
        results.append(Signature(result, *facts))
    return results


def _facts(value: bytes) -> tuple[str, str, str, str]:
    tags = _tags(value)
    return (
        tags.get("d", "").lower(),
        tags.get("s", ""),
        tags.get("a", ""),
        tags.get("b", "")[:8],
    )


def _verify_one(checker: dkim.DKIM, index: int, keys: KeyTable) -> str:
    try:
        ok = checker.verify(index, dnsfunc=keys.dnsfunc)
    except dkim.ValidationError as exc:
        # dkimpy raises for a changed body; that is a failed signature,
        # not a broken one.
        return "fail" if "body hash mismatch" in str(exc) else "permerror"
    except Exception:
        # DKIMException for a broken signature; dkimpy also raises plain
        # IndexError and friends on some malformed ones.
        return "permerror"
    return "pass" if ok else "fail"


def _tags(value: bytes) -> dict[str, str]:
    try:
        parsed = dkim.util.parse_tag_value(value)
    except dkim.util.InvalidTagValueList:
        return {}
    return {
        k.decode("ascii", "replace").lower(): v.decode("ascii", "replace")
        for k, v in parsed.items()
    }
