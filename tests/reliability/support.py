"""Shared pieces of the reliability suite.

- the mode (short by default, long with RELIABILITY_LONG=1) and the
  Hypothesis profiles that go with it;
- `Sink`: a 10025 stand-in in its own thread that counts what arrives by
  Message-ID (lost / duplicated), can hang (accept and never answer) and
  can hold its reply to the final dot (to see how many messages are being
  processed at once);
- `CaptureProxy`: a TCP relay that keeps every byte the filter sends to
  the real 10025, so a test inspects what the final hop receives;
- a raw SMTP client that resends on 4xx, as Postfix would;
- /proc readers for the filter's peak memory and CPU time.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings

LONG = os.environ.get("RELIABILITY_LONG") == "1"
MODE = "long" if LONG else "short"

# Short mode is derandomized so CI runs the same examples every time; the
# long mode explores with fresh randomness and no example database (the
# run is a measurement, not a cache).
settings.register_profile(
    "reliability-short",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "reliability-long",
    deadline=None,
    database=None,
    max_examples=10**6,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile(f"reliability-{MODE}")


# The long mode's total of fuzz examples; lower it with
# RELIABILITY_FUZZ_EXAMPLES on a slow or shared machine (the results table
# shows how many ran).
FUZZ_TOTAL = int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES") or 10**6)


def fuzz(short: int, long_share: int) -> settings:
    """Settings for one fuzz target: `short` examples, or its long share.

    The long mode spreads FUZZ_TOTAL (10**6) examples over the parser
    targets by their shares of 10**6, so it stays bounded in count.
    """
    scaled = max(short, long_share * FUZZ_TOTAL // 10**6)
    return settings(PROFILE, max_examples=scaled if LONG else short)


def budget(short: float, long: float) -> float:
    """A count or duration for the current mode."""
    return long if LONG else short


# -- messages -----------------------------------------------------------------

_MID = re.compile(
    rb"^Message-ID:[ \t]*<([^>\r\n]*)>", re.IGNORECASE | re.MULTILINE
)


def message(mid: str, body_bytes: int = 0, subject: str = "r") -> bytes:
    """A CRLF message with Message-ID <mid> and about body_bytes of body."""
    head = (
        f"From: a@example.org\r\nTo: u@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{mid}>\r\n"
        "Date: Tue, 01 Dec 2026 04:00:00 +0000\r\n\r\n"
    ).encode()
    line = b"A" * 76 + b"\r\n"
    return head + b"Hello.\r\n" + line * (body_bytes // len(line))


def message_id(data: bytes) -> str:
    """The Message-ID in the header block ("" when there is none)."""
    end = data.find(b"\r\n\r\n")
    match = _MID.search(data, 0, end if end >= 0 else len(data))
    return match.group(1).decode("ascii", "replace") if match else ""


def stuff(data: bytes) -> bytes:
    """Dot-stuff a CRLF message and append the end-of-data marker."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


# -- a raw SMTP client ---------------------------------------------------------


@dataclass
class Attempt:
    """One SMTP session: the code that ended it and how long it took."""

    code: int  # 0: the connection broke without a reply
    seconds: float
    stage: str  # where it ended: connect, greeting, ehlo, ..., dot


async def _reply(reader: asyncio.StreamReader, timeout: float) -> int:
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return 0
        if line[3:4] != b"-":
            return int(line[:3]) if line[:3].isdigit() else 0


async def send_once(
    port: int,
    data: bytes,
    *,
    rcpt: str = "u@example.com",
    timeout: float = 120,
    drip: float = 0.0,
    drip_bytes: int = 0,
    drop_after_dot: bool = False,
    greet_timeout: float | None = None,
) -> Attempt:
    """One SMTP session carrying one message.

    `drip` > 0 sends the first `drip_bytes` of the DATA section one byte
    per `drip` seconds (slowloris), then the rest; `drop_after_dot` closes
    the connection right after the final dot, without reading the reply.
    """
    start = time.monotonic()
    stage = "connect"
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout
        )
        stage = "greeting"
        code = await _reply(reader, greet_timeout or timeout)
        steps = (
            ("ehlo", b"EHLO client.test.invalid\r\n", 250),
            ("mail", b"MAIL FROM:<a@example.org>\r\n", 250),
            ("rcpt", f"RCPT TO:<{rcpt}>\r\n".encode(), 250),
            ("data", b"DATA\r\n", 354),
        )
        for name, line, want in steps:
            if code != (220 if name == "ehlo" else 250):
                return Attempt(code, time.monotonic() - start, stage)
            stage = name
            writer.write(line)
            code = await _reply(reader, timeout)
            if name == "data" and code != want:
                return Attempt(code, time.monotonic() - start, stage)
        stage = "dot"
        payload = stuff(data)
        if drip:
            slow = min(drip_bytes, len(payload) - 5)
            for i in range(slow):
                writer.write(payload[i : i + 1])
                await writer.drain()
                await asyncio.sleep(drip)
            payload = payload[slow:]
        writer.write(payload)
        await writer.drain()
        if drop_after_dot:
            # A FIN after the last byte (an abort could discard the dot).
            writer.close()
            await writer.wait_closed()
            return Attempt(0, time.monotonic() - start, "dropped")
        code = await _reply(reader, timeout)
        writer.write(b"QUIT\r\n")
        return Attempt(code, time.monotonic() - start, stage)
    except (OSError, TimeoutError, ValueError):
        return Attempt(0, time.monotonic() - start, stage)
    finally:
        if writer is not None:
            writer.close()


async def deliver(
    port: int,
    data: bytes,
    *,
    tries: int = 20,
    pause: float = 0.5,
    timeout: float = 120,
) -> list[Attempt]:
    """Send until 2xx or 5xx, resending after 4xx/421/no reply (Postfix)."""
    attempts: list[Attempt] = []
    for _ in range(tries):
        attempt = await send_once(port, data, timeout=timeout)
        attempts.append(attempt)
        if 200 <= attempt.code < 300 or attempt.code >= 500:
            break
        await asyncio.sleep(pause)
    return attempts


def allowed(code: int) -> bool:
    """Replies the filter may give under stress: 2xx, 354, 421 and 4xx."""
    return 200 <= code < 300 or code == 354 or 400 <= code < 500


# -- a loop in a thread ----------------------------------------------------------


class _LoopThread:
    """An asyncio loop in a daemon thread, for servers the test talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, daemon=True
        )
        self._thread.start()
        self._server: asyncio.Server | None = None
        self.port = 0

    def _listen(self, handler) -> None:  # noqa: ANN001
        async def start() -> asyncio.Server:
            return await asyncio.start_server(
                handler, "127.0.0.1", 0, limit=1 << 20, backlog=2048
            )

        self._server = asyncio.run_coroutine_threadsafe(
            start(), self.loop
        ).result(30)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close the listener and end the thread."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


_EHLO = (
    b"250-sink.test.invalid\r\n250-PIPELINING\r\n250-SIZE 209715200\r\n"
    b"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
    b"250 DSN\r\n"
)


@dataclass
class Sink(_LoopThread):
    """The 10025 stand-in: counts messages by Message-ID.

    mode "ok" speaks SMTP; "hang" accepts and never answers (set it before
    the connections it should affect are made). `dot_delay` holds each
    final reply that long, so processing overlaps and `max_inflight` shows
    how many messages the filter had in reinjection at once.
    """

    dot_delay: float = 0.0
    mode: str = "ok"
    ids: list[str] = field(default_factory=list)
    inflight: int = 0
    max_inflight: int = 0
    hung: int = 0

    def __post_init__(self) -> None:
        _LoopThread.__init__(self)
        self._listen(self._client)

    def counts(self, expected: list[str]) -> tuple[int, int]:
        """(lost, duplicated) of `expected` Message-IDs at the sink."""
        got = list(self.ids)
        lost = sum(1 for m in expected if m not in got)
        duplicated = sum(max(0, got.count(m) - 1) for m in set(got))
        return lost, duplicated

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            if self.mode == "hang":
                self.hung += 1
                while await reader.read(1 << 16):
                    pass
                return
            writer.write(b"220 sink.test.invalid ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    writer.write(_EHLO)
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    if not await self._transaction(reader, writer):
                        return
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _transaction(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            buf = bytearray(b"\r\n")
            start = 0
            while (end := buf.find(b"\r\n.\r\n", start)) < 0:
                start = max(0, len(buf) - 4)
                chunk = await reader.read(1 << 20)
                if not chunk:
                    return False
                buf += chunk
            if self.dot_delay:
                await asyncio.sleep(self.dot_delay)
            self.ids.append(message_id(bytes(buf[2 : min(end, 65536)])))
            writer.write(b"250 2.0.0 Ok: queued\r\n")
            return True
        finally:
            self.inflight -= 1


class CaptureProxy(_LoopThread):
    """Relay to 127.0.0.1:target, keeping every byte sent upstream."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self.streams: list[bytearray] = []
        self._listen(self._client)

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        seen = bytearray()
        self.streams.append(seen)
        try:
            up_r, up_w = await asyncio.open_connection(
                "127.0.0.1", self.target
            )
        except OSError:
            writer.close()
            return

        async def pipe(
            src: asyncio.StreamReader,
            dst: asyncio.StreamWriter,
            keep: bytearray | None,
        ) -> None:
            try:
                while chunk := await src.read(1 << 16):
                    if keep is not None:
                        keep += chunk
                    dst.write(chunk)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(
            pipe(reader, up_w, seen), pipe(up_r, writer, None)
        )


def bare_line_ends(stream: bytes) -> list[int]:
    """Offsets of CR not followed by LF and of LF not preceded by CR."""
    bad = [m.start() for m in re.finditer(rb"\r(?!\n)", stream)]
    bad += [m.start() for m in re.finditer(rb"(?<!\r)\n", stream)]
    return sorted(bad)


# -- the filter process -------------------------------------------------------


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:  # noqa: ANN001
    """Poll `predicate` until true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


async def until(predicate, timeout: float, step: float = 0.1) -> bool:  # noqa: ANN001
    """`wait_for` for async tests: polls without blocking the loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def children(pid: int) -> list[int]:
    """The direct children of a process we started (spamd's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found
