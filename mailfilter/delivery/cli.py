"""`mailfilter lmtp-deliver`: options, signals, and serving until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal

from mailfilter.delivery.lmtp import (
    log,
    start,
)
from mailfilter.delivery.routing import Config
from mailfilter.loop import run as run_loop


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
