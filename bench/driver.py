"""An asyncio load driver: SMTP at concurrency C, or clamd+spamd directly.

`send_smtp()` pushes a corpus through C connections to host:port (raw
asyncio streams, MAIL/RCPT/DATA pipelined as Postfix does), measuring
msg/s, per-message latency (MAIL sent to final reply) and replies by
class. `scan_direct()` is the "scanners alone" baseline: per message,
clamd INSTREAM and spamd REPORT (aiospamc) concurrently, at the same C.
`RssSampler` samples VmRSS/VmHWM of process trees while either runs, and
`cpu_seconds()` reads utime+stime. Starting the processes is stack.py's
job; what the numbers mean is the bench_*.py scripts' job.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from bench.stack import descendants

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bench.corpus import Message

CLK_TCK = os.sysconf("SC_CLK_TCK")
DOT_LINE = re.compile(rb"(?m)^\.")


@dataclass
class RunResult:
    """What one load run measured."""

    label: str
    sent: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    nbytes: int = 0

    @property
    def rate(self) -> float:
        """Messages per second over the whole run."""
        return self.sent / self.elapsed if self.elapsed else 0.0

    def pct(self, p: float) -> float:
        """The p-th percentile latency in seconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[k]

    def record(self, reply: bytes, latency: float) -> None:
        """Count one final reply and its latency."""
        code = reply[:3].decode(errors="replace")
        cls = f"{code[:1]}xx"
        self.classes[cls] += 1
        self.latencies.append(latency)
        text = reply.decode(errors="replace").strip()
        self.samples.setdefault(code, text[:200])


def stuff(data: bytes) -> bytes:
    """Dot-stuff a CRLF message and append the end-of-data line."""
    body = DOT_LINE.sub(b"..", data)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply; raises on EOF."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


class SmtpConn:
    """One client connection, kept open between messages (smtp-source -d)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect, read the greeting, EHLO."""
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=2**20
        )
        await read_reply(self.reader)
        self.writer.write(b"EHLO bench.example.org\r\n")
        await read_reply(self.reader)

    async def close(self) -> None:
        """QUIT and close, ignoring a peer that already went."""
        if self.writer is None:
            return
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(read_reply(self.reader), 5)  # type: ignore[arg-type]
        except (OSError, ConnectionError, TimeoutError):
            pass
        self.writer.close()
        self.reader = self.writer = None

    async def send(self, sender: str, rcpt: str, stuffed: bytes) -> bytes:
        """One transaction, envelope pipelined; returns the final reply."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(
            f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
        )
        mail = await read_reply(self.reader)
        rcpt_reply = await read_reply(self.reader)
        data = await read_reply(self.reader)
        if not data.startswith(b"354"):
            self.writer.write(b"RSET\r\n")
            await read_reply(self.reader)
            for reply in (mail, rcpt_reply, data):
                if not reply.startswith(b"2"):
                    return reply
            return data
        self.writer.write(stuffed)
        await self.writer.drain()
        return await read_reply(self.reader)


async def send_smtp(
    host: str,
    port: int,
    messages: Sequence[Message],
    concurrency: int,
    *,
    reuse: bool = True,
    label: str = "",
) -> RunResult:
    """Send every message once over `concurrency` connections."""
    result = RunResult(label or f"{host}:{port}")
    prepared = [(m.sender, m.recipient, stuff(m.data)) for m in messages]
    queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
    for item in prepared:
        queue.put_nowait(item)

    async def worker() -> None:
        conn = SmtpConn(host, port)
        while not queue.empty():
            sender, rcpt, stuffed = queue.get_nowait()
            start = time.perf_counter()
            try:
                reply = await conn.send(sender, rcpt, stuffed)
            except (OSError, ConnectionError) as exc:
                result.errors[type(exc).__name__] += 1
                await conn.close()
                continue
            result.record(reply, time.perf_counter() - start)
            result.sent += 1
            result.nbytes += len(stuffed)
            if not reuse or reply.startswith(b"421"):
                await conn.close()
        await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result


async def clamd_instream(socket_path: str, data: bytes) -> str:
    """Scan data with clamd INSTREAM over its unix socket; the reply line."""
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(b"zINSTREAM\0")
        for off in range(0, len(data), 1 << 16):
            chunk = data[off : off + (1 << 16)]
            writer.write(struct.pack("!L", len(chunk)) + chunk)
            await writer.drain()
        writer.write(struct.pack("!L", 0))
        return (await reader.readuntil(b"\0")).rstrip(b"\0").decode()
    finally:
        writer.close()


def spamd_client(port: int) -> Any:
    """One aiospamc client for a whole run.

    aiospamc's frontend functions (aiospamc.report & co.) build two
    ssl.create_default_context() per call, even for plain TCP: ~17 ms of
    CPU each on the 2-core machine, which would be charged to the
    baseline. A Client built once has none of that.
    """
    from aiospamc.client import Client  # noqa: PLC0415
    from aiospamc.connections import TcpConnectionManager  # noqa: PLC0415

    return Client(TcpConnectionManager("127.0.0.1", port))


async def spamd_report(client: Any, data: bytes) -> str:
    """spamd REPORT through an aiospamc Client; returns "score/required"."""
    from aiospamc.requests import Request  # noqa: PLC0415

    resp = await client.request(Request("REPORT", body=data))
    spam = resp.headers["Spam"]
    return f"{spam.score}/{spam.threshold}"


async def scan_direct(
    clamd_socket: str,
    spamd_port: int,
    messages: Sequence[Message],
    concurrency: int,
    *,
    spamd_max: int = 0,
    label: str = "scanners alone",
) -> RunResult:
    """Both scanners per message, concurrently, `concurrency` at a time."""
    result = RunResult(label)
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)

    spamd = spamd_client(spamd_port)

    async def one(m: Message) -> str:
        jobs = [clamd_instream(clamd_socket, m.data)]
        if not spamd_max or len(m.data) <= spamd_max:
            jobs.append(spamd_report(spamd, m.data))
        outcome = await asyncio.gather(*jobs)
        return "FOUND" if outcome[0].endswith("FOUND") else "OK"

    async def worker() -> None:
        while not queue.empty():
            m = queue.get_nowait()
            start = time.perf_counter()
            try:
                verdict = await one(m)
            except Exception as exc:
                result.errors[type(exc).__name__] += 1
                continue
            result.record(
                b"250 " + verdict.encode(), time.perf_counter() - start
            )
            result.sent += 1
            result.nbytes += len(m.data)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of pid in bytes (0 when it is gone)."""
    out = {"VmRSS": 0, "VmHWM": 0}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0]) * 1024
    return out


def _pss(pid: int) -> int:
    """Proportional set size of pid in bytes (0 when it is gone).

    Pre-forking daemons (amavisd, spamd) share most pages copy-on-write
    with their parent, so summed RSS counts those pages once per child;
    PSS splits each shared page among its users and sums to the truth.
    """
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime+stime (plus reaped children's) of the given PIDs, seconds."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[11..14] are utime, stime, cutime, cstime (man 5 proc).
        total += sum(int(f) for f in fields[11:15])
    return total / CLK_TCK


class RssSampler:
    """Samples summed VmRSS and PSS of process trees in a thread."""

    def __init__(self, roots: dict[str, int], interval: float = 0.2) -> None:
        self.roots = roots
        self.interval = interval
        self.peak: dict[str, int] = dict.fromkeys(roots, 0)
        self.peak_pss: dict[str, int] = dict.fromkeys(roots, 0)
        self.hwm: dict[str, int] = dict.fromkeys(roots, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        """Take one sample of every tree now."""
        for name, root in self.roots.items():
            tree = [root, *descendants(root)]
            rss = sum(_status(p)["VmRSS"] for p in tree)
            pss = sum(_pss(p) for p in tree)
            self.peak[name] = max(self.peak[name], rss)
            self.peak_pss[name] = max(self.peak_pss[name], pss)
            self.hwm[name] = max(self.hwm[name], _status(root)["VmHWM"])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class NoopProber:
    """NOOP round trips every `every` seconds from a separate process.

    A process, not a thread: the driver holds the GIL while it prepares a
    20 MB message, which would show up as a "stall" of the filter.
    """

    def __init__(self, host: str, port: int, every: float = 0.01) -> None:
        self.addr = (host, port)
        self.every = every
        self.latencies: list[float] = []
        self.error = ""
        ctx = multiprocessing.get_context("fork")
        self._stop = ctx.Event()
        self._ready = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=self._run, args=(send,), daemon=True)

    def _run(self, send: Any) -> None:
        out: list[float] = []
        error = ""
        try:
            with socket.create_connection(self.addr, timeout=60) as sock:
                rfile = sock.makefile("rb")
                _read_sync(rfile)
                sock.sendall(b"EHLO prober.example.org\r\n")
                _read_sync(rfile)
                self._ready.set()
                while not self._stop.is_set():
                    start = time.perf_counter()
                    sock.sendall(b"NOOP\r\n")
                    _read_sync(rfile)
                    out.append(time.perf_counter() - start)
                    self._stop.wait(self.every)
                sock.sendall(b"QUIT\r\n")
        except (OSError, ConnectionError) as exc:
            error = repr(exc)
        self._ready.set()
        send.send((out, error))

    @property
    def worst(self) -> float:
        """The longest NOOP round trip seen, seconds."""
        return max(self.latencies, default=float("nan"))

    def __enter__(self) -> Self:
        self._proc.start()
        self._ready.wait(30)  # connected and greeted before the load
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.latencies, self.error = self._recv.recv()
        self._proc.join()


def _read_sync(rfile: Any) -> bytes:
    """One SMTP reply from a blocking socket file."""
    lines = []
    while True:
        line = rfile.readline()
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Stand-alone use: push a generated corpus at a running server."""
    import argparse  # noqa: PLC0415

    from bench import corpus  # noqa: PLC0415

    p = argparse.ArgumentParser(description="SMTP or clamd+spamd load driver")
    p.add_argument("mode", choices=("smtp", "scan"))
    p.add_argument(
        "target", help="HOST:PORT (smtp) or CLAMD_SOCKET:SPAMD_PORT"
    )
    p.add_argument("-n", "--messages", type=int, default=200)
    p.add_argument("-c", "--concurrency", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--salt", default="cli")
    p.add_argument("--text-only", action="store_true", help="4 KB messages")
    args = p.parse_args(argv)
    msgs = (
        corpus.text_messages(args.messages, salt=args.salt)
        if args.text_only
        else corpus.generate(args.messages, args.seed, args.salt)
    )
    left, _, right = args.target.rpartition(":")
    if args.mode == "smtp":
        coro = send_smtp(left, int(right), msgs, args.concurrency)
    else:
        coro = scan_direct(left, int(right), msgs, args.concurrency)
    r = asyncio.run(coro)
    print(
        f"{corpus.summary(msgs)}\n{r.rate:.2f} msg/s, p50 {r.pct(50) * 1e3:.1f} ms"
        f", p95 {r.pct(95) * 1e3:.1f} ms, p99 {r.pct(99) * 1e3:.1f} ms, "
        f"replies {dict(r.classes)}, errors {dict(r.errors)}\n{r.samples}"
    )


if __name__ == "__main__":
    main()
