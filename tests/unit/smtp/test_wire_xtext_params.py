"""Byte-level DATA handling, xtext and SMTP parameter parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailfilter.smtp import params as smtpparams
from mailfilter.smtp import replies, xtext
from mailfilter.smtp.envelope import MailParams, Recipient
from mailfilter.smtp.wire import (
    dot_stuff,
    has_bare_line_ends,
    has_dot_lines,
    normalise_line_ends,
    unstuff,
)


def test_unstuff_removes_one_leading_dot_per_line():
    """Every line that starts with a dot loses exactly one (RFC 5321 4.5.2)."""
    assert b"a\r\n.b\r\nc\r\n.\r\n" == unstuff(b"a\r\n..b\r\nc\r\n..\r\n")
    assert b"x\r\n" == unstuff(b".x\r\n")


@given(
    st.lists(
        st.binary(max_size=40).filter(
            lambda b: b"\r" not in b and b"\n" not in b
        ),
        max_size=20,
    )
)
def test_stuff_then_unstuff_is_identity(lines):
    """dot_stuff and unstuff are inverse on CRLF-terminated text."""
    data = b"".join(line + b"\r\n" for line in lines)
    stuffed = dot_stuff(data)
    assert b"\r\n.\r\n" not in b"\r\n" + stuffed
    assert data == unstuff(stuffed)


def test_dot_stuff_adds_final_crlf():
    """Data that does not end in CRLF gets one, so the final dot is alone."""
    assert b"abc\r\n" == dot_stuff(b"abc")


def test_bare_line_ends_detected_and_normalised():
    """Bare CR and bare LF become CRLF; clean data is left alone."""
    assert not has_bare_line_ends(b"a\r\nb\r\n")
    assert has_bare_line_ends(b"a\nb\r\n")
    assert has_bare_line_ends(b"a\rb\r\n")
    assert b"a\r\nb\r\nc\r\n" == normalise_line_ends(b"a\nb\rc\r\n")


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("abc", "abc"),
        ("a+2Bb", "a+b"),
        ("a+3Db", "a=b"),
        ("+20x", " x"),
        ("a+zz", "a+zz"),
    ],
)
def test_xtext_decode(encoded, decoded):
    """+XX escapes decode; a malformed + stays as it is."""
    assert decoded == xtext.decode(encoded)


@given(st.text(max_size=50))
def test_xtext_round_trip(text):
    """encode then decode gives the text back, and the encoding is printable ASCII."""
    enc = xtext.encode(text)
    assert all(33 <= ord(c) <= 126 for c in enc)
    assert "=" not in enc
    assert text.encode("utf-8", "surrogateescape") == xtext.decode(enc).encode(
        "latin-1"
    )


def test_split_address_null_sender_and_params():
    """MAIL FROM:<> gives the empty sender and its parameters."""
    assert ("", ["SIZE=10"]) == smtpparams.split_address(
        "FROM:<> SIZE=10", "FROM:"
    )
    assert ('"a b"@c', []) == smtpparams.split_address(
        'FROM:<"a b"@c>', "FROM:"
    )


@pytest.mark.parametrize(
    "bad",
    ["FROM:<a\r@b>", "FROM:<a\x00b@c>", "FROM:<a<b@c>", "FROM:<unterminated"],
)
def test_split_address_refuses_unsafe_addresses(bad):
    """Control characters and stray brackets never reach the downstream command line."""
    with pytest.raises(smtpparams.ParamError):
        smtpparams.split_address(bad, "FROM:")


def test_parse_mail_all_parameters():
    """SIZE, BODY, SMTPUTF8, RET and ENVID are parsed; AUTH is ignored."""
    params = smtpparams.parse_mail(
        [
            "SIZE=123",
            "BODY=8bitmime",
            "SMTPUTF8",
            "RET=hdrs",
            "ENVID=x+2B",
            "AUTH=<>",
        ]
    )
    assert MailParams(123, "8BITMIME", True, "HDRS", "x+2B") == params


@pytest.mark.parametrize(
    ("param", "reply"),
    [
        ("SIZE=abc", replies.SIZE_SYNTAX),
        ("BODY=BINARYMIME", replies.BODY_SYNTAX),
        ("SMTPUTF8=1", replies.SMTPUTF8_SYNTAX),
        ("RET=ALL", replies.RET_SYNTAX.format(value="ALL")),
        ("FOO=1", replies.MAIL_PARAM_UNKNOWN.format(param="FOO=1")),
    ],
)
def test_parse_mail_errors(param, reply):
    """Each bad MAIL parameter gets amavis's reply."""
    with pytest.raises(smtpparams.ParamError) as info:
        smtpparams.parse_mail([param])
    assert reply == info.value.reply


def test_parse_rcpt_notify_and_orcpt():
    """NOTIFY and ORCPT are kept; NEVER may not be combined."""
    assert Recipient(
        "u@x", "SUCCESS,DELAY", "rfc822;u@x"
    ) == smtpparams.parse_rcpt(
        "u@x", ["NOTIFY=success,delay", "ORCPT=rfc822;u@x"]
    )
    with pytest.raises(smtpparams.ParamError):
        smtpparams.parse_rcpt("u@x", ["NOTIFY=NEVER,SUCCESS"])
    with pytest.raises(smtpparams.ParamError):
        smtpparams.parse_rcpt("u@x", ["NOTIFY="])
    with pytest.raises(smtpparams.ParamError) as info:
        smtpparams.parse_rcpt("u@x", ["XYZ=1"])
    assert replies.RCPT_PARAM_UNKNOWN.format(param="XYZ") == info.value.reply


def test_parse_xforward():
    """XFORWARD values are xtext-decoded and [UNAVAILABLE] becomes None."""
    assert {
        "NAME": None,
        "ADDR": "192.0.2.1",
        "HELO": "a b",
    } == smtpparams.parse_xforward(
        "NAME=[UNAVAILABLE] ADDR=192.0.2.1 HELO=a+20b"
    )
    with pytest.raises(smtpparams.ParamError) as info:
        smtpparams.parse_xforward("COLOR=red")
    assert (
        replies.XFORWARD_BAD_ATTR.format(attr="COLOR=red") == info.value.reply
    )
    with pytest.raises(smtpparams.ParamError):
        smtpparams.parse_xforward("NAME")


def test_spamd_truncation_keeps_header_and_cuts_at_a_line():
    """Big mail is cut for spamd at a line end below the limit; small mail is untouched."""
    from mailfilter.scan.spamassassin import truncate

    msg = b"Subject: x\r\nFrom: a@b\r\n\r\n" + b"0123456789\r\n" * 100
    assert msg is truncate(msg, 10_000)
    cut = truncate(msg, 100)
    assert cut.endswith(b"\r\n")
    assert len(cut) <= 100
    assert cut.startswith(b"Subject: x\r\nFrom: a@b\r\n\r\n")
    huge_header = b"X-Long: " + b"a" * 500 + b"\r\n\r\nbody\r\n"
    assert truncate(huge_header, 100).startswith(
        b"X-Long: " + b"a" * 500 + b"\r\n\r\n"
    )


_ANY_ARG = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
    max_size=120,
)


@given(_ANY_ARG)
def test_command_argument_parsers_only_ever_raise_param_error(arg):
    """Whatever a client sends after MAIL/RCPT/XFORWARD, the parsers answer with a reply, never crash."""
    for parse in (
        lambda a: smtpparams.parse_mail(
            smtpparams.split_address(a, "FROM:")[1]
        ),
        lambda a: smtpparams.parse_rcpt(
            "u@x", smtpparams.split_address(a, "TO:")[1]
        ),
        smtpparams.parse_xforward,
    ):
        try:
            parse(arg)
        except smtpparams.ParamError as exc:
            code = exc.reply[:1]
        else:
            code = "2"
        assert code in "245"


@given(_ANY_ARG)
def test_accepted_addresses_carry_no_line_breaks(arg):
    """An address that passes split_address can never break a downstream command line."""
    try:
        address, _ = smtpparams.split_address("FROM:" + arg, "FROM:")
    except smtpparams.ParamError:
        return
    assert not any(c in address for c in "\r\n\0<>")


def test_dot_stuff_trusts_a_no_dot_lines_promise_only_when_given():
    """dot_lines=False skips the search; the default always stuffs correctly."""
    data = b"a\r\n.b\r\n"
    assert b"a\r\n..b\r\n" == dot_stuff(data)
    assert has_dot_lines(data)
    assert not has_dot_lines(b"a\r\nb.\r\n")
    assert b"x\r\n" == dot_stuff(b"x", dot_lines=False)
