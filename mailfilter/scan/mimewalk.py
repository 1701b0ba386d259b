"""Walk the MIME tree of a raw message and yield its decoded leaf parts.

Why not `email.parser`: on hostile input it fails the way a filter must
not. Measured on CPython 3.11.7: `BytesParser` raises RecursionError at
about 330 nested multiparts (its parser recurses through generators,
with cost growing per level), and with `policy.default` one 100 KB header
takes 8 s of CPU (cpython#136063). This walker is iterative (an explicit
stack), linear per level, bounded by the decoding `Budget` (depth, parts,
bytes), and never raises except `OverLimits`. It reads only what the
banned check needs: each part's Content-Type, Content-Disposition and
Content-Transfer-Encoding, and the decoded payload of leaves.

Parser differentials (docs/performance-and-reliability.md, "Parser
differentials and MIME attacks") are answered the way amavis and
draft-chen-email-mime-ambiguity-defense suggest: conflicting Content-Type,
boundary= or Content-Transfer-Encoding values mark the message "ambiguous
content" (amavis CVE-2024-28054), and a multipart with several boundaries is
split with each of them, so a part any client could see is checked ("scan the
union"). Content types of leaves and the rules are left to `filetype` and
`scanners.banned`.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter.scan.filenames import decode_words, part_names, split_value

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailfilter.scan.budget import Budget

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINES = re.compile(r"\r?\n")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_WANTED = ("content-type", "content-disposition", "content-transfer-encoding")


@dataclass(frozen=True, slots=True)
class Node:
    """One node on the path to a leaf, with the keys rules are tried on."""

    mime_type: str = ""
    names: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    encrypted: bool = False

    def rule_keys(self) -> tuple[str, ...]:
        """amavis keys: declared type, content types, names.

        See docs/amavis-compat.md, "How a part is judged".
        """
        keys: tuple[str, ...] = (self.mime_type,) if self.mime_type else ()
        keys += self.types + self.names
        return (*keys, "UNDECIPHERABLE") if self.encrypted else keys


@dataclass(frozen=True, slots=True)
class Span:
    """A range of one bytes object.

    Parts are never copied out of the message: a 20 MB attachment inside a
    multipart is found, split and decoded through offsets and memoryviews,
    so the walk holds the message once plus the decoded payload it needs.
    """

    buf: bytes
    start: int
    end: int

    @classmethod
    def of(cls, data: bytes) -> Span:
        """The whole of `data`."""
        return cls(data, 0, len(data))

    def __len__(self) -> int:
        return self.end - self.start

    def view(self) -> memoryview:
        """The range without copying it."""
        return memoryview(self.buf)[self.start : self.end]

    def tobytes(self) -> bytes:
        """The range as its own bytes object (a copy)."""
        return self.buf[self.start : self.end]

    def prefix(self, size: int) -> Span:
        """The first `size` bytes of the range."""
        return Span(self.buf, self.start, min(self.end, self.start + size))


class Leaf:
    """A part that is not a container of MIME parts, and its path.

    A large base64 part is decoded lazily: `head` (the first 64 KiB) is
    enough to tell its content type, and only a container (an archive the
    banned check must open) needs `data`, the whole payload. A 20 MB
    attachment that is not an archive is then never decoded in full.
    """

    __slots__ = ("_body", "_data", "_encoding", "depth", "path")

    def __init__(
        self, path: tuple[Node, ...], body: Span, encoding: str, depth: int
    ) -> None:
        self.path = path
        self.depth = depth
        self._body = body
        self._encoding = encoding
        self._data: bytes | None = None
        if encoding != "base64" or len(body) <= LAZY_BASE64:
            self._data = _decode(body, encoding)

    @property
    def data(self) -> bytes:
        """The whole decoded payload."""
        if self._data is None:
            self._data = _decode(self._body, self._encoding)
        return self._data

    @property
    def head(self) -> bytes:
        """About the first HEAD bytes of the payload (all of a small one)."""
        if self._data is not None:
            return self._data
        # 4 base64 characters per 3 bytes, plus room for the line breaks.
        encoded = self._body.prefix(HEAD * 4 // 3 + HEAD // 16)
        return _decode(encoded, "base64")[:HEAD]

    @property
    def size(self) -> int:
        """The decoded size (estimated from the base64 text while lazy)."""
        if self._data is not None:
            return len(self._data)
        return len(self._body) * 3 // 4


HEAD = 65536
LAZY_BASE64 = 262144  # encoded bytes above which a part is decoded lazily


class MimeWalk:
    """One walk over one message; `unchecked` and `defects` fill as it goes."""

    def __init__(self, raw: bytes, budget: Budget) -> None:
        self._raw = raw
        self._budget = budget
        self.unchecked: list[str] = []
        self.defects: list[str] = []

    def leaves(self) -> Iterator[Leaf]:
        """Leaf parts in message order; raises OverLimits at a limit."""
        stack: list[tuple[Span, tuple[Node, ...], int, str]] = [
            (Span.of(self._raw), (), 0, "text/plain")
        ]
        while stack:
            data, path, depth, default = stack.pop()
            self._budget.enter(depth)
            self._budget.file()
            headers, body = _split(data)
            fields = self._fields(headers)
            mime_type, ct_params = split_value(fields["content-type"])
            if "/" not in mime_type:
                mime_type = default
            _, cd_params = split_value(fields["content-disposition"])
            names = part_names(ct_params, cd_params)
            node = Node(_text(mime_type), tuple(map(_text, names)))
            path = (*path, node)
            if mime_type.startswith("multipart/"):
                children = self._children(body, ct_params)
                if children:
                    inner = (
                        "message/rfc822"
                        if mime_type == "multipart/digest"
                        else "text/plain"
                    )
                    stack.extend(
                        (child, path, depth + 1, inner)
                        for child in reversed(children)
                    )
                    continue
            encoding = fields["content-transfer-encoding"].strip().lower()
            leaf = Leaf(path, body, encoding, depth)
            self._budget.charge(leaf.size)
            if mime_type in _MESSAGE_TYPES or _is_eml(node.names):
                # The attached message is walked, and its bytes are also
                # checked as a leaf: a "message" that is really a program
                # or an archive is judged by what it is.
                stack.append(
                    (Span.of(leaf.data), path, depth + 1, "text/plain")
                )
            yield leaf

    def _fields(self, block: bytes) -> dict[str, str]:
        """The three fields we need; conflicting repeats are ambiguous."""
        text = _FOLD.sub("", block.decode("utf-8", "surrogateescape"))
        seen: dict[str, list[str]] = {name: [] for name in _WANTED}
        # CRLF or LF only: str.splitlines() also splits on \f, \v,
        # \x1c-\x1e, \x85 and U+2028/9, which no mail client does, so
        # "attachment;\f filename=a.js" would lose its name.
        for line in _LINES.split(text):
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if colon and name in seen:
                seen[name].append(value.strip())
        for name, values in seen.items():
            if len(set(values)) > 1:
                self._ambiguous(f"{len(values)} different {name} fields")
        return {name: (v[0] if v else "") for name, v in seen.items()}

    def _children(
        self, body: Span, params: list[tuple[str, str]]
    ) -> list[Span]:
        """Split a multipart body with every boundary it declares."""
        found = [
            v
            for k, v in params
            if k == "boundary" or k.startswith("boundary*")
        ]
        boundaries = list(dict.fromkeys(v for v in found if v))
        if len(found) > 1 or any("=?" in b for b in boundaries):
            self._ambiguous("conflicting boundary parameters")
            boundaries = list(
                dict.fromkeys(
                    [*boundaries, *(decode_words(b) for b in boundaries)]
                )
            )
        if not boundaries:
            self.defects.append("multipart without boundary")
        children: list[Span] = []
        for boundary in boundaries:
            token = boundary.encode("utf-8", "surrogateescape")
            children += self._split_multipart(body, token)
        return children

    def _split_multipart(self, body: Span, boundary: bytes) -> list[Span]:
        """Parts between delimiter lines (RFC 2046 §5.1.1).

        Any line that starts with "--boundary" is a delimiter, whatever
        follows on it: stricter parsers ignore such lines, lenient clients
        split there, and a legitimate part never contains one.
        """
        buf, first, last = body.buf, body.start, body.end
        token = b"--" + boundary
        parts: list[Span] = []
        start, pos = -1, first
        while (found := buf.find(token, pos, last)) >= 0:
            pos = found + len(token)
            if found > first and buf[found - 1] != 0x0A:
                continue  # not at the start of a line
            if start >= 0:
                crlf = found - 2 >= first and buf[found - 2 : found] == b"\r\n"
                end = found - (2 if crlf else 1)
                parts.append(Span(buf, start, max(end, start)))
                if len(parts) > self._budget.limits.max_files:
                    return parts
            if buf.startswith(b"--", pos, last):
                return parts
            newline = buf.find(b"\n", pos, last)
            start = last if newline < 0 else newline + 1
        if start >= 0:
            self.defects.append("missing close delimiter")
            parts.append(Span(buf, start, last))
        return parts

    def _ambiguous(self, defect: str) -> None:
        self.defects.append(defect)
        if "ambiguous content" not in self.unchecked:
            self.unchecked.append("ambiguous content")


def _is_eml(names: tuple[str, ...]) -> bool:
    """A part named *.eml opens as a message in mail clients."""
    return any(name.endswith(".eml") for name in names)


def _text(value: str) -> str:
    """Header text read with surrogateescape, made safe to log and match."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _split(data: Span) -> tuple[bytes, Span]:
    """Header block and body; a part starting with a blank line has none."""
    buf, first, last = data.buf, data.start, data.end
    if buf.startswith(b"\r\n", first, last):
        return b"", Span(buf, first + 2, last)
    if buf.startswith(b"\n", first, last):
        return b"", Span(buf, first + 1, last)
    match = _BLANK_LINE.search(buf, first, last)
    if match is None:
        return data.tobytes(), Span(buf, last, last)
    return buf[first : match.start()], Span(buf, match.end(), last)


def _decode(body: Span, encoding: str) -> bytes:
    """Undo the Content-Transfer-Encoding, as leniently as clients do."""
    encoding = encoding.strip().lower()
    if encoding == "base64":
        try:
            return binascii.a2b_base64(body.view())
        except binascii.Error:
            # Bad padding or stray characters: keep what decodes.
            clean = _NOT_BASE64.sub(b"", body.view())
            clean = clean[: len(clean) - (len(clean) % 4 == 1)]
            return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))
    if encoding == "quoted-printable":
        return binascii.a2b_qp(body.view())
    return body.tobytes()
