"""Outages: each dependency broken in turn, then mended.

While clamd hangs (SIGSTOP), spamd is stopped past its timeout, 10025
accepts and never answers, or the quarantine's disk is full, every message
that needs the broken part gets a 4xx (Postfix keeps it and retries);
after recovery the client resends what got a 4xx, as Postfix would, and
every message arrives exactly once: at the sink (10025) or, for a banned
one, in the quarantine. Crashes and refused connections are covered by
tests/integration (test_postfix_sandwich.py, test_scanning_e2e.py).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.reliability.support import (
    Attempt,
    Sink,
    budget,
    children,
    deliver,
    message,
    message_id,
    send_once,
    until,
)
from tests.support import corpus
from tests.support.filter import REPO, FilterProcess, start_filter
from tests.support.ports import free_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.reliability

SUITE = "outages"


def start(
    tmp_path: Path, sink: Sink, *extra: str, **scanners: str
) -> FilterProcess:
    """A filter forwarding to the sink, with short scanner timeouts."""
    return start_filter(
        tmp_path / "filter",
        free_port(),
        sink.port,
        extra=[
            "--clamd-timeout",
            "3",
            "--spamd-timeout",
            "3",
            "--forward-timeout",
            "4",
            "--log-level",
            "warning",
            *extra,
        ],
        **scanners,
    )


async def broken_then_mended(
    port: int, msgs: dict[str, bytes], mend
) -> tuple[list[Attempt], list[Attempt]]:
    """Send each message once while broken; mend; resend what got 4xx."""
    broken = list(
        await asyncio.gather(
            *(send_once(port, d, timeout=120) for d in msgs.values())
        )
    )
    mend()
    after: list[Attempt] = []
    for (_, data), first in zip(msgs.items(), broken, strict=True):
        if 400 <= first.code < 500:
            after += await deliver(port, data, tries=30, pause=1.0)
    return broken, after


def report(record, case: str, broken, after, lost, duplicated) -> None:
    attempts = [*broken, *after]
    record(
        SUITE,
        case,
        runs=len(attempts),
        lost=lost,
        duplicated=duplicated,
        bounced=sum(1 for a in attempts if a.code >= 500),
        worst_latency_s=round(max(a.seconds for a in attempts), 2),
        verdicts={
            "while broken: " + k: v
            for k, v in Counter(str(a.code) for a in broken).items()
        }
        | {
            "after recovery: " + k: v
            for k, v in Counter(str(a.code) for a in after).items()
        },
    )


def messages(tag: str) -> dict[str, bytes]:
    count = int(budget(3, 20))
    return {
        f"{tag}-{i}@rel.test": message(f"{tag}-{i}@rel.test")
        for i in range(count)
    }


async def test_clamd_hung(tmp_path, clamd, record):
    """clamd stopped (SIGSTOP): 4xx; resumed: each message once."""
    sink = Sink()
    flt = start(tmp_path, sink, clamd=clamd.address)
    msgs = messages("clamd")
    try:
        clamd.pause()
        try:
            broken, after = await broken_then_mended(
                flt.port, msgs, clamd.resume
            )
        finally:
            clamd.resume()
        await until(lambda: len(sink.ids) >= len(msgs), 30)
        lost, duplicated = sink.counts(list(msgs))
        report(
            record,
            "clamd hung (SIGSTOP), then SIGCONT",
            broken,
            after,
            lost,
            duplicated,
        )
        assert all(400 <= a.code < 500 for a in broken), broken
        assert all(200 <= a.code < 300 for a in after[-1:])
        assert (lost, duplicated) == (0, 0)
    finally:
        flt.stop()
        sink.stop()


def _spamd_signal(spamd, sig: str) -> None:
    for pid in [spamd.proc.pid, *children(spamd.proc.pid)]:
        subprocess.run(["kill", f"-{sig}", str(pid)], check=False)


async def test_spamd_slow(tmp_path, spamd, record):
    """spamd stopped past its timeout: 4xx; slow but in time: 250.

    The default policy passes mail when spamd fails (Debian's amavis);
    this runs with scanner_failure.spamassassin = "tempfail", the policy
    under which a spamd outage must hold mail back.
    """
    policy = tmp_path / "policy.toml"
    text = (REPO / "policy/default.toml").read_text()
    assert 'spamassassin = "pass"' in text
    policy.write_text(
        text.replace('spamassassin = "pass"', 'spamassassin = "tempfail"')
    )
    sink = Sink()
    flt = start(tmp_path, sink, "--policy", str(policy), spamd=spamd.address)
    msgs = messages("spamd")
    try:
        _spamd_signal(spamd, "STOP")
        try:
            broken, after = await broken_then_mended(
                flt.port, msgs, lambda: _spamd_signal(spamd, "CONT")
            )
        finally:
            _spamd_signal(spamd, "CONT")
        # Slow, not dead: stopped for less than spamd_timeout.
        slow_mid = "spamd-slow@rel.test"
        _spamd_signal(spamd, "STOP")
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, _spamd_signal, spamd, "CONT")
        slow = await send_once(flt.port, message(slow_mid), timeout=120)
        _spamd_signal(spamd, "CONT")
        expected = [*msgs, slow_mid]
        await until(lambda: len(sink.ids) >= len(expected), 30)
        lost, duplicated = sink.counts(expected)
        report(
            record,
            "spamd stopped past its timeout, then SIGCONT; spamd stopped 1 s",
            broken,
            [*after, slow],
            lost,
            duplicated,
        )
        assert all(400 <= a.code < 500 for a in broken), broken
        assert 200 <= slow.code < 300, slow
        assert (lost, duplicated) == (0, 0)
    finally:
        flt.stop()
        sink.stop()


async def test_10025_hanging(tmp_path, record):
    """10025 accepts and never answers: 4xx; answering again: once each."""
    sink = Sink(mode="hang")
    flt = start(tmp_path, sink)
    msgs = messages("hang")

    def mend() -> None:
        sink.mode = "ok"

    try:
        broken, after = await broken_then_mended(flt.port, msgs, mend)
        await until(lambda: len(sink.ids) >= len(msgs), 30)
        lost, duplicated = sink.counts(list(msgs))
        report(
            record,
            "10025 accepts and never answers, then answers",
            broken,
            after,
            lost,
            duplicated,
        )
        assert sink.hung > 0
        assert all(400 <= a.code < 500 for a in broken), broken
        assert all(200 <= a.code < 300 for a in after[-1:])
        assert (lost, duplicated) == (0, 0)
    finally:
        flt.stop()
        sink.stop()


def _banned(tag: str) -> bytes:
    # corpus.headers() derives the Message-ID from the subject.
    return corpus.with_attachment(corpus.pe_exe(), "invoice.exe", subject=tag)


def _quarantined(root: Path, mid: str) -> int:
    needle = f"<{mid}>".encode()
    return sum(
        1
        for p in root.rglob("*")
        if p.is_file() and p.name != "filler" and needle in p.read_bytes()
    )


async def test_quarantine_disk_full(tmp_path, record):
    """A full quarantine disk: banned mail 4xx, clean mail still flows."""
    qdir = tmp_path / "filter" / "quarantine"
    qdir.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(qdir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    sink = Sink()
    flt = None
    try:
        flt = start(tmp_path, sink)
        filler = qdir / "filler"
        with filler.open("wb", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * 4096)
            except OSError:
                pass
        banned = {
            message_id(_banned(f"full-{i}")): _banned(f"full-{i}")
            for i in range(int(budget(3, 20)))
        }
        clean = await send_once(flt.port, message("full-clean@rel.test"))
        broken, after = await broken_then_mended(
            flt.port, banned, filler.unlink
        )
        await until(lambda: len(sink.ids) >= 1, 30)
        found = {mid: _quarantined(qdir, mid) for mid in banned}
        lost = sum(1 for n in found.values() if n == 0)
        duplicated = sum(n - 1 for n in found.values() if n > 1)
        lost_clean, dup_clean = sink.counts(["full-clean@rel.test"])
        report(
            record,
            "quarantine disk full (tmpfs), then space freed",
            broken,
            [*after, clean],
            lost + lost_clean,
            duplicated + dup_clean,
        )
        assert all(400 <= a.code < 500 for a in broken), broken
        assert all(200 <= a.code < 300 for a in after[-1:])
        assert 200 <= clean.code < 300, "clean mail needs no quarantine"
        assert found == dict.fromkeys(banned, 1)
        assert sink.ids == ["full-clean@rel.test"], "banned mail discarded"
    finally:
        if flt is not None:
            flt.stop()
        sink.stop()
        subprocess.run(["umount", "-l", str(qdir)], check=False)
