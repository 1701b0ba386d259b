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

import asyncio
import contextlib
import dataclasses
import secrets
import socket
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from mailfilter.ops.imapwatch import ImapWatcher
from mailfilter.ops.probe_config import TAG_HEADER, ProbeConfig, ProbeError
from mailfilter.ops.probe_report import (
    Sample,
)

# How long the run keeps watching after the last sample.
LINGER_SECONDS = 2.0


async def send(
    cfg: ProbeConfig, msg: EmailMessage, helo: str
) -> tuple[bool, str]:
    """(accepted, reply or error) for one message, within the SMTP
    timeout (cfg.smtp_timeout, else cfg.timeout)."""
    limit = cfg.smtp_timeout or cfg.timeout
    try:
        async with asyncio.timeout(limit):
            _, reply = await aiosmtplib.send(
                msg,
                hostname=cfg.smtp[0],
                port=cfg.smtp[1],
                sender=cfg.sender,
                recipients=[cfg.rcpt],
                start_tls=False,
                local_hostname=helo,
                timeout=limit,
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
        # Late copies (a retried failure, a duplicate) count too: one more
        # look at the mailbox before the copies are read.
        await asyncio.sleep(min(cfg.timeout, LINGER_SECONDS))
        return [
            dataclasses.replace(s, copies=watcher.copies[s.tag])
            for s in samples
        ]
    finally:
        await asyncio.to_thread(watcher.stop)
