"""Start and stop the real scanners (clamd, spamd) in temporary directories.

Each daemon gets its own config, socket and free loopback port, so tests
never rely on or disturb a system daemon (docs/performance-and-reliability.md,
"The test and CI environment"). clamd gets a one-line signature database
written here, because freshclam has no network: signature names then end in
`.UNOFFICIAL`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.ports import free_port, wait_port
from tests.support.samples import eicar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
SPAMD = shutil.which("spamd") or "/usr/sbin/spamd"
EICAR_SIGNATURE = "Eicar-Test-Signature.UNOFFICIAL"


@dataclass
class Daemon:
    """A running daemon started by a test."""

    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    port: int = 0
    socket_path: Path | None = None

    @property
    def address(self) -> str:
        """The address in mailfilter's --clamd/--spamd syntax."""
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the daemon, by PID, and wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the daemon hangs (accepts nothing, answers nothing)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        self.proc.send_signal(signal.SIGCONT)


def running(
    binary: str, start: Callable[[], Daemon]
) -> Iterator[Daemon]:
    """A fixture body: skip when `binary` is missing, else start, yield,
    and stop (resumed first, in case a test left it paused)."""
    if not have(binary):
        pytest.skip(f"{Path(binary).name} is not installed")
    daemon = start()
    yield daemon
    daemon.resume()
    daemon.stop()


def have(binary: str) -> bool:
    """Whether a daemon binary is installed."""
    return Path(binary).exists()


def write_eicar_db(dbdir: Path) -> None:
    """A one-signature ClamAV database (.ndb: name:target:offset:hex)."""
    dbdir.mkdir(parents=True, exist_ok=True)
    line = f"Eicar-Test-Signature:0:0:{eicar().hex()}\n"
    (dbdir / "eicar.ndb").write_text(line)


def start_clamd(workdir: Path, *, tcp: bool = False) -> Daemon:
    """Start clamd on a unix socket (and a TCP port when tcp=True)."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)  # clamd may drop to its own user
    write_eicar_db(workdir / "db")
    sock = workdir / "clamd.sock"
    port = free_port() if tcp else 0
    lines = [
        "Foreground yes",
        f"LocalSocket {sock}",
        "LocalSocketMode 666",
        f"DatabaseDirectory {workdir / 'db'}",
        f"LogFile {workdir / 'clamd.log'}",
        f"PidFile {workdir / 'clamd.pid'}",
        f"TemporaryDirectory {workdir}",
        "MaxThreads 16",
        "StreamMaxLength 100M",
        "User root",
        "ScanArchive yes",
        "AlertEncrypted no",
    ]
    if tcp:
        lines += ["TCPAddr 127.0.0.1", f"TCPSocket {port}"]
    conf = workdir / "clamd.conf"
    conf.write_text("\n".join(lines) + "\n")
    with (workdir / "clamd.stderr").open("wb") as err:
        proc = subprocess.Popen(
            [CLAMD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err
        )
    daemon = Daemon("clamd", proc, workdir, port=port, socket_path=sock)
    _wait_unix(sock, proc, timeout=120)
    return daemon


def start_spamd(
    workdir: Path, *, children: int = 4, extra: tuple[str, ...] = ()
) -> Daemon:
    """Start spamd -L (no network tests) on a free loopback port.

    `extra` adds spamd options (the benchmarks' --siteconfigpath).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    port = free_port()
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    os.chmod(home, 0o777)
    with (workdir / "spamd.stderr").open("wb") as err:
        proc = subprocess.Popen(
            [
                SPAMD,
                "-L",
                "-x",
                "-u",
                "nobody",
                "--listen",
                f"127.0.0.1:{port}",
                "--allowed-ips",
                "127.0.0.1",
                f"--max-children={children}",
                f"--min-children={children}",
                f"--helper-home-dir={home}",
                f"--pidfile={workdir / 'spamd.pid'}",
                "-s",
                str(workdir / "spamd.log"),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    daemon = Daemon("spamd", proc, workdir, port=port)
    try:
        wait_port(port, timeout=120)
    except TimeoutError:
        daemon.stop()
        raise
    return daemon


def _wait_unix(
    sock: Path, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
                s.sendall(b"zPING\0")
                if s.recv(16).startswith(b"PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"no answer on {sock}")
