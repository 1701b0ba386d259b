"""SMTP smuggling through the real Postfix sandwich.

Each message hides a second one behind a non-standard end-of-data
sequence (CVE-2023-51764 and relatives) or carries bare CR, bare LF or NUL
inside its lines. It is sent twice: to the public Postfix (the path mail
really takes) and straight to the filter (as if Postfix had let the bytes
through). A relay between the filter and Postfix's 10025 keeps every byte
the filter sends, so the test sees what the final hop receives.

Promises: one message never becomes two (the hidden message is never
delivered as a message of its own, and deliveries equal accepted
messages), and no bare CR or LF ever leaves the filter.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.reliability.support import (
    CaptureProxy,
    bare_line_ends,
    budget,
    wait_for,
)
from tests.support.filter import start_filter
from tests.support.ports import free_port
from tests.support.postfix import POSTFIX, start_postfix

pytestmark = pytest.mark.reliability

SUITE = "smuggling"
# What stands between the visible message and the hidden one.
VARIANTS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "LF.CR": b"\n.\r",
    "bare CR in a line": b"\r",
    "bare LF in a line": b"\n",
    "NUL in a line": b"\x00",
}
_HEADER_MID = re.compile(
    rb"^Message-ID:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE
)


def smuggling_message(tag: str, sep: bytes) -> bytes:
    """An outer message whose body hides a whole SMTP transaction."""
    hidden = (
        b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<u@example.com>\r\n"
        b"DATA\r\nFrom: evil@example.org\r\nSubject: smuggled\r\n"
        b"Message-ID: <hidden-" + tag.encode() + b"@rel.test>\r\n\r\n"
        b"evil\r\n.\r\n"
    )
    head = (
        f"From: a@example.org\r\nTo: u@example.com\r\nSubject: outer\r\n"
        f"Message-ID: <outer-{tag}@rel.test>\r\n\r\n"
    ).encode()
    return head + b"line one" + sep + hidden + b"last line"


def raw_session(port: int, content: bytes) -> int:
    """Send `content` as DATA exactly as given (no stuffing); final code.

    The client comes from 127.0.0.2, outside mynetworks: the recipe
    exempts mynetworks from smtpd_forbid_bare_newline, and what is tested
    is mail from the outside.
    """
    with socket.create_connection(
        ("127.0.0.1", port), timeout=120, source_address=("127.0.0.2", 0)
    ) as s:
        f = s.makefile("rb")

        def reply() -> int:
            while True:
                line = f.readline()
                if not line:
                    return 0
                if line[3:4] != b"-":
                    return int(line[:3])

        if reply() != 220:
            return 0
        for cmd, want in (
            (b"EHLO client.test.invalid\r\n", 250),
            (b"MAIL FROM:<a@example.org>\r\n", 250),
            (b"RCPT TO:<u@example.com>\r\n", 250),
            (b"DATA\r\n", 354),
        ):
            s.sendall(cmd)
            code = reply()
            if code != want:
                return code
        s.sendall(content + b"\r\n.\r\n")
        code = reply()
        s.sendall(b"QUIT\r\n")
        return code


def header_mid(path: Path) -> str:
    """The Message-ID of a delivered file's own header block."""
    data = path.read_bytes()
    end = data.find(b"\n\n")
    match = _HEADER_MID.search(data, 0, end if end >= 0 else len(data))
    return match.group(1).decode() if match else ""


def test_end_of_data_variants(tmp_path, record):
    """No variant splits a message; nothing bare leaves the filter."""
    if not Path(POSTFIX).exists():
        pytest.skip("postfix is not installed (apt-get install postfix)")
    fport = free_port()
    pf = start_postfix(
        tmp_path / "pf", fport, extra_main="mynetworks = 127.0.0.1/32"
    )
    proxy = CaptureProxy(pf.reinject_port)
    flt = start_filter(tmp_path / "f", fport, proxy.port)
    accepted: dict[str, int] = {}
    try:
        rounds = int(budget(1, 5))
        for r in range(rounds):
            for name, sep in VARIANTS.items():
                for path, port in (("postfix", pf.port), ("filter", flt.port)):
                    tag = f"{r}-{path}-{name.replace(' ', '_')}"
                    accepted[tag] = raw_session(
                        port, smuggling_message(tag, sep)
                    )
        want = sum(200 <= c < 300 for c in accepted.values())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pf.flush()
            if pf.queue_empty() and len(pf.delivered()) >= want:
                break
            time.sleep(1)
        wait_for(lambda: len(pf.delivered()) >= want, 10)
        delivered = [header_mid(p) for p in pf.delivered()]
        hidden = [m for m in delivered if m.startswith("hidden-")]
        outer = [m.removeprefix("outer-").split("@")[0] for m in delivered]
        missing = [
            t for t, c in accepted.items() if 200 <= c < 300 and t not in outer
        ]
        extra = len(delivered) - len(set(delivered))
        bare = {
            i: bare_line_ends(bytes(s))[:5]
            for i, s in enumerate(proxy.streams)
            if bare_line_ends(bytes(s))
        }
        for path in ("postfix", "filter"):
            mine = {t: c for t, c in accepted.items() if f"-{path}-" in t}
            record(
                SUITE,
                f"{len(VARIANTS)} end-of-data/bare CR/LF/NUL variants "
                f"x {rounds}, sent to {path}",
                runs=len(mine),
                lost=sum(1 for t in missing if t in mine),
                duplicated=extra + sum(f"-{path}-" in m for m in hidden),
                bounced=sum(1 for c in mine.values() if c >= 500),
                verdicts={
                    "accepted": sum(200 <= c < 300 for c in mine.values()),
                    "refused": sum(c >= 400 for c in mine.values()),
                    "hidden message delivered": sum(
                        f"-{path}-" in m for m in hidden
                    ),
                    "streams to 10025 with bare CR/LF": len(bare),
                },
            )
        assert hidden == [], "a hidden message became a message of its own"
        assert extra == 0
        assert missing == []
        assert len(delivered) == want
        assert bare == {}, "bare CR or LF sent to 10025"
    finally:
        flt.stop()
        pf.stop()
        proxy.stop()
