"""Issue 2 benchmark: mailfilter with no scanners against the loopback limit.

T0 = smtp-source -> smtp-sink; T1 = smtp-source -> mailfilter (--clamd
off --spamd off) -> smtp-sink. Same run, same 4 KB message, same
concurrency, interleaved and repeated, with (-d) and without connection
reuse. smtp-source gives msg/s; the asyncio driver gives p50/p99 latency;
/proc gives the filter's CPU per message. Then one ~20 MB message through
the filter: MB/s, peak RSS (VmHWM) and the worst NOOP round trip seen by
another connection meanwhile. Writes a markdown table to stdout and to
docs/bench-filter.md. Run on demand, never from the test suite:

    PYTHONPATH=. .venv/bin/python -m bench.bench_filter [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import corpus, driver, stack

TARGETS = {
    "ratio": 0.4,  # T1/T0 msg/s (issue 2)
    "cpu_ms": 1.0,  # filter CPU per 4 KB message
    "big_mbps": 100.0,
    "stall_ms": 100.0,
    "rss_extra_mb": 60.0,  # peak RSS < 2 x size + 60 MB
}


@dataclass
class SourceRun:
    """One smtp-source run."""

    target: str
    reuse: bool
    messages: int
    elapsed: float
    cpu: float  # filter CPU seconds during the run (T1 only)
    error: str = ""

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.elapsed if not self.error else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; defaults finish in about two minutes."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--messages", type=int, default=20000, help="per smtp-source run"
    )
    p.add_argument(
        "--concurrency", type=int, default=10, help="smtp-source -s"
    )
    p.add_argument("--repeat", type=int, default=2, help="runs per topology")
    p.add_argument("--latency-messages", type=int, default=3000)
    p.add_argument("--big-mb", type=float, default=20.0)
    p.add_argument("--big-repeat", type=int, default=3)
    p.add_argument("--policy", type=Path, default=None)
    p.add_argument(
        "--out", type=Path, default=stack.ROOT / "docs" / "bench-filter.md"
    )
    p.add_argument("--no-write", action="store_true", help="stdout only")
    stack.add_wait_idle(p)
    return p.parse_args(argv)


def smtp_source(
    port: int, eml: Path, n: int, c: int, reuse: bool
) -> tuple[float, str]:
    """Run smtp-source; (elapsed seconds, error text or "")."""
    cmd = [
        "smtp-source", "-s", str(c), "-m", str(n), "-F", str(eml),
        "-f", corpus.SENDER, "-t", corpus.RECIPIENT, "-M", "bench.example.org",
        *(["-d"] if reuse else []), f"127.0.0.1:{port}",
    ]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    elapsed = time.perf_counter() - start
    err = (
        ""
        if out.returncode == 0
        else out.stderr.decode(errors="replace")[-300:]
    )
    return elapsed, err.strip()


def throughput(
    args: argparse.Namespace,
    sink: stack.Service,
    filt: stack.Service,
    eml: Path,
    naive: stack.Service,
) -> list[SourceRun]:
    """Interleaved T0/T1/naive smtp-source runs, with and without -d."""
    runs = []
    targets = (("T0", sink), ("T1", filt), ("naive", naive))
    for reuse in (True, False):
        for _ in range(args.repeat):
            for name, svc in targets:
                cpu0 = driver.cpu_seconds([filt.pid])
                elapsed, err = smtp_source(
                    svc.port, eml, args.messages, args.concurrency, reuse
                )
                cpu = driver.cpu_seconds([filt.pid]) - cpu0
                runs.append(
                    SourceRun(name, reuse, args.messages, elapsed, cpu, err)
                )
                print(
                    f"  {name} reuse={reuse}: {runs[-1].rate:,.0f} msg/s {err}"
                )
    return runs


def latency(
    args: argparse.Namespace, sink: stack.Service, filt: stack.Service
) -> dict[str, driver.RunResult]:
    """p50/p99 from the asyncio driver at the same concurrency."""
    msgs = corpus.text_messages(args.latency_messages)
    warm = msgs[: max(100, len(msgs) // 10)]
    out = {}
    for name, svc in (("T0", sink), ("T1", filt)):
        asyncio.run(
            driver.send_smtp("127.0.0.1", svc.port, warm, args.concurrency)
        )
        out[name] = asyncio.run(
            driver.send_smtp(
                "127.0.0.1", svc.port, msgs, args.concurrency, label=name
            )
        )
        r = out[name]
        print(
            f"  {name} driver: {r.rate:,.0f} msg/s p50 {r.pct(50) * 1e3:.2f} ms"
        )
    return out


@dataclass
class BigRun:
    """One big message through one target."""

    size: int
    seconds: float
    reply: str
    rss_before: int
    hwm: int
    stall: float
    noops: int

    @property
    def mbps(self) -> float:
        """Megabytes (10^6) per second."""
        return self.size / self.seconds / 1e6


def big_message(port: int, pid: int, size: int) -> BigRun:
    """Send one big message while a NOOP prober watches for stalls."""
    msg = corpus.big_message(size)
    rss_before = driver._status(pid)["VmRSS"]
    with driver.NoopProber("127.0.0.1", port) as prober:
        r = asyncio.run(driver.send_smtp("127.0.0.1", port, [msg], 1))
        time.sleep(0.1)
    hwm = driver._status(pid)["VmHWM"]
    reply = next(iter(r.samples.values()), str(dict(r.errors)))
    return BigRun(
        len(msg.data), r.latencies[0] if r.latencies else float("nan"),
        reply, rss_before, hwm, prober.worst, len(prober.latencies),
    )  # fmt: skip


def best(runs: list[SourceRun], target: str, reuse: bool) -> SourceRun:
    """The fastest run of a topology (each at its best, as amavis users do)."""
    mine = [r for r in runs if r.target == target and r.reuse == reuse]
    return max(mine, key=lambda r: r.rate)


def verdict(ok: bool) -> str:
    """Pass/fail cell."""
    return "yes" if ok else "**no**"


def report(
    args: argparse.Namespace,
    runs: list[SourceRun],
    lat: dict[str, driver.RunResult],
    big: list[tuple[str, BigRun]],
    info: str,
) -> str:
    """The markdown document."""
    lines = [
        "# Benchmark: mailfilter without scanners vs the loopback limit (issue 2)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} with:",
        "",
        f"    PYTHONPATH=. .venv/bin/python -m bench.bench_filter {shlex.join(sys.argv[1:])}",
        "",
        info,
        "",
        (
            "T0 = smtp-source -> smtp-sink; T1 = smtp-source -> mailfilter "
            "(`--clamd off --spamd off`) -> smtp-sink; naive = smtp-source -> "
            "an aiosmtpd handler forwarding with aiosmtplib.send() "
            "(bench/naive_proxy.py) -> smtp-sink. "
            f"One {len(corpus.text_messages(1)[0].data)}-byte text message "
            f"(`smtp-source -F`), `-s {args.concurrency}`, {args.messages} "
            f"messages per run, best of {args.repeat} interleaved runs. "
            "Source, filter and sink share the same cores."
        ),
        "",
    ]
    lines += throughput_section(runs)
    lines += latency_section(args, lat)
    lines += big_section(args, big)
    return "\n".join(lines)


def throughput_section(runs: list[SourceRun]) -> list[str]:
    """smtp-source msg/s, T1/T0 and filter CPU per message."""
    lines = [
        "## Throughput (smtp-source)",
        "",
        (
            "| connection reuse | T0 msg/s | T1 msg/s | naive proxy msg/s "
            "| T1/T0 | naive/T0 | T1/naive | target T1/T0 | met | filter CPU/msg |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for reuse in (True, False):
        t0, t1 = best(runs, "T0", reuse), best(runs, "T1", reuse)
        nv = best(runs, "naive", reuse)
        ratio = t1.rate / t0.rate if t0.rate else 0.0
        naive = nv.rate / t0.rate if t0.rate else 0.0
        gain = t1.rate / nv.rate if nv.rate else 0.0
        cpu_ms = t1.cpu / t1.messages * 1e3
        lines.append(
            f"| {'-d (reuse)' if reuse else 'none'} | {t0.rate:,.0f} | "
            f"{t1.rate:,.0f} | {nv.rate:,.0f} | {ratio:.3f} | {naive:.3f} | "
            f"{gain:.2f} | >= {TARGETS['ratio']} | "
            f"{verdict(ratio >= TARGETS['ratio'])} | {cpu_ms:.3f} ms "
            f"({verdict(cpu_ms < TARGETS['cpu_ms'])} < {TARGETS['cpu_ms']} ms) |"
        )
    all_runs = ", ".join(
        f"{r.target}{'-d' if r.reuse else ''} {r.rate:,.0f}" for r in runs
    )
    lines += ["", f"All runs (msg/s): {all_runs}."]
    errors = [
        f"{r.target} reuse={r.reuse}: {r.error}" for r in runs if r.error
    ]
    if errors:
        lines += ["", "smtp-source errors:", "", *(f"- `{e}`" for e in errors)]
    return lines


def latency_section(
    args: argparse.Namespace, lat: dict[str, driver.RunResult]
) -> list[str]:
    """Driver latency percentiles for T0 and T1."""
    lines = [
        "",
        "## Latency (asyncio driver, pipelined envelope, connection reuse)",
        "",
        (
            f"{args.latency_messages} messages at concurrency {args.concurrency}"
            " after a warm-up. Latency = MAIL sent to final reply. The driver "
            "is Python, so its msg/s is lower than smtp-source's; use it for "
            "latency only."
        ),
        "",
        "| target | msg/s | p50 ms | p95 ms | p99 ms | replies |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in lat.items():
        lines.append(
            f"| {name} | {r.rate:,.0f} | {r.pct(50) * 1e3:.2f} | "
            f"{r.pct(95) * 1e3:.2f} | {r.pct(99) * 1e3:.2f} | "
            f"{dict(r.classes)} {dict(r.errors) or ''} |"
        )
    added = (lat["T1"].pct(99) - lat["T0"].pct(99)) * 1e3
    return [*lines, "", f"Filter-added p99: {added:.2f} ms.", ""]


def big_section(
    args: argparse.Namespace, big: list[tuple[str, BigRun]]
) -> list[str]:
    """One row per big-message run, then the targets for T1."""
    mb = 1024 * 1024
    lines = [
        f"## One big message (~{args.big_mb:g} MB), {args.big_repeat} runs each",
        "",
        (
            "| target | size MB | MB/s | peak RSS (VmHWM) MB | RSS before MB | "
            "worst NOOP round trip ms (n) | reply |"
        ),
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, b in big:
        hwm = f"{b.hwm / mb:.0f}" if b.hwm else "-"
        before = f"{b.rss_before / mb:.0f}" if b.rss_before else "-"
        lines.append(
            f"| {name} | {b.size / 1e6:.1f} | {b.mbps:.0f} | {hwm} | {before} | "
            f"{b.stall * 1e3:.1f} ({b.noops}) | `{b.reply[:80]}` |"
        )
    t1 = [b for name, b in big if name == "T1"]
    mbps = statistics.median(b.mbps for b in t1)
    hwm = max(b.hwm for b in t1) / mb
    stall = max(b.stall for b in t1) * 1e3
    limit = 2 * t1[0].size / mb + TARGETS["rss_extra_mb"]
    return [
        *lines,
        "",
        (
            f"Targets for T1: median {mbps:.0f} MB/s >= "
            f"{TARGETS['big_mbps']:.0f}: {verdict(mbps >= TARGETS['big_mbps'])}"
            f"; peak RSS {hwm:.0f} MB < {limit:.0f} MB (2 x size + 60): "
            f"{verdict(hwm < limit)}; worst stall {stall:.0f} ms <= "
            f"{TARGETS['stall_ms']:.0f} ms: "
            f"{verdict(stall <= TARGETS['stall_ms'])}."
        ),
        "",
    ]


def smoke(filt: stack.Service) -> None:
    """One message through the filter; stop with its reply if not 2xx."""
    r = asyncio.run(
        driver.send_smtp("127.0.0.1", filt.port, corpus.text_messages(1), 1)
    )
    if r.classes.get("2xx") != 1:
        sys.exit(
            f"mailfilter smoke test failed: {r.samples} {dict(r.errors)}\n"
            f"{filt.tail()}"
        )


def main(argv: list[str] | None = None) -> None:
    """Run everything, print and write the report."""
    args = parse_args(argv)
    if args.wait_idle:
        print(f"load average {stack.wait_idle(args.wait_idle):.2f}")
    problem = stack.mailfilter_problem()
    if problem:
        sys.exit(f"mailfilter does not run yet: {problem}")
    info = stack.machine_info()
    work = Path(tempfile.mkdtemp(prefix="bench-filter-"))
    sink = stack.start_sink(work / "sink")
    filt = naive = None
    try:
        naive = stack.start_naive_proxy(work / "naive", forward=sink.port)
        filt = stack.start_mailfilter(
            work / "filter", forward=sink.port, policy=args.policy
        )
        smoke(filt)
        eml = work / "4k.eml"
        # smtp-source -F appends CRLF to each line itself: give it LF.
        eml.write_bytes(
            corpus.text_messages(1)[0].data.replace(b"\r\n", b"\n")
        )
        print("throughput (smtp-source):")
        runs = throughput(args, sink, filt, eml, naive)
        print("latency (driver):")
        lat = latency(args, sink, filt)
        size = int(args.big_mb * 1e6)
        print("big message:")
        big = []
        for _ in range(args.big_repeat):
            big.append(("T0", big_message(sink.port, 0, size)))
            big.append(("T1", big_message(filt.port, filt.pid, size)))
            print(f"  T1 {big[-1][1].mbps:.0f} MB/s")
        text = report(args, runs, lat, big, info)
    finally:
        if naive is not None:
            naive.stop()
        if filt is not None:
            filt.stop()
            print(f"mailfilter log tail:\n{filt.tail(10)}", file=sys.stderr)
        sink.stop()
    print(text)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
