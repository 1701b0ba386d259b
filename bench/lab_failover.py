#!/usr/bin/env python3
"""Failover campaign on the one-machine cluster lab (deploy/lab/lab).

For each fault, N runs (8, as the seed did): `mailfilter probe` in the
client namespace sends a numbered message through the VIP every --interval
seconds and watches for it over IMAP through the VIP; the fault is injected
--before seconds into the run and repaired --hold seconds later. Per run:

- mtfo: the probe's takeover time (first failed send to the first
  successful one, the seed's MTFO; 0 when no send failed),
- failed: sends that failed (connect errors and sessions cut mid-way),
- lost: accepted by SMTP but never in the store (checked after the queues
  drained), duplicated: one tag stored more than once, failed_delivered:
  the client saw a failure but the message was stored anyway (a retrying
  client would duplicate it), late: accepted but not seen over IMAP within
  the probe's timeout (delivered after the outage),
- for director faults: when the other director got the VIP (from
  `ip -ts monitor address`), and how long both held it,
- for real-server faults: when the active director's HAProxy marked the
  server down.

    python3 bench/lab_failover.py --fault all --runs 8 --out /var/tmp/lab-campaign
    python3 bench/lab_failover.py --summarize /var/tmp/lab-campaign

The lab must be up (`deploy/lab/lab up`), or pass --up.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "deploy" / "lab" / "lab"
ROOT = Path("/run/mailfilter-lab")
STORE = ROOT / "store" / "example.com" / "probe" / "Maildir"
MAILFILTER = REPO / ".venv" / "bin" / "mailfilter"
PYTHON = REPO / ".venv" / "bin" / "python3"
DIRECTORS = ("d1", "d2")
REALSERVERS = ("rs1", "rs2", "rs3", "rs4")
FAULTS = ("director-kill", "director-cut", "rs-cut", "mailfilter-kill",
          "clamd-stop", "dovecot-kill", "baseline")
LAYER = {"director-kill": "directors", "director-cut": "directors",
         "rs-cut": "real_servers", "mailfilter-kill": "real_servers",
         "clamd-stop": "real_servers", "dovecot-kill": "real_servers",
         "baseline": None}


def lab(*args: str, check: bool = True) -> str:
    done = subprocess.run([str(PYTHON), str(LAB), *args], capture_output=True,
                          text=True, check=False, timeout=300)
    if check and done.returncode != 0:
        raise RuntimeError(f"lab {' '.join(args)}: {done.stderr}{done.stdout}")
    return done.stdout


def status() -> dict:
    return json.loads(lab("status", "--json"))


def haproxy_stat(director: str) -> dict[str, dict[str, str]]:
    sock = ROOT / director / "run/haproxy/admin.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode(errors="replace").splitlines()
    fields = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(fields, line.split(","), strict=False))
        if row.get("svname") in REALSERVERS:
            out[f"{row['pxname']}/{row['svname']}"] = row
    return out


def wait_healthy(timeout: float = 90) -> str:
    """Wait for one VIP holder whose HAProxy sees every server UP; it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = status()
        last = st
        holders = st["vip_holders"]
        dead = [f"{n}/{d}" for n, ds in st["nodes"].items()
                for d, v in ds.items() if not v.startswith("running")]
        if len(holders) == 1 and not dead:
            view = haproxy_stat(holders[0])
            if all(r["status"] == "UP" for r in view.values()):
                return holders[0]
        time.sleep(0.5)
    raise RuntimeError(f"lab not healthy: {json.dumps(last)[:2000]}")


class VipMonitor:
    """`ip -ts monitor address` in both directors: VIP add/del times."""

    LINE = re.compile(r"\[(\S+)\]\s*(Deleted )?.*inet (\S+)/")

    def __init__(self, vip: str) -> None:
        self.vip = vip
        self.events: list[tuple[float, str, str]] = []  # (t, node, add/del)
        self.procs = []
        self.threads = []
        for node in DIRECTORS:
            proc = subprocess.Popen(
                ["ip", "-n", f"mflab-{node}", "-ts", "monitor", "address"],
                stdout=subprocess.PIPE, text=True)
            self.procs.append(proc)
            t = threading.Thread(target=self._read, args=(node, proc),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _read(self, node: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            m = self.LINE.search(line)
            if m and m.group(3) == self.vip:
                when = datetime.fromisoformat(m.group(1)).timestamp()
                self.events.append((when, node, "del" if m.group(2) else
                                    "add"))

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait()


class HaproxyMonitor:
    """Polls the directors' stats sockets: when each server changed."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.changes: list[tuple[float, str, str, str]] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        last: dict[tuple[str, str], str] = {}
        while self.running:
            for d in DIRECTORS:
                try:
                    view = haproxy_stat(d)
                except OSError:
                    continue
                for name, row in view.items():
                    key = (d, name)
                    if last.get(key) != row["status"]:
                        if key in last:
                            self.changes.append((time.time(), d, name,
                                                 row["status"]))
                        last[key] = row["status"]
            time.sleep(self.period)

    def stop(self) -> None:
        self.running = False
        self.thread.join()


def imap_server(director: str) -> str | None:
    """The real server holding the probe's IMAP session."""
    for name, row in haproxy_stat(director).items():
        if name.startswith("imap_") and int(row.get("scur") or 0) > 0:
            return name.split("/")[1]
    return None


def stored_tags(since: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    parser = email.parser.BytesHeaderParser()
    for sub in ("new", "cur"):
        d = STORE / sub
        if not d.exists():
            continue
        for f in d.iterdir():
            try:
                if f.stat().st_mtime < since:
                    continue
                with f.open("rb") as fh:
                    subject = str(parser.parse(fh).get("Subject", ""))
            except OSError:
                continue
            if subject.startswith("mailfilter probe "):
                tag = subject.removeprefix("mailfilter probe ").strip()
                counts[tag] = counts.get(tag, 0) + 1
    return counts


def flush_queues() -> None:
    for rs in REALSERVERS:
        lab("exec", rs, "--", "postqueue", "-c",
            str(ROOT / rs / "etc/postfix"), "-f", check=False)


def lab_state() -> dict:
    return json.loads((ROOT / "state.json").read_text())


def daemon_pids(node: str, daemon: str) -> list[int]:
    """The daemon's recorded PID, and keepalived's children."""
    pid = lab_state()["nodes"][node]["daemons"][daemon]
    pids = [pid]
    if daemon == "keepalived":
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                             text=True, check=False).stdout
        pids += [int(x) for x in out.split()]
    return pids


def inject(fault: str, target: str) -> float:
    """Inject the fault; the time it took effect.

    Directly, not through `lab kill`/`lab cut`: a Python start-up (up to a
    second on two busy cores) would otherwise count as takeover time. The
    PIDs are looked up before the clock starts.
    """
    if fault == "baseline":  # the same run with nothing broken
        return time.time()
    if fault in ("director-cut", "rs-cut"):
        cmd = ["ip", "-n", "mflab-sw", "link", "set", f"v-{target}", "down"]
        subprocess.run(cmd, check=True)
        return time.time()
    daemon, sig = {
        "director-kill": ("keepalived", signal.SIGKILL),
        "mailfilter-kill": ("mailfilter", signal.SIGKILL),
        "clamd-stop": ("clamd", signal.SIGTERM),
        "dovecot-kill": ("dovecot", signal.SIGKILL),
    }[fault]
    pids = daemon_pids(target, daemon)
    when = time.time()
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)
    return when


def repair(fault: str, target: str) -> None:
    if fault == "baseline":
        return
    if fault == "director-kill":
        lab("start", target, "keepalived")
    elif fault in ("director-cut", "rs-cut"):
        lab("join", target)
    elif fault == "mailfilter-kill":
        lab("start", target, "mailfilter")
    elif fault == "clamd-stop":
        lab("start", target, "clamd")
    elif fault == "dovecot-kill":
        # `lab start` first kills what the master left (imap-login keeps
        # the listeners), as systemd would.
        lab("start", target, "dovecot")


def one_run(fault: str, index: int, args: argparse.Namespace,
            out: Path) -> dict:
    holder = wait_healthy()
    run_dir = out / fault / f"run{index}"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    password = ROOT / "imap-password"
    password.write_text("lab\n")
    probe = subprocess.Popen(
        [str(PYTHON), str(LAB), "exec", "client", "--", str(MAILFILTER),
         "probe", "--smtp", "10.213.0.25:25", "--to", "probe@example.com",
         "--imap", "10.213.0.25:143", "--imap-user", "probe@example.com",
         "--imap-password-file", str(password), "--interval",
         str(args.interval), "--duration", str(args.duration), "--timeout",
         str(args.timeout), "--json", str(run_dir / "probe.json"),
         "--csv", str(run_dir / "probe.csv")],
        stdout=(run_dir / "probe.out").open("w"), stderr=subprocess.STDOUT)
    vips = VipMonitor("10.213.0.25")
    lb = HaproxyMonitor()
    time.sleep(args.before)
    if fault.startswith("director"):
        target = holder
    elif fault == "dovecot-kill":
        target = imap_server(holder) or REALSERVERS[index % 4]
    else:
        target = REALSERVERS[index % 4]
    t_fault = inject(fault, target)
    time.sleep(args.hold)
    t_repair = time.time()
    repair(fault, target)
    probe.wait(timeout=args.duration + args.timeout + 60)
    time.sleep(1)
    vips.stop()
    lb.stop()
    summary = json.loads((run_dir / "probe.json").read_text())
    samples = summary["samples"]
    accepted = {s["tag"] for s in samples if s["smtp_ok"]}
    failed_tags = {s["tag"] for s in samples if not s["smtp_ok"]}
    # Let the queues drain (mail deferred while the filter was away).
    deadline = time.monotonic() + args.drain
    while True:
        stored = stored_tags(started - 1)
        if accepted <= stored.keys() or time.monotonic() > deadline:
            break
        flush_queues()
        time.sleep(2)
    other = [d for d in DIRECTORS if d != target]
    takeover = None
    both = None
    if fault.startswith("director"):
        adds = [t for t, n, e in vips.events if n in other and e == "add"
                and t >= t_fault]
        takeover = (min(adds) - t_fault) if adds else None
        dels = [t for t, n, e in vips.events if n == target and e == "del"
                and t >= t_fault]
        if adds:
            end = min(dels) if dels else None
            both = (end - min(adds)) if end and end > min(adds) else 0.0
            if end is None:
                both = None  # still both at the end: reported as such
    marked_down = None
    if not fault.startswith("director"):
        downs = [t for t, d, name, st in lb.changes
                 if name == f"smtp_realservers/{target}" and t >= t_fault
                 and st.startswith("DOWN")]
        if fault == "dovecot-kill":
            downs = [t for t, d, name, st in lb.changes
                     if name == f"imap_realservers/{target}"
                     and t >= t_fault and st.startswith("DOWN")]
        marked_down = (min(downs) - t_fault) if downs else None
    s = summary["summary"]
    lat = [x["latency"] for x in samples if x["latency"] is not None]
    outages = [o["seconds"] for o in s["outages"] if o["seconds"] is not None]
    record = {
        "fault": fault, "run": index, "target": target,
        "vip_holder_before": holder,
        "sent": s["sent"],
        "failed": s["smtp_failures"],
        "failed_connect": sum("SMTPConnectError" in x["smtp_reply"]
                              for x in samples if not x["smtp_ok"]),
        "failure_replies": sorted({x["smtp_reply"][:80] for x in samples
                                   if not x["smtp_ok"]}),
        "mtfo": sum(outages) if outages else 0.0,
        "outages": s["outages"],
        "lost": len(accepted - stored.keys()),
        "duplicated": sum(1 for t, c in stored.items() if c > 1),
        "failed_delivered": len(failed_tags & stored.keys()),
        "late": sum(1 for x in samples if x["smtp_ok"]
                    and x["latency"] is None),
        "latency_median": statistics.median(lat) if lat else None,
        "latency_max": max(lat) if lat else None,
        "vip_takeover": takeover,
        "vip_both_held": both,
        "lb_marked_down": marked_down,
        "hold": t_repair - t_fault,
        "vip_events": [(round(t - t_fault, 4), n, e)
                       for t, n, e in vips.events],
    }
    (run_dir / "result.json").write_text(json.dumps(record, indent=2))
    return record


def mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def stalls(run_dir: Path) -> tuple[float, int]:
    """The longest SMTP transaction of a run and how many took over 1 s.

    A connection attempt that falls into the takeover gap is not failed:
    its SYN is retransmitted after the kernel's initial RTO (1 s) and
    succeeds. The user sees a stall, which MTFO (failures only) misses.
    """
    samples = json.loads((run_dir / "probe.json").read_text())["samples"]
    times = [s["smtp_seconds"] for s in samples if s["smtp_ok"]]
    return max(times, default=0.0), sum(x > 1.0 for x in times)


def both_held(record: dict) -> float | None:
    """How long both directors held the VIP, from the recorded events."""
    target = record["target"]
    adds = [t for t, n, e in record["vip_events"] if n != target
            and e == "add" and t > -0.5]
    dels = [t for t, n, e in record["vip_events"] if n == target
            and e == "del" and t > -0.5]
    if not adds:
        return None
    if not dels:
        return float("inf")
    return max(0.0, min(dels) - min(adds))


def summarize(out: Path) -> dict:
    table = {}
    for fault in FAULTS:
        runs = []
        for p in sorted((out / fault).glob("run*/result.json")):
            r = json.loads(p.read_text())
            r["smtp_max"], r["smtp_over_1s"] = stalls(p.parent)
            if fault.startswith("director"):
                r["vip_both_held"] = both_held(r)
            runs.append(r)
        if not runs:
            continue
        table[fault] = {
            "runs": len(runs),
            "mtfo_mean": mean([r["mtfo"] for r in runs]),
            "mtfo_max": max(r["mtfo"] for r in runs),
            "failed": sum(r["failed"] for r in runs),
            "failed_connect": sum(r["failed_connect"] for r in runs),
            "lost": sum(r["lost"] for r in runs),
            "duplicated": sum(r["duplicated"] for r in runs),
            "failed_delivered": sum(r["failed_delivered"] for r in runs),
            "late": sum(r["late"] for r in runs),
            "sent": sum(r["sent"] for r in runs),
            "vip_takeover_mean": mean([r["vip_takeover"] for r in runs]),
            "vip_takeover_max": max((r["vip_takeover"] or 0) for r in runs),
            "lb_marked_down_mean": mean([r["lb_marked_down"] for r in runs]),
            "lb_marked_down_max": max((r["lb_marked_down"] or 0)
                                      for r in runs),
            "latency_max": max((r["latency_max"] or 0) for r in runs),
            "smtp_stall_mean": mean([r["smtp_max"] for r in runs]),
            "smtp_stall_max": max(r["smtp_max"] for r in runs),
            "smtp_over_1s": sum(r["smtp_over_1s"] for r in runs),
            "vip_both_held": [r.get("vip_both_held") for r in runs],
        }
    (out / "summary.json").write_text(json.dumps(table, indent=2))
    return table


def print_table(table: dict) -> None:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    print("| fault | runs | sent | MTFO mean s | MTFO max s | failed sends "
          "(at connect) | lost | dup | failed but stored | late | VIP "
          "takeover mean/max s | LB marks down mean/max s | longest SMTP "
          "mean/max s | sends > 1 s | delivery latency max s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for fault, r in table.items():
        print(f"| {fault} | {r['runs']} | {r['sent']} | {f(r['mtfo_mean'])} "
              f"| {f(r['mtfo_max'])} | {r['failed']} ({r['failed_connect']})"
              f" | {r['lost']} | {r['duplicated']} | {r['failed_delivered']}"
              f" | {r['late']} | {f(r['vip_takeover_mean'])} / "
              f"{f(r['vip_takeover_max'])} | {f(r['lb_marked_down_mean'])} /"
              f" {f(r['lb_marked_down_max'])} | {f(r['smtp_stall_mean'])} /"
              f" {f(r['smtp_stall_max'])} | {r['smtp_over_1s']} | "
              f"{f(r['latency_max'])} |")


def cluster_toml(table: dict, out: Path, key: str = "mtfo_mean",
                 name: str = "lab-cluster.toml") -> Path:
    """The seed's model with our per-layer figures (worst fault per layer):
    key "mtfo_mean" (the seed's MTFO) or "smtp_stall_mean"."""
    seed = (REPO / "mailfilter/data/seed-cluster.toml").read_text()
    per_layer: dict[str, float] = {}
    for fault, r in table.items():
        layer = LAYER[fault]
        if layer is None or r[key] is None:
            continue
        per_layer[layer] = max(per_layer.get(layer, 0.0), r[key])
    text = seed
    for layer, value in per_layer.items():
        text = re.sub(
            rf'(name = "{layer}".*?mtfo_seconds = )[0-9.]+',
            lambda m, v=value: f"{m.group(1)}{v:.3f}",
            text,
            flags=re.DOTALL,
        )
    path = out / name
    path.write_text(text)
    return path


def write_models(table: dict, out: Path) -> None:
    for key, name in (("mtfo_mean", "lab-cluster.toml"),
                      ("smtp_stall_mean", "lab-cluster-stall.toml")):
        print(f"model input ({key}): {cluster_toml(table, out, key, name)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fault", default="all",
                   help="one of " + ", ".join(FAULTS) + ", or all")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--first-run", type=int, default=0,
                   help="resume a campaign at this run number")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--before", type=float, default=2.0)
    p.add_argument("--hold", type=float, default=2.0)
    p.add_argument("--timeout", type=float, default=40.0)
    p.add_argument("--drain", type=float, default=90.0)
    p.add_argument("--out", type=Path, default=Path("/var/tmp/lab-campaign"))
    p.add_argument("--up", action="store_true", help="lab up first")
    p.add_argument("--summarize", type=Path, metavar="DIR",
                   help="only print the table of an earlier campaign")
    args = p.parse_args()
    if args.summarize:
        table = summarize(args.summarize)
        print_table(table)
        write_models(table, args.summarize)
        return 0
    if args.up:
        lab("up")
    faults = FAULTS if args.fault == "all" else tuple(args.fault.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    for fault in faults:
        for i in range(args.first_run, args.runs):
            r = one_run(fault, i, args, args.out)
            print(json.dumps({k: r[k] for k in (
                "fault", "run", "target", "sent", "failed", "mtfo", "lost",
                "duplicated", "failed_delivered", "late", "vip_takeover",
                "vip_both_held", "lb_marked_down", "latency_max")}),
                flush=True)
    table = summarize(args.out)
    print_table(table)
    write_models(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
