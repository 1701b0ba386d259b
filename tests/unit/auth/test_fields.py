"""Header reading: forged Authentication-Results removal, the From domain."""

from __future__ import annotations

import pytest

from mailfilter.auth import fields

BODY = b"\r\nbody\r\n"


@pytest.mark.parametrize(
    "forged",
    [
        b"Authentication-Results: mx.ours.test; dkim=pass\r\n",
        b"authentication-results: MX.OURS.TEST; spf=pass\r\n",
        b"Authentication-Results : mx.ours.test; dmarc=pass\r\n",
        b"Authentication-Results:\r\n\tmx.ours.test;\r\n\tdkim=pass\r\n",
        b"Authentication-Results: (comment) mx.ours.test 1; dkim=pass\r\n",
        b'Authentication-Results: "mx.ours.test"; dkim=pass\r\n',
        b"Authentication-Results: mx.ours.test;dkim=pass\r\n",
        b"Authentication-Results:mx.ours.test (x) ; none\r\n",
    ],
)
def test_our_field_is_removed_in_every_spelling(forged: bytes) -> None:
    head = b"From: a@b.test\r\n" + forged + b"Subject: s\r\n"
    cleaned, removed = fields.remove_ours(head + BODY, "mx.ours.test")
    assert removed == 1
    assert cleaned == b"From: a@b.test\r\nSubject: s\r\n" + BODY


def test_other_servers_fields_and_the_body_stay() -> None:
    message = (
        b"Authentication-Results: mx.other.test; dkim=pass\r\n"
        b"Authentication-Results: mx.ours.test.evil; dkim=pass\r\n"
        b"Subject: s\r\n\r\n"
        b"Authentication-Results: mx.ours.test; dkim=pass\r\n"
    )
    assert fields.remove_ours(message, "mx.ours.test") == (message, 0)


@pytest.mark.parametrize(
    ("header", "domain"),
    [
        (b"From: Alice <alice@Example.TEST>\r\n", "example.test"),
        (b"from : alice@sub.example.test\r\n", "sub.example.test"),
        (b'From: "a@evil.test" <alice@good.test>\r\n', "good.test"),
        (b"From: (evil.test) alice@good.test\r\n", "good.test"),
        (b"From:\r\n alice@good.test\r\n", "good.test"),
        (b"From: a@good.test\r\nFrom: b@evil.test\r\n", None),
        (b"From: a@good.test, b@evil.test\r\n", None),
        (b"Subject: no from\r\n", None),
        (b"From: undisclosed\r\n", None),
    ],
)
def test_from_domain(header: bytes, domain: str | None) -> None:
    assert fields.from_domain(header + BODY) == domain
