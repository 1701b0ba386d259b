"""A real DNS server on loopback serving test zones (Debian's unbound).

unbound runs in the foreground on a free port with `local-data` records
only: the root zone is `refuse`, so it never recurses and never sends a
packet off this machine. Zones listed in `refused` answer REFUSED, which
the filter's resolver sees exactly as it sees SERVFAIL from every server
(temperror). `silent_udp_port()` gives a port that swallows queries (a
DNS server that times out).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tests.support.ports import free_port

if TYPE_CHECKING:
    from pathlib import Path

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"


@dataclass
class DnsServer:
    """A running unbound; `address` is the filter's dns_servers entry."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def address(self) -> str:
        """HOST:PORT for dns_servers."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop by PID and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def txt(name: str, text: str) -> str:
    """A local-data TXT line, split into strings of at most 250 bytes."""
    chunks = [text[i : i + 250] for i in range(0, len(text), 250)] or [""]
    quoted = " ".join('"' + c.replace('"', '\\"') + '"' for c in chunks)
    return f"{name}. 300 IN TXT {quoted}"


def _free_udp_tcp_port() -> int:
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def start_dns(
    workdir: Path,
    zones: dict[str, list[str]],
    *,
    refused: tuple[str, ...] = (),
) -> DnsServer:
    """Serve `zones` (zone -> local-data lines) on a free loopback port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_udp_tcp_port()
    lines = [
        "server:",
        f"  interface: 127.0.0.1@{port}",
        f"  port: {port}",
        "  do-daemonize: no",
        '  username: ""',
        '  chroot: ""',
        f'  directory: "{workdir}"',
        '  pidfile: ""',
        "  use-syslog: no",
        f'  logfile: "{workdir / "unbound.log"}"',
        "  do-ip6: no",
        "  access-control: 127.0.0.0/8 allow",
        "  module-config: iterator",
        "  num-threads: 1",
        # Answers must change when a test changes nothing but the zone.
        "  cache-max-ttl: 0",
        '  local-zone: "." refuse',
    ]
    lines.extend(f'  local-zone: "{zone}." refuse' for zone in refused)
    for zone, records in zones.items():
        lines.append(f'  local-zone: "{zone}." static')
        lines.extend(f"  local-data: '{r}'" for r in records)
    conf = workdir / "unbound.conf"
    conf.write_text("\n".join(lines) + "\n")
    check = subprocess.run(
        ["unbound-checkconf", str(conf)], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise RuntimeError(f"unbound config: {check.stdout}{check.stderr}")
    with (workdir / "unbound.stderr").open("wb") as err:
        proc = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    server = DnsServer(proc, port, workdir)
    _wait_answering(server)
    return server


def _wait_answering(server: DnsServer, timeout: float = 20) -> None:
    import dns.message
    import dns.query

    deadline = time.monotonic() + timeout
    query = dns.message.make_query("probe.invalid.", "A")
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(
                "unbound exited: "
                + (server.workdir / "unbound.stderr").read_text()
            )
        try:
            dns.query.udp(query, "127.0.0.1", port=server.port, timeout=0.5)
            return
        except (OSError, dns.exception.Timeout):
            if time.monotonic() > deadline:
                server.stop()
                raise TimeoutError("unbound does not answer") from None
            time.sleep(0.1)


def silent_udp_port() -> socket.socket:
    """A bound UDP socket nobody reads: queries to it time out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock
