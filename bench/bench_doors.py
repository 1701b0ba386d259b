"""The three front doors through real Postfix, side by side in one run.

For each door (content_filter after the queue, milter and proxy before it)
and with scanners off and on (clamd + spamd), a throwaway Postfix built
from the shipped snippets takes N messages from C concurrent SMTP clients
and delivers them into a Maildir. Measured per door:

- msg/s: N / (first send until the last message is in the Maildir);
- p50/p99 end-to-end latency: send start until the file is in the Maildir
  (a watcher polls every 5 ms);
- p99 of what the sending client waits for the reply to its DATA: before
  the queue this includes the scan;
- filter CPU per message: utime+stime of the mailfilter process, /proc.

Rounds are interleaved (door A, B, C, A, B, C ...) so background load hits
all doors alike; the best round per door is reported. Writes a markdown
table to stdout and docs/bench-doors.md. Run on demand, never from the
test suite:

    PYTHONPATH=. .venv/bin/python -m bench.bench_doors [--messages N]
"""

from __future__ import annotations

import argparse
import contextlib
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import driver
from tests.integration.doors_support import door_policy
from tests.support import daemons
from tests.support.filter import REPO, start_filter
from tests.support.ports import free_port, wait_port
from tests.support.postfix import start_postfix

DOORS = ("content_filter", "milter", "proxy")
BODY = (b"Quarterly figures attached, see you on Monday. " * 12 + b"\r\n") * 6


@dataclass
class Run:
    door: str
    scanners: str
    messages: int
    seconds: float
    e2e: list[float]
    smtp: list[float]
    cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def pct(self, values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000


def start(root: Path, door: str, clamd: str, spamd: str):  # noqa: ANN201
    """Postfix with `door` and a mailfilter process behind it."""
    door_port, plain = free_port(), free_port()
    if door == "content_filter":
        pf = start_postfix(root / "pf", plain, extra_main="")
        listen: list[str] = []
    else:
        snippet = (REPO / f"deploy/postfix/{door}.cf.snippet").read_text()
        for port in ("10024", "10027"):
            snippet = snippet.replace(port, str(door_port))
        pf = start_postfix(
            root / "pf", plain, extra_main=snippet, content_filter=False
        )
        listen = ["--listen", f"{door}:127.0.0.1:{door_port}"]
    flt = start_filter(
        root / "f",
        plain,
        pf.reinject_port,
        clamd=clamd,
        spamd=spamd,
        policy=door_policy(root),
        extra=[*listen, "--log-to", "stderr"],
    )
    if listen:  # start_filter waited for the first listener only
        wait_port(door_port)
    return pf, flt


def one_round(  # noqa: PLR0913
    root: Path,
    door: str,
    scanners: str,
    n: int,
    conc: int,
    addrs: tuple,
    per_conn: int,
) -> Run:
    pf, flt = start(root, door, *addrs)
    try:
        # Warm up: the first message pays for connections and imports.
        _send(pf.port, "warm")
        pf.wait_delivered(1, timeout=120)
        seen: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(
            target=_watch, args=(pf.maildir / "new", seen, stop), daemon=True
        )
        watcher.start()
        cpu0 = driver.cpu_seconds([flt.proc.pid])
        began: dict[str, float] = {}
        waited: list[float] = []
        t0 = time.monotonic()

        def send(tags: list[str]) -> None:
            with smtplib.SMTP("127.0.0.1", pf.port, timeout=300) as smtp:
                for tag in tags:
                    began[tag] = time.monotonic()
                    smtp.sendmail("a@example.org", ["u@example.com"], _data(tag))
                    waited.append(time.monotonic() - began[tag])

        tags = [f"m{i}" for i in range(n)]
        chunks = [tags[i : i + per_conn] for i in range(0, n, per_conn)]
        with ThreadPoolExecutor(conc) as pool:
            list(pool.map(send, chunks))
        deadline = time.monotonic() + 600
        while len(seen) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        watcher.join()
        if len(seen) < n:
            raise RuntimeError(f"{door}: {len(seen)} of {n} delivered")
        seconds = max(seen.values()) - t0
        cpu = (driver.cpu_seconds([flt.proc.pid]) - cpu0) / n
        e2e = [seen[t] - began[t] for t in began]
        return Run(door, scanners, n, seconds, e2e, waited, cpu)
    finally:
        flt.stop()
        pf.stop()


def _data(tag: str) -> bytes:
    return (
        f"From: a@example.org\r\nTo: u@example.com\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@bench>\r\n\r\n"
    ).encode() + BODY


def _send(port: int, tag: str) -> float:
    began = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as smtp:
        smtp.sendmail("a@example.org", ["u@example.com"], _data(tag))
    return time.monotonic() - began


def _watch(new: Path, seen: dict[str, float], stop: threading.Event) -> None:
    known: set[str] = set()
    while not stop.is_set():
        with contextlib.suppress(FileNotFoundError):
            for path in new.iterdir():
                if path.name in known:
                    continue
                known.add(path.name)
                now = time.monotonic()
                with contextlib.suppress(OSError):
                    head = path.read_bytes()[:2000]
                    for line in head.split(b"\n"):
                        if line.startswith(b"Subject: m"):
                            seen[line[9:].strip().decode()] = now
                            break
        time.sleep(0.005)


def table(runs: list[Run]) -> list[str]:
    lines = [
        ("| door | scanners | msg/s | p50 e2e ms | p99 e2e ms "
        "| p99 client wait ms | filter CPU ms/msg |"),
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.door} | {r.scanners} | {r.rate:.1f} | {r.pct(r.e2e, 50):.0f} "
        f"| {r.pct(r.e2e, 99):.0f} | {r.pct(r.smtp, 99):.0f} "
        f"| {r.cpu * 1000:.2f} |"
        for r in runs
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--scanned-messages", type=int, default=60)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--per-connection",
        type=int,
        default=1,
        help="messages per client SMTP session (1: a new one each)",
    )
    p.add_argument("--modes", default="off,on", help="scanners off,on")
    p.add_argument("--out", default=str(REPO / "docs/bench-doors.md"))
    args = p.parse_args(argv)
    best: dict[tuple[str, str], Run] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clamd = daemons.start_clamd(root / "clamd")
        spamd = daemons.start_spamd(root / "spamd")
        try:
            modes = [
                m
                for m in (
                    ("off", ("off", "off"), args.messages),
                    (
                        "on",
                        (clamd.address, spamd.address),
                        args.scanned_messages,
                    ),
                )
                if m[0] in args.modes.split(",")
            ]
            k = 0
            for _ in range(args.rounds):
                for scanners, addrs, n in modes:
                    for door in DOORS:
                        k += 1
                        run = one_round(
                            root / f"r{k}",
                            door,
                            scanners,
                            n,
                            args.concurrency,
                            addrs,
                            args.per_connection,
                        )
                        print(*table([run])[2:], file=sys.stderr)
                        key = (door, scanners)
                        if key not in best or run.rate > best[key].rate:
                            best[key] = run
        finally:
            spamd.stop()
            clamd.stop()
    runs = [best[(d, s)] for s in ("off", "on") for d in DOORS if (d, s) in best]
    text = "\n".join(
        [
            "# Front doors through real Postfix",
            "",
            ("`PYTHONPATH=. .venv/bin/python -m bench.bench_doors "
            f"--messages {args.messages} --scanned-messages "
            f"{args.scanned_messages} --concurrency {args.concurrency} "
            f"--rounds {args.rounds} --per-connection {args.per_connection} "
            f"--modes {args.modes}` (best round per door; rounds "
            "interleaved). Each message ~3.5 KB, one recipient, "
            "smtplib clients -> Postfix -> door -> Maildir (virtual)."),
            "",
            *table(runs),
            "",
        ]
    )
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
