"""The banned engine sees at least what clients and unpackers show.

Each test is one class of evasion: a way to show a reader an executable
that the engine would not see, or to make the engine give up and report
the message clean. Whatever the engine cannot see is UNCHECKED.
"""

from __future__ import annotations

import binascii
import bz2
import io
import lzma
import pathlib
import struct
import zipfile

import pytest

from mailfilter.decision.policyfile import load_policy
from mailfilter.decision.verdict import Verdict
from mailfilter.scan import archives
from mailfilter.scan.banned import BannedScanner, check
from tests.support import corpus

POLICY_DIR = pathlib.Path(__file__).resolve().parents[3] / "policy"
TEXT = corpus.TEXT


@pytest.fixture(scope="module")
def policy():
    return load_policy(POLICY_DIR / "default.toml").banned


def verdict_of(found):
    if found.banned:
        return Verdict.BANNED
    return Verdict.UNCHECKED if found.unchecked else Verdict.CLEAN


def _split_tar() -> tuple[bytes, bytes]:
    """A tar cut after its first member: readme.txt | invoice.exe + end."""
    tar = corpus.tar_of({"readme.txt": TEXT, "invoice.exe": TEXT})
    first = 512 + 512  # header and one data block of readme.txt
    return tar[:first], tar[first:]


# --- 1. multi-member compressed streams ------------------------------------


@pytest.mark.parametrize(
    ("kind", "compress"),
    [
        ("gzip", lambda d: corpus.gzip_of(d)),
        ("bzip2", bz2.compress),
        ("xz", lzma.compress),
    ],
)
def test_second_member_of_a_stream_is_read(policy, kind, compress):
    """A tar split over two compressed members: invoice.exe is in the 2nd."""
    head, tail = _split_tar()
    data = compress(head) + compress(tail)
    message = corpus.with_attachment(data, f"files.tar.{kind}")
    found = check(message, policy)
    assert Verdict.BANNED is verdict_of(found), found
    assert any("invoice.exe" in b for b in found.banned)


def test_later_gzip_member_names_are_checked(policy):
    """The FNAME of a later gzip member is a name the rules see."""
    data = corpus.gzip_of(TEXT, "notes.txt") + corpus.gzip_of(
        TEXT, "setup.exe"
    )
    found = check(corpus.with_attachment(data, "notes.gz"), policy)
    assert any("setup.exe" in b for b in found.banned), found


def test_trailing_garbage_after_a_stream_is_unchecked(policy):
    """Bytes after the end of a gzip member that are no member: unchecked."""
    data = corpus.gzip_of(TEXT, "notes.txt") + b"\x1f\x8bjunk" * 10
    found = check(corpus.with_attachment(data, "notes.gz"), policy)
    assert Verdict.UNCHECKED is verdict_of(found), found


# --- 2. name decoding never aborts the walk --------------------------------


async def test_idna_unicode_error_does_not_hide_the_name(policy):
    """The idna codec raises plain UnicodeError: the name is still checked."""
    message = corpus.raw_attachment(
        TEXT,
        "application/octet-stream",
        'attachment; filename="=?idna?q?xn--zz.exe?="',
    )
    scanner = BannedScanner(policy)
    result = await scanner.scan(message)
    assert result.banned, result
    assert not [u for u in result.unchecked if "unparseable" in u]


def test_an_exception_in_one_part_is_unchecked_not_clean(policy, monkeypatch):
    """A bug on one archive gives UNCHECKED; the exe elsewhere stays BANNED."""

    def boom(*args, **kwargs):
        raise ZeroDivisionError

    # Mocked: no known input makes our archive code raise this; it is the
    # net for the next bug.
    monkeypatch.setattr(archives, "members", boom)
    zipped = corpus.part(
        corpus.zip_of({"a.txt": TEXT}),
        'application/zip; name="a.zip"',
    )
    exe = corpus.part(corpus.pe_exe(), 'application/x; name="x.exe"')
    found = check(corpus.multipart([zipped, exe]), policy)
    assert ["unparseable: ZeroDivisionError"] == found.unchecked
    assert found.banned


def test_an_exception_in_the_walk_is_unchecked(policy, monkeypatch):
    """An exception out of the MIME walk itself never passes as clean."""
    from mailfilter.scan import mimewalk

    def boom(*args, **kwargs):
        raise KeyError("x")

    # Mocked: the net under the walker, for a bug not known yet.
    monkeypatch.setattr(mimewalk, "split_value", boom)
    found = check(corpus.with_attachment(TEXT, "a.txt"), policy)
    assert ["unparseable: KeyError"] == found.unchecked


def test_overlong_rfc2231_section_number_is_not_an_exception(policy):
    """int() refuses 5000 digits; the section is ignored, the name kept."""
    disposition = f'attachment; filename*0="a.exe"; filename*{"9" * 5000}="b"'
    found = check(
        corpus.raw_attachment(TEXT, "application/octet-stream", disposition),
        policy,
    )
    assert found.banned
    assert not found.unchecked


# --- 3. zip: names first, every place a name can be ------------------------


def _with_method(data: bytes, method: int) -> bytes:
    """A stored zip relabelled with another compression method."""
    out = bytearray(data)
    pos = out.find(b"PK\x03\x04")
    while pos >= 0:
        struct.pack_into("<H", out, pos + 8, method)
        pos = out.find(b"PK\x03\x04", pos + 4)
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        struct.pack_into("<H", out, pos + 10, method)
        pos = out.find(b"PK\x01\x02", pos + 4)
    return bytes(out)


@pytest.mark.parametrize("method", [9, 98, 97, 19, 95])
def test_zip_method_the_stdlib_cannot_read(policy, method):
    """Deflate64, PPMd, WavPack, LZ77, xz: invoice.exe is banned by name."""
    data = _with_method(
        corpus.zip_of({"invoice.exe": TEXT}, zipfile.ZIP_STORED), method
    )
    found = check(corpus.with_attachment(data, "files.zip"), policy)
    assert any("invoice.exe" in b for b in found.banned), found


def test_zip_member_no_tool_can_read_is_unchecked(policy):
    """A member whose data nothing can decode is undecodable, not skipped."""
    data = _with_method(
        corpus.zip_of({"notes.txt": b"\xff" * 300}, zipfile.ZIP_STORED), 98
    )
    found = check(corpus.with_attachment(data, "files.zip"), policy)
    assert Verdict.UNCHECKED is verdict_of(found), found
    assert any(u.startswith("not decoded: zip") for u in found.unchecked)


def test_zip_local_header_name_differs_from_central(policy):
    """A streaming unzipper shows the local name: invoice.exe is banned."""
    data = corpus.zip_of({"invoice.txt": TEXT})
    local = data.find(b"invoice.txt")
    data = data[:local] + b"invoice.exe" + data[local + 11 :]
    found = check(corpus.with_attachment(data, "files.zip"), policy)
    assert any("invoice.exe" in b for b in found.banned), found


def test_zip_hidden_before_another_zip(policy):
    """Two zips back to back: the members of the first are checked too."""
    data = corpus.zip_of({"invoice.exe": TEXT}) + corpus.zip_of(
        {"readme.txt": TEXT}
    )
    found = check(corpus.with_attachment(data, "files.zip"), policy)
    assert any("invoice.exe" in b for b in found.banned), found


def test_zip_hidden_before_another_zip_content(policy):
    """A PE named readme.txt in the first of two zips is found by content."""
    data = corpus.zip_of({"readme.txt": corpus.pe_exe()}) + corpus.zip_of(
        {"notes.txt": TEXT}
    )
    found = check(corpus.with_attachment(data, "files.zip"), policy)
    assert any(".exe-ms" in b for b in found.banned), found


def test_zip_unicode_path_extra_field(policy):
    """7z shows the Info-ZIP Unicode Path (0x7075): it is checked."""
    name = b"invoice.exe"
    extra = struct.pack("<HHB", 0x7075, 5 + len(name), 1)
    extra += struct.pack("<I", binascii.crc32(b"invoice.txt")) + name
    info = zipfile.ZipInfo("invoice.txt")
    info.extra = extra
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, TEXT)
    found = check(
        corpus.with_attachment(buffer.getvalue(), "files.zip"), policy
    )
    assert any("invoice.exe" in b for b in found.banned), found


# --- 4. header lines split on CRLF and LF only -----------------------------


@pytest.mark.parametrize(
    "separator",
    ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"],
    ids=repr,
)
def test_odd_line_separators_do_not_hide_a_name(policy, separator):
    """`attachment;<sep> filename="invoice.js"`: the name stays a param."""
    message = corpus.raw_attachment(
        TEXT,
        "application/octet-stream",
        f'attachment;{separator} filename="invoice.js"',
    )
    found = check(message, policy)
    assert any("invoice.js" in b for b in found.banned), found


# --- 7. what amavis decodes: uuencode, TNEF, attached messages -------------


def _uuencode(name: str, data: bytes, *, base64: bool = False) -> bytes:
    if base64:
        body = b"".join(
            binascii.b2a_base64(data[i : i + 57])
            for i in range(0, len(data), 57)
        )
        return f"begin-base64 644 {name}\n".encode() + body + b"====\n"
    body = b"".join(
        binascii.b2a_uu(data[i : i + 45]) for i in range(0, len(data), 45)
    )
    return f"begin 644 {name}\n".encode() + body + b"`\nend\n"


@pytest.mark.parametrize("base64", [False, True])
def test_uuencoded_exe_in_a_text_body(policy, base64):
    """A uuencoded invoice.exe in a plain text body is BANNED."""
    text = TEXT + _uuencode("invoice.exe", corpus.pe_exe(), base64=base64)
    message = corpus.multipart(
        [corpus.part(text, "text/plain", disposition=None, cte="7bit")]
    )
    found = check(message, policy)
    assert any("invoice.exe" in b for b in found.banned), found


def test_uuencoded_pe_behind_innocent_name(policy):
    """A uuencoded PE named notes.txt is banned by its content."""
    text = TEXT + _uuencode("notes.txt", corpus.pe_exe())
    message = corpus.multipart(
        [corpus.part(text, "text/plain", disposition=None, cte="base64")]
    )
    assert any(".exe-ms" in b for b in check(message, policy).banned)


def _tnef(attachments: list[tuple[bytes, bytes, str]]) -> bytes:
    """A TNEF stream: per attachment (8.3 title, data, MAPI long name)."""

    def attribute(level: int, attr: int, data: bytes) -> bytes:
        checksum = sum(data) & 0xFFFF
        return (
            struct.pack("<BII", level, attr, len(data))
            + data
            + struct.pack("<H", checksum)
        )

    out = b"\x78\x9f\x3e\x22" + b"\x01\x00"
    out += attribute(1, 0x00089006, b"\x01\x00\x00\x00")  # attTnefVersion
    for title, data, long_name in attachments:
        out += attribute(2, 0x00069002, b"\0" * 14)  # attAttachRendData
        out += attribute(2, 0x00018010, title + b"\0")
        out += attribute(2, 0x0006800F, data)
        if long_name:
            raw = long_name.encode("utf-16-le") + b"\0\0"
            props = struct.pack("<IHHI", 1, 0x001F, 0x3707, 1)
            props += (
                struct.pack("<I", len(raw)) + raw + b"\0" * (-len(raw) % 4)
            )
            out += attribute(2, 0x00069005, props)
    return out


def test_tnef_attachment_title_is_checked(policy):
    """winmail.dat holding INVOICE.EXE is BANNED (amavis decodes TNEF)."""
    tnef = _tnef([(b"INVOICE.EXE", TEXT, "")])
    found = check(
        corpus.with_attachment(tnef, "winmail.dat", "application/ms-tnef"),
        policy,
    )
    assert any("invoice.exe" in b for b in found.banned), found


def test_tnef_long_file_name_and_content(policy):
    """The MAPI long name and the bytes of a TNEF attachment are checked."""
    tnef = _tnef(
        [
            (b"REPORT~1.PDF", TEXT, "report.pdf.js"),
            (b"PHOTO.JPG", corpus.pe_exe(), ""),
        ]
    )
    found = check(
        corpus.with_attachment(tnef, "winmail.dat", "application/ms-tnef"),
        policy,
    )
    assert any("report.pdf.js" in b for b in found.banned), found
    assert any(".exe-ms" in b for b in found.banned), found


def test_broken_tnef_is_unchecked(policy):
    """A TNEF stream we cannot follow is not decoded: UNCHECKED."""
    tnef = _tnef([(b"A.TXT", TEXT, "")])[:40]
    found = check(corpus.with_attachment(tnef, "winmail.dat"), policy)
    assert Verdict.UNCHECKED is verdict_of(found), found


def _forward(message: bytes, name: str = "fwd.eml") -> bytes:
    return corpus.multipart(
        [
            corpus.part(TEXT, "text/plain", disposition=None, cte="7bit"),
            corpus.part(
                message,
                "message/rfc822",
                disposition=f'attachment; filename="{name}"',
                cte="7bit",
            ),
        ]
    )


def test_names_in_messages_attached_at_depth(policy):
    """invoice.exe in a message attached to an attached attached message."""
    message = corpus.with_attachment(corpus.pe_exe(), "invoice.exe")
    for _ in range(4):
        message = _forward(message)
    found = check(message, policy)
    assert any("invoice.exe" in b for b in found.banned), found


def test_eml_attachment_is_read_as_a_message(policy):
    """An .eml sent as octet-stream opens as a message: its parts count."""
    inner = corpus.with_attachment(TEXT, "invoice.scr", subject="Inner")
    message = corpus.with_attachment(inner, "scan.eml")
    found = check(message, policy)
    assert any("invoice.scr" in b for b in found.banned), found


def test_message_rfc822_that_is_a_program(policy):
    """A "message/rfc822" part that holds a PE is judged by its bytes."""
    message = corpus.raw_attachment(
        corpus.pe_exe(), "message/rfc822", "attachment"
    )
    assert any(".exe-ms" in b for b in check(message, policy).banned)


# --- 8. deceptive names ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "invoice\u202etxt.pdf",
        "invoice\u202dtxt.pdf",
        "report\u2066.pdf",
        "report\u200f.pdf",
        "report\u061c.pdf",
        "report\u200b.pdf",
        "report\ufeff.pdf",
        "report\u2060.pdf",
        "report\u200d.pdf",
        "report\x01.pdf",
    ],
    ids=ascii,
)
def test_deceptive_name_is_banned_by_policy(policy, name):
    """A name with bidi, invisible or control characters is a trick."""
    encoded = "".join(f"%{b:02X}" for b in name.encode())
    message = corpus.raw_attachment(
        TEXT, "application/pdf", f"attachment; filename*=utf-8''{encoded}"
    )
    found = check(message, policy)
    assert any(b.startswith("deceptive name:") for b in found.banned), found


@pytest.mark.parametrize(
    "name",
    [
        "\u0646\u06cc\u0645\u200c\u0641\u0627\u0635\u0644\u0647.pdf",
        "\u0915\u094d\u200d\u0937.pdf",
        "quarterly report.pdf",
    ],
    ids=ascii,
)
def test_joiners_inside_words_are_not_deceptive(policy, name):
    """ZWNJ/ZWJ between letters (Persian, Devanagari) are ordinary text."""
    encoded = "".join(f"%{b:02X}" for b in name.encode())
    message = corpus.raw_attachment(
        TEXT, "application/pdf", f"attachment; filename*=utf-8''{encoded}"
    )
    assert [] == check(message, policy).banned


def test_folded_name_with_tab_is_not_deceptive(policy):
    """Header folding leaves a tab inside a long quoted name: not a trick."""
    message = corpus.raw_attachment(
        TEXT,
        "application/pdf",
        'attachment; filename="Quarterly report for the board\r\n\tof 2026.pdf"',
    )
    assert [] == check(message, policy).banned


# --- 9. today's malware containers -----------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Invoice.one",
        "notes.onepkg",
        "Documents.library-ms",
        "search.search-ms",
        "share.searchConnector-ms",
        "open.url",
        "site.website",
        "control.settingcontent-ms",
        "app.appref-ms",
        "connect.rdp",
        "console.msc",
        "query.iqy",
        "sheet.slk",
        "box.wsb",
        "update.msu",
        "disk.vhdx",
        "setup.dmg",
        "app.apk",
        "loader.mjs",
        "addin.ppam",
        "tool.xbap",
        "cursor.ani",
        "help.chm",
        "run.hta",
        "job.wsf",
        "a.jse",
        "a.vbe",
        "a.ps1",
        "a.xll",
        "disc.iso",
        "disc.img",
        "a.lnk",
        "a.appx",
        "a.msix",
    ],
)
def test_malware_container_extensions(policy, name):
    """Every container on the Defender, Gmail and campaign lists is banned."""
    found = check(corpus.with_attachment(TEXT, name), policy)
    assert Verdict.BANNED is verdict_of(found), (name, found)


@pytest.mark.parametrize(
    "name", ["logo.svg", "budget.docm", "invite.ics", "key.cer", "data.csv"]
)
def test_ordinary_extensions_stay_clean(policy, name):
    """Files real mail carries are not banned by the extension list."""
    found = check(corpus.with_attachment(TEXT, name), policy)
    assert [] == found.banned
