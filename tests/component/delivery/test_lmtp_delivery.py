"""The LMTP delivery server over loopback: replies per recipient, routing.

A raw asyncio client speaks LMTP to `mailfilter.delivery.lmtp` on a free
port so that each per-recipient reply after DATA can be checked exactly.
"""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

import maildir
from mailfilter.delivery import lmtp as lm
from mailfilter.delivery import replies as rp
from mailfilter.delivery import routing


class Client:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def reply(self):
        lines = []
        while True:
            line = (await self.reader.readline()).decode().rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines[-1]

    async def cmd(self, text):
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def send(self, mail_from, rcpts, body: bytes):
        assert (await self.cmd(f"MAIL FROM:<{mail_from}>")).startswith("250")
        accepted = []
        for rcpt in rcpts:
            r = await self.cmd(f"RCPT TO:<{rcpt}>")
            if r.startswith("250"):
                accepted.append(rcpt)
        if not accepted:
            return []
        assert (await self.cmd("DATA")).startswith("354")
        self.writer.write(body.replace(b"\n.", b"\n..") + b".\r\n")
        await self.writer.drain()
        return [await self.reply() for _ in accepted]


@pytest.fixture
async def lmtp(tmp_path):
    config = routing.Config(
        root_template=str(
            tmp_path / "mail" / "{domain}" / "{user}" / "Maildir"
        ),
        spam_folder="Junk",
        max_message_size=10_000,
    )
    (tmp_path / "mail" / "example.org").mkdir(parents=True)
    for user in ("alice", "bob"):
        (tmp_path / "mail" / "example.org" / user).mkdir()
        maildir.create(tmp_path / "mail" / "example.org" / user / "Maildir")
    server = await lm.start(config, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    assert (await client.reply()).startswith("220")
    assert (await client.cmd("LHLO test")).startswith("250")
    yield client, tmp_path / "mail" / "example.org"
    writer.close()
    server.close()
    await server.wait_closed()


MSG = b"Subject: hi\r\n\r\nhello\r\n"


async def test_one_reply_per_recipient(lmtp):
    """Two recipients get two 250 replies and one file each in new/."""
    client, base = lmtp
    replies = await client.send(
        "s@x.org", ["alice@example.org", "Bob@Example.org"], MSG
    )
    assert [rp.R250_DELIVERED, rp.R250_DELIVERED] == replies
    for user in ("alice", "bob"):
        [path] = (base / user / "Maildir" / "new").iterdir()
        assert path.read_bytes().startswith(
            b"Return-Path: <s@x.org>\nDelivered-To: "
        )


async def test_unknown_and_bad_recipients(lmtp):
    """Unknown user 550 5.1.1; traversal-shaped address 550 5.1.3."""
    client, base = lmtp
    assert rp.R550_NO_USER == (
        await client.cmd("MAIL FROM:<s@x.org>")
        and await client.cmd("RCPT TO:<carol@example.org>")
    )
    assert rp.R550_BAD_ADDRESS == await client.cmd(
        "RCPT TO:<../../etc@example.org>"
    )
    # aiosmtpd's own parser refuses this one first (553 5.1.3).
    assert (
        "5.1.3"
        == (await client.cmd("RCPT TO:<alice@../example.org>")).split()[1]
    )


async def test_extension_and_spam_routing(lmtp):
    """user+ext uses an existing folder; spam goes to Junk; bad ext -> INBOX."""
    client, base = lmtp
    root = base / "alice" / "Maildir"
    maildir.create_folder(root, "lists")
    await client.send("s@x.org", ["alice+lists@example.org"], MSG)
    await client.cmd("RSET")
    await client.send("s@x.org", ["alice+..@example.org"], MSG)
    await client.cmd("RSET")
    await client.send(
        "s@x.org", ["alice@example.org"], b"X-Spam-Flag: YES\r\n\r\nspam\r\n"
    )
    assert 1 == len(list((root / ".lists" / "new").iterdir()))
    assert 1 == len(list((root / "new").iterdir()))
    assert 1 == len(list((root / ".Junk" / "new").iterdir()))


async def test_mixed_outcomes(lmtp, monkeypatch):
    """A temporary failure for one recipient is 451 for it alone."""
    client, base = lmtp
    real = maildir.deliver

    def flaky(root, message, **kw):
        if "bob" in str(root):
            raise maildir.DeliveryError(
                "disk full", temporary=True, dsn="4.3.0"
            )
        return real(root, message, **kw)

    monkeypatch.setattr(lm.maildir, "deliver", flaky)
    replies = await client.send(
        "s@x.org", ["alice@example.org", "bob@example.org"], MSG
    )
    assert rp.R250_DELIVERED == replies[0]
    assert replies[1].startswith("451 4.3.0")


async def test_quota_and_size(lmtp):
    """Over quota answers 552 5.2.2; an oversize message 552 5.3.4."""
    client, base = lmtp
    maildir.quota.set_quota(
        base / "alice" / "Maildir", maildir.quota.Quota(10)
    )
    assert [rp.R552_TOO_BIG] == await client.send(
        "s@x.org", ["bob@example.org"], (b"x" * 900 + b"\r\n") * 30
    )
    await client.cmd("RSET")
    [reply] = await client.send("s@x.org", ["alice@example.org"], MSG)
    assert rp.R552_MAILBOX_FULL == reply


async def test_quota_tempfail_is_452(tmp_path):
    """With --quota-tempfail the Maildir++ quota defers: 452 4.2.2."""
    config = routing.Config(
        root_template=str(tmp_path / "{domain}" / "{user}" / "Maildir"),
        quota_tempfail=True,
    )
    (tmp_path / "example.org" / "alice").mkdir(parents=True)
    root = maildir.create(tmp_path / "example.org" / "alice" / "Maildir")
    maildir.quota.set_quota(root, maildir.quota.Quota(10))
    server = await lm.start(config, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    try:
        assert (await client.reply()).startswith("220")
        assert (await client.cmd("LHLO test")).startswith("250")
        replies = await client.send("s@x.org", ["alice@example.org"], MSG)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
    assert [rp.R452_MAILBOX_FULL] == replies
    assert [] == list((root / "new").iterdir())


async def test_filesystem_quota_defers_that_recipient_only(lmtp, monkeypatch):
    """EDQUOT while writing alice's copy: 452 4.2.2 for her (Postfix
    retries), bob delivered, nothing left in alice's Maildir. The write
    call is the injection point: no filesystem here has user quotas."""
    client, base = lmtp
    real = maildir.delivery.os.write

    def write(fd, data):
        if "/alice/Maildir/tmp/" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        return real(fd, data)

    monkeypatch.setattr(maildir.delivery.os, "write", write)
    replies = await client.send(
        "s@x.org", ["alice@example.org", "bob@example.org"], MSG
    )
    assert replies[0].startswith("4"), replies
    assert [rp.R452_MAILBOX_FULL, rp.R250_DELIVERED] == replies
    for sub in ("new", "tmp"):
        assert [] == list((base / "alice" / "Maildir" / sub).iterdir())
    assert 1 == len(list((base / "bob" / "Maildir" / "new").iterdir()))


async def test_bug_is_451_never_5xx(lmtp, monkeypatch):
    """An unexpected exception in delivery answers 451 for the recipient."""
    client, base = lmtp

    def boom(*a, **k):
        raise OSError(errno.EIO, "boom")

    monkeypatch.setattr(lm.maildir, "deliver", boom)
    assert [rp.R451_INTERNAL] == await client.send(
        "s@x.org", ["alice@example.org"], MSG
    )


async def test_handle_exception_is_451():
    """handle_exception (errors outside DATA) answers 451, not aiosmtpd's 500."""
    handler = lm.DeliveryHandler(routing.Config(root_template="/x/{user}"))
    assert rp.R451_INTERNAL == await handler.handle_exception(
        RuntimeError("x")
    )


async def test_missing_mount_is_451(tmp_path):
    """With --mount-check on a non-mountpoint, RCPT answers 451, not 550."""
    config = routing.Config(
        root_template=str(tmp_path / "{user}"), mount_check=str(tmp_path)
    )
    handler = lm.DeliveryHandler(config)

    class Env:
        rcpt_tos: list[str] = []

    assert rp.R451_MOUNT == await handler.handle_RCPT(
        None, None, Env(), "a@b.org", []
    )


def test_auto_create_makes_user_directories_but_never_the_store(tmp_path):
    """With --auto-create the user's tree is made under the store, but a missing store is never created."""
    from mailfilter.delivery.routing import Config, make_parents

    store = tmp_path / "store"
    config = Config(
        root_template=str(store) + "/{domain}/{user}/Maildir", auto_create=True
    )
    make_parents(config, str(store / "example.com" / "alice" / "Maildir"))
    assert not store.exists()  # the mount is missing: leave it to defer
    store.mkdir()
    make_parents(config, str(store / "example.com" / "alice" / "Maildir"))
    assert (store / "example.com" / "alice").is_dir()
