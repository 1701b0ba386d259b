"""DKIM signing of outgoing mail (dkimpy), relaxed/relaxed.

The signature covers exactly the bytes reinjected: the pipeline hands us
our own added fields and the edited message, and the DKIM-Signature
fields we return go on top of both. Signed fields are those RFC 6376
§5.4.1 recommends that are present, with From signed once more than it
occurs (over-signing, §8.15), so a second From cannot be added later.
The domain is the From domain, or the nearest parent that has keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dkim

from mailfilter.auth import fields

if TYPE_CHECKING:
    from mailfilter.auth.keystore import SigningKey

# RFC 6376 §5.4.1, in its order, plus the MIME fields that change what the
# body means.
RECOMMENDED = (
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "resent-date",
    "resent-from",
    "resent-to",
    "resent-cc",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)
# dkimpy refuses to sign these by default; RFC 6376 recommends most of
# them, so only the ones that change in transit stay refused.
_NEVER = {
    b"dkim-signature",
    b"received",
    b"return-path",
    b"bcc",
    b"resent-bcc",
}


def signing_domain(content: bytes, keys: dict[str, list[SigningKey]]) -> str:
    """The From domain or its nearest parent with keys ('' for none)."""
    domain = fields.from_domain(content) or ""
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        candidate = ".".join(labels[start:])
        if candidate in keys:
            return candidate
    return ""


def sign(message: bytes, keys: list[SigningKey]) -> bytes:
    """DKIM-Signature fields (CRLF) for `message`, one per key."""
    present = {fields.field_name(f) for f in fields.split_fields(message)[0]}
    include = [n.encode() for n in RECOMMENDED if n in present]
    include.append(b"from")  # over-sign From
    out = []
    for key in keys:
        signer = dkim.DKIM(message, linesep=b"\r\n")
        signer.should_not_sign = set(_NEVER)
        out.append(
            signer.sign(
                key.selector.encode(),
                key.domain.encode(),
                key.private,
                signature_algorithm=key.algorithm,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=include,
            )
        )
    return b"".join(out)
