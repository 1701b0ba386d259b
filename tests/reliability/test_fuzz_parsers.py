"""Fuzzing the parsers that read what a client or a message author wrote.

The SMTP argument parsers (MAIL/RCPT parameters, XFORWARD, xtext), the
header and file-name decoders and the Maildir folder-name sanitiser take
any input: no exception other than their own refusal escapes, and what
they accept keeps its invariants: nothing that could end a command line or
add a header line reaches 10025, every name a decorated ".exe" is known by
still ends in ".exe", and a folder name from a recipient extension never
leaves the Maildir.

Short mode: a fixed (derandomized) set of examples per target. Long mode:
10**6 examples spread over the targets (the `fuzz()` shares add up to it).
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import unicodedata
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from maildir import folders
from mailfilter.decision import headers
from mailfilter.downstream import transaction
from mailfilter.scan import filenames
from mailfilter.smtp import params as smtpparams
from mailfilter.smtp import xtext
from mailfilter.smtp.envelope import Client
from tests.reliability.support import fuzz

pytestmark = pytest.mark.reliability

SUITE = "fuzz"
# Characters that matter to the parsers, mixed with arbitrary text.
_SPECIAL = st.sampled_from(
    list("<>\"\\ :;=+@,.*%'\r\n\t\x00\x0b\x0c\x1c\x7f\x85\u2028\u202e")
    + [
        "FROM:",
        "TO:",
        "SIZE=",
        "BODY=",
        "RET=",
        "ENVID=",
        "NOTIFY=",
        "ORCPT=rfc822;",
        "SMTPUTF8",
        "+0D+0A",
        "+00",
        "[UNAVAILABLE]",
        "NAME=",
        "ADDR=",
        "HELO=",
        "=?utf-8?b?",
        "=?",
        "?=",
        "..",
        "INBOX.",
        "&",
        "&-",
        "/",
        "~",
    ]
)
_TEXT = st.lists(st.one_of(_SPECIAL, st.text(max_size=8)), max_size=24).map(
    "".join
)
_CAPS = {
    "XFORWARD": "NAME ADDR PORT PROTO HELO IDENT SOURCE",
    "DSN": "",
    "8BITMIME": "",
    "SMTPUTF8": "",
}
_RAN: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _report(request: pytest.FixtureRequest):
    """One results line per target: examples run, and whether one broke it."""
    before = Counter(_RAN)
    yield
    from tests.reliability.conftest import write_record

    for case, runs in (_RAN - before).items():
        broken = getattr(request.node, "reliability_outcome", "") != "passed"
        write_record(
            SUITE,
            case,
            runs=runs,
            verdicts={"invariant broken": int(broken)},
        )


def one_line(command: bytes) -> bool:
    """A command is one line: CRLF at its end and nowhere else, no NUL."""
    body = command.removesuffix(b"\r\n")
    return command.endswith(b"\r\n") and not any(
        c in body for c in (b"\r", b"\n", b"\x00")
    )


def _refusal_is_a_reply(exc: smtpparams.ParamError) -> None:
    """A refusal is one 5xx reply line (the text may echo the input)."""
    assert exc.reply[:1] == "5"
    assert "\r" not in exc.reply
    assert "\n" not in exc.reply


@fuzz(300, 150_000)
@given(keyword=st.sampled_from(["FROM:", "TO:"]), arg=_TEXT)
def test_mail_and_rcpt_arguments(keyword: str, arg: str) -> None:
    """MAIL/RCPT: refused with a reply, or one clean line downstream."""
    _RAN["SMTP MAIL/RCPT arguments"] += 1
    try:
        address, params = smtpparams.split_address(keyword + arg, keyword)
        if keyword == "FROM:":
            mail = smtpparams.parse_mail(params)
            command = transaction._mail_command(address, mail, _CAPS)
        else:
            rcpt = smtpparams.parse_rcpt(address or "x@y", params)
            command = transaction._rcpt_command(rcpt, True, False)
    except smtpparams.ParamError as exc:
        _refusal_is_a_reply(exc)
        return
    assert not any(c in address for c in "<>\r\n\x00")
    assert one_line(command), command


@fuzz(300, 150_000)
@given(arg=_TEXT)
def test_xforward(arg: str) -> None:
    """XFORWARD: its values reach 10025 and our Received field as one line."""
    _RAN["SMTP XFORWARD"] += 1
    try:
        attrs = smtpparams.parse_xforward(arg)
    except smtpparams.ParamError as exc:
        _refusal_is_a_reply(exc)
        return
    assert set(attrs) <= smtpparams.XFORWARD_ATTRS
    client = Client(**{k.lower(): v for k, v in attrs.items() if k != "LOGIN"})
    command = transaction._xforward_command(client, _CAPS)
    assert command == b"" or one_line(command), command
    command.decode("ascii")  # xtext on the wire is ASCII
    name, value = headers.received(
        helo=client.helo or "",
        client_addr=client.addr,
        myhostname="filter.test.invalid",
        local_addr=("127.0.0.1", 10024),
        protocol="ESMTP",
        mail_id="abc",
        recipients=["u@example.com"],
    )
    field = headers.fold(name, value)
    lines = field.split(b"\r\n")
    assert lines[-1] == b""
    assert lines[0].startswith(b"Received:")
    # Continuation lines only: the value can never add a header field.
    assert all(line[:1] == b"\t" for line in lines[1:-1]), field
    assert b"\n" not in field.replace(b"\r\n", b"")
    assert b"\r" not in field.replace(b"\r\n", b"")


@fuzz(300, 100_000)
@given(text=st.text())
def test_xtext(text: str) -> None:
    """xtext: the encoding is printable ASCII without '=' and '+' alone."""
    _RAN["xtext encode/decode"] += 1
    encoded = xtext.encode(text)
    assert all(0x21 <= ord(c) <= 0x7E and c != "=" for c in encoded)
    raw = text.encode("utf-8", "surrogateescape")
    assert xtext.decode(encoded) == raw.decode("latin-1")


@fuzz(300, 150_000)
@given(text=_TEXT)
def test_header_decoders_take_anything(text: str) -> None:
    """decode_words, split_value, part_names and normalise never raise."""
    _RAN["header/name decoders, any input"] += 1
    filenames.decode_words(text)
    head, params = filenames.split_value(text)
    assert head == head.strip().lower()
    for name, _ in params:
        assert name == name.lower()
        assert not any(c in name for c in ' ;="')
    assert all(filenames.part_names(params, params))
    # The form rules match: nothing invisible, nothing Windows drops.
    name = filenames.normalise(text)
    assert not any(unicodedata.category(c) in {"Cc", "Cf"} for c in name)
    assert name == name.lstrip()
    assert not name.endswith((".", " ", "\t"))


# A decorated ".exe": the disguises of the class, in any combination.
_INVISIBLE = st.sampled_from(
    [
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\u00ad",
        "\u202e",
        "\u202a",
        "\u2066",
        "\u200e",
        "\x00",
        "\x07",
        "\u034f",
    ]
)
_DISGUISED_EXE = st.tuples(
    st.lists(_INVISIBLE, max_size=3),
    st.sampled_from(["exe", "EXE", "eXe", "\uff45\uff58\uff45", "ＥＸＥ"]),
    st.lists(_INVISIBLE, max_size=3),
    st.sampled_from(["", ".", ". .", "  ", ".\t", "..."]),
).map(lambda t: "." + "".join(t[0]) + t[1] + "".join(t[2]) + t[3])
_STEM = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_characters='"\\;\r\n', exclude_categories=["Cs"]
    ),
    min_size=1,
    max_size=12,
)


def _encoded(name: str, how: str) -> tuple[str, str]:
    """(Content-Disposition value, parameter) carrying `name` in one form."""
    raw = name.encode("utf-8")
    if how == "quoted":
        return f'attachment; filename="{name}"', "filename"
    if how == "rfc2047-b":
        word = base64.b64encode(raw).decode()
        return f'attachment; filename="=?utf-8?B?{word}?="', "filename"
    if how == "rfc2047-q":
        word = "".join(f"={b:02X}" for b in raw)
        return f'attachment; filename="=?UTF-8?Q?{word}?="', "filename"
    if how == "rfc2231":
        quoted = urllib.parse.quote_from_bytes(raw, safe="")
        return f"attachment; filename*=utf-8''{quoted}", "filename"
    # RFC 2231 continuations, split mid-name.
    quoted = urllib.parse.quote_from_bytes(raw, safe="")
    cut = max(1, len(quoted) // 2)
    while quoted[cut - 1] == "%" or quoted[cut - 2 : cut - 1] == "%":
        cut += 1
    return (
        (
            f"attachment; filename*0*=utf-8''{quoted[:cut]}; "
            f"filename*1*={quoted[cut:]}"
        ),
        "filename",
    )


@fuzz(300, 150_000)
@given(
    stem=_STEM,
    ext=_DISGUISED_EXE,
    how=st.sampled_from(
        ["quoted", "rfc2047-b", "rfc2047-q", "rfc2231", "rfc2231-split"]
    ),
)
def test_disguised_exe_is_still_an_exe(stem: str, ext: str, how: str) -> None:
    """Every encoding and disguise of NAME.exe still yields a name *.exe."""
    _RAN["disguised .exe names decode to .exe"] += 1
    value, _ = _encoded(stem + ext, how)
    _, params = filenames.split_value(value)
    names = filenames.part_names([], params)
    assert any(n.endswith(".exe") for n in names), (value, names)


@fuzz(300, 150_000)
@given(ext=st.one_of(_TEXT, st.binary(max_size=40)))
@example(ext="INBOX.INBOX.Junk")
def test_folder_from_extension_stays_inside(ext: str | bytes) -> None:
    """A recipient extension maps to INBOX or to one folder of the Maildir."""
    _RAN["Maildir folder names from extensions"] += 1
    name = folders.from_extension(ext)
    if name is None:
        return
    # The name is canonical: INBOX is None, and it names the folder the
    # mail lands in ("INBOX.INBOX.x" is not "INBOX.x" stored as ".x").
    assert folders.normalise(name) == name
    fs = folders.fs_name(name)
    assert fs.startswith(".")
    assert fs not in {".", ".."}
    assert "/" not in fs
    assert "\x00" not in fs
    assert len(fs.encode()) <= 255
    root = Path("/srv/mail/u/Maildir")
    assert Path(os.path.normpath(root / fs)).parent == root
    assert folders.logical_name(fs) == name


@fuzz(100, 50_000)
@given(ext=_TEXT)
def test_folder_creation_on_disk_stays_inside(ext: str) -> None:
    """Creating the folder really makes one directory directly in the root."""
    _RAN["Maildir folders created on disk"] += 1
    name = folders.from_extension(ext)
    if name is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True)
        made = folders.create_folder(root, name)
        assert made.parent == root
        assert (made / "maildirfolder").is_file()
        outside = {p.name for p in Path(tmp).iterdir()}
        assert outside == {"Maildir"}
        assert folders.list_folders(root) == [name]


@fuzz(300, 100_000)
@given(text=_TEXT)
def test_mutf7_decode_refuses_cleanly(text: str) -> None:
    """Modified UTF-7 from disk: decoded, or refused with FolderNameError."""
    _RAN["Maildir mUTF-7 decode"] += 1
    try:
        decoded = folders.mutf7_decode(text)
    except folders.FolderNameError:
        return
    assert isinstance(decoded, str)


def test_long_shares_add_up_to_a_million() -> None:
    """The long mode runs 10**6 parser examples in all."""
    source = Path(__file__).read_text()
    shares = re.findall(r"@fuzz\(\d+, ([\d_]+)\)", source)
    assert len(shares) == 8
    assert sum(int(s) for s in shares) == 10**6
