"""Start and stop the processes a benchmark runs against, on loopback.

smtp-sink (the black hole), mailfilter (subprocess, from this checkout's
virtualenv) and amavisd-new (Debian's /usr/sbin/amavisd, with a complete
configuration written into a temp dir), each on a free 127.0.0.1 port.
clamd and spamd come from tests/support/daemons.py. Every process is
started and stopped by PID; nothing system-wide is touched.

Measuring is left to driver.py, message content to corpus.py.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.ports import free_port, wait_port

if TYPE_CHECKING:
    import argparse

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
DEFAULT_POLICY = ROOT / "policy" / "default.toml"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
AMAVISD = "/usr/sbin/amavisd"
# Debian's own defaults are read first, so the comparison is against
# amavisd-new as Debian ships it (decoders, banned rules, destinies);
# our file then only sets paths, ports, the scanner socket and bypasses.
DEBIAN_AMAVIS_CONF = (
    Path("/etc/amavis/conf.d/01-debian"),
    Path("/etc/amavis/conf.d/20-debian_defaults"),
)


@dataclass
class Service:
    """One process (and its children) started for a benchmark."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log: Path

    @property
    def pid(self) -> int:
        """PID of the top process."""
        return self.proc.pid

    def tree(self) -> list[int]:
        """PIDs of the process and all its live descendants."""
        return [self.pid, *descendants(self.pid)]

    def alive(self) -> bool:
        """Whether the top process still runs."""
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM by PID, wait, SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        """The end of the service's log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def descendants(pid: int) -> list[int]:
    """All live descendants of pid, from /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _wait_ready(svc: Service, timeout: float) -> Service:
    """Wait for svc's port; on failure stop it and show its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not svc.alive():
            raise RuntimeError(
                f"{svc.name} exited with {svc.proc.returncode}:\n{svc.tail()}"
            )
        try:
            wait_port(svc.port, timeout=0.5)
        except TimeoutError:
            continue
        return svc
    svc.stop()
    raise TimeoutError(f"{svc.name} not listening:\n{svc.tail()}")


def start_sink(workdir: Path, backlog: int = 1024) -> Service:
    """smtp-sink on a free port; it accepts and throws away all mail."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "smtp-sink.log"
    # -u root: smtp-sink insists on a user to switch to when run as root.
    cmd = [SMTP_SINK, "-u", "root", f"127.0.0.1:{port}", str(backlog)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    return _wait_ready(Service("smtp-sink", proc, port, workdir, log), 10)


def mailfilter_problem() -> str | None:
    """None when `python -m mailfilter --help` works, else the reason."""
    try:
        out = subprocess.run(
            [VENV_PY, "-m", "mailfilter", "--help"],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if out.returncode != 0:
        return (out.stderr or out.stdout).decode(errors="replace").strip()
    return None


def start_mailfilter(
    workdir: Path,
    *,
    forward: int,
    clamd: str = "off",
    spamd: str = "off",
    policy: Path | None = None,
    extra: tuple[str, ...] = (),
) -> Service:
    """mailfilter in the foreground, listening on a free port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    quarantine = workdir / "quarantine"
    quarantine.mkdir(exist_ok=True)
    cmd = [
        str(VENV_PY), "-m", "mailfilter",
        "--listen", f"127.0.0.1:{port}",
        "--forward", f"127.0.0.1:{forward}",
        "--clamd", clamd,
        "--spamd", spamd,
        "--quarantine", str(quarantine),
        "--policy", str(policy or DEFAULT_POLICY),
        # One amavis-format line per message into our log file, as the
        # amavisd run logs into its $LOGFILE at log level 0.
        "--log-to", "stderr",
        # The filter alone, as measured before mail authentication;
        # bench/bench_auth.py measures that with its own settings.
        "--listen-originating", f"127.0.0.1:{free_port()}",
        "--inbound-verify", "no",
        *extra,
    ]  # fmt: skip
    log = workdir / "mailfilter.log"
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    return _wait_ready(Service("mailfilter", proc, port, workdir, log), 60)


def start_naive_proxy(workdir: Path, *, forward: int) -> Service:
    """bench/naive_proxy.py on a free port (the issue's reference proxy)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "naive.log"
    cmd = [str(VENV_PY), "-m", "bench.naive_proxy", str(port), str(forward)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    return _wait_ready(Service("naive", proc, port, workdir, log), 30)


def amavis_config(
    home: Path, *, port: int, forward: int, clamd_socket: Path,
    max_servers: int, log_level: int = 0, extra: str = "",
) -> str:  # fmt: skip
    """The settings written after Debian's files (see DEBIAN_AMAVIS_CONF)."""
    return f"""\
use strict;
# Written by bench/stack.py; read after Debian's 01-debian and
# 20-debian_defaults, so only what a benchmark must change is here.
$MYHOME = '{home}';
$TEMPBASE = "$MYHOME/tmp";
$ENV{{TMPDIR}} = $TEMPBASE;
$db_home = "$MYHOME/db";
$helpers_home = "$MYHOME";
$pid_file = "$MYHOME/amavisd.pid";
$lock_file = "$MYHOME/amavisd.lock";
$QUARANTINEDIR = "$MYHOME/virusmails";
$unix_socketname = "$MYHOME/amavisd.sock";
$daemon_user = 'amavis';
$daemon_group = 'amavis';
# /etc/mailname and an FQDN hostname may be missing on a lab machine;
# amavis refuses to start without a dotted $myhostname.
$mydomain = 'bench.test';
$myhostname = 'amavis.bench.test';
@local_domains_acl = ( ".$mydomain" );
$inet_socket_port = {port};
$inet_socket_bind = '127.0.0.1';
@inet_acl = qw(127.0.0.1);
$forward_method = 'smtp:[127.0.0.1]:{forward}';
$notify_method = $forward_method;
$max_servers = {max_servers};
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavisd.log";
$log_level = {log_level};
# Debian's package file 20-package bypasses both checks; we want both.
@bypass_virus_checks_maps = (0);
@bypass_spam_checks_maps = (0);
@bypass_banned_checks_maps = (0);
@bypass_header_checks_maps = (0);
# No admin notifications: they would add mail the filter never sends.
$virus_admin = undef;
$spam_admin = undef;
$banned_admin = undef;
$bad_header_admin = undef;
$sa_local_tests_only = 1;
# Debian quarantines spam as .gz through Amavis::IO::Zlib, which this
# amavisd does not load (every spam then gets 451); keep it uncompressed,
# as mailfilter's quarantine is.
$spam_quarantine_method = 'local:spam-%m';
$sa_tag_level_deflt = 2.0;
$sa_tag2_level_deflt = 6.31;
$sa_kill_level_deflt = 6.31;
@av_scanners = (
  ['ClamAV-clamd',
   \\&ask_daemon, ["CONTSCAN {{}}\\n", "{clamd_socket}"],
   qr/\\bOK$/m, qr/\\bFOUND$/m,
   qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
{extra}
1;
"""


def _amavis_home(workdir: Path) -> Path:
    """A home owned by the amavis user, reachable through workdir."""
    home = workdir / "amavis"
    for sub in ("", "tmp", "db", "virusmails"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    user = pwd.getpwnam("amavis")
    for path in (home, *home.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    # amavis drops to its user: every parent must be traversable.
    for parent in home.parents:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o755)
    return home


def start_amavisd(
    workdir: Path,
    *,
    forward: int,
    clamd_socket: Path,
    max_servers: int,
    log_level: int = 0,
    timeout: float = 240.0,
    extra: str = "",
) -> Service:
    """amavisd-new in the foreground with in-process SpamAssassin.

    `extra` is Perl appended to the configuration (a benchmark's knob).
    """
    for conf in DEBIAN_AMAVIS_CONF:
        if not conf.exists():
            raise FileNotFoundError(f"{conf}: is amavisd-new installed?")
    workdir.mkdir(parents=True, exist_ok=True)
    home = _amavis_home(workdir)
    port = free_port()
    conf = workdir / "amavisd-bench.conf"
    conf.write_text(
        amavis_config(
            home,
            port=port,
            forward=forward,
            clamd_socket=clamd_socket,
            max_servers=max_servers,
            log_level=log_level,
            extra=extra,
        )  # fmt: skip
    )
    conf.chmod(0o644)
    cmd = [AMAVISD]
    for path in (*DEBIAN_AMAVIS_CONF, conf):
        cmd += ["-c", str(path)]
    cmd.append("foreground")
    log = home / "amavisd.log"
    stderr = workdir / "amavisd.stderr"
    proc = subprocess.Popen(
        cmd, cwd=home, stdout=stderr.open("wb"), stderr=subprocess.STDOUT
    )
    svc = Service("amavisd", proc, port, workdir, log)
    try:
        return _wait_ready(svc, timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"{exc}\n{stderr.read_text(errors='replace')}")


def _first_line(cmd: list[str]) -> str:
    """First output line of a version command, or "n/a"."""
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    text = (out.stdout or out.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "n/a"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine_info() -> str:
    """A markdown paragraph: cores, CPU, memory, kernel, versions."""
    mem = Path("/proc/meminfo").read_text().split()[1]
    venv = [str(VENV_PY), "-c", (
        "import importlib.metadata as m, sys; print(sys.version.split()[0], "
        "*(p + ' ' + m.version(p) for p in "
        "('aiosmtpd', 'aiosmtplib', 'aiospamc', 'clamd')))"
    )]  # fmt: skip
    items = {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": _cpu_model(),
        "RAM": f"{int(mem) / 2**20:.1f} GiB",
        "kernel": os.uname().release,
        "Python + libraries": _first_line(venv),
        "Postfix": _first_line(["postconf", "-dh", "mail_version"]),
        "ClamAV": _first_line(["clamd", "--version"]),
        "SpamAssassin": _first_line(["spamd", "--version"]),
        "amavis": _first_line([AMAVISD, "-V"]),
        # Other work on the same cores skews every figure: say how busy.
        "load average at start": " ".join(
            Path("/proc/loadavg").read_text().split()[:3]
        ),
    }
    return "Machine: " + "; ".join(f"{k}: {v}" for k, v in items.items()) + "."


def add_wait_idle(parser: argparse.ArgumentParser) -> None:
    """The --wait-idle flag every benchmark takes (see `wait_idle`)."""
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        help="first wait up to this many seconds for load average < 0.5",
    )


def wait_idle(max_wait: float, threshold: float = 0.5) -> float:
    """Wait (up to max_wait s) for the 1-min load average to drop.

    Other work on a 2-core machine skews every figure; the benchmarks
    record the load they started under either way. Returns that load.
    """
    deadline = time.monotonic() + max_wait
    while True:
        load = float(Path("/proc/loadavg").read_text().split()[0])
        if load < threshold or time.monotonic() >= deadline:
            return load
        time.sleep(5)
