"""Built-in test messages: clean, EICAR in a zip, GTUBE, a banned .exe,
8-bit UTF-8. Used by the selftest and `mailfilter scan`.

EICAR and GTUBE are assembled from halves at run time, so the installed
package never looks like malware or spam itself.
"""

from __future__ import annotations

import io
import time
import zipfile
from email.message import EmailMessage

from mailfilter.decision.verdict import Verdict

EICAR = (
    r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STAN"
    r"DARD-ANTIVIRUS-TEST-FILE!$H+H*"
)
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(
    subject: str, body: str, attach: tuple[str, bytes] | None = None
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "selftest@example.org"
    msg["To"] = "postmaster@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<selftest-{time.time_ns()}@example.org>"
    msg.set_content(body)
    if attach:
        msg.add_attachment(
            attach[1],
            maintype="application",
            subtype="octet-stream",
            filename=attach[0],
        )
    return msg.as_bytes().replace(b"\n", b"\r\n")


def test_messages() -> list[tuple[str, bytes, set[Verdict]]]:
    """(name, bytes, acceptable verdicts) for the built-in pipeline test."""
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", EICAR)
    mz = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x00" * 200
    utf8 = "Grüße aus Köln: ½ € ✓\n".encode()
    return [
        (
            "clean",
            message("selftest clean", "Hello, this is a test.\n"),
            {Verdict.CLEAN},
        ),
        (
            "EICAR in a zip",
            message(
                "selftest virus",
                "see attachment\n",
                ("docs.zip", zipped.getvalue()),
            ),
            {Verdict.INFECTED},
        ),
        (
            "GTUBE",
            message("selftest spam", GTUBE + "\n"),
            {Verdict.SPAM, Verdict.SPAMMY},
        ),
        (
            "banned .exe",
            message(
                "selftest banned",
                "invoice attached\n",
                ("invoice.pdf.exe", mz),
            ),
            {Verdict.BANNED},
        ),
        (
            "8-bit UTF-8",
            b"From: a@example.org\r\nTo: b@example.org\r\n"
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            + utf8.replace(b"\n", b"\r\n"),
            {Verdict.CLEAN},
        ),
    ]
