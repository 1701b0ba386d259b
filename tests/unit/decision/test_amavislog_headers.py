"""amavis log lines, added header fields and the one-reply rule, against golden files.

Regenerate the expected files deliberately with REGENERATE_GOLDEN=1 and
review the diff (docs/engineering-rules.md, Rule 10).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailfilter.decision import headers
from mailfilter.decision.answers import one_response_for_all
from mailfilter.decision.verdict import Action, Decision, SpamReport, Verdict
from mailfilter.smtp import replies

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden"

from tests.support.loglines import CASES  # noqa: E402


def check_golden(name: str, text: str) -> None:
    """Compare with tests/data/golden/<name>; rewrite it when asked to."""
    path = GOLDEN / name
    if os.environ.get("REGENERATE_GOLDEN"):
        path.write_text(text)
    assert path.read_text() == text


def test_log_lines_match_golden():
    """Each Summary renders exactly the amavis line recorded in the golden file."""
    text = "".join(
        f"{name}: {summary.line()}\n" for name, summary in CASES.items()
    )
    check_golden("amavis-lines.txt", text)


def test_attacker_text_cannot_break_the_line():
    """CR, LF and NUL in fields are made visible; long fields are cut."""
    line = CASES["hostile"].line()
    assert "\r" not in line
    assert "\n" not in line
    assert "\\x0d\\x0a" in line
    assert len(line) < 700


def test_mailgraph_patterns_classify_our_lines():
    """mailgraph's own regexes count spam and virus lines.

    See docs/amavis-compat.md, "What mailgraph matches".
    """
    import re

    spam = re.compile(r"^\([\w-]+\) (Passed|Blocked) SPAM(?:MY)?\b")
    virus = re.compile(r"^\([\w-]+\) (Passed |Blocked )?(INFECTED|BANNED)\b")
    lines = {n: s.line() for n, s in CASES.items()}
    assert spam.match(lines["spam"])
    assert virus.match(lines["virus"])
    assert virus.match(lines["banned"])
    assert not spam.match(lines["clean"])
    assert not virus.match(lines["clean"])
    assert all("tag2=" not in line for line in lines.values())


def test_spam_header_fields_match_golden():
    """X-Spam-* fields in amavis format, folded at 78 columns."""
    report = SpamReport(
        7.3,
        5.0,
        (
            ("MISSING_DATE", 2.739),
            ("BAYES_99", 3.5),
            ("HTML_MESSAGE", 0.001),
            ("DKIM_VALID", -0.1),
        ),
    )
    decision = Decision(
        Verdict.SPAMMY,
        Action.PASS,
        spam_headers=True,
        spam_flag=True,
        tag_level=2.0,
        tag2_level=6.31,
    )
    fields = b"".join(
        headers.fold(n, v) for n, v in headers.spam_fields(report, decision)
    )
    check_golden("spam-headers.txt", fields.decode().replace("\r\n", "\n"))


def test_score_text():
    """Scores are rounded to 3 decimals with trailing zeros dropped."""
    assert "6.9" == headers.score_text(6.9)
    assert "0" == headers.score_text(-0.0001)
    assert "1000" == headers.score_text(1000.0)
    assert "-1.234" == headers.score_text(-1.2341)


def test_edit_strips_forged_spam_fields_and_tags_subject():
    """A sender's own X-Spam-Flag goes, the Subject gets the tag once, the body is untouched."""
    msg = (
        b"X-Spam-Flag: NO\r\nSubject: hello\r\nX-Spam-Status: No,\r\n tests=none\r\n"
        b"From: a@b\r\n\r\nX-Spam-Flag: body text stays\r\n"
    )
    out = headers.edit(msg, strip_spam=True, subject_tag="***SPAM*** ")
    assert (
        b"Subject: ***SPAM*** hello\r\nFrom: a@b\r\n\r\nX-Spam-Flag: body text stays\r\n"
    ) == out
    assert out == headers.edit(out, strip_spam=True, subject_tag="***SPAM*** ")


@pytest.mark.parametrize(
    "forged",
    [
        b"X-SPAM-FLAG: YES\r\n",
        b"x-spam-flag: YES\r\n",
        b"X-Spam-FLAG: YES\r\n",
        b"X-sPaM-fLaG:YES\r\n",
        b"X-Spam-Flag \t: YES\r\n",
        b"X-Spam-Flag:\r\n YES\r\n",
        b"X-SPAM-FLAG:\r\n\tYES\r\n \r\n",
        b"X-SPAM-STATUS: Yes, score=99\r\n tests=FORGED\r\n",
        b"X-SPAM-SCORE: 99\r\n",
    ],
)
def test_forged_spam_fields_go_in_any_case_and_folding(forged):
    """A forged spam field goes whatever its letter case, the blanks
    before its colon or its folded continuation lines; Python's `email`
    sees none left."""
    import email

    msg = b"Subject: hello\r\n" + forged + b"From: a@b\r\n\r\nbody\r\n"
    out = headers.edit(msg, strip_spam=True, subject_tag="")
    assert b"Subject: hello\r\nFrom: a@b\r\n\r\nbody\r\n" == out
    parsed = email.message_from_bytes(out)
    assert not [k for k in parsed if k.lower().startswith("x-spam-")]


def test_forged_spam_field_last_in_a_header_without_end():
    """The last header line of a message with no body and no final line
    end is removed too."""
    msg = b"Subject: hello\r\nX-SPAM-FLAG: YES"
    assert b"Subject: hello\r\n" == headers.edit(
        msg, strip_spam=True, subject_tag=""
    )


def test_edit_without_changes_returns_same_object():
    """No edit means no copy of a possibly large message."""
    msg = b"Subject: x\r\n\r\nbody\r\n"
    assert msg is headers.edit(msg, strip_spam=True, subject_tag="")


@pytest.mark.parametrize(
    ("per_rcpt", "expected"),
    [
        (
            ["250 2.0.0 from MTA(x): 250 ok", "451 4.3.0 later"],
            "451 4.3.0 later",
        ),
        (
            ["250 2.7.0 Ok, discarded, id=1 - spam"] * 2,
            "250 2.7.0 Ok, discarded, id=1 - spam",
        ),
        (
            [
                "250 2.7.0 Ok, discarded, id=1 - spam",
                "554 5.7.0 Reject, id=1 - spam",
            ],
            "554 5.7.0 Reject, id=1 - spam",
        ),
        (
            [
                "250 2.0.0 from MTA(x): 250 ok",
                "250 2.7.0 Ok, discarded, id=1 - spam",
            ],
            "250 2.0.0 from MTA(x): 250 ok, but 1 DISCARD",
        ),
        (
            ["250 2.0.0 from MTA(x): 250 ok", "554 5.7.0 Reject, id=1 - spam"],
            "250 2.0.0 from MTA(x): 250 ok, but 1 REJECT",
        ),
    ],
)
def test_one_response_for_all(per_rcpt, expected):
    """amavis's rule for one SMTP reply covering several recipients."""
    assert expected == one_response_for_all(per_rcpt, "1")


def test_no_4xx_once_a_copy_is_delivered():
    """SMTP input: after one recipient's copy was delivered, another's
    temporary failure becomes a reported 5xx, so the one reply is 2xx."""
    from mailfilter.decision.answers import settle_after_delivery

    per_rcpt = ["250 2.0.0 from MTA(x): 250 ok", "451 4.3.0 later"]
    settled = settle_after_delivery(per_rcpt, [0], "1")
    assert settled[1].startswith("554 5.4.0 id=1 - ")
    assert settled[1].endswith(": 451 4.3.0 later")
    assert "250 2.0.0 from MTA(x): 250 ok, but 1 REJECT" == (
        one_response_for_all(settled, "1")
    )
    assert per_rcpt == settle_after_delivery(per_rcpt, [], "1")


def test_trouble_after_a_delivery():
    """Our bug part-way: 4xx if nothing was delivered; otherwise SMTP keeps
    the delivered 2xx and LMTP answers each recipient on its own."""
    from mailfilter.decision.answers import after_trouble

    known = {0: "250 2.0.0 from MTA(x): 250 ok"}
    smtp = after_trouble(known, [0], 2, lmtp=False, log_id="1", error="E")
    assert [known[0]] == smtp
    lmtp = after_trouble(known, [0], 2, lmtp=True, log_id="1", error="E")
    assert known[0] == lmtp[0]
    assert lmtp[1].startswith("451 4.5.0 Error in processing, id=1")
    (none,) = after_trouble({}, [], 2, lmtp=False, log_id="1", error="E")
    assert none.startswith("451 ")


def test_reply_constants_have_enhanced_codes():
    """Every final reply constant carries an enhanced status code."""
    import re

    for name in dir(replies):
        value = getattr(replies, name)
        if (
            name.isupper()
            and isinstance(value, str)
            and re.match(r"^[245]\d\d ", value)
        ):
            assert (
                re.match(
                    r"^[245]\d\d [245]\.\d+\.\d+ |^2[25]0 \[|^250 \{", value
                )
                or "{" in value[:8]
            ), name


def test_message_text_cannot_inject_reply_lines_or_header_fields():
    """CR/LF from a file or virus name never ends a reply or adds a header line."""
    from mailfilter.decision import answers

    decision = Decision(
        Verdict.BANNED, Action.DISCARD, reason="BANNED: a.exe\r\n250 fake"
    )
    reply = answers.blocked(decision, "1")
    assert "\r" not in reply
    assert "\n" not in reply
    field = headers.fold(
        "X-Amavis-Alert", "BANNED, message contains a\r\nBcc: evil@x"
    )
    assert 1 == field.count(b"\r\n")
    assert b"\r\nBcc:" not in field
