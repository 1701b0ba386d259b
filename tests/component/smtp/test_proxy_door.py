"""The proxy door is the SMTP front with another policy bank: the same
banned attachment is discarded after the queue and rejected before it."""

from __future__ import annotations

from mailfilter.smtp import replies
from tests.component.conftest import one_message
from tests.component.fakes import FakeMTA
from tests.component.milter.test_milter_protocol import banned_message


async def test_banned_rejected_at_the_proxy_door(tmp_path):
    reply, _ = await one_message(
        tmp_path,
        FakeMTA(),
        banned_message().encode(),
        listen_proto="proxy:",
    )
    assert reply.startswith(replies.REJECTED.split("{")[0])
    assert "BANNED: " in reply


async def test_same_message_discarded_at_the_content_filter_door(tmp_path):
    reply, _ = await one_message(tmp_path, FakeMTA(), banned_message().encode())
    assert reply.startswith(replies.DISCARDED.split("{")[0])


async def test_clean_mail_relayed_at_the_proxy_door(tmp_path):
    mta = FakeMTA()
    reply, _ = await one_message(
        tmp_path, mta, b"Subject: x\r\n\r\nx\r\n", listen_proto="proxy:"
    )
    assert reply.startswith("250 2.0.0 from MTA(")
    assert len(mta.transactions) == 1
