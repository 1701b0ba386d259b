"""Per-recipient answers to milter replies: strictest wins; header edits."""

from __future__ import annotations

import miltertest.codec as ref
import pytest

from mailfilter.decision import headers
from mailfilter.milter import actions, codec
from mailfilter.milter.keep import Kept
from mailfilter.smtp import replies
from mailfilter.smtp.envelope import Recipient

RCPTS = (Recipient("a@example.com"), Recipient("b@example.com"))
PASSED = "250 2.0.0 from MTA(milter:[postfix]:0): 250 2.0.0 Ok"
DISCARD = replies.DISCARDED.format(log_id="1", reason="BANNED: x")
REJECT = replies.REJECTED.format(log_id="1", reason="INFECTED: y")
TEMPFAIL = replies.TEMPFAIL_INTERNAL.format(
    log_id="1", section="virus_scan", error="down"
)
MSG = b"Subject: hi\r\nX-Spam-Flag: YES\r\nTo: a\r\nX-Spam-Flag: YES\r\n\r\nb\r\n"
KEPT = [Kept(("a@example.com",), b"X-Virus-Scanned: ok\r\n", MSG)]


@pytest.mark.parametrize(
    ("answers", "final", "reply"),
    [
        ([PASSED, TEMPFAIL], "reply", TEMPFAIL),
        ([REJECT, TEMPFAIL], "reply", TEMPFAIL),
        ([PASSED, REJECT], "reply", REJECT),
        ([DISCARD, REJECT], "reply", REJECT),
        ([DISCARD, DISCARD], "discard", DISCARD),
    ],
)
def test_strictest_wins(answers, final, reply):
    kept = KEPT if PASSED in answers else []
    plan = actions.plan(answers, kept, MSG, RCPTS)
    assert (plan.final, plan.reply) == (final, reply)


def test_pass_and_discard_deletes_the_discarded_recipient():
    plan = actions.plan([PASSED, DISCARD], KEPT, MSG, RCPTS)
    assert plan.final == "accept"
    assert plan.delete == ("b@example.com",)
    assert plan.insert == (("X-Virus-Scanned", " ok"),)


def test_received_is_not_added():
    kept = [Kept(("a",), b"Received: from x\r\n\tby y\r\nX-A: 1\r\n", MSG)]
    plan = actions.plan([PASSED], kept, MSG, RCPTS[:1])
    assert plan.insert == (("X-A", " 1"),)


def test_forged_fields_deleted_highest_first_and_subject_changed():
    edited = headers.edit(MSG, strip_spam=True, subject_tag="***SPAM*** ")
    assert actions.header_changes(MSG, edited) == (
        (1, "Subject", " ***SPAM*** hi"),
        (2, "X-Spam-Flag", ""),
        (1, "X-Spam-Flag", ""),
    )


def test_unedited_copy_changes_nothing():
    assert actions.header_changes(MSG, MSG) == ()


def decode(packets: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for packet in packets:
        cmd, data, rest = ref.decode_msg(packet)
        assert rest == b""
        out.append((cmd, data))
    return out


ALL = codec.ACT_ADDHDRS | codec.ACT_CHGHDRS | codec.ACT_DELRCPT


def test_accept_packets_in_order():
    edited = headers.edit(MSG, strip_spam=True, subject_tag="")
    kept = [Kept(("a@example.com",), b"X-A: 1\r\nX-B: 2\r\n\tcont\r\n", edited)]
    plan = actions.plan([PASSED, DISCARD], kept, MSG, RCPTS)
    got = decode(actions.packets(plan, negotiated=ALL, leading_space=False))
    assert got == [
        ("-", {"rcpt": "<b@example.com>"}),
        ("i", {"index": 0, "name": "X-A", "value": "1"}),
        ("i", {"index": 1, "name": "X-B", "value": "2\n\tcont"}),
        ("m", {"index": 2, "name": "X-Spam-Flag", "value": ""}),
        ("m", {"index": 1, "name": "X-Spam-Flag", "value": ""}),
        ("a", {}),
    ]


def test_leading_space_kept_when_negotiated():
    plan = actions.Plan("accept", insert=(("X-A", " 1"),))
    got = decode(actions.packets(plan, negotiated=ALL, leading_space=True))
    assert got[0][1]["value"] == " 1"


def test_reply_percent_doubled_for_the_mta():
    plan = actions.Plan("reply", reply="554 5.7.0 Reject - BANNED: 100%.exe")
    (packet,) = actions.packets(plan, negotiated=ALL, leading_space=True)
    assert packet.endswith(b"100%%.exe\0")


def test_cannot_delete_recipients_fails_closed():
    plan = actions.Plan("accept", delete=("b@example.com",))
    with pytest.raises(codec.MilterProtocolError):
        actions.packets(plan, negotiated=codec.ACT_ADDHDRS, leading_space=True)


def test_discard_to_the_hold_queue_when_asked():
    plan = actions.plan([DISCARD, DISCARD], [], MSG, RCPTS)
    everything = ALL | codec.ACT_QUARANTINE
    got = decode(
        actions.packets(plan, negotiated=everything, leading_space=True, hold=True)
    )
    assert got == [("q", {"reason": DISCARD}), ("a", {})]
    dropped = actions.packets(plan, negotiated=everything, leading_space=True)
    assert decode(dropped) == [("d", {})]
