"""SpamAssassin's CPU, side by side: mailfilter + spamd vs amavisd-new.

Both filters are bound by SpamAssassin's CPU when real clamd and spamd
run on the same cores, so this benchmark measures where that CPU goes.
Same corpus for both, real clamd and spamd, one run:

  1. spamd children against cores: mailfilter at 8 sessions with spamd
     run with 1, 2, 3, 4 and 8 children;
  2. sa-compile (Rule2XSBody): both filters at 4 sessions with and
     without the compiled rule set (a site config directory without
     sa-compile.pre turns it off for that process only);
  3. the comparison, for two corpora (`cost`: ham, spam and a tenth
     infected or banned; `repeats`: the same with one message in three a
     byte-identical copy of a recent one, to another recipient):
     mailfilter at 1, 2, 4 and 8 sessions against amavisd-new with 2, 4
     and 8 children at each of those session counts, plus amavisd-new
     with SpamAssassin bypassed, which tells its SpamAssassin CPU apart
     from the rest of its work.

Reports msg/s, p50/p95 latency, CPU per message by process, and
SpamAssassin CPU per delivered message, into docs/bench-spamcpu.md.
Run on demand, never from the test suite:

    PYTHONPATH=. .venv/bin/python -m bench.bench_spamcpu --wait-idle 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path

from bench import corpus, driver, stack
from tests.support.daemons import Daemon, start_clamd, start_spamd

SA_SITE = Path("/etc/spamassassin")
COMPILED_PRE = "sa-compile.pre"
CORPORA = ("cost", "repeats")


@dataclass
class Row:
    """One system, configuration and session count on one corpus."""

    section: str  # "children", "compile" or a corpus name
    system: str  # "mailfilter" or "amavisd"
    sessions: int
    children: int  # spamd's for mailfilter, $max_servers for amavisd
    result: driver.RunResult
    cpu: dict[str, float]  # CPU seconds per process tree
    passed: int  # messages logged "Passed" (delivered to some recipient)
    blocked: int
    note: str = ""
    # Mean seconds per call of each scanner (mailfilter's metrics).
    scan_means: dict[str, float] | None = None

    def per_msg(self, key: str) -> float:
        """CPU milliseconds per message sent for one process tree."""
        return self.cpu.get(key, 0.0) / max(self.result.sent, 1) * 1e3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; defaults finish in about half an hour."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=200, help="per run")
    p.add_argument(
        "--warmup", type=int, default=12, help="per run, not measured"
    )
    p.add_argument("--sessions", default="1,2,4,8")
    p.add_argument("--amavis-children", default="2,4,8")
    p.add_argument("--spamd-children", default="1,2,3,4,8")
    p.add_argument(
        "--mailfilter-children",
        type=int,
        default=0,
        help="spamd children for the comparison (default: the sweep's best)",
    )
    p.add_argument("--sections", default="children,compile,cost,repeats")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--policy", type=Path, default=stack.DEFAULT_POLICY)
    p.add_argument(
        "--out",
        type=Path,
        default=stack.ROOT / "docs" / "bench-spamcpu.md",
    )
    p.add_argument("--no-write", action="store_true", help="stdout only")
    p.add_argument(
        "--render",
        type=Path,
        nargs="+",
        metavar="ROWS_JSON",
        help="only write the report again from runs' rows.json files "
        "(a later file's sections replace an earlier one's)",
    )
    stack.add_wait_idle(p)
    return p.parse_args(argv)


class Bench:
    """The shared daemons, the work directory and the rows so far."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rows: list[Row] = []
        self.clamd: Daemon
        self.sink: stack.Service
        self._runs = 0

    # -- corpora ------------------------------------------------------------

    def corpus(self, name: str) -> tuple[list, list]:
        """Warm-up and measured messages with bytes new to this run."""
        self._runs += 1
        salt = f"r{self._runs}"
        a = self.args
        warm = corpus.generate(a.warmup, a.seed + 1000, "w" + salt)
        msgs = corpus.generate(a.messages, a.seed, salt, corpus.COST_MIX)
        if name == "repeats":
            msgs = corpus.with_repeats(msgs, 3, a.seed)
        return warm, msgs

    # -- one run ------------------------------------------------------------

    def run(
        self,
        svc: stack.Service,
        roots: dict[str, int],
        log: Path,
        sessions: int,
        corpus_name: str,
        metrics: int = 0,
    ) -> tuple[driver.RunResult, dict[str, float], int, int, dict | None]:
        """Warm up, then send the corpus; CPU per tree, log counts and,
        with a metrics port, each scanner's mean time per call."""
        warm, msgs = self.corpus(corpus_name)
        asyncio.run(driver.send_smtp("127.0.0.1", svc.port, warm, sessions))
        cpu_roots = {**roots, "clamd": self.clamd.proc.pid}
        offset = log.stat().st_size if log.exists() else 0
        scans0 = _scan_totals(metrics)
        cpu0 = {k: _cpu(pid) for k, pid in cpu_roots.items()}
        result = asyncio.run(
            driver.send_smtp("127.0.0.1", svc.port, msgs, sessions)
        )
        cpu = {k: _cpu(pid) - cpu0[k] for k, pid in cpu_roots.items()}
        passed, blocked = _log_counts(log, offset)
        means = None
        if metrics:
            scans1 = _scan_totals(metrics)
            means = {
                name: (total - scans0.get(name, (0, 0))[0])
                / max(count - scans0.get(name, (0, 0))[1], 1)
                for name, (total, count) in scans1.items()
            }
        return result, cpu, passed, blocked, means

    def mailfilter(
        self, section: str, corpus_name: str, sessions: list[int],
        children: int, spamd_extra: tuple[str, ...] = (), note: str = "",
    ) -> None:  # fmt: skip
        """mailfilter + spamd(children) at each session count."""
        tag = f"{section}-{children}-{self._runs}"
        spamd = start_spamd(
            self.work / f"spamd-{tag}", children=children, extra=spamd_extra
        )
        try:
            for c in sessions:
                metrics = stack.free_port()
                filt = stack.start_mailfilter(
                    self.work / f"mailfilter-{tag}-{c}",
                    forward=self.sink.port,
                    policy=self.args.policy,
                    clamd=self.clamd.address,
                    spamd=f"127.0.0.1:{spamd.port}",
                    extra=(
                        "--max-connections", str(max(c, 20)),
                        "--metrics", f"127.0.0.1:{metrics}",
                    ),
                )  # fmt: skip
                try:
                    result, cpu, passed, blocked, means = self.run(
                        filt,
                        {"mailfilter": filt.pid, "spamd": spamd.proc.pid},
                        filt.log,
                        c,
                        corpus_name,
                        metrics,
                    )
                finally:
                    filt.stop()
                row = Row(section, "mailfilter", c, children, result, cpu,
                          passed, blocked, note, means)  # fmt: skip
                self.add(row)
        finally:
            spamd.stop()

    def amavisd(
        self, section: str, corpus_name: str, sessions: list[int],
        children: int, extra: str = "", note: str = "",
    ) -> None:  # fmt: skip
        """amavisd-new with `children` at each session count."""
        tag = f"{section}-{children}-{self._runs}"
        am = stack.start_amavisd(
            self.work / f"amavisd-{tag}",
            forward=self.sink.port,
            clamd_socket=self.clamd.socket_path,  # type: ignore[arg-type]
            max_servers=children,
            extra=extra,
        )
        try:
            for c in sessions:
                result, cpu, passed, blocked, _ = self.run(
                    am, {"amavisd": am.pid}, am.log, c, corpus_name
                )
                self.add(
                    Row(
                        section,
                        "amavisd",
                        c,
                        children,
                        result,
                        cpu,
                        passed,
                        blocked,
                        note,
                    )  # fmt: skip
                )
        finally:
            am.stop()

    def add(self, row: Row) -> None:
        """Keep a row and print its progress line."""
        self.rows.append(row)
        r = row.result
        cpu = " ".join(f"{k} {row.per_msg(k):.0f}" for k in row.cpu)
        print(
            f"  {row.section:8s} {row.system:10s} C={row.sessions} "
            f"ch={row.children} {row.note:14s} {r.rate:6.2f} msg/s "
            f"p95 {r.pct(95):.3f} s  CPU ms/msg {cpu}  passed {row.passed} "
            f"blocked {row.blocked} {dict(r.classes)} {dict(r.errors) or ''}",
            flush=True,
        )


def _cpu(pid: int) -> float:
    return driver.cpu_seconds([pid, *stack.descendants(pid)])


_SCAN = re.compile(
    r'^mailfilter_scan_seconds_(sum|count)\{scanner="([^"]+)"\} (\S+)$',
    re.MULTILINE,
)


def _scan_totals(port: int) -> dict[str, tuple[float, float]]:
    """Per scanner: (seconds, calls) so far, from the metrics endpoint."""
    if not port:
        return {}
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
        text = resp.read().decode()
    out: dict[str, list[float]] = {}
    for kind, name, value in _SCAN.findall(text):
        out.setdefault(name, [0.0, 0.0])[kind == "count"] = float(value)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _log_counts(log: Path, offset: int) -> tuple[int, int]:
    """amavis-format main log lines written since offset: Passed, Blocked.

    A message split by recipient logs one line per group; both filters
    give every recipient of this corpus its own message, so a line is a
    message.
    """
    if not log.exists():
        return 0, 0
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    passed = blocked = 0
    for line in text.splitlines():
        if ") Passed " in line:
            passed += 1
        elif ") Blocked " in line:
            blocked += 1
    return passed, blocked


def uncompiled_site(work: Path) -> Path:
    """A copy of SpamAssassin's site config without Rule2XSBody."""
    site = work / "sa-site-uncompiled"
    shutil.copytree(SA_SITE, site, symlinks=True)
    (site / COMPILED_PRE).unlink(missing_ok=True)
    for pre in site.glob("*.pre"):
        text = pre.read_text()
        if "\nloadplugin Mail::SpamAssassin::Plugin::Rule2XSBody" in text:
            pre.write_text(
                text.replace(
                    "\nloadplugin Mail::SpamAssassin::Plugin::Rule2XSBody",
                    "\n# loadplugin Mail::SpamAssassin::Plugin::Rule2XSBody",
                )
            )
    return site


def compiled_enabled() -> bool:
    """Whether the system-wide site config loads Rule2XSBody."""
    for pre in SA_SITE.glob("*.pre"):
        for line in pre.read_text().splitlines():
            if line.strip().startswith(
                "loadplugin Mail::SpamAssassin::Plugin::Rule2XSBody"
            ):
                return True
    return False


def sweep_children(b: Bench) -> int:
    """Section 1: spamd children at 8 sessions; returns the best count."""
    counts = [int(x) for x in b.args.spamd_children.split(",")]
    for n in counts:
        b.mailfilter("children", "cost", [8], n)
    rows = [r for r in b.rows if r.section == "children"]
    return _best_children(rows)


def _best_children(rows: list[Row]) -> int:
    """Fewest children within 3 % of the best rate (less memory, no
    throughput given up)."""
    top = max(r.result.rate for r in rows)
    return min(r.children for r in rows if r.result.rate >= 0.97 * top)


def compile_section(b: Bench, children: int) -> None:
    """Section 2: both filters with and without the compiled rules."""
    if not compiled_enabled():
        print("  sa-compile: Rule2XSBody is not loaded; section skipped")
        return
    site = uncompiled_site(b.work)
    b.mailfilter("compile", "cost", [4], children, note="compiled")
    b.mailfilter(
        "compile", "cost", [4], children,
        spamd_extra=(f"--siteconfigpath={site}",), note="not compiled",
    )  # fmt: skip
    b.amavisd("compile", "cost", [4], 4, note="compiled")
    b.amavisd(
        "compile", "cost", [4], 4,
        extra=f"$sa_siteconfigpath = '{site}';", note="not compiled",
    )  # fmt: skip


def compare(b: Bench, name: str, children: int) -> None:
    """Section 3 for one corpus."""
    sessions = [int(x) for x in b.args.sessions.split(",")]
    b.mailfilter(name, name, sessions, children)
    for n in (int(x) for x in b.args.amavis_children.split(",")):
        b.amavisd(name, name, sessions, n)
    b.amavisd(
        name, name, [2], 2,
        extra="@bypass_spam_checks_maps = (1);", note="no SpamAssassin",
    )  # fmt: skip


# -- the report ---------------------------------------------------------------


def report(b: Bench, info: str) -> str:
    """The markdown document."""
    a = b.args
    shape = corpus.generate(a.messages, a.seed, "shape", corpus.COST_MIX)
    rep = corpus.with_repeats(shape, 3, a.seed)
    lines = [
        "# Benchmark: SpamAssassin's CPU, mailfilter + spamd vs amavisd-new",
        "",
        info,
        "",
        (
            f"Corpus `cost` per run: {corpus.summary(shape)}. Corpus `repeats`: "
            f"the same shape with every third message a byte-identical copy of "
            f"one of the 30 before it, to another recipient "
            f"({len({m.data for m in rep})} distinct of {len(rep)}). Every run "
            f"gets new bytes, and {a.warmup} more messages warm it up first. "
            "`spam` is an HTML newsletter carrying GTUBE; `virus` is EICAR in "
            "a zip (clamd's one-signature test database); `exe` is a PE file "
            "behind a double extension. spamd runs with `-L` (no network "
            "tests); amavisd-new runs Debian's configuration with "
            "`$sa_local_tests_only = 1`, log level 0. Both give SpamAssassin "
            "at most the first 200 KiB of a message (their defaults) and "
            "skip it for mail already blocked as infected or banned; "
            "amavisd-new has no spam result cache. mailfilter runs its "
            "default policy. The `attach` zips hold random bytes, which "
            "now and then look like a DOS executable to libmagic: both "
            "filters then block that message as BANNED (fail closed), "
            "which is why passed / blocked differs by a few between runs. "
            "CPU is read from /proc for each process tree, reaped children "
            "included; an amavisd-new child retiring at the very end of a "
            "run ($max_requests = 20) can slip between the two readings, "
            "so a single amavisd-new figure well below its neighbours is "
            "an undercount. "
            "Everything shares the same cores."
        ),
        "",
    ]
    lines += children_section(b)
    lines += compile_table(b)
    lines += order_section(b)
    for name in CORPORA:
        lines += compare_section(b, name)
    return "\n".join(lines) + "\n"


def _cpu_cell(row: Row) -> str:
    return " + ".join(f"{k} {row.per_msg(k):.0f}" for k in row.cpu)


def children_section(b: Bench) -> list[str]:
    """Table of the spamd children sweep."""
    rows = [r for r in b.rows if r.section == "children"]
    if not rows:
        return []
    out = [
        "## spamd children against cores (mailfilter, 8 sessions, `cost`)",
        "",
        "| spamd children | msg/s | p50 s | p95 s | CPU ms/msg |",
        "|---:|---:|---:|---:|---|",
    ]
    out += [
        f"| {r.children} | {r.result.rate:.2f} | "
        f"{r.result.pct(50):.3f} | {r.result.pct(95):.3f} | "
        f"{_cpu_cell(r)} |"
        for r in rows
    ]
    out += [
        "",
        (
            f"Fewest children within 3 % of the best rate: "
            f"{_best_children(rows)} (used for mailfilter below)."
        ),
        "",
    ]
    return out


def compile_table(b: Bench) -> list[str]:
    """Table of the sa-compile comparison."""
    rows = [r for r in b.rows if r.section == "compile"]
    if not rows:
        return []
    out = [
        "## sa-compile (Rule2XSBody), 4 sessions, `cost`",
        "",
        "| system | children | rules | msg/s | p95 s | CPU ms/msg |",
        "|---|---:|---|---:|---:|---|",
    ]
    out += [
        f"| {r.system} | {r.children} | {r.note} | "
        f"{r.result.rate:.2f} | {r.result.pct(95):.3f} | "
        f"{_cpu_cell(r)} |"
        for r in rows
    ]
    for system in ("mailfilter", "amavisd"):
        pair = {r.note: r for r in rows if r.system == system}
        if {"compiled", "not compiled"} <= pair.keys():
            gain = (
                pair["compiled"].result.rate / pair["not compiled"].result.rate
            )
            out.append("")
            out.append(f"{system}: compiled / not compiled = {gain:.2f}.")
    out.append("")
    return out


def order_section(b: Bench) -> list[str]:
    """What checking the cheap things first adds to latency."""
    rows = [
        r
        for r in b.rows
        if r.section == "cost" and r.system == "mailfilter" and r.scan_means
    ]
    if not rows:
        return []
    out = [
        "## Cheap checks first: the latency they add (mailfilter, `cost`)",
        "",
        (
            "clamd and the banned-file check run together; spamd runs after "
            "them, only for mail they leave deliverable. Mean time per call "
            "of each scanner (mailfilter's metrics, queueing included):"
        ),
        "",
        (
            "| sessions | p50 s | clamd ms | banned-file check ms | spamd ms "
            "| cheap stage / p50 |"
        ),
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: r.sessions):
        m = r.scan_means or {}
        clam = m.get("clamav", 0.0) * 1e3
        banned = m.get("banned", 0.0) * 1e3
        spam = m.get("spamassassin", 0.0) * 1e3
        cheap = max(clam, banned)
        out.append(
            f"| {r.sessions} | {r.result.pct(50):.3f} | {clam:.1f} | "
            f"{banned:.1f} | {spam:.1f} | "
            f"{cheap / 1e3 / r.result.pct(50):.0%} |"
        )
    out.append("")
    return out


def sa_cpu(row: Row, bypass: Row | None) -> float | None:
    """SpamAssassin CPU seconds spent in the row's run.

    spamd's process tree for mailfilter. amavisd-new runs SpamAssassin
    inside its children, so its share is amavisd's CPU per message less
    what amavisd spends per message with SpamAssassin bypassed.
    """
    if row.system == "mailfilter":
        return row.cpu.get("spamd", 0.0)
    if bypass is None:
        return None
    base = bypass.cpu.get("amavisd", 0.0) / max(bypass.result.sent, 1)
    return row.cpu.get("amavisd", 0.0) - base * row.result.sent


def compare_section(b: Bench, name: str) -> list[str]:
    """Tables and ratios for one corpus."""
    rows = [r for r in b.rows if r.section == name]
    if not rows:
        return []
    bypass = next((r for r in rows if r.note == "no SpamAssassin"), None)
    main = [r for r in rows if r.note != "no SpamAssassin"]
    out = [
        f"## Corpus `{name}`",
        "",
        (
            "| sessions | system | children | msg/s | p50 s | p95 s | CPU ms/msg "
            "by process | SpamAssassin CPU ms per delivered | passed / blocked "
            "| replies |"
        ),
        "|---:|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for r in sorted(main, key=lambda r: (r.sessions, r.system, r.children)):
        sa = sa_cpu(r, bypass)
        per = "-" if sa is None else f"{sa / max(r.passed, 1) * 1e3:.0f}"
        mark = "" if comparable(r) else "*"
        out.append(
            f"| {r.sessions} | {r.system} | {r.children}{mark} | "
            f"{r.result.rate:.2f} | {r.result.pct(50):.3f} | "
            f"{r.result.pct(95):.3f} | {_cpu_cell(r)} | {per} | "
            f"{r.passed} / {r.blocked} | {dict(r.result.classes)} "
            f"{dict(r.result.errors) or ''} |"
        )
    out += [
        "",
        (
            "\\* more sessions than amavisd-new children: the extra "
            "connections wait ungreeted and their messages' wait is mostly "
            "outside p95; left out of the ratios below (amavisd-new's recipe "
            "sets maxproc to $max_servers)."
        ),
    ]
    if bypass is not None:
        out += [
            "",
            (
                f"amavisd-new with SpamAssassin bypassed ({bypass.children} "
                f"children, {bypass.sessions} sessions): "
                f"{bypass.result.rate:.2f} msg/s, {_cpu_cell(bypass)} ms/msg; "
                "its amavisd CPU per message is taken off the rows above to "
                "give amavisd-new's SpamAssassin CPU."
            ),
        ]
    out += ratios(main)
    return out


def comparable(row: Row) -> bool:
    """Whether the row is a set-up an admin would run, with a latency
    that means what it says.

    amavisd-new's recipe sets the transport's maxproc to $max_servers:
    with more sessions than children, the extra connections wait
    ungreeted until a child ends its connection, and the driver, like
    Postfix, holds them, so a few messages wait most of the run and fall
    outside p95. mailfilter accepts every session; those beyond spamd's
    children wait inside spamd, and that wait is in the latency.
    """
    return row.system != "amavisd" or row.children >= row.sessions


def ratios(rows: list[Row]) -> list[str]:
    """Equal-concurrency and best-against-best ratios."""
    mf = {r.sessions: r for r in rows if r.system == "mailfilter"}
    am: dict[int, Row] = {}
    for r in rows:
        if r.system == "amavisd" and comparable(r):
            best = am.get(r.sessions)
            if best is None or r.result.rate > best.result.rate:
                am[r.sessions] = r
    out = [
        "",
        (
            "| sessions | mailfilter msg/s | amavisd-new best msg/s (children) "
            "| msg/s ratio (never < 1) | p95 ratio |"
        ),
        "|---:|---:|---:|---:|---:|",
    ]
    # amavisd-new's best at each session count among comparable rows
    # (children >= sessions, see `comparable`).
    for c in sorted(mf):
        if c not in am:
            continue
        m, a = mf[c], am[c]
        out.append(
            f"| {c} | {m.result.rate:.2f} | {a.result.rate:.2f} "
            f"({a.children}) | {m.result.rate / a.result.rate:.2f} | "
            f"{m.result.pct(95) / a.result.pct(95):.2f} |"
        )
    if mf and am:
        bm = max(mf.values(), key=lambda r: r.result.rate)
        ba = max(am.values(), key=lambda r: r.result.rate)
        out += [
            "",
            (
                f"Each at its best: mailfilter {bm.result.rate:.2f} msg/s at "
                f"{bm.sessions} sessions (p95 {bm.result.pct(95):.3f} s), "
                f"amavisd-new {ba.result.rate:.2f} msg/s at {ba.sessions} "
                f"sessions with {ba.children} children (p95 "
                f"{ba.result.pct(95):.3f} s): ratio "
                f"**{bm.result.rate / ba.result.rate:.2f}** (target >= 1.3), "
                f"p95 ratio **{bm.result.pct(95) / ba.result.pct(95):.2f}** "
                "(target < 1)."
            ),
            "",
        ]
    return out


def save(rows: list[Row], info: str, path: Path) -> None:
    """Every row with its latencies, to render the report again."""
    # asdict() rebuilds a Counter from (key, value) pairs, which counts
    # the pairs: turn the result's Counters into plain dicts first.
    data = {
        "info": info,
        "rows": [
            {
                **{f.name: getattr(r, f.name) for f in fields(Row)},
                "result": _result_dict(r),
            }
            for r in rows
        ],
    }
    path.write_text(json.dumps(data))


def _result_dict(row: Row) -> dict[str, object]:
    res = row.result
    return {
        "label": res.label, "sent": res.sent, "elapsed": res.elapsed,
        "latencies": res.latencies, "classes": dict(res.classes),
        "samples": res.samples, "errors": dict(res.errors),
        "nbytes": res.nbytes,
    }  # fmt: skip


def load(path: Path) -> tuple[list[Row], str]:
    """Rows and machine information saved by `save`."""
    data = json.loads(path.read_text())
    rows = []
    for d in data["rows"]:
        res = d.pop("result")
        result = driver.RunResult(
            res["label"], res["sent"], res["elapsed"], res["latencies"],
            Counter(res["classes"]), res["samples"], Counter(res["errors"]),
            res["nbytes"],
        )  # fmt: skip
        rows.append(Row(result=result, **d))
    return rows, data["info"]


def main(argv: list[str] | None = None) -> None:
    """Run the sections, print and write the report."""
    args = parse_args(argv)
    if args.render:
        # Several runs: a later run's sections replace the earlier ones.
        b = Bench(args, args.render[0].parent)
        infos = []
        for path in args.render:
            rows, info = load(path)
            done = {r.section for r in rows}
            b.rows = [r for r in b.rows if r.section not in done] + rows
            infos.append(f"Sections {', '.join(sorted(done))}. {info}")
        write(args, report(b, "\n\n".join(infos)))
        return
    if args.wait_idle:
        print(f"load average {stack.wait_idle(args.wait_idle):.2f}")
    if problem := stack.mailfilter_problem():
        sys.exit(f"mailfilter does not run yet: {problem}")
    info = (
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} with:\n\n"
        "    PYTHONPATH=. .venv/bin/python -m bench.bench_spamcpu "
        f"{shlex.join(sys.argv[1:] if argv is None else argv)}\n\n"
        f"{stack.machine_info()}; Rule2XSBody loaded system-wide: "
        f"{compiled_enabled()}"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-spamcpu-"))
    # spamd runs as nobody and reads the site config copy from here.
    work.chmod(0o755)
    b = Bench(args, work)
    sections = args.sections.split(",")
    children = args.mailfilter_children
    with ExitStack() as stop:
        b.clamd = start_clamd(work / "clamd")
        stop.callback(b.clamd.stop)
        b.sink = stack.start_sink(work / "sink")
        stop.callback(b.sink.stop)
        if "children" in sections:
            best = sweep_children(b)
            children = children or best
        children = children or 2
        if "compile" in sections:
            compile_section(b, children)
        for name in CORPORA:
            if name in sections:
                compare(b, name, children)
    save(b.rows, info, work / "rows.json")
    print(f"rows: {work / 'rows.json'} (--render it again)", file=sys.stderr)
    write(args, report(b, info))


def write(args: argparse.Namespace, text: str) -> None:
    """Print the report and, unless --no-write, write it."""
    print(text)
    if not args.no_write:
        args.out.write_text(text)
        print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
