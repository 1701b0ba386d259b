"""xtext (RFC 3461 §4): the encoding of XFORWARD values, ENVID and ORCPT."""

from __future__ import annotations

import re

_HEX = re.compile(r"\+([0-9A-Fa-f]{2})")


def decode(text: str) -> str:
    """Decode `+XX` escapes; a malformed `+` is kept as it stands."""
    if "+" not in text:
        return text
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), text)


def encode(text: str) -> str:
    """Encode: `+`, `=`, controls and non-ASCII become `+XX` (per byte)."""
    out: list[str] = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)
