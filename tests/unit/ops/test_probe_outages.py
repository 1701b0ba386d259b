"""The pure side of `mailfilter probe`: outages, MTFO, summary, CSV, options."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest

from mailfilter.ops import probe_cli, probe_report

if TYPE_CHECKING:
    from pathlib import Path


def s(
    seq: int, at: float, smtp_ok: bool = True, latency: float | None = 0.25
) -> probe_report.Sample:
    """A sample sent at `at`; delivered after `latency` unless None."""
    reply = (
        "250 2.0.0 Ok: queued as X"
        if smtp_ok
        else "ConnectionRefusedError: [Errno 111]"
    )
    return probe_report.Sample(
        seq, f"r.{seq}", at, smtp_ok, reply, 0.01, latency if smtp_ok else None
    )


def test_no_failures_no_outage() -> None:
    """A run where every message arrives has no outage and no MTFO."""
    samples = [s(i, float(i)) for i in range(5)]
    assert [] == probe_report.compute_outages(samples)
    assert probe_report.mtfo([]) is None


def test_outage_runs_first_failure_to_first_success() -> None:
    """Failures at 2 and 3, success at 4: one outage 2 -> 4, 2 messages."""
    samples = [s(0, 0), s(1, 1), s(2, 2, False), s(3, 3, False), s(4, 4)]
    assert [probe_report.Outage(2, 4, 2)] == probe_report.compute_outages(
        samples
    )
    assert 2.0 == probe_report.mtfo(probe_report.compute_outages(samples))


def test_accepted_but_undelivered_is_a_failure() -> None:
    """SMTP 250 without arrival in IMAP counts as part of an outage."""
    samples = [s(0, 0), s(1, 1, latency=None), s(2, 2)]
    assert [probe_report.Outage(1, 2, 1)] == probe_report.compute_outages(
        samples
    )


def test_outage_open_at_end_is_not_in_mtfo() -> None:
    """An outage still running at the end has no duration and no MTFO share."""
    samples = [
        s(0, 0),
        s(1, 1, False),
        s(2, 2),
        s(3, 3, False),
        s(4, 4, False),
    ]
    outages = probe_report.compute_outages(samples)
    assert [
        probe_report.Outage(1, 2, 1),
        probe_report.Outage(3, None, 2),
    ] == outages
    assert outages[1].duration is None
    assert 1.0 == probe_report.mtfo(outages)


def test_samples_finishing_out_of_order_are_sorted_by_send_time() -> None:
    """Order of completion does not matter, send time does."""
    samples = [s(2, 2), s(0, 0), s(1, 1, False)]
    assert [probe_report.Outage(1, 2, 1)] == probe_report.compute_outages(
        samples
    )


def test_mtfo_is_mean_of_outages() -> None:
    """Outages of 1.5 s and 4.5 s give an MTFO of 3 s."""
    samples = [s(0, 10, False), s(1, 11.5), s(2, 20, False), s(3, 24.5)]
    assert 3.0 == probe_report.mtfo(probe_report.compute_outages(samples))


def test_csv_round_trip(tmp_path: Path) -> None:
    """Samples written as CSV read back equal, undelivered ones included."""
    samples = [
        s(0, 1_700_000_000.5),
        s(1, 1_700_000_001.5, latency=None),
        s(2, 1_700_000_002.5, False),
    ]
    path = tmp_path / "p.csv"
    with path.open("w", newline="") as f:
        probe_report.write_csv(samples, f)
    header = path.read_text().splitlines()[0]
    assert ",".join(probe_report.CSV_FIELDS) == header
    assert samples == probe_report.read_csv(path)


def test_summary_counts() -> None:
    """The summary counts SMTP failures, losses, latency and outages."""
    samples = [
        s(0, 0, latency=0.1),
        s(1, 1, False),
        s(2, 2, latency=None),
        s(3, 3, latency=0.3),
    ]
    summary = probe_report.summarize(samples)
    assert 4 == summary["sent"]
    assert 1 == summary["smtp_failures"]
    assert 1 == summary["lost"]
    assert 2 == summary["delivered"]
    assert 0.2 == pytest.approx(summary["latency"]["mean"])
    assert [2.0] == [o["seconds"] for o in summary["outages"]]
    assert 2.0 == summary["mtfo_seconds"]


def test_format_summary_names_each_outage_and_mtfo() -> None:
    """The terminal summary lists every outage's failover time and the MTFO."""
    samples = [s(0, 0), s(1, 1, False), s(2, 3.5), s(3, 4, False)]
    text = probe_report.format_summary(probe_report.summarize(samples))
    assert "failover 2.500 s (1 messages failed)" in text
    assert "failover still down" in text
    assert "MTFO: 2.500 s" == text.splitlines()[-1]


def test_progress_line_per_sample_when_not_a_tty() -> None:
    """Off a terminal, each finished message is one plain line."""
    out = io.StringIO()
    progress = probe_cli.Progress(out)
    progress(s(7, 0, latency=0.5))
    progress(s(8, 1, False))
    lines = out.getvalue().splitlines()
    assert 2 == len(lines)
    assert "delivered 0.500 s" in lines[0]
    assert "FAIL smtp: ConnectionRefusedError" in lines[1]


def test_parse_args_reads_password_file(tmp_path: Path) -> None:
    """--imap-password-file is read without its trailing newline."""
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    cfg, _ = probe_cli.parse_args(
        [
            "--smtp",
            "[::1]:2525",
            "--to",
            "u@example.com",
            "--imap-user",
            "u",
            "--imap-password-file",
            str(pw),
            "--count",
            "3",
        ]
    )
    assert ("::1", 2525) == cfg.smtp
    assert "s3cret" == cfg.imap_password
    assert 3 == cfg.count


def test_parse_args_rejects_bad_hostport() -> None:
    """An address without a port is a usage error."""
    with pytest.raises(SystemExit):
        probe_cli.parse_args(
            [
                "--smtp",
                "localhost",
                "--to",
                "u@x",
                "--imap-user",
                "u",
                "--imap-password",
                "p",
            ]
        )


def test_summary_counts_duplicates_and_failed_but_delivered() -> None:
    """Copies found in the mailbox: extra ones are duplicates, and a copy
    of a failed send is mail a real MTA would retry (and duplicate)."""
    import dataclasses

    samples = [
        dataclasses.replace(s(0, 1.0), copies=1),
        dataclasses.replace(s(1, 2.0), copies=3),  # two extra copies
        dataclasses.replace(s(2, 3.0, smtp_ok=False), copies=1),
        dataclasses.replace(s(3, 4.0, smtp_ok=False), copies=0),
    ]
    summary = probe_report.summarize(samples)
    assert 2 == summary["duplicates"]
    assert 1 == summary["failed_but_delivered"]
    text = probe_report.format_summary(summary)
    assert "duplicates 2" in text
    assert "failed but delivered 1" in text


def test_csv_keeps_copies_and_reads_old_files(tmp_path: Path) -> None:
    """The copies column round-trips; a CSV without it reads as 0."""
    import dataclasses

    path = tmp_path / "p.csv"
    with path.open("w", newline="") as f:
        probe_report.write_csv([dataclasses.replace(s(0, 1.0), copies=2)], f)
    assert 2 == probe_report.read_csv(path)[0].copies
    old = tmp_path / "old.csv"
    lines = path.read_text().splitlines()
    old.write_text(
        "\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n"
    )
    assert 0 == probe_report.read_csv(old)[0].copies


async def test_watcher_counts_every_copy_of_a_tag() -> None:
    """Each UID carrying the tag is one copy; the first sets the arrival."""
    import asyncio

    from mailfilter.ops.imapwatch import ImapWatcher
    from mailfilter.ops.probe_config import ProbeConfig

    cfg = ProbeConfig(("127.0.0.1", 25), "a@b", "c@d", ("127.0.0.1", 143),
                      "u", "p")
    watcher = ImapWatcher(cfg, asyncio.get_running_loop(), "run")
    watcher._seen("run.1", 5.0)
    watcher._seen("run.1", 9.0)
    assert 2 == watcher.copies["run.1"]
    assert 5.0 == await watcher.wait("run.1", 0)
