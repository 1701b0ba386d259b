"""Watch a mailbox over IMAP for tagged probe messages.

imapclient blocks, so the watcher runs in a thread of its own and hands
arrivals to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from typing import Any

from imapclient import IMAPClient

from mailfilter.ops.probe_config import TAG_HEADER, ProbeConfig


class ImapWatcher:
    """A thread that reports when tagged messages appear in INBOX."""

    def __init__(
        self, cfg: ProbeConfig, loop: asyncio.AbstractEventLoop, run_id: str
    ) -> None:
        self._cfg, self._loop, self._run_id = cfg, loop, run_id
        self._arrived: dict[str, float] = {}  # tag -> monotonic; loop only
        # tag -> copies seen (distinct UIDs); loop only.
        self.copies: Counter[str] = Counter()
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
        self.copies[tag] += 1
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
