"""The probe's records: samples, outages, MTFO, summaries and CSV.

Pure functions over the samples `mailfilter probe` takes; no network.
`mailfilter availability --mtfo-from` reads the CSV written here.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe message: what SMTP said and when (if) it was delivered."""

    seq: int
    tag: str
    sent_at: float  # epoch seconds when the SMTP transaction began
    smtp_ok: bool
    smtp_reply: str
    smtp_seconds: float
    latency: float | None  # send to seen in IMAP; None: not in time
    # Copies of the tag found in the mailbox by the end of the run (late
    # ones included): 2 or more is a duplicate; 1 after an SMTP failure
    # is mail delivered although the sender was told it failed (a real
    # MTA would retry it: a duplicate in the making).
    copies: int = 0

    @property
    def ok(self) -> bool:
        """Accepted and delivered within the timeout."""
        return self.smtp_ok and self.latency is not None


@dataclass(frozen=True, slots=True)
class Outage:
    """First failed send to the first successful send after it."""

    start: float
    end: float | None  # None: still failing when the run ended
    failed: int

    @property
    def duration(self) -> float | None:
        """The failover time, when the outage ended during the run."""
        return None if self.end is None else self.end - self.start


def compute_outages(samples: list[Sample]) -> list[Outage]:
    """Outage windows, in send order (samples may finish out of order)."""
    outages: list[Outage] = []
    start: float | None = None
    failed = 0
    for s in sorted(samples, key=lambda s: (s.sent_at, s.seq)):
        if not s.ok:
            if start is None:
                start, failed = s.sent_at, 0
            failed += 1
        elif start is not None:
            outages.append(Outage(start, s.sent_at, failed))
            start = None
    if start is not None:
        outages.append(Outage(start, None, failed))
    return outages


def mtfo(outages: list[Outage]) -> float | None:
    """Mean failover time of the outages that ended; None if none did."""
    done = [o.duration for o in outages if o.duration is not None]
    return statistics.fmean(done) if done else None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(
        timespec="milliseconds"
    )


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Counts, latency statistics, outages and MTFO as a JSON-ready dict."""
    lat = [s.latency for s in samples if s.latency is not None]
    outages = compute_outages(samples)
    return {
        "sent": len(samples),
        "smtp_failures": sum(not s.smtp_ok for s in samples),
        "delivered": len(lat),
        "lost": sum(s.smtp_ok and s.latency is None for s in samples),
        "duplicates": sum(max(0, s.copies - 1) for s in samples),
        "failed_but_delivered": sum(
            not s.smtp_ok and s.copies > 0 for s in samples
        ),
        "latency": None
        if not lat
        else {
            "min": min(lat),
            "median": statistics.median(lat),
            "mean": statistics.fmean(lat),
            "max": max(lat),
        },
        "outages": [
            {
                "start": _iso(o.start),
                "end": None if o.end is None else _iso(o.end),
                "seconds": o.duration,
                "failed": o.failed,
            }
            for o in outages
        ],
        "mtfo_seconds": mtfo(outages),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary for a terminal."""
    lines = [
        (
            f"sent {summary['sent']}, delivered {summary['delivered']}, "
            f"SMTP failures {summary['smtp_failures']}, "
            f"lost {summary['lost']}, duplicates {summary['duplicates']}, "
            f"failed but delivered {summary['failed_but_delivered']}"
        )
    ]
    if (lat := summary["latency"]) is not None:
        lines.append(
            "latency s: min {min:.3f} median {median:.3f} mean {mean:.3f} "
            "max {max:.3f}".format(**lat)
        )
    for i, o in enumerate(summary["outages"], 1):
        took = (
            "still down" if o["seconds"] is None else f"{o['seconds']:.3f} s"
        )
        lines.append(
            f"outage {i}: {o['start']} failover {took} "
            f"({o['failed']} messages failed)"
        )
    m = summary["mtfo_seconds"]
    lines.append("MTFO: no outage" if m is None else f"MTFO: {m:.3f} s")
    return "\n".join(lines)


def format_sample(s: Sample) -> str:
    """One progress line."""
    when = datetime.fromtimestamp(s.sent_at, UTC).strftime("%H:%M:%S")
    if not s.smtp_ok:
        return f"#{s.seq:<5} {when} FAIL smtp: {s.smtp_reply}"
    if s.latency is None:
        return f"#{s.seq:<5} {when} FAIL not delivered ({s.smtp_reply})"
    return (
        f"#{s.seq:<5} {when} ok   smtp {s.smtp_seconds:.3f} s, "
        f"delivered {s.latency:.3f} s"
    )


CSV_FIELDS = (
    "seq",
    "tag",
    "sent_at",
    "sent_at_iso",
    "smtp_ok",
    "smtp_reply",
    "smtp_seconds",
    "latency_seconds",
    "copies",
)


def write_csv(samples: list[Sample], stream: TextIO) -> None:
    """One row per sample, in send order."""
    out = csv.writer(stream, lineterminator="\n")
    out.writerow(CSV_FIELDS)
    for s in sorted(samples, key=lambda s: s.seq):
        out.writerow(
            [
                s.seq,
                s.tag,
                f"{s.sent_at:.6f}",
                _iso(s.sent_at),
                int(s.smtp_ok),
                s.smtp_reply,
                f"{s.smtp_seconds:.6f}",
                "" if s.latency is None else f"{s.latency:.6f}",
                s.copies,
            ]
        )


def read_csv(path: Path) -> list[Sample]:
    """Samples back from write_csv's format (ValueError/KeyError if not)."""
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Sample(
                seq=int(row["seq"]),
                tag=row["tag"],
                sent_at=float(row["sent_at"]),
                smtp_ok=row["smtp_ok"] == "1",
                smtp_reply=row["smtp_reply"],
                smtp_seconds=float(row["smtp_seconds"]),
                latency=float(row["latency_seconds"])
                if row["latency_seconds"]
                else None,
                # CSVs written before the column existed read as 0.
                copies=int(row.get("copies") or 0),
            )
            for row in csv.DictReader(f)
        ]
