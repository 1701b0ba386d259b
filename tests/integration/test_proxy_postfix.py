"""Proxy specifics through real Postfix: the client's final reply is ours,
and passed mail comes back through the listener without a proxy filter."""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.integration.conftest import need_postfix
from tests.integration.doors_support import start_door

pytestmark = pytest.mark.integration


def test_final_reply_is_the_relayed_one_and_mail_is_reinjected(tmp_path):
    need_postfix()
    pf, mf, _ = start_door(tmp_path, "proxy")
    try:
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=120) as smtp:
            smtp.ehlo("client.example")
            smtp.mail("a@example.org")
            smtp.rcpt("u@example.com")
            code, text = smtp.data(b"Subject: p\r\n\r\nproxied\r\n")
        assert code == 250
        # Postfix's smtpd passes our reply on: the 10025 queue id in it.
        assert re.match(
            rf"2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:{pf.reinject_port}\): "
            r"250 2\.0\.0 Ok: queued as \w+",
            text.decode(),
        )
        (path,) = pf.wait_delivered(1)
        assert path.read_bytes().endswith(b"\nproxied\n")
        assert "Passed CLEAN" in mf.log()
    finally:
        mf.stop()
        pf.stop()
