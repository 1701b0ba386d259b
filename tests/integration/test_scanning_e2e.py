"""Verdicts end to end: Postfix -> mailfilter with real clamd and spamd."""

from __future__ import annotations

import io
import re
import smtplib
import subprocess
import sys
import time
import zipfile

import pytest

from tests.support import corpus
from tests.support.filter import REPO, start_filter
from tests.support.ports import free_port
from tests.support.postfix import start_postfix
from tests.support.samples import eicar, gtube

pytestmark = pytest.mark.integration


@pytest.fixture
def scanned(scanned_sandwich, tmp_path):
    """The scanned sandwich and its quarantine directory."""
    pf, mf = scanned_sandwich
    return pf, mf, tmp_path / "f" / "quarantine"


def msg(
    subject: str, body: bytes, attachment: tuple[str, bytes] | None = None
) -> bytes:
    """A small MIME message, CRLF."""
    head = (
        f"From: a@example.org\r\nTo: u@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    if attachment is None:
        return head + b"Content-Type: text/plain\r\n\r\n" + body + b"\r\n"
    import base64

    name, data = attachment
    enc = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (
        head + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\n" + body + b"\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        + f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'.encode()
        + enc
        + b"--b1--\r\n"
    )


def send(port: int, data: bytes) -> None:
    """Submit to Postfix."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("a@example.org", ["u@example.com"], data)


def wait_log(mf, pattern: str, timeout: float = 60) -> str:
    """Wait for a line matching pattern in mailfilter's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in mf.log().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.1)
    raise TimeoutError(f"{pattern!r} not in log:\n{mf.log()[-2000:]}")


def test_virus_in_zip_is_discarded_and_quarantined(scanned):
    """EICAR in a zip: 250 2.7.0 discarded to Postfix, a quarantine copy, nothing delivered."""
    pf, mf, quarantine = scanned
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("docs/readme.txt", eicar())
    send(pf.port, msg("virus", b"see zip", ("docs.zip", buf.getvalue())))
    line = wait_log(
        mf,
        r"Blocked INFECTED \(Eicar-Test-Signature\.UNOFFICIAL\) \{DiscardedInbound,Quarantined\}",
    )
    mail_id = re.search(r"mail_id: (\S+),", line).group(1)
    assert re.search(
        r"status=sent \(250 2\.7\.0 Ok, discarded, id=\d+-\d+ - INFECTED: Eicar-Test-Signature\.UNOFFICIAL\)",
        pf.log(),
    )
    assert [] == pf.delivered()
    (qfile,) = (quarantine / "virus" / "new").iterdir()
    assert f"X-Quarantine-ID: <{mail_id}>".encode() in qfile.read_bytes()


def test_gtube_is_spam(scanned):
    """GTUBE scores above kill level: with the default (Debian) policy it is
    delivered flagged and tagged for Junk, and a copy is quarantined."""
    pf, mf, quarantine = scanned
    send(pf.port, msg("spam", gtube().encode()))
    wait_log(
        mf,
        r"\) Passed SPAM \{RelayedTaggedInbound,Quarantined\}.*Hits: \d{3}",
    )
    (path,) = pf.wait_delivered(1)
    data = path.read_bytes()
    assert b"X-Spam-Flag: YES" in data
    assert b"Subject: ***SPAM*** spam" in data
    assert len(list((quarantine / "spam" / "new").iterdir())) == 1


def test_spamd_is_not_asked_for_blocked_mail(scanned):
    """A virus or a banned file decides alone: GTUBE beside it is never
    scored (Hits: -), while GTUBE alone is (the spam test above)."""
    pf, mf, _ = scanned
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", eicar())
    send(
        pf.port,
        msg("virus-and-spam", gtube().encode(), ("a.zip", buf.getvalue())),
    )
    line = wait_log(mf, r"Blocked INFECTED .*<virus-and-spam@")
    assert "Hits: -," in line
    send(
        pf.port,
        msg(
            "banned-and-spam",
            gtube().encode(),
            ("invoice.pdf.exe", corpus.pe_exe()),
        ),
    )
    line = wait_log(mf, r"Blocked BANNED .*<banned-and-spam@")
    assert "Hits: -," in line


def test_banned_double_extension(scanned):
    """invoice.pdf.exe with a PE header is BANNED, as amavis logs it."""
    pf, mf, _ = scanned
    send(
        pf.port,
        msg("banned", b"invoice", ("invoice.pdf.exe", corpus.pe_exe())),
    )
    line = wait_log(mf, r"Blocked BANNED \(")
    assert "invoice.pdf.exe" in line


def test_clean_mail_gets_headers_and_passes(scanned):
    """Clean mail passes with X-Virus-Scanned and the original body."""
    pf, mf, _ = scanned
    send(pf.port, msg("hello there", b"Just a friendly note."))
    (path,) = pf.wait_delivered(1)
    data = path.read_bytes()
    assert b"X-Virus-Scanned: mailfilter at test.invalid" in data
    assert data.endswith(b"Just a friendly note.\n")
    wait_log(mf, r"Passed CLEAN \{RelayedInbound\}")


def test_release_reinjects_quarantined_message(scanned):
    """`mailfilter release MAIL_ID` delivers the quarantined copy via 10025."""
    pf, mf, quarantine = scanned
    send(
        pf.port,
        msg("banned", b"invoice", ("invoice.pdf.exe", corpus.pe_exe())),
    )
    line = wait_log(mf, r"Blocked BANNED")
    mail_id = re.search(r"mail_id: (\S+),", line).group(1)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailfilter",
            "release",
            mail_id,
            "--quarantine",
            str(quarantine),
            "--forward",
            f"127.0.0.1:{pf.reinject_port}",
            "--log-to",
            "stderr",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert 0 == done.returncode, done.stderr
    (path,) = pf.wait_delivered(1)
    assert b"invoice.pdf.exe" in path.read_bytes()


def test_clamd_down_tempfails_and_spamd_down_passes(tmp_path, spamd):
    """clamd unreachable: 4xx (deferred); spamd unreachable: passed with a note."""
    fport = free_port()
    pf = start_postfix(tmp_path / "pf", fport)
    mf = start_filter(
        tmp_path / "f",
        fport,
        pf.reinject_port,
        clamd=f"unix:{tmp_path}/no-such.sock",
        spamd="off",
    )
    try:
        send(pf.port, msg("needs av", b"x"))
        pf.wait_log("status=deferred")
        assert re.search(
            r"said: 451 4\.5\.0 Error in processing, id=\S+, check_mail FAILED: virus_scan FAILED",
            pf.log(),
        ), pf.log()[-1500:]
        assert [] == pf.delivered()
    finally:
        mf.stop()
    dead = free_port()
    mf = start_filter(
        tmp_path / "f2",
        fport,
        pf.reinject_port,
        clamd="off",
        spamd=f"127.0.0.1:{dead}",
    )
    try:
        pf.flush()
        (path,) = pf.wait_delivered(1)
        assert b"X-Amavis-Alert: spam checks skipped" in path.read_bytes()
    finally:
        mf.stop()
        pf.stop()


def test_forged_spam_fields_are_removed(scanned):
    """A sender's own X-Spam-Flag/Status never reach the mailbox once spamd scored the message."""
    pf, mf, _ = scanned
    forged = b"X-Spam-Flag: NO\r\nX-Spam-Status: No, score=-100\r\n" + msg(
        "hello again", b"Just a note."
    )
    send(pf.port, forged)
    (path,) = pf.wait_delivered(1)
    data = path.read_bytes()
    assert b"score=-100" not in data
    assert b"X-Spam-Flag: NO" not in data
    assert data.endswith(b"Just a note.\n")


def test_one_group_tempfailed_delivers_nothing_twice(tmp_path, clamd):
    """clamd down, scanner_failure.clamav = tempfail, one recipient who
    bypasses virus checks: Postfix's SMTP hand-off gets a 4xx and nothing
    is reinjected, so its retries deliver no copy early and none twice;
    once clamd is back each recipient gets exactly one copy."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        (REPO / "policy/default.toml").read_text()
        + '\n[[recipient]]\nmatch = "noav@example.com"\n'
        + "bypass_virus_checks = true\n"
    )
    fport = free_port()
    pf = start_postfix(tmp_path / "pf", fport)
    mf = start_filter(
        tmp_path / "f1",
        fport,
        pf.reinject_port,
        clamd=f"127.0.0.1:{free_port()}",
        policy=policy,
    )
    try:
        data = msg("split groups", b"hello")
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as smtp:
            smtp.sendmail(
                "a@example.org", ["noav@example.com", "u@example.com"], data
            )
        pf.wait_log("status=deferred")
        time.sleep(5)  # several of Postfix's retries (backoff 1-2 s)
        assert [] == pf.delivered()
        mf.stop()
        mf = start_filter(
            tmp_path / "f2",
            fport,
            pf.reinject_port,
            clamd=clamd.address,
            policy=policy,
        )
        pf.flush()
        pf.wait_delivered(2, timeout=60)
        time.sleep(2)
        assert 2 == len(pf.delivered())
    finally:
        mf.stop()
        pf.stop()
