"""Run the reliability suite and write docs/reliability.md from its figures.

    .venv/bin/python bench/reliability_report.py            # short mode
    .venv/bin/python bench/reliability_report.py --long     # long mode
    .venv/bin/python bench/reliability_report.py --from FILE  # no run

Runs `pytest -m reliability tests/reliability` with RELIABILITY_RESULTS
pointing at a fresh file under tests/reliability/results/ (and
RELIABILITY_LONG=1 for --long); every test appends one JSON line per case
(format: tests/reliability/conftest.py). The lines and pytest's outcome
become the table of docs/reliability.md. The run is bounded: pytest is
killed after --timeout seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "tests" / "reliability" / "results"
DOC = REPO / "docs" / "reliability.md"

PREAMBLE = """\
# Reliability figures

What the reliability suite (`tests/reliability/`) tried against the filter,
how often, and what came out. Regenerate this file with one command:

    .venv/bin/python bench/reliability_report.py          # short mode (CI)
    .venv/bin/python bench/reliability_report.py --long   # long mode

The short mode runs in CI (`-m reliability`); the long mode
(`RELIABILITY_LONG=1`) repeats each case more often and gives the parser
fuzzing 10^6 examples in all (fewer when `RELIABILITY_FUZZ_EXAMPLES` says
so; the Runs column shows what really ran). Both stop by themselves.

## What is promised, and the bounds

- **Nothing lost, nothing duplicated.** Every message a client handed over
  is delivered exactly once, counted by Message-ID at the 10025 side (or
  in the quarantine for blocked mail). A client resends after any 4xx or
  421, as Postfix does.
- **Replies under stress are 2xx, 421 or 4xx**, never 5xx: after the final
  dot a 5xx makes Postfix bounce the mail ("Bounced" column).
- **Memory** of the filter process (peak RSS, `VmHWM`) stays below
  200 MiB + 4 x max_connections x message_size_limit: it holds at most
  max_connections messages, each in a few copies.
- **Processing is bounded by max_connections**: never more messages in
  reinjection at once, even when clients drop right after the final dot.
- **Each outage ends in 4xx while it lasts and full delivery after it.**
- **Smuggling**: a message never becomes two, and no bare CR or LF leaves
  the filter towards 10025.
- **Fuzzing**: no exception escapes a parser, and the invariants hold (no
  CR/LF/NUL in a command to 10025, no header line added by a client value,
  every disguise of `NAME.exe` still ends in `.exe`, a folder name from a
  recipient extension never leaves the Maildir).
- **Hostile content**: a verdict for every message within the stated CPU
  bound per message ("CPU/msg" column).

Columns: **Runs** counts attempts (SMTP sessions, messages or fuzz
examples). **Lost** counts messages a client handed over that had not
arrived when the case ended, after its resends (Postfix would still hold
them in its queue; here they show that the filter stopped taking mail).
**Duplicated** counts extra copies, **Bounced** 5xx replies after the
final dot. **Worst latency** is the slowest final reply a client saw,
including the time an outage or a timeout took; it is a figure, not a
target (targets live in `docs/bench-filter.md`). **Peak RSS** is the
filter process's VmHWM (for the content cases: the test process's).
**CPU/msg** is the most CPU one message took.
"""

COLUMNS = (
    "Suite",
    "Mode",
    "What was tried",
    "Runs",
    "Lost",
    "Duplicated",
    "Bounced",
    "Worst latency (s)",
    "Peak RSS (MiB)",
    "CPU/msg (s)",
    "Details",
)


def run_suite(args: argparse.Namespace, results: Path, junit: Path) -> int:
    """pytest over tests/reliability with the results file set; its rc."""
    env = dict(os.environ, RELIABILITY_RESULTS=str(results))
    if args.long:
        env["RELIABILITY_LONG"] = "1"
    if args.fuzz_examples:
        env["RELIABILITY_FUZZ_EXAMPLES"] = str(args.fuzz_examples)
    cmd = [
        str(REPO / ".venv" / "bin" / "pytest"),
        "-q",
        "-m",
        "reliability",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "tests/reliability",
        *args.pytest_args,
    ]
    print("running:", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        return proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        # SIGINT first: pytest then runs the fixtures' teardown, which
        # stops the daemons and filters the tests started.
        print(f"stopping pytest after {args.timeout} s", file=sys.stderr)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 124


def outcome(junit: Path) -> tuple[dict[str, int], list[str]]:
    """Counts by outcome and the ids of failed tests, from JUnit XML."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed: list[str] = []
    if not junit.exists():
        return counts, failed
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failed.append(name)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, failed


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(lines: list[dict]) -> str:
    out = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    order = {"short": 0, "long": 1}
    for r in sorted(
        lines,
        key=lambda r: (r["suite"], r["case"], order.get(r.get("mode"), 2)),
    ):
        details = ", ".join(
            f"{k}: {v}" for k, v in sorted((r.get("verdicts") or {}).items())
        )
        row = [
            r["suite"],
            r.get("mode", "?"),
            r["case"].replace("|", "/"),
            cell(r.get("runs")),
            cell(r.get("lost")),
            cell(r.get("duplicated")),
            cell(r.get("bounced")),
            cell(r.get("worst_latency_s")),
            cell(r.get("rss_max_mb")),
            cell(r.get("cpu_max_s")),
            details.replace("|", "/") or "-",
        ]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


def machine() -> str:
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{os.cpu_count()} CPUs{mem}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


@dataclass
class Run:
    """One pytest run: its result lines and how it ended."""

    results: Path
    seconds: float | None = None
    lines: list[dict] = field(default_factory=list)
    counts: dict[str, int] | None = None  # None: no JUnit file (stopped)
    failed: list[str] = field(default_factory=list)

    def load(self) -> Run:
        if self.results.exists():
            text = self.results.read_text().splitlines()
            self.lines = [json.loads(x) for x in text if x]
        junit = self.results.with_suffix(".xml")
        if junit.exists():
            self.counts, self.failed = outcome(junit)
        return self

    def summary(self) -> str:
        modes = "/".join(sorted({r.get("mode", "?") for r in self.lines}))
        when = min((r.get("time", "") for r in self.lines), default="")
        took = (
            f", {self.seconds / 60:.1f} min"
            if self.seconds is not None
            else ""
        )
        text = (
            f"- {modes or '?'} mode, {when[:16].replace('T', ' ')} UTC{took}: "
        )
        if self.counts is None:
            text += (
                "stopped by its time bound; the table holds the cases that "
                "finished, pytest's outcome was not recorded.\n"
            )
        else:
            c = self.counts
            text += (
                f"{c['passed']} passed, {c['failed']} failed, "
                f"{c['skipped']} skipped.\n"
            )
        text += "".join(f"  - failed: `{name}`\n" for name in self.failed)
        return text


def write_doc(runs: list[Run]) -> None:
    head = (
        f"## Runs\n\nOn {machine()}, shared with other work while it ran "
        "(latencies are those of a loaded machine). A failed test is a "
        "broken promise; the test's assertion says which.\n\n"
        + "".join(run.summary() for run in runs)
    )
    lines = [line for run in runs for line in run.lines]
    DOC.write_text(PREAMBLE + "\n" + head + "\n## Figures\n\n" + table(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="long mode")
    parser.add_argument(
        "--fuzz-examples",
        type=int,
        default=0,
        help="long mode's fuzz examples in all (default 10**6)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=0,
        help="stop pytest after this many seconds (default 15 or 40 min)",
    )
    parser.add_argument(
        "--from",
        dest="sources",
        type=Path,
        nargs="+",
        help="write the doc from these results files, without running",
    )
    parser.add_argument(
        "pytest_args",
        nargs="*",
        help="passed on to pytest (after --), e.g. -- -k overload",
    )
    args = parser.parse_args()
    args.timeout = args.timeout or (2400 if args.long else 900)
    if args.sources:
        runs = [Run(path).load() for path in args.sources]
        rc = 0
    else:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        mode = "long" if args.long else "short"
        results = RESULTS / f"{stamp}-{mode}.jsonl"
        start = time.monotonic()
        rc = run_suite(args, results, results.with_suffix(".xml"))
        run = Run(results, seconds=time.monotonic() - start)
        runs = [run.load()]
        print(f"pytest exit status {rc}", flush=True)
    write_doc(runs)
    count = sum(len(run.lines) for run in runs)
    print(f"wrote {DOC.relative_to(REPO)} ({count} result lines)")
    return 1 if rc or any(run.failed for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
