"""Run mailfilter as a real process, as Postfix would meet it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class FilterProcess:
    """A running `mailfilter` and where its log goes."""

    proc: subprocess.Popen[bytes]
    port: int
    logfile: Path
    args: list[str]

    def log(self) -> str:
        """Everything it logged so far."""
        return self.logfile.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM and wait (it drains in-flight messages)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self.proc.kill()
        self.proc.wait()


def start_filter(
    workdir: Path,
    port: int,
    forward_port: int,
    *,
    clamd: str = "off",
    spamd: str = "off",
    policy: Path | None = None,
    extra: list[str] | None = None,
    originating_port: int | None = None,
    verify: bool = False,
) -> FilterProcess:
    """Start `python -m mailfilter` with stderr logging into workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    logfile = workdir / "mailfilter.log"
    args = [
        sys.executable,
        "-m",
        "mailfilter",
        "--listen",
        f"127.0.0.1:{port}",
        "--forward",
        f"127.0.0.1:{forward_port}",
        "--clamd",
        clamd,
        "--spamd",
        spamd,
        "--policy",
        str(policy or REPO / "policy/default.toml"),
        "--quarantine",
        str(workdir / "quarantine"),
        "--hostname",
        "filter.test.invalid",
        "--log-to",
        "stderr",
        # Never the default 10026 (tests run side by side), and mail
        # authentication only where a test asks for it.
        "--listen-originating",
        f"127.0.0.1:{originating_port or free_port()}",
        "--inbound-verify",
        "yes" if verify else "no",
        *(extra or []),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with logfile.open("ab") as err:
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO
        )
    try:
        wait_port(port, timeout=30)
    except TimeoutError:
        proc.kill()
        raise RuntimeError(
            "mailfilter did not start:\n" + logfile.read_text()
        ) from None
    return FilterProcess(proc, port, logfile, args)


def start_sandwich(root: Path, *, clamd: str = "off", spamd: str = "off"):  # noqa: ANN201
    """Postfix (amavis recipe) -> mailfilter -> Postfix 10025 -> Maildir."""
    from tests.support.ports import free_port
    from tests.support.postfix import start_postfix

    fport, oport = free_port(), free_port()
    # The whole recipe: submission -> scan-orig -> the ORIGINATING listener.
    postfix = start_postfix(root / "pf", fport, originating_port=oport)
    try:
        flt = start_filter(
            root / "f",
            fport,
            postfix.reinject_port,
            clamd=clamd,
            spamd=spamd,
            originating_port=oport,
        )
    except BaseException:
        postfix.stop()
        raise
    return postfix, flt
