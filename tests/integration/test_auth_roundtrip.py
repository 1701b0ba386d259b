"""Mail authentication through the real Postfix sandwich, checked
downstream by dkimpy and by Perl's Mail::DKIM, with keys in a real DNS
server (unbound on loopback).

ORIGINATING: submission -> scan-orig -> mailfilter (signs) -> 10025.
INBOUND: port 25 -> scan -> mailfilter (verifies) -> 10025.
"""

from __future__ import annotations

import re
import shutil
import smtplib
from pathlib import Path

import pytest

from mailfilter.auth import keystore, sign
from tests.support.authzones import start_auth_dns
from tests.support.dkimcheck import (
    dkimpy_results,
    have_mail_dkim,
    independent_pass,
    mail_dkim_results,
)
from tests.support.dns import silent_udp_port
from tests.support.filter import start_filter
from tests.support.ports import free_port
from tests.support.postfix import POSTFIX, start_postfix

pytestmark = pytest.mark.integration

AUTHSERV = "mx.ours.test"
PLAIN = (
    b"From: Alice <alice@good.test>\r\nTo: u@example.com\r\n"
    b"Subject: signed on the way out\r\nMessage-ID: <rt-1@good.test>\r\n"
    b"Date: Tue, 01 Dec 2026 04:00:00 +0000\r\n\r\n"
    b"Hello.\r\n.A line with a leading dot\r\n\r\nBye.\r\n"
)
UTF8 = (
    "From: Zoë <zoë@good.test>\r\nTo: u@example.com\r\n"
    "Subject: café ☕ unencoded\r\nMessage-ID: <rt-2@good.test>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße, 8-bit body.\r\n"
).encode()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """unbound + Postfix (with submission -> scan-orig) + mailfilter."""
    if not Path(POSTFIX).exists():
        pytest.skip("postfix is not installed")
    if not shutil.which("unbound"):
        pytest.skip("unbound is not installed")
    root = tmp_path_factory.mktemp("authsite")
    dns = start_auth_dns(root)
    fport, oport = free_port(), free_port()
    try:
        pf = start_postfix(root / "pf", fport, originating_port=oport)
    except BaseException:
        dns.server.stop()
        raise
    try:
        flt = start_filter(
            root / "f",
            fport,
            pf.reinject_port,
            originating_port=oport,
            verify=True,
            extra=[
                "--dkim-keys", str(dns.keys),
                "--dns-servers", dns.address,
                "--authserv-id", AUTHSERV,
            ],
        )  # fmt: skip
    except BaseException:
        pf.stop()
        dns.server.stop()
        raise
    yield dns, pf, flt, root
    flt.stop()
    pf.stop()
    dns.server.stop()


def deliver(pf, port: int, message: bytes, sender: str, **kw) -> bytes:
    before = len(pf.delivered())
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, ["u@example.com"], message, **kw)
    files = sorted(
        pf.wait_delivered(before + 1), key=lambda p: p.stat().st_mtime
    )
    return files[-1].read_bytes()


def header(message: bytes, name: str) -> list[str]:
    text = message.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    text = re.sub(r"\n[ \t]+", " ", text)
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.lower().startswith(name.lower() + ":")
    ]


def both_verifiers(
    message: bytes, port: int
) -> tuple[list[bool], dict[str, str]]:
    perl = mail_dkim_results(message, port) if have_mail_dkim() else {}
    return dkimpy_results(message, port), perl


def test_submission_is_signed_with_both_keys_and_verifies(site) -> None:
    dns, pf, flt, _ = site
    got = deliver(pf, pf.submission_port, PLAIN, "alice@good.test")
    sigs = header(got, "DKIM-Signature")
    assert len(sigs) == 2
    assert {re.search(r"a=([\w-]+)", s).group(1) for s in sigs} == {
        "rsa-sha256",
        "ed25519-sha256",
    }
    assert all("c=relaxed/relaxed" in s for s in sigs)
    dkimpy, perl = both_verifiers(got, dns.server.port)
    assert dkimpy == [True, True]
    if perl:
        assert independent_pass(perl), perl
    assert "DKIM-signed d=good.test" in flt.log()
    # The ORIGINATING bank does not verify: no Authentication-Results.
    assert header(got, "Authentication-Results") == []


def test_eight_bit_and_smtputf8_are_signed_over_the_bytes_sent(site) -> None:
    dns, pf, _, _ = site
    got = deliver(
        pf,
        pf.submission_port,
        UTF8,
        "zoë@good.test",
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )
    assert "Grüße".encode() in got
    dkimpy, perl = both_verifiers(got, dns.server.port)
    assert dkimpy == [True, True]
    if perl:
        assert independent_pass(perl), perl


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"Bye.", b"Bye!"), (b"Subject: signed", b"Subject: Signed")],
)
def test_tampered_mail_fails_both_verifiers(
    site, old: bytes, new: bytes
) -> None:
    dns, pf, _, _ = site
    got = deliver(pf, pf.submission_port, PLAIN, "alice@good.test")
    tampered = got.replace(old, new)
    assert tampered != got
    dkimpy, perl = both_verifiers(tampered, dns.server.port)
    assert dkimpy == [False, False]
    if perl:
        assert perl["rsa-sha256"].startswith("fail"), perl


def test_no_key_for_the_from_domain_passes_unsigned(site) -> None:
    _, pf, flt, _ = site
    message = PLAIN.replace(b"alice@good.test", b"bob@nokey.test")
    got = deliver(pf, pf.submission_port, message, "bob@nokey.test")
    assert header(got, "DKIM-Signature") == []
    assert (
        "not DKIM-signed: no key for the From domain nokey.test" in flt.log()
    )


def test_inbound_verifies_and_leaves_the_signed_bytes_alone(site) -> None:
    """Signed elsewhere, received on port 25: our field on top, forged
    ones with our authserv-id gone, and the signatures still verify."""
    dns, pf, _, _ = site
    keys = keystore.load(str(dns.keys))
    body = PLAIN.replace(b"rt-1@", b"rt-in@")
    signed = sign.sign(body, keys["good.test"]) + body
    forged = (
        b"Authentication-Results: mx.ours.test; dkim=pass; dmarc=pass\r\n"
        b"authentication-results : (x) MX.OURS.TEST; spf=pass\r\n"
        b"Authentication-Results: mx.other.test; dkim=fail\r\n"
    )
    got = deliver(pf, pf.port, forged + signed, "alice@good.test")
    results = header(got, "Authentication-Results")
    ours = [r for r in results if r.lower().startswith(AUTHSERV)]
    assert len(ours) == 1
    assert ours[0].count("dkim=pass") == 2
    assert "dmarc=pass (p=reject) header.from=good.test" in ours[0]
    assert "mx.other.test; dkim=fail" in results
    dkimpy, perl = both_verifiers(got, dns.server.port)
    assert dkimpy == [True, True]
    if perl:
        assert independent_pass(perl), perl


def test_dmarc_p_reject_failure_is_quarantined(site) -> None:
    _, pf, flt, root = site
    spoof = PLAIN.replace(b"alice@good.test", b"ceo@strict.test").replace(
        b"rt-1@", b"rt-spoof@"
    )
    before = len(pf.delivered())
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
        smtp.sendmail("ceo@strict.test", ["u@example.com"], spoof)
    pf.wait_log("discarded")
    assert len(pf.delivered()) == before
    stored = [p for p in (root / "f" / "quarantine").rglob("*") if p.is_file()]
    assert any(b"rt-spoof@" in p.read_bytes() for p in stored)
    assert "dmarc=fail (p=reject) from=strict.test" in flt.log()


def test_dns_down_gives_temperror_and_the_mail_flows(
    tmp_path: Path, site
) -> None:
    dns, _, _, _ = site
    sink = silent_udp_port()
    fport = free_port()
    pf = start_postfix(tmp_path / "pf", fport)
    flt = start_filter(
        tmp_path / "f",
        fport,
        pf.reinject_port,
        verify=True,
        extra=[
            "--dns-servers", f"127.0.0.1:{sink.getsockname()[1]}",
            "--dns-budget", "2",
            "--dns-timeout", "1",
            "--authserv-id", AUTHSERV,
        ],
    )  # fmt: skip
    try:
        keys = keystore.load(str(dns.keys))
        signed = sign.sign(PLAIN, keys["good.test"]) + PLAIN
        got = deliver(pf, pf.port, signed, "alice@good.test")
    finally:
        flt.stop()
        pf.stop()
        sink.close()
    (ours,) = header(got, "Authentication-Results")
    assert ours.count("dkim=temperror") == 2
    assert "dmarc=temperror" in ours
