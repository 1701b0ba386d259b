"""Content types of decoded parts as amavis-style dotted short types.

amavis runs file(1)/libmagic on every part and maps the description to
short types such as `.exe`/`.exe-ms` (docs/amavis-compat.md, "How a part is
judged"), so rules can ban a PE file whatever its name says. We do the same, in
two steps:

1. a table of signatures for executables, launchers, archives and the
   common document and image formats. It decides the types that matter
   for security without libmagic, so a missing or broken libmagic never
   hides an MZ, and it is cheap: libmagic costs 0.2-0.9 ms a call, more
   than the whole banned check of an ordinary message may cost;
2. libmagic for the rest (binary data the table does not know), mapped to
   short types with amavis's rules of thumb.

Text is classified here as `.asc` (or `.html`, `.rtf`, `.pgp`) because
libmagic's text analysis is the slowest call of all. Which types are
banned is policy (`policy/*.toml`); unpacking archives is `archives`.
"""

from __future__ import annotations

import re
import struct
import threading
from typing import Any

HEAD = 65536
CONTAINERS = frozenset(
    {
        ".zip",
        ".tar",
        ".gz",
        ".bz2",
        ".xz",
        ".7z",
        ".rar",
        ".cab",
        ".arj",
        ".tnef",
    }
)

_EXE_MS = (".exe", ".exe-ms")
_SIGNATURES: tuple[tuple[int, bytes, tuple[str, ...]], ...] = (
    (0, b"\x7fELF", (".exe", ".exe-unix", ".elf")),
    (0, b"\xfe\xed\xfa\xce", (".exe", ".macho")),
    (0, b"\xfe\xed\xfa\xcf", (".exe", ".macho")),
    (0, b"\xce\xfa\xed\xfe", (".exe", ".macho")),
    (0, b"\xcf\xfa\xed\xfe", (".exe", ".macho")),
    # Shell link header: size 0x4C and the ShellLink CLSID ([MS-SHLLINK]).
    (0, b"L\0\0\0\x01\x14\x02\0\0\0\0\0\xc0\0\0\0\0\0\0F", (".lnk",)),
    (0, b"#!", (".script",)),
    (0, b"PK\x03\x04", (".zip",)),
    (0, b"PK\x05\x06", (".zip",)),
    (0, b"PK\x07\x08", (".zip",)),
    (0, b"\x1f\x8b", (".gz",)),
    (0, b"\xfd7zXZ\x00", (".xz",)),
    (0, b"7z\xbc\xaf\x27\x1c", (".7z",)),
    (0, b"Rar!\x1a\x07", (".rar",)),
    (0, b"MSCF\0\0\0\0", (".cab",)),
    (0, b"\x60\xea", (".arj",)),
    # TNEF (winmail.dat): Outlook's wrapper around attachments.
    (0, b"\x78\x9f\x3e\x22", (".tnef",)),
    (257, b"ustar", (".tar",)),
    (0, b"%PDF-", (".pdf",)),
    (0, b"\x89PNG\r\n\x1a\n", (".png",)),
    (0, b"\xff\xd8\xff", (".jpg",)),
    (0, b"GIF8", (".gif",)),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", (".doc",)),
    (0, b"{\\rtf", (".rtf",)),
)
_TEXT_BYTES = bytes(range(32, 127)) + b"\t\n\r\f\x1b"
_HTML = re.compile(rb"\A\s*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE)

# libmagic description -> short types; first match wins (after amavis
# $map_full_type_to_short_type_re, Conf.pm:1294-1424).
_MAGIC_MAP: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(p), t)
    for p, t in (
        (
            r"^(MS-DOS executable \(built-in\)|COM executable for DOS)",
            (".asc",),
        ),
        (
            r"\bDLL\b.*\b(MS Windows|DOS)\b|\b(MS Windows|DOS)\b.*\bDLL\b",
            (".exe", ".dll"),
        ),
        (
            (
                r"^PE32|^MS Windows\b.*\bexecutable\b|\bfor MS Windows\b"
                # A COM program has no header: libmagic guesses it from the
                # first instruction, and ~1% of random bytes pass. amavis
                # keeps COM out of exe-ms for that reason.
                r"|^(MS-)?DOS executable\b(?!.*\(COM\))"
            ),
            _EXE_MS,
        ),
        (r"^ELF", (".exe", ".exe-unix", ".elf")),
        (r"^Mach-O", (".exe", ".macho")),
        (r"^MS Windows shortcut", (".lnk",)),
        (r"script(,| text) .*executable|^a .* script", (".script",)),
        (r"\bexecutable\b", (".exe",)),
        (
            (
                r"^Zip archive|^Java archive"
                r"|^Microsoft (Word|Excel|PowerPoint|OOXML)"
            ),
            (".zip",),
        ),
        (r"^gzip compressed", (".gz",)),
        (r"^bzip2 compressed", (".bz2",)),
        (r"^XZ compressed", (".xz",)),
        (r"^7-zip archive", (".7z",)),
        (r"^RAR archive", (".rar",)),
        (r"^Microsoft Cabinet", (".cab",)),
        (r"^ARJ archive", (".arj",)),
        (r"tar archive", (".tar",)),
        (r"^PDF document", (".pdf",)),
        (r"^Composite Document File|^CDF V2", (".doc",)),
        (r"\bimage data\b|^JPEG image", (".img",)),
        (r"\btext\b", (".asc",)),
    )
)


def short_types(data: bytes) -> tuple[str, ...]:
    """Dotted short types of `data` (only its first HEAD bytes are read)."""
    head = data[:HEAD]
    if not head:
        return (".empty",)
    if head.startswith(b"MZ") and _looks_like_dos_header(head):
        return _pe_types(head)
    for offset, magic, types in _SIGNATURES:
        if head.startswith(magic, offset):
            return types
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return (".bz2",)
    if head.startswith(b"\xca\xfe\xba\xbe"):
        # Mach-O universal binaries share CAFEBABE with Java class files;
        # a fat header counts a few architectures, a class a version >= 45.
        count = struct.unpack(">I", head[4:8].ljust(4, b"\0"))[0]
        return (".exe", ".macho") if 0 < count < 20 else (".class",)
    text = _text_types(head)
    return text or from_libmagic(head)


def _looks_like_dos_header(head: bytes) -> bool:
    """MZ followed by binary header fields, not a text starting "MZ"."""
    return bool(head[:64].translate(None, _TEXT_BYTES))


def _pe_types(head: bytes) -> tuple[str, ...]:
    """`.exe,.dll` for a PE DLL, else `.exe,.exe-ms` (also plain DOS MZ)."""
    if len(head) >= 64:
        (offset,) = struct.unpack_from("<I", head, 0x3C)
        pe = head[offset : offset + 24]
        if pe.startswith(b"PE\0\0") and len(pe) >= 24:
            (characteristics,) = struct.unpack_from("<H", pe, 22)
            if characteristics & 0x2000:  # IMAGE_FILE_DLL
                return (".exe", ".dll")
    return _EXE_MS


def _text_types(head: bytes) -> tuple[str, ...]:
    """Short types of text content, or () if `head` is not text."""
    sample = head[:4096]
    if b"\0" in sample:
        return ()
    odd = sample.translate(None, _TEXT_BYTES)
    if odd:
        try:
            # Allow a multi-byte character cut at the end of the sample.
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(sample) - 4 and len(odd) * 10 > len(sample):
                return ()
    if b"-----BEGIN PGP MESSAGE-----" in sample:
        # amavis short type pgp.enc: content that cannot be checked.
        return (".asc", ".pgp", ".pgp.enc")
    if _HTML.match(sample):
        return (".html",)
    return (".asc",)


class _Magic:
    """One libmagic handle, opened on first use; calls are serialised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handle: Any = None
        self._broken = False

    def describe(self, data: bytes) -> str:
        with self._lock:
            if self._handle is None and not self._broken:
                try:
                    import magic

                    self._handle = magic.Magic()
                except Exception:
                    self._broken = True
            if self._handle is None:
                return ""
            try:
                return str(self._handle.from_buffer(data))
            except Exception:
                return ""


_MAGIC = _Magic()


def from_libmagic(head: bytes) -> tuple[str, ...]:
    """Short types from libmagic's description; `.dat` if it says nothing."""
    description = _MAGIC.describe(head[:HEAD])
    for pattern, types in _MAGIC_MAP:
        if pattern.search(description):
            return types
    return (".dat",)


def is_container(types: tuple[str, ...]) -> bool:
    """Whether content of these short types is unpacked further."""
    return not CONTAINERS.isdisjoint(types)
