"""LMTP delivery server for Postfix `virtual_transport = lmtp:...` -> Maildir.

Maps each recipient to a Maildir through a root template such as
`/srv/mail/{domain}/{user}/Maildir`, routes `user+ext` to folder `ext`
and `X-Spam-Flag: YES` to the spam folder (`maildir.routing`), and stores
with `maildir.deliver` in a worker thread (fsync never blocks the loop).
After DATA it answers once per accepted recipient (RFC 2033 §4.2).

Reply policy (style.md §6.8.1): storage trouble and our own bugs answer
451 4.x.x so Postfix retries; only a permanent cause answers 5xx (over
quota 552 5.2.2, unknown user 550 5.1.1 when auto-create is off, a
malformed address 550 5.1.3). A missing mount (--mount-check) is 451,
never "unknown user". The Maildir layer itself is `maildir`; TLS, auth and
queueing are Postfix's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP

import maildir
from maildir import routing
from mailfilter.loop import run as run_loop

log = logging.getLogger("mailfilter.lmtp_delivery")

R250_RCPT = "250 2.1.5 OK"
R250_DELIVERED = "250 2.0.0 Delivered"
R451_INTERNAL = "451 4.3.0 Internal error, try again later"
R451_MOUNT = "451 4.3.0 Mail store not available, try again later"
R550_NO_USER = "550 5.1.1 No such user"
R550_BAD_ADDRESS = "550 5.1.3 Bad recipient address syntax"
R552_TOO_BIG = "552 5.3.4 Message too big"

# Conservative: whatever ends up in a path must be boring ASCII.
_USER = re.compile(r"[a-z0-9_][a-z0-9._=-]{0,63}")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}\.?)*[a-z0-9]?")


@dataclass(frozen=True)
class Config:
    """Settings of one LMTP delivery listener."""

    root_template: str
    recipient_delimiter: str = "+"
    spam_folder: str | None = None
    auto_create: bool = False
    create_extension_folders: bool = False
    mount_check: str | None = None
    quota_tempfail: bool = False
    max_message_size: int | None = None
    maildir_hostname: str | None = None


@dataclass(frozen=True)
class Target:
    """Where one recipient's mail goes."""

    address: str
    root: str
    extension: str | None


def resolve(config: Config, address: str) -> Target | None:
    """Map `user+ext@domain` to its Maildir root; None if unusable."""
    if any(ch in address for ch in "\r\n\0/") or address.count("@") != 1:
        return None
    local, _, domain = address.lower().rpartition("@")
    user, sep, ext = local.partition(config.recipient_delimiter or "\0")
    if (
        not _USER.fullmatch(user)
        or ".." in user
        or not _DOMAIN.fullmatch(domain)
        or ".." in domain
    ):
        return None
    root = config.root_template.format(
        user=user, domain=domain, address=f"{user}@{domain}"
    )
    # Extension case matters for folder names; take it from the original.
    raw_ext = address.rpartition("@")[0][len(user) + len(sep) :]
    return Target(address, root, raw_ext if sep and ext else None)


def _make_parents(config: Config, root: str) -> None:
    """Create the user's directories below the template's fixed part.

    The fixed part (before the first `{`) is the mail store itself - on
    the cluster, the Lustre mount. It is never created: if it is missing,
    the mount is, and maildir.deliver then defers (4.2.0) instead of
    writing mail onto the local disk.
    """
    # dirname, not Path.parent: "/srv/mail/" must give "/srv/mail".
    base = Path(os.path.dirname(config.root_template.split("{", 1)[0]))  # noqa: PTH120
    parent = Path(root).parent
    if base.is_dir() and not parent.is_dir():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def _store_ok(config: Config) -> bool:
    return config.mount_check is None or os.path.ismount(config.mount_check)


def _rcpt_refusal(config: Config, root: str) -> str | None:
    """The RCPT reply when the mount or the user's Maildir is missing."""
    if not _store_ok(config):
        return R451_MOUNT
    if not config.auto_create and not _exists(root):
        return R550_NO_USER
    return None


def _exists(path: str) -> bool:
    return os.path.isdir(path)  # noqa: PTH112 - str paths from the template


def _reply_for(error: maildir.DeliveryError) -> str:
    text = str(error).replace("\r", " ").replace("\n", " ")[:200]
    if error.temporary:
        return f"451 {error.dsn} {text}"
    code = "552" if error.dsn == "5.2.2" else "550"
    return f"{code} {error.dsn} {text}"


class DeliveryHandler:
    """aiosmtpd handler: RCPT checks the mailbox, DATA stores per recipient."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self,
        _server: Any,
        _session: Any,
        envelope: Any,
        address: str,
        _rcpt_options: list[str],
    ) -> str:
        """Accept a recipient whose Maildir exists (or may be created)."""
        target = resolve(self.config, address)
        if target is None:
            return R550_BAD_ADDRESS
        config = self.config
        if config.mount_check or not config.auto_create:
            # stat() on a cluster mount can block: one trip off the loop.
            refused = await asyncio.to_thread(
                _rcpt_refusal, config, target.root
            )
            if refused:
                return refused
        envelope.rcpt_tos.append(address)
        return R250_RCPT

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, _server: Any, _session: Any, envelope: Any
    ) -> str:
        """One reply line per accepted recipient, in RCPT order."""
        content: bytes = envelope.original_content or b""
        replies = await asyncio.gather(
            *(
                self._deliver_one(rcpt, envelope.mail_from, content)
                for rcpt in envelope.rcpt_tos
            )
        )
        # aiosmtpd writes the string plus CRLF: joined lines become the
        # per-recipient replies LMTP requires.
        return "\r\n".join(replies)

    async def _deliver_one(
        self, rcpt: str, mail_from: str | None, content: bytes
    ) -> str:
        try:
            return await self._store(rcpt, mail_from, content)
        except maildir.DeliveryError as exc:
            log.warning("delivery to %r failed: %s", rcpt, exc)
            return _reply_for(exc)
        except Exception:
            log.exception("delivery to %r crashed", rcpt)
            return R451_INTERNAL

    async def _store(
        self, rcpt: str, mail_from: str | None, content: bytes
    ) -> str:
        config = self.config
        target = resolve(config, rcpt)
        if target is None:
            return R550_BAD_ADDRESS
        size_limit = config.max_message_size
        if size_limit and len(content) > size_limit:
            return R552_TOO_BIG
        # The mount check stats a path: off the loop, and only when asked.
        if config.mount_check and not await asyncio.to_thread(
            _store_ok, config
        ):
            return R451_MOUNT
        folder, create_folder = routing.choose(
            content,
            extension=target.extension,
            spam_folder=config.spam_folder,
            create_extension_folders=config.create_extension_folders,
        )
        message = _trace_headers(mail_from, rcpt) + content
        if config.auto_create:
            await asyncio.to_thread(_make_parents, config, target.root)
        path = await asyncio.to_thread(
            maildir.deliver,
            target.root,
            message,
            folder=folder,
            create=config.auto_create,
            create_folder=create_folder,
            hostname=config.maildir_hostname,
            quota_tempfail=config.quota_tempfail,
        )
        log.info("delivered to %r as %s", rcpt, path.name)
        return R250_DELIVERED

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected error is temporary for the client (never 5xx)."""
        log.error("LMTP session error: %r", error)
        return R451_INTERNAL


def _trace_headers(mail_from: str | None, rcpt: str) -> bytes:
    """Return-Path and Delivered-To, as Postfix local(8) and Dovecot add."""
    sender = (mail_from or "").translate({13: None, 10: None, 0: None})
    return f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode(
        "utf-8", "surrogateescape"
    )


def make_protocol(config: Config, hostname: str = "localhost") -> LMTP:
    """An LMTP protocol instance (one per connection)."""
    # data_size_limit=None: aiosmtpd would answer an oversize message with
    # a single 552, which desynchronises an LMTP client expecting one reply
    # per recipient; the size is checked per recipient in _store instead.
    return LMTP(
        DeliveryHandler(config),
        hostname=hostname,
        data_size_limit=None,
        enable_SMTPUTF8=True,
        decode_data=False,
    )


async def start(
    config: Config, host: str, port: int, hostname: str = "localhost"
) -> asyncio.Server:
    """Listen on host:port (port 0 picks a free one)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: make_protocol(config, hostname), host, port
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mailfilter lmtp-deliver",
        description="LMTP server delivering into Maildirs (Postfix "
        "virtual_transport = lmtp:inet:HOST:PORT).",
    )
    p.add_argument("--listen", default="127.0.0.1:24", help="HOST:PORT")
    p.add_argument(
        "--root-template",
        required=True,
        help="Maildir per recipient, e.g. /srv/mail/{domain}/{user}/Maildir",
    )
    p.add_argument("--recipient-delimiter", default="+")
    p.add_argument("--spam-folder", default=None, help="e.g. Junk")
    p.add_argument("--auto-create", action="store_true")
    p.add_argument("--create-extension-folders", action="store_true")
    p.add_argument("--mount-check", default=None, help="must be a mountpoint")
    p.add_argument("--quota-tempfail", action="store_true")
    p.add_argument("--max-message-size", type=int, default=None)
    p.add_argument("--maildir-hostname", default=None)
    p.add_argument("--hostname", default=os.uname().nodename)
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    """Validate the template once, so a typo stops start-up."""
    template: str = args.root_template
    try:
        template.format(user="u", domain="d", address="u@d")
    except (KeyError, IndexError, ValueError) as exc:
        raise SystemExit(f"--root-template: bad placeholder {exc}") from exc
    return Config(
        root_template=template,
        recipient_delimiter=args.recipient_delimiter,
        spam_folder=args.spam_folder,
        auto_create=args.auto_create,
        create_extension_folders=args.create_extension_folders,
        mount_check=args.mount_check,
        quota_tempfail=args.quota_tempfail,
        max_message_size=args.max_message_size,
        maildir_hostname=args.maildir_hostname,
    )


async def serve(config: Config, host: str, port: int, hostname: str) -> None:
    """Run until SIGTERM or SIGINT."""
    server = await start(config, host, port, hostname)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on %s:%d", host, port)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """`python -m mailfilter.delivery.lmtp --listen H:P --root-template T`."""
    args = _parser().parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    config = config_from_args(args)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(
            serve(
                config,
                host.strip("[]") or "127.0.0.1",
                int(port),
                args.hostname,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
