"""Content types come out in amavis's dotted short form."""

from __future__ import annotations

import pytest

from mailfilter.scan import filetype
from mailfilter.scan.filetype import short_types
from tests.support import corpus


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (corpus.pe_exe(), (".exe", ".exe-ms")),
        (b"MZ\x90\x00\x03\x00\x00\x00" + b"\0" * 60, (".exe", ".exe-ms")),
        (corpus.elf(), (".exe", ".exe-unix", ".elf")),
        (corpus.macho(), (".exe", ".macho")),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + b"\0" * 40, (".exe", ".macho")),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\0" * 40, (".class",)),
        (corpus.shebang(), (".script",)),
        (corpus.lnk(), (".lnk",)),
        (corpus.zip_of({"a": b"b"}), (".zip",)),
        (corpus.gzip_of(b"x"), (".gz",)),
        (corpus.tar_of({"a": b"b"}), (".tar",)),
        (corpus.cab_of("a", b"b"), (".cab",)),
        (b"BZh91AY&SY", (".bz2",)),
        (b"\xfd7zXZ\x00\x00", (".xz",)),
        (b"Rar!\x1a\x07\x00", (".rar",)),
        (b"%PDF-1.7\n", (".pdf",)),
        (b"MZ is a text, not a program\r\n", (".asc",)),
        ("Grüße aus Köln\r\n".encode(), (".asc",)),
        (b"<!DOCTYPE html><html></html>", (".html",)),
        (b"-----BEGIN PGP MESSAGE-----\r\n", (".asc", ".pgp", ".pgp.enc")),
        (b"", (".empty",)),
    ],
)
def test_short_types(data, expected):
    """Each signature maps to its amavis short types."""
    assert expected == short_types(data)


def test_pe_dll():
    """A PE with IMAGE_FILE_DLL set is .exe,.dll."""
    data = bytearray(corpus.pe_exe())
    data[0x40 + 22] = 0x02
    data[0x40 + 23] = 0x21
    assert (".exe", ".dll") == short_types(bytes(data))


def test_unknown_binary_uses_libmagic():
    """Binary data the table does not know goes to libmagic."""
    # libmagic reads these bytes as a Targa image; the table does not.
    assert (".img",) == short_types(bytes(range(256)) * 4)
    assert (".dat",) == short_types(b"\x00\x01" * 64)


def test_broken_libmagic_never_hides_mz(monkeypatch):
    """With libmagic failing, executables are still typed by the table."""
    # Mocked: a broken libmagic cannot be produced on demand.
    monkeypatch.setattr(filetype._MAGIC, "describe", lambda data: "")
    assert (".exe", ".exe-ms") == short_types(corpus.pe_exe())
    assert (".dat",) == short_types(bytes(range(256)) * 4)


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        (
            "PE32 executable (GUI) Intel 80386, for MS Windows",
            (".exe", ".exe-ms"),
        ),
        (
            "PE32 executable (DLL) (GUI) Intel 80386, for MS Windows",
            (".exe", ".dll"),
        ),
        ("ELF 64-bit LSB executable, x86-64", (".exe", ".exe-unix", ".elf")),
        ("COM executable for DOS", (".asc",)),
        ("Composite Document File V2 Document", (".doc",)),
        ("data", (".dat",)),
    ],
)
def test_libmagic_descriptions(monkeypatch, description, expected):
    """libmagic descriptions map to short types, first match wins."""
    monkeypatch.setattr(filetype._MAGIC, "describe", lambda data: description)
    assert expected == filetype.from_libmagic(b"\x00\x01")
