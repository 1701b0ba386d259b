"""`mailfilter probe`: measure the mail service as a user sees it.

Every interval a uniquely tagged message goes out by SMTP; an IMAP
watcher (a thread: imapclient blocks) notes when it lands in the mailbox.
A sample fails when SMTP refuses it or it does not arrive within the
timeout. An outage runs from the first failed send to the next successful
one, so its length is exact to one interval; the mean of the outages is
the MTFO that `mailfilter availability --mtfo-from` reads back.

The records (samples, outages, summary, CSV) live in probe_report; this
module is the network side. The probe never deletes messages: point it
at a mailbox kept for probing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TextIO

import aiosmtplib
from imapclient import IMAPClient

from mailfilter.ops.probe_report import (
    Sample,
    format_sample,
    format_summary,
    summarize,
    write_csv,
)

TAG_HEADER = "X-Mailfilter-Probe"


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Where to send and where to look."""

    smtp: tuple[str, int]
    sender: str
    rcpt: str
    imap: tuple[str, int]
    imap_user: str
    imap_password: str
    imap_ssl: bool = False
    interval: float = 1.0
    count: int | None = None
    duration: float | None = None
    timeout: float = 30.0


class ProbeError(Exception):
    """The probe cannot run at all (e.g. IMAP login fails at start)."""


class ImapWatcher:
    """A thread that reports when tagged messages appear in INBOX."""

    def __init__(
        self, cfg: ProbeConfig, loop: asyncio.AbstractEventLoop, run_id: str
    ) -> None:
        self._cfg, self._loop, self._run_id = cfg, loop, run_id
        self._arrived: dict[str, float] = {}  # tag -> monotonic; loop only
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name="probe-imap"
        )
        self._last_uid: int | None = None  # kept across reconnections
        self.ready = asyncio.Event()
        self.error = ""

    def start(self) -> None:
        """Connect and start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (blocks up to a few seconds: use to_thread)."""
        self._stop.set()
        self._thread.join(timeout=15)

    async def wait(self, tag: str, within: float) -> float | None:
        """Monotonic arrival time of tag, or None after `within` seconds."""
        if tag not in self._arrived:
            fut = self._waiters.setdefault(tag, self._loop.create_future())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), max(within, 0))
            self._waiters.pop(tag, None)
        return self._arrived.get(tag)

    def _seen(self, tag: str, when: float) -> None:  # in the loop thread
        self._arrived.setdefault(tag, when)
        fut = self._waiters.get(tag)
        if fut is not None and not fut.done():
            fut.set_result(when)

    def _to_loop(self, func: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self._loop.call_soon_threadsafe(func, *args)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:  # imaplib/socket/ssl all differ
                # IMAP may be part of what fails over: retry, not give up.
                self.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(1.0)

    def _session(self) -> None:
        host, port = self._cfg.imap
        client = IMAPClient(host, port, ssl=self._cfg.imap_ssl, timeout=10)
        try:
            client.login(self._cfg.imap_user, self._cfg.imap_password)
            info = client.select_folder("INBOX")
            if self._last_uid is None:  # only what arrives from now on
                self._last_uid = int(info.get(b"UIDNEXT", 1)) - 1
            self._to_loop(self.ready.set)
            idle = b"IDLE" in client.capabilities()
            while not self._stop.is_set():
                self._collect(client, self._last_uid)
                if idle:  # wakes as soon as the server says EXISTS
                    client.idle()
                    client.idle_check(timeout=1.0)
                    client.idle_done()
                else:
                    self._stop.wait(0.5)
                    client.noop()
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def _collect(self, client: IMAPClient, last_uid: int) -> None:
        uids = [
            u
            for u in client.search(["UID", f"{last_uid + 1}:*"])
            if u > last_uid
        ]
        if not uids:
            return
        now = time.monotonic()
        field = f"BODY.PEEK[HEADER.FIELDS ({TAG_HEADER.upper()})]"
        for data in client.fetch(uids, [field]).values():
            for value in data.values():
                if isinstance(value, bytes) and self._run_id.encode() in value:
                    tag = value.split(b":", 1)[1].strip().decode("ascii")
                    self._to_loop(self._seen, tag, now)
        self._last_uid = max(uids)


async def send(
    cfg: ProbeConfig, msg: EmailMessage, helo: str
) -> tuple[bool, str]:
    """(accepted, reply or error) for one message, within cfg.timeout."""
    try:
        async with asyncio.timeout(cfg.timeout):
            _, reply = await aiosmtplib.send(
                msg,
                hostname=cfg.smtp[0],
                port=cfg.smtp[1],
                sender=cfg.sender,
                recipients=[cfg.rcpt],
                start_tls=False,
                local_hostname=helo,
                timeout=cfg.timeout,
            )
    except aiosmtplib.SMTPResponseException as exc:
        return False, f"{exc.code} {exc.message}"
    except aiosmtplib.SMTPRecipientsRefused as exc:  # our one recipient
        first = exc.recipients[0]
        return False, f"{first.code} {first.message}"
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return False, f"{type(exc).__name__}: {exc}".strip()
    # aiosmtplib raises unless DATA got exactly 250 and returns only the
    # text; the code is put back so that the CSV reads like a log.
    return True, f"250 {reply}"


def build_message(cfg: ProbeConfig, tag: str) -> EmailMessage:
    """A small, plainly legitimate message carrying the tag."""
    msg = EmailMessage()
    msg["From"], msg["To"] = cfg.sender, cfg.rcpt
    msg["Subject"] = f"mailfilter probe {tag}"
    msg[TAG_HEADER] = tag
    msg["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg.set_content(f"Delivery probe {tag}; safe to delete.\n")
    return msg


async def probe_one(
    cfg: ProbeConfig, watcher: ImapWatcher, tag: str, seq: int, helo: str
) -> Sample:
    """Send one tagged message and wait for it in the mailbox."""
    sent_at, t0 = time.time(), time.monotonic()
    ok, reply = await send(cfg, build_message(cfg, tag), helo)
    smtp_seconds = time.monotonic() - t0
    latency = None
    if ok:
        seen = await watcher.wait(tag, cfg.timeout - smtp_seconds)
        latency = None if seen is None else seen - t0
    return Sample(seq, tag, sent_at, ok, reply, smtp_seconds, latency)


async def run(
    cfg: ProbeConfig, emit: Any, stop: asyncio.Event
) -> list[Sample]:
    """Probe until count/duration is reached or stop is set."""
    loop = asyncio.get_running_loop()
    run_id = secrets.token_hex(6)
    watcher = ImapWatcher(cfg, loop, run_id)
    watcher.start()
    try:
        try:
            async with asyncio.timeout(cfg.timeout):
                await watcher.ready.wait()
        except TimeoutError:
            msg = f"IMAP {cfg.imap[0]}:{cfg.imap[1]}: {watcher.error}"
            raise ProbeError(msg) from None
        helo = socket.gethostname()
        samples: list[Sample] = []

        async def one(seq: int) -> None:
            sample = await probe_one(
                cfg, watcher, f"{run_id}.{seq}", seq, helo
            )
            samples.append(sample)
            emit(sample)

        tasks, t0, seq = set(), loop.time(), 0
        while (
            not stop.is_set()
            and (cfg.count is None or seq < cfg.count)
            and (cfg.duration is None or loop.time() - t0 < cfg.duration)
        ):
            tasks.add(asyncio.create_task(one(seq)))
            seq += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(),
                    max(0.0, t0 + seq * cfg.interval - loop.time()),
                )
        await asyncio.gather(*tasks)
        return samples
    finally:
        await asyncio.to_thread(watcher.stop)


class Progress:
    """Failed messages stay on screen; on a tty, ok ones overwrite a line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream, self._tty = stream, stream.isatty()

    def __call__(self, sample: Sample) -> None:
        """Show one finished sample."""
        line = format_sample(sample)
        if not self._tty:
            self._stream.write(line + "\n")
        else:
            self._stream.write("\r\x1b[K" + line + ("" if sample.ok else "\n"))
        self._stream.flush()

    def close(self) -> None:
        """End the overwritten line."""
        if self._tty:
            self._stream.write("\n")


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"want HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: list[str]) -> tuple[ProbeConfig, argparse.Namespace]:
    """Options → config (and the output paths, in the namespace)."""
    p = argparse.ArgumentParser(
        prog="mailfilter probe", description=__doc__.split("\n")[0]
    )
    p.add_argument("--smtp", type=_hostport, default=("127.0.0.1", 25))
    p.add_argument("--from", dest="sender", default="probe@localhost")
    p.add_argument("--to", required=True)
    p.add_argument("--imap", type=_hostport, default=("127.0.0.1", 143))
    p.add_argument("--imap-user", required=True)
    pw = p.add_mutually_exclusive_group(required=True)
    pw.add_argument("--imap-password", help="visible in ps: prefer a file")
    pw.add_argument("--imap-password-file", type=Path)
    p.add_argument("--imap-ssl", action="store_true")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--count", type=int)
    p.add_argument("--duration", type=float, help="seconds")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--csv", type=Path)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    password = a.imap_password
    if a.imap_password_file is not None:
        password = a.imap_password_file.read_text("utf-8").rstrip("\r\n")
    cfg = ProbeConfig(
        a.smtp,
        a.sender,
        a.to,
        a.imap,
        a.imap_user,
        password,
        a.imap_ssl,
        a.interval,
        a.count,
        a.duration,
        a.timeout,
    )
    return cfg, a


async def _run_until_signal(cfg: ProbeConfig, emit: Progress) -> list[Sample]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await run(cfg, emit, stop)


def main(argv: list[str]) -> int:
    """Probe; 0 when the service was up at the end of the run, else 1."""
    cfg, args = parse_args(argv)
    progress = Progress(sys.stdout)
    try:
        samples = asyncio.run(_run_until_signal(cfg, progress))
    except ProbeError as exc:
        print(f"mailfilter probe: {exc}", file=sys.stderr)
        return 2
    progress.close()
    summary = summarize(samples)
    if args.csv is not None:
        with args.csv.open("w", newline="", encoding="utf-8") as f:
            write_csv(samples, f)
    if args.json is not None:
        doc = {
            "samples": [asdict(s) | {"ok": s.ok} for s in samples],
            "summary": summary,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    print(format_summary(summary))
    last = max(samples, key=lambda s: s.seq, default=None)
    return 0 if last is not None and last.ok else 1
