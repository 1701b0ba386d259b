"""Unique names, host escaping, folder names and extension sanitising."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maildir import folders, names

NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+R[0-9a-f]{32}\.[^/:,]+$")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("mx1.example.org", "mx1.example.org"),
        ("a/b", "a\\057b"),
        ("a:b", "a\\072b"),
        ("a,S=1", "a\\054S\\0751"),
        ("a\\b", "a\\134b"),
        ("é", "\\303\\251"),
        ("", "localhost"),
        ("..", "localhost"),
    ],
)
def test_escape_host(raw, escaped):
    """Hostile hostnames are escaped so they cannot add '/', ':' or ',S='."""
    assert escaped == names.escape_host(raw)


def test_escape_host_is_bounded():
    """A 64-character (or longer, escaped) host part is cut to 96 chars."""
    assert 96 >= len(names.escape_host("é" * 64))


def test_unique_name_shape_and_frozen_clock(monkeypatch):
    """With the clock frozen, names stay unique thanks to the random part."""
    monkeypatch.setattr(names, "clock", lambda: 1_000_000_000.5)
    made = {names.unique_name("mx") for _ in range(20_000)}
    assert 20_000 == len(made)
    assert all(NAME.match(n) for n in list(made)[:50])


def test_new_name_has_sizes():
    """The new/ name carries S= (stored size) and W= (CRLF size)."""
    assert "x,S=10,W=12" == names.new_name("x", 10, 12)


@pytest.mark.parametrize(
    ("logical", "on_disk"),
    [
        ("Junk", ".Junk"),
        ("Résumé", ".R&AOk-sum&AOk-"),
        ("a&b", ".a&-b"),
        ("a.b", ".a.b"),
        ("INBOX.Sent", ".Sent"),
        ("日本語", ".&ZeVnLIqe-"),
    ],
)
def test_fs_name(logical, on_disk):
    """Logical names map to Maildir++ directories in modified UTF-7."""
    assert on_disk == folders.fs_name(logical)


@given(st.text(min_size=1, max_size=30).filter(lambda s: "." not in s))
def test_mutf7_round_trip(text):
    """Decoding the encoding gives the original component back."""
    assert text == folders.mutf7_decode(folders.mutf7_encode(text))


INJECTION = [
    "../../etc",
    "..",
    ".",
    "",
    "a/b",
    "/abs",
    "~root",
    ".x",
    "x.",
    "x..x",
    "INBOX..x",
    "INBOX/x",
    "a\0b",
    "a\rb",
    "a\nb",
    "x" * 300,
    "yep/nope",
    "a\udcffb",
]


@pytest.mark.parametrize("ext", INJECTION)
def test_hostile_extensions_mean_inbox(ext):
    """Traversal, separators, control characters and empty levels -> INBOX."""
    assert None is folders.from_extension(ext)


@pytest.mark.parametrize("ext", ["INBOX", "inbox", "Inbox", "iNbOx"])
def test_inbox_case_variants(ext):
    """Any case of INBOX is the INBOX itself, not a folder."""
    assert None is folders.from_extension(ext)


@pytest.mark.parametrize(
    ("ext", "folder"),
    [
        ("Junk", "Junk"),
        ("a.b", "a.b"),
        ("new", "new"),
        ("&", "&"),
        (b"R\xc3\xa9sum\xc3\xa9", "Résumé"),
        (b"\xff", None),
        (None, None),
    ],
)
def test_valid_extensions(ext, folder):
    """Ordinary extensions name folders; undecodable bytes mean INBOX."""
    assert folder == folders.from_extension(ext)


def test_create_list_remove(tmp_path):
    """Folders get tmp/new/cur and the marker, are listed and removed."""
    import maildir

    root = maildir.create(tmp_path / "M")
    path = maildir.create_folder(root, "a.Résumé")
    assert {"tmp", "new", "cur", "maildirfolder"} == {
        p.name for p in path.iterdir()
    }
    maildir.create_folder(root, "Junk")
    (root / ".Evil").symlink_to("/etc")
    assert ["Junk", "a.Résumé"] == maildir.list_folders(root)
    maildir.remove_folder(root, "Junk")
    assert ["a.Résumé"] == maildir.list_folders(root)
    assert [] == [p.name for p in (root / "tmp").iterdir()]


def test_remove_inbox_refused(tmp_path):
    """INBOX is the Maildir itself and cannot be removed as a folder."""
    import maildir

    root = maildir.create(tmp_path / "M")
    with pytest.raises(folders.FolderNameError):
        maildir.remove_folder(root, "INBOX")
