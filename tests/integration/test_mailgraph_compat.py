"""amavis-format log lines are counted by Debian's own mailgraph.

This runs /usr/sbin/mailgraph itself (not a copy of its regexes) over a
syslog file in a temporary directory, then reads the counts back from the
RRD it wrote, through the same librrd Perl binding (RRDs) that mailgraph
writes with: `RRDs::fetch` is what `rrdtool fetch` calls, and RRDs is a
dependency of the mailgraph package, so no rrdtool binary is needed.

How the timing works (mailgraph.pl update()/init_rrd()): mailgraph sums
events per minute and writes a minute only when a later minute shows up;
the very first minute is lost (its update has the RRD's start time). So
the file is: one priming line 16 minutes before, the sample lines in one
minute, and a flushing line 30 minutes after. Times are UTC and aligned
to mailgraph's 8-minute day RRA so that no consolidated row holds a
majority of unknown steps; a fixed past year keeps Parse::Syslog from
dropping "future" lines.
"""

from __future__ import annotations

import calendar
import os
import re
import subprocess
from pathlib import Path

import pytest

MAILGRAPH = Path("/usr/sbin/mailgraph")
YEAR = 2020
EVENT_TIME = "Nov 27 12:00"  # a multiple of 480 s in UTC
PRIMING = "Nov 27 11:44:30 mx1 postfix/smtpd[99]: 4ABCD000: client=localhost[127.0.0.1]"
FLUSH = "Nov 27 12:30:00 mx1 postfix/smtpd[99]: 4ABCD001: client=localhost[127.0.0.1]"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not MAILGRAPH.exists(),
        reason="mailgraph not installed (Debian package mailgraph)",
    ),
]


def sample_lines() -> list[str]:
    """One line per verdict, made by mailfilter.decision.amavislog, in syslog format."""
    from tests.support.loglines import CASES, SPAMMY

    summaries = [CASES[k] for k in ("clean", "virus", "banned", "spam")]
    return [
        f"Nov 27 12:00:0{i} mx1 amavis[1234]: {s.line()}"
        for i, s in enumerate([*summaries, SPAMMY], 1)
    ]


SYSLOG_PREFIX = re.compile(r"^\w{3} +\d+ \d\d:\d\d:\d\d \S+ ")


def reframe(line: str, second: int) -> str:
    """The same program[pid]: text, at EVENT_TIME:second on host mx1."""
    return f"{EVENT_TIME}:{second:02d} mx1 {SYSLOG_PREFIX.sub('', line)}"


def run_mailgraph(log: Path, rrd_dir: Path) -> str:
    """mailgraph --cat over log, RRDs written into rrd_dir; its verbose output."""
    proc = subprocess.run(
        [
            str(MAILGRAPH),
            "--cat",
            "--verbose",
            "--logfile",
            str(log),
            "--year",
            str(YEAR),
            "--daemon-rrd",
            str(rrd_dir),
        ],
        env={**os.environ, "TZ": "UTC"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout + proc.stderr


def fetch_totals(rrd: Path, start: int, end: int) -> dict[str, float]:
    """Sum of each data source over [start, end], as event counts."""
    script = r"""
        use RRDs;
        my ($s, $step, $names, $rows) = RRDs::fetch($ARGV[0], 'AVERAGE',
            '-r', '480', '-s', $ARGV[1], '-e', $ARGV[2]);
        die RRDs::error() if RRDs::error();
        for my $row (@$rows) {
            print join(' ', map { defined $_ ? $names->[$_] . '=' . $row->[$_] * $step : '' } 0..$#$row), "\n";
        }
    """
    out = subprocess.run(
        ["perl", "-e", script, str(rrd), str(start), str(end)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    totals: dict[str, float] = {}
    for name, value in re.findall(r"(\w+)=(\S+)", out):
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def test_mailgraph_counts_amavis_lines(tmp_path: Path) -> None:
    """mailgraph counts SPAM+SPAMMY as 2 spam and INFECTED+BANNED as 2 virus."""
    lines = (
        [PRIMING]
        + [reframe(line, i + 1) for i, line in enumerate(sample_lines())]
        + [FLUSH]
    )
    log = tmp_path / "syslog"
    log.write_text("\n".join(lines) + "\n")
    rrd_dir = tmp_path / "rrd"
    rrd_dir.mkdir()
    verbose = run_mailgraph(log, rrd_dir)
    start = calendar.timegm((YEAR, 11, 27, 11, 36, 0))
    totals = fetch_totals(rrd_dir / "mailgraph_virus.rrd", start, start + 3600)
    assert 2.0 == pytest.approx(totals.get("spam", 0.0)), verbose
    assert 2.0 == pytest.approx(totals.get("virus", 0.0)), verbose


def test_tag2_lines_are_not_counted(tmp_path: Path) -> None:
    """A per-recipient line with tag2= (not ours to emit) is ignored by mailgraph.

    Guards the test above against counting anything: the same harness must
    see zero for lines mailgraph is documented to skip.
    """
    skipped = "amavis[1234]: (01234-06) Passed SPAM, <a@x> -> <u@y>, Hits: 9, tag=0, tag2=5, kill=8"
    log = tmp_path / "syslog"
    log.write_text("\n".join([PRIMING, reframe(skipped, 1), FLUSH]) + "\n")
    rrd_dir = tmp_path / "rrd"
    rrd_dir.mkdir()
    verbose = run_mailgraph(log, rrd_dir)
    start = calendar.timegm((YEAR, 11, 27, 11, 36, 0))
    totals = fetch_totals(rrd_dir / "mailgraph_virus.rrd", start, start + 3600)
    assert 0.0 == totals.get("spam"), verbose
