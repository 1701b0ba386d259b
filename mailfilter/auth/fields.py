"""Reading the header block: fields by name, the From domain, and removal
of Authentication-Results fields that claim to be ours.

Field names are matched the way mail clients and Python's `email` package
match them: case-insensitive, with white space allowed before the colon
(RFC 5322 obsolete syntax), so a forged field cannot hide behind
`authentication-results :` or a folded value.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

from mailfilter.decision.headers import header_block_end

_FIELD_START = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


def split_fields(content: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded lines) and the rest."""
    end = header_block_end(content)
    block, rest = content[:end], content[end:]
    fields: list[bytes] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, rest


def field_name(field: bytes) -> str:
    """The lower-case name of a field ('' for a line that is not one)."""
    match = _FIELD_START.match(field)
    return match.group(1).decode("ascii").lower() if match else ""


def field_value(field: bytes) -> str:
    """The unfolded value, decoded leniently (UTF-8 under SMTPUTF8)."""
    value = field.partition(b":")[2]
    text = value.decode("utf-8", "replace")
    return re.sub(r"\r?\n([ \t])", r"\1", text).strip()


def values(content: bytes, name: str) -> list[str]:
    """Every value of the fields called `name`, top first."""
    fields, _ = split_fields(content)
    return [field_value(f) for f in fields if field_name(f) == name]


def from_domain(content: bytes) -> str | None:
    """The RFC5322.From domain, or None when DMARC cannot name one.

    None for no From, several From fields, or several addresses: RFC 7489
    §6.6.1 lets a receiver refuse to pick one, and picking the first would
    let a second From shown by the client go unchecked.
    """
    found = values(content, "from")
    if len(found) != 1:
        return None
    addresses = [a for _, a in getaddresses(found) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = addresses[0].rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


def authserv_id(value: str) -> str:
    """The authserv-id that starts an Authentication-Results value."""
    text = _drop_comments(value).strip()
    if text.startswith('"'):
        end = text.find('"', 1)
        return text[1:end].lower() if end > 0 else ""
    return re.split(r"[\s;]", text, maxsplit=1)[0].lower()


def remove_ours(content: bytes, our_id: str) -> tuple[bytes, int]:
    """Drop Authentication-Results fields carrying our authserv-id."""
    fields, rest = split_fields(content)
    kept = [
        f
        for f in fields
        if not (
            field_name(f) == "authentication-results"
            and authserv_id(field_value(f)) == our_id.lower()
        )
    ]
    removed = len(fields) - len(kept)
    if not removed:
        return content, 0
    return b"".join(kept) + rest, removed


def _drop_comments(text: str) -> str:
    """Remove (possibly nested) RFC 5322 comments."""
    out, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return "".join(out)
