"""`mailfilter probe`: options, progress lines, and running until a signal."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from mailfilter.ops.probe import run
from mailfilter.ops.probe_config import ProbeConfig, ProbeError
from mailfilter.ops.probe_report import (
    Sample,
    format_sample,
    format_summary,
    summarize,
    write_csv,
)


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
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds until the message must be seen over IMAP",
    )
    p.add_argument(
        "--smtp-timeout",
        type=float,
        help="seconds for the SMTP transaction alone (default: --timeout)",
    )
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
        a.smtp_timeout,
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
