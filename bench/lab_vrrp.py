#!/usr/bin/env python3
"""What the VRRP advert interval costs and buys, on the cluster lab.

For each advert_int: `lab up --advert X`, then --seconds of mail load
(`mailfilter probe` through the VIP every --interval seconds, so every
real server scans all the time), counting

- false takeovers: "Entering MASTER STATE" lines in the keepalived logs
  beyond the first election, while nothing was broken;
- CPU seconds used by keepalived (both directors), HAProxy (both) and the
  health agents with their selftest runs (all four real servers), per
  minute of wall time;

and then --cuts director link cuts, each timed from the cut to the other
director's VIP (`ip -ts monitor address`). The lab is taken down after
each setting.

    python3 bench/lab_vrrp.py --advert 0.01,0.05,0.1,1 --seconds 120
    python3 bench/lab_vrrp.py --advert 0.05 --seconds 600   # ten minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "deploy" / "lab" / "lab"
ROOT = Path("/run/mailfilter-lab")
PYTHON = REPO / ".venv" / "bin" / "python3"
MAILFILTER = REPO / ".venv" / "bin" / "mailfilter"
VIP = "10.213.0.25"
TICK = os.sysconf("SC_CLK_TCK")


def lab(*args: str) -> str:
    done = subprocess.run([str(PYTHON), str(LAB), *args], capture_output=True,
                          text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"lab {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def cpu_seconds(pid: int) -> float:
    """utime + stime + reaped children's, of pid and its live children."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
        parts = fields.split()
        total += sum(int(x) for x in parts[11:15]) / TICK
    except OSError:
        return 0.0
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            total += cpu_seconds(int(c))
    return total


def group_cpu() -> dict[str, float]:
    state = json.loads((ROOT / "state.json").read_text())
    out = {"keepalived": 0.0, "haproxy": 0.0, "agent": 0.0}
    for node in state["nodes"].values():
        for name, pid in node["daemons"].items():
            if name in out:
                out[name] += cpu_seconds(pid)
    return out


def masters() -> int:
    return sum(p.read_text().count("Entering MASTER STATE")
               for p in ROOT.glob("d*/var/log/keepalived.out"))


def holders() -> list[str]:
    found = []
    for d in ("d1", "d2"):
        out = subprocess.run(["ip", "-n", f"mflab-{d}", "-4", "-o", "addr"],
                             capture_output=True, text=True,
                             check=False).stdout
        if f" {VIP}/" in out:
            found.append(d)
    return found


def timed_cut(holder: str) -> float | None:
    other = "d2" if holder == "d1" else "d1"
    mon = subprocess.Popen(["ip", "-n", f"mflab-{other}", "-ts", "monitor",
                            "address"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    cut = time.time()
    subprocess.run(["ip", "-n", "mflab-sw", "link", "set", f"v-{holder}",
                    "down"], check=True)
    found: list[float] = []

    def read() -> None:
        for line in mon.stdout:
            if f"inet {VIP}/" in line and "Deleted" not in line:
                stamp = line.split("]")[0].lstrip("[")
                found.append(datetime.fromisoformat(stamp).timestamp())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    took = (found[0] - cut) if found else None
    mon.terminate()
    mon.wait()
    subprocess.run(["ip", "-n", "mflab-sw", "link", "set", f"v-{holder}",
                    "up"], check=True)
    time.sleep(2)
    return took


def one_setting(advert: float, args: argparse.Namespace) -> dict:
    lab("up", "--advert", str(advert))
    try:
        time.sleep(2)
        first = masters()
        cpu0, t0 = group_cpu(), time.monotonic()
        password = ROOT / "imap-password"
        password.write_text("lab\n")
        load = subprocess.Popen(
            [str(PYTHON), str(LAB), "exec", "client", "--", str(MAILFILTER),
             "probe", "--smtp", f"{VIP}:25", "--to", "probe@example.com",
             "--imap", f"{VIP}:143", "--imap-user", "probe@example.com",
             "--imap-password-file", str(password), "--interval",
             str(args.interval), "--duration", str(args.seconds),
             "--timeout", "120", "--json", str(ROOT / "load.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        split = 0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            if len(holders()) != 1:
                split += 1
            time.sleep(0.5)
        cpu1, t1 = group_cpu(), time.monotonic()
        false_takeovers = masters() - first
        load.wait(timeout=300)
        summary = json.loads((ROOT / "load.json").read_text())["summary"]
        cuts = [timed_cut(holders()[0]) for _ in range(args.cuts)]
        minutes = (t1 - t0) / 60
        return {
            "advert": advert, "seconds": round(t1 - t0, 1),
            "false_takeovers": false_takeovers,
            "samples_not_one_holder": split,
            "cpu_s_per_min": {k: round((cpu1[k] - cpu0[k]) / minutes, 2)
                              for k in cpu0},
            "load_sent": summary["sent"],
            "load_smtp_failures": summary["smtp_failures"],
            "load_lost": summary["lost"],
            "load_latency": summary["latency"],
            "cut_takeover_s": cuts,
        }
    finally:
        lab("down")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--advert", default="0.01,0.05,0.1,1")
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--interval", type=float, default=0.2,
                   help="probe interval during the load, s")
    p.add_argument("--cuts", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("/var/tmp/lab-vrrp.json"))
    args = p.parse_args()
    results = []
    for advert in (float(x) for x in args.advert.split(",")):
        r = one_setting(advert, args)
        print(json.dumps(r), flush=True)
        results.append(r)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
