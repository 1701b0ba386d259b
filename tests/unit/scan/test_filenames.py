"""File names are decoded and normalised the way clients will show them."""

from __future__ import annotations

import pytest

from mailfilter.scan.filenames import (
    decode_words,
    normalise,
    param_values,
    part_names,
    split_value,
)


def names(disposition="", content_type="application/octet-stream"):
    return part_names(
        split_value(content_type)[1], split_value(disposition)[1]
    )


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="report.pdf"', ("report.pdf",)),
        (
            'attachment; filename*0="invoice.pdf."; filename*1="exe"',
            ("invoice.pdf.exe",),
        ),
        ("attachment; filename*=utf-8'en-US'payload%2Eexe", ("payload.exe",)),
        (
            "attachment; filename*0*=utf-8''%E2%80%AEinv; filename*1=\"oice.exe\"",
            ("invoice.exe", "\u202einvoice.exe"),
        ),
        ("attachment; filename*=iso-8859-1''r%E9sum%E9.pdf", ("résumé.pdf",)),
        (
            'attachment; filename="=?utf-8?B?aW52b2ljZS5leGU=?="',
            ("invoice.exe",),
        ),
        (
            'attachment; filename="=?iso-8859-1?Q?r=E9sum=E9_final.pdf?="',
            ("résumé final.pdf",),
        ),
        ('attachment; filename="INVOICE.EXE. . ."', ("invoice.exe",)),
        (
            'attachment; filename="a\u200b.e\u00adxe\ufeff"',
            ("a.exe", "a\u200b.e\u00adxe\ufeff"),
        ),
        (
            'attachment; filename="invoice.\uff45\uff58\uff45"',
            ("invoice.exe",),
        ),
        ("attachment; filename=bad boy.exe", ("bad boy.exe",)),
        ('attachment (comment); filename=(x)"a.scr"', ("a.scr",)),
        ("attachment", ()),
        ('attachment; filename=""', ()),
    ],
)
def test_disposition_names(disposition, expected):
    """Content-Disposition filename= forms decode to the name a client shows."""
    assert expected == names(disposition)


def test_name_and_filename_both_kept():
    """Differing Content-Type name= and Disposition filename= are both kept."""
    assert ("setup.exe", "notes.txt") == names(
        'attachment; filename="notes.txt"', 'application/x; name="setup.exe"'
    )


def test_plain_and_extended_both_kept():
    """A plain filename= and an RFC 2231 filename*= are both returned."""
    params = split_value(
        "attachment; filename=\"a.txt\"; filename*=utf-8''a.exe"
    )[1]
    assert ["a.txt", "a.exe"] == param_values(params, "filename")


@pytest.mark.parametrize(
    "control",
    [
        "\u202e",
        "\u202d",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200e",
        "\u200f",
    ],
)
def test_bidi_controls_removed(control):
    """Bidi controls (RTLO and friends) are removed from names."""
    assert "invoicefdp.exe" == normalise(f"invoice{control}fdp.exe")


def test_encoded_words_joined_and_unknown_charset():
    """Adjacent encoded-words join; an unknown charset falls back to UTF-8."""
    assert "ab.exe" == decode_words("=?utf-8?Q?a?= =?x-unknown?Q?b.exe?=")


def test_split_value_lowercases_type_and_names():
    """The first word and parameter names are lower case, values kept."""
    assert (
        "text/plain",
        [("charset", "UTF-8"), ("name", "A.TXT")],
    ) == split_value('Text/Plain; Charset=UTF-8; NAME="A.TXT"')


def test_too_many_sections_ignored():
    """RFC 2231 section numbers beyond the cap are ignored, not allocated."""
    params = [("filename*0", "a"), ("filename*99999999", ".exe")]
    assert ["a"] == param_values(params, "filename")
