"""`mailfilter release` end to end: the command against a fake 10025.

The command runs as a subprocess, as an admin runs it, with the settings
on its command line; the fake downstream records what it reinjects.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from mailfilter.decision.verdict import Verdict
from mailfilter.smtp.envelope import Envelope, Recipient
from mailfilter.store.quarantine import Quarantine
from tests.component.fakes import FakeMTA

REPO = Path(__file__).resolve().parents[3]
VICTIM_ID = "Victim0Id_01"
ATTACKER_ID = "Attack3rId99"


def quarantine(root: Path, sender: str, rcpts, content: bytes, mail_id):
    env = Envelope(
        sender=sender,
        recipients=tuple(Recipient(r) for r in rcpts),
        content=content,
    )
    Quarantine(root).store(
        env,
        Verdict.BANNED,
        mail_id,
        f"X-Quarantine-ID: <{mail_id}>\r\n".encode(),
    )


async def release(root: Path, port: int, mail_id: str, *extra: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailfilter",
        "release",
        mail_id,
        "--quarantine",
        str(root),
        "--forward",
        f"127.0.0.1:{port}",
        "--log-to",
        "stderr",
        *extra,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_release_reinjects_the_right_message_and_logs_it(tmp_path):
    """A forged X-Quarantine-ID in another message does not divert the
    release; the amavis release line reaches the configured log."""
    mta = FakeMTA()
    await mta.start()
    root = tmp_path / "q"
    # The attacker's message, stored first, claims the victim's id and
    # carries envelope-like fields of its own.
    quarantine(
        root,
        "x@evil.test",
        ["ceo@example.org"],
        b"X-Envelope-To: <attacker@evil.test>\r\n"
        b"X-Quarantine-ID: <Victim0Id_01>\r\n"
        b"Subject: fake\r\n\r\nevil\r\n",
        ATTACKER_ID,
    )
    quarantine(
        root,
        "bank@example.org",
        ["ceo@example.org", "cfo@example.org"],
        b"Subject: wire\r\n\r\nsecret\r\n",
        VICTIM_ID,
    )
    try:
        code, out, err = await release(root, mta.port, VICTIM_ID)
    finally:
        await mta.stop()
    assert 0 == code, err
    (txn,) = mta.transactions
    assert "bank@example.org" == txn.sender
    assert ["ceo@example.org", "cfo@example.org"] == txn.recipients
    assert b"secret" in txn.data
    assert b"evil" not in txn.data
    assert (
        "(rel-Victim0Id_01) Quarantined message release (miscategorized): "
        "Victim0Id_01 <bank@example.org> -> "
        "<ceo@example.org>,<cfo@example.org>"
    ) in err
    assert "<ceo@example.org>: 250" in out


async def test_release_line_escapes_the_envelope(tmp_path):
    """Control characters of a hostile sender never reach the log raw."""
    mta = FakeMTA()
    await mta.start()
    root = tmp_path / "q"
    quarantine(
        root,
        "x\x1b[2Jy@evil.test",
        ["r@example.org"],
        b"Subject: x\r\n\r\nbody\r\n",
        VICTIM_ID,
    )
    try:
        code, _, err = await release(
            root, mta.port, VICTIM_ID, "--to", "admin@example.org"
        )
    finally:
        await mta.stop()
    assert 0 == code, err
    assert ["admin@example.org"] == mta.transactions[0].recipients
    assert "\x1b" not in err
    assert "Victim0Id_01 <x\\x1b[2Jy@evil.test> -> <admin@example.org>" in err
