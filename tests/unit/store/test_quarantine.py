"""The quarantine's lookup by mail_id trusts only the lines we write.

A sender controls the whole message, including header fields that look
like ours (`X-Quarantine-ID`, `X-Envelope-To`, `Return-Path`). Whatever
the message says, `find` must return the file stored under the id asked
for, with the envelope we recorded.
"""

from __future__ import annotations

import pytest

from mailfilter.decision.verdict import Verdict
from mailfilter.smtp.envelope import Envelope, Recipient
from mailfilter.store.quarantine import Quarantine

VICTIM_ID = "Victim0Id_01"
ATTACKER_ID = "Attack3rId99"
ADDED = b"X-Quarantine-ID: <%s>\r\n"


def envelope(sender: str, rcpts: list[str], content: bytes) -> Envelope:
    return Envelope(
        sender=sender,
        recipients=tuple(Recipient(r) for r in rcpts),
        content=content,
    )


def forged(*fields: bytes) -> bytes:
    return b"".join(f + b"\r\n" for f in fields) + (
        b"Subject: hello\r\n\r\nbody\r\n"
    )


def store(q: Quarantine, env: Envelope, mail_id: str, verdict=Verdict.SPAM):
    return q.store(env, verdict, mail_id, ADDED % mail_id.encode())


# Each variant puts the victim's id (and envelope-like fields) into the
# attacker's own message, in the places a substring search would see.
FORGERIES = [
    forged(b"X-Quarantine-ID: <%s>" % VICTIM_ID.encode()),
    forged(b"x-quarantine-id: <%s>" % VICTIM_ID.encode()),
    forged(
        b"X-Envelope-To: <attacker@evil.test>",
        b"X-Quarantine-ID: <%s>" % VICTIM_ID.encode(),
    ),
    forged(
        b"Return-Path: <x@evil.test>",
        b"X-Envelope-From: <x@evil.test>",
        b"X-Envelope-To: <attacker@evil.test>,",
        b" <second@evil.test>",
        b"X-Quarantine-ID: <%s>" % VICTIM_ID.encode(),
    ),
    # In the body, and in a header block that never ends.
    b"Subject: x\r\n\r\nX-Quarantine-ID: <%s>\r\n" % VICTIM_ID.encode(),
    b"X-Quarantine-ID: <%s>\r\n" % VICTIM_ID.encode() + b"X-A: b\r\n" * 50,
]


@pytest.mark.parametrize("attack", FORGERIES)
@pytest.mark.parametrize("attacker_first", [True, False])
def test_forged_id_never_releases_the_attackers_message(
    tmp_path, attack, attacker_first
):
    """find(victim id) gives the victim's file and envelope, whatever the
    attacker's message says and whichever file sorts first."""
    q = Quarantine(tmp_path)
    victim = envelope(
        "bank@example.org",
        ["ceo@example.org"],
        b"Subject: wire\r\n\r\nsecret\r\n",
    )
    attacker = envelope("x@evil.test", ["ceo@example.org"], attack)
    order = [(attacker, ATTACKER_ID), (victim, VICTIM_ID)]
    for env, mail_id in order if attacker_first else order[::-1]:
        # Same kind: both land in one directory, sorted by name.
        store(q, env, mail_id)
    found = q.find(VICTIM_ID)
    assert b"secret" in found.content
    assert "bank@example.org" == found.sender
    assert ("ceo@example.org",) == found.recipients
    # The attacker's own file is found under its own id, and the fields it
    # wrote are message text, not envelope: no recipient added.
    own = q.find(ATTACKER_ID)
    assert "x@evil.test" == own.sender
    assert ("ceo@example.org",) == own.recipients
    assert own.content.endswith(attack)


def test_forged_id_alone_is_not_found(tmp_path):
    """With only the attacker's message stored, the victim's id is absent."""
    q = Quarantine(tmp_path)
    store(
        q,
        envelope("x@evil.test", ["a@example.org"], FORGERIES[0]),
        ATTACKER_ID,
    )
    with pytest.raises(KeyError):
        q.find(VICTIM_ID)


def test_round_trip_keeps_envelope_and_message(tmp_path):
    """Many recipients, odd but legal addresses, null sender, 8-bit bytes:
    the envelope comes back exactly and the message follows our block."""
    q = Quarantine(tmp_path)
    rcpts = [f"user{i}@example.org" for i in range(2000)]
    rcpts += ['"a>,b"@example.org', "c,@example.org", "\udce9t@example.org"]
    content = forged(b"X-Envelope-To: <extra@evil.test>")
    store(q, envelope("", rcpts, content), VICTIM_ID, Verdict.BANNED)
    found = q.find(VICTIM_ID)
    assert "" == found.sender
    assert tuple(rcpts) == found.recipients
    assert ADDED % VICTIM_ID.encode() + content == found.content


def test_no_recipients(tmp_path):
    q = Quarantine(tmp_path)
    store(q, envelope("s@example.org", [], forged()), VICTIM_ID)
    found = q.find(VICTIM_ID)
    assert () == found.recipients
    assert found.content.endswith(b"body\r\n")


@pytest.mark.parametrize("mail_id", ["", "short", "a/b../c0", "x" * 41])
def test_malformed_ids_are_refused(tmp_path, mail_id):
    q = Quarantine(tmp_path)
    with pytest.raises(KeyError):
        q.find(mail_id)
    with pytest.raises(ValueError, match="not a mail_id"):
        store(q, envelope("s@x.org", ["r@x.org"], forged()), mail_id)


def test_a_file_not_in_our_format_is_refused(tmp_path):
    """A file whose first line matches but whose block is broken (edited
    by hand, truncated) is reported, never half-parsed."""
    box = tmp_path / "spam" / "new"
    box.mkdir(parents=True)
    (box / "1.M1.x").write_bytes(
        b"X-Quarantine-ID: <%s>\nSubject: x\n\nbody\n" % VICTIM_ID.encode()
    )
    with pytest.raises(KeyError, match="not a quarantine file"):
        Quarantine(tmp_path).find(VICTIM_ID)
