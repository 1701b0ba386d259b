"""Decode MIME header parameters and normalise the file names they carry.

Attackers hide an ".exe" from extension rules by encoding or decorating the
name so that the filter reads something else than the mail client shows:
RFC 2231 continuations and charsets (Exim CVE-2024-39929), RFC 2047
encoded-words inside quoted parameters (which RFCs forbid but clients
decode), trailing dots and spaces (Windows drops them), U+202E and other
bidi controls (MITRE T1036.002), zero-width and other invisible
characters, full-width letters and upper case. This module turns every
name a part is known by into the form the banned rules should see.

Matching the names against rules is left to `scanners.banned`; splitting
the message is left to `mimewalk`.
"""

from __future__ import annotations

import binascii
import re
import unicodedata
import urllib.parse

# An RFC 2047 encoded-word; whitespace between two of them is dropped.
_ENCODED_WORD = re.compile(
    r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=(?:\s+(?==\?))?"
)
# One "; name=value" parameter: value is a quoted string or a token that
# runs to the next ";" (so unquoted `name=bad boy.exe` is read whole, as
# clients read it).
# Quoted strings are written as "unrolled loops" (runs of plain
# characters, then one escape at a time): the alternation form
# (?:[^"\\]|\\.)* makes the regex engine keep state per character,
# about 190 bytes each, so a 1 MB name cost 200 MB.
_PARAM = re.compile(
    r';\s*([^\s=;"]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"?|[^;]*)', re.DOTALL
)
_COMMENT = re.compile(r"\([^()\\]*(?:\\.[^()\\]*)*\)", re.DOTALL)
_QUOTED = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")', re.DOTALL)
# name*0, name*1*, name* (RFC 2231 §3-4)
_SECTION = re.compile(r"^(?P<name>[^*]+)\*(?:(?P<n>\d+)\*?)?$")
MAX_SECTIONS = 100


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words anywhere in `text`, leniently."""
    if "=?" not in text:
        return text
    return _ENCODED_WORD.sub(_decode_word, text)


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, payload = match.groups()
    # RFC 2231 §5 allows a language after the charset: utf-8*en.
    charset = charset.partition("*")[0]
    try:
        if encoding in "bB":
            payload += "=" * (-len(payload) % 4)
            raw = binascii.a2b_base64(payload.encode("ascii", "ignore"))
        else:
            raw = binascii.a2b_qp(
                payload.encode("latin-1", "replace"), header=True
            )
    except (binascii.Error, ValueError):
        return match.group(0)
    return _to_text(raw, charset)


def _to_text(raw: bytes, charset: str) -> str:
    """Bytes in a declared charset, falling back to UTF-8 then Latin-1."""
    for candidate in (charset, "utf-8"):
        try:
            return raw.decode(candidate)
        except (LookupError, UnicodeError, ValueError, TypeError):
            # Codecs raise more than UnicodeDecodeError: "idna" raises
            # plain UnicodeError, others ValueError. A name that does not
            # decode is still a name: fall back and keep checking.
            continue
    return raw.decode("latin-1")


def split_value(value: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a Content-Type/Disposition value into its first word and params.

    Parameters keep their order and duplicates; names are lower case and
    values unquoted but not yet RFC 2231/2047 decoded.
    """
    if "(" in value:
        value = _strip_comments(value)
    head, _, rest = value.partition(";")
    params = []
    for match in _PARAM.finditer(";" + rest):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:].removesuffix('"'))
        params.append((name, raw))
    return head.strip().lower(), params


def _strip_comments(value: str) -> str:
    """Remove (comments) outside quoted strings (RFC 5322 CFWS)."""
    parts = _QUOTED.split(value)
    for i in range(0, len(parts), 2):
        # Nested comments: strip the innermost until none is left.
        for _ in range(32):
            stripped = _COMMENT.sub(" ", parts[i])
            if stripped == parts[i]:
                break
            parts[i] = stripped
    return "".join(parts)


def param_values(params: list[tuple[str, str]], name: str) -> list[str]:
    """Every value of parameter `name`: plain, RFC 2231 and encoded-words.

    Both a plain `name=` and an RFC 2231 `name*=` are returned when both are
    present, so a rule sees every name any client might show.
    """
    plain: list[str] = []
    sections: dict[int, tuple[str, bool]] = {}
    for key, value in params:
        if key == name:
            plain.append(decode_words(value))
            continue
        match = _SECTION.match(key)
        if match and match.group("name") == name:
            digits = match.group("n") or "0"
            # int() refuses over 4300 digits; any long number is past the cap.
            index = int(digits) if len(digits) < 6 else MAX_SECTIONS
            if index < MAX_SECTIONS:
                sections.setdefault(index, (value, key.endswith("*")))
    values = plain
    if sections:
        values = [*plain, _join_sections(sections)]
    return values


def _join_sections(sections: dict[int, tuple[str, bool]]) -> str:
    """Join RFC 2231 continuations, decoding %XX with the declared charset."""
    charset = "us-ascii"
    raw = bytearray()
    for index in sorted(sections):
        value, extended = sections[index]
        if extended:
            if index == min(sections) and value.count("'") >= 2:
                charset, _, rest = value.split("'", 2)
                value = rest
            raw += urllib.parse.unquote_to_bytes(value)
        else:
            raw += value.encode("utf-8", "surrogateescape")
    return decode_words(_to_text(bytes(raw), charset or "us-ascii"))


def _invisible(char: str) -> bool:
    # Cf covers bidi controls (U+202A-202E, U+2066-2069, U+200E/F, U+061C),
    # zero width characters (U+200B-200D, U+2060, U+FEFF) and the soft
    # hyphen; Cc covers control characters. None of them is visible.
    return unicodedata.category(char) in {"Cf", "Cc"} or char == "\u034f"


def normalise(name: str) -> str:
    """The form of a file name that banned rules are matched against."""
    name = unicodedata.normalize("NFKC", name)
    name = "".join(c for c in name if not _invisible(c))
    # Windows drops trailing dots and spaces: "a.exe. ." runs as a.exe.
    return name.casefold().strip().rstrip(". \t")


def name_keys(name: str) -> tuple[str, ...]:
    """The keys a name gives rules: normalised, and as written if that hides.

    A name that holds invisible or control characters is kept a second
    time with them, case folded, so a rule of the policy can ban the
    deception itself (a bidi override reorders what the reader sees).
    """
    plain = normalise(name)
    if not any(_invisible(c) for c in name):
        return (plain,) if plain else ()
    shown = unicodedata.normalize("NFKC", name).casefold()
    return tuple(dict.fromkeys(n for n in (plain, shown) if n))


def part_names(
    content_type: list[tuple[str, str]], disposition: list[tuple[str, str]]
) -> tuple[str, ...]:
    """Every name a MIME part is known by, as rule keys, without repeats."""
    found = param_values(content_type, "name") + param_values(
        disposition, "filename"
    )
    return tuple(dict.fromkeys(k for n in found for k in name_keys(n)))
