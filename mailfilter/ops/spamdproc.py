"""Find the spamd behind a loopback HOST:PORT and read its settings.

spamd's children and `-L` are only on its command line. The listening
socket in /proc/net/tcp{,6} gives an inode, the process holding that
socket gives a pid, and the top spamd above it (the children are renamed
"spamd child" and show no options) gives the command line. The parsing
of /proc text and of the command line is pure and apart from the reading,
so the rules are unit-tested on text.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

# spamd's own default when --max-children is absent or below 1.
DEFAULT_CHILDREN = 5
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
# Short options of spamd that take a value (Getopt::Long with bundling):
# in a bundle such as `-xu nobody` everything after one of these is its
# value, so `-s mail` never reads as a flag.
_VALUE = set("ACUgrpsTtu")
_OPTIONAL_VALUE = set("DHi")  # `:s` options: a value only when attached

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnknownError(Exception):
    """The settings cannot be found; the message says why."""


@dataclass(frozen=True, slots=True)
class SpamdOptions:
    """What spamd's command line says about its capacity."""

    children: int
    local: bool  # -L: no network tests, so SpamAssassin is pure CPU


@dataclass(frozen=True, slots=True)
class Found:
    """The top spamd process and its options."""

    pid: int
    options: SpamdOptions


def loopback(host: str) -> frozenset[IPAddress]:
    """The addresses HOST stands for, or empty when it is not loopback."""
    if host == "localhost":
        return frozenset(map(ipaddress.ip_address, ("127.0.0.1", "::1")))
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return frozenset()
    return frozenset({address}) if address.is_loopback else frozenset()


def _address(text: str, byteorder: str) -> IPAddress:
    # The kernel prints each 32-bit word of the address in host order.
    raw = bytes.fromhex(text)
    if byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def _accepts(local: IPAddress, wanted: frozenset[IPAddress]) -> bool:
    """Whether a socket bound to `local` takes connections to `wanted`."""
    if local.is_unspecified or local in wanted:
        return True
    mapped = getattr(local, "ipv4_mapped", None)
    return mapped is not None and mapped in wanted


def listen_inodes(
    text: str,
    port: int,
    wanted: frozenset[IPAddress],
    byteorder: str = sys.byteorder,
) -> list[int]:
    """Inodes of the LISTEN sockets in /proc/net/tcp{,6} text that take
    connections to one of `wanted` on `port`."""
    found = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10 or cols[3] != _LISTEN:
            continue
        address, _, hexport = cols[1].partition(":")
        try:
            local = _address(address, byteorder)
            here = int(hexport, 16)
        except ValueError:
            continue
        if here == port and _accepts(local, wanted):
            found.append(int(cols[9]))
    return found


def argv_of(cmdline: bytes) -> list[str]:
    """/proc/PID/cmdline as a list (a renamed process pads with NULs)."""
    return [a for a in cmdline.decode(errors="replace").split("\0") if a]


def _script(argv: list[str]) -> int:
    """Index of spamd itself in argv, or -1: spamd is a Perl script, so
    the kernel runs `perl -T -w /usr/sbin/spamd OPTIONS`."""
    if not argv:
        return -1
    if Path(argv[0]).name == "spamd":
        return 0
    if not Path(argv[0]).name.startswith("perl"):
        return -1
    script = next(
        (i for i, a in enumerate(argv) if i and not a.startswith("-")), -1
    )
    return script if script > 0 and Path(argv[script]).name == "spamd" else -1


def is_spamd(argv: list[str]) -> bool:
    """A spamd process: the master, or a child renamed "spamd child"."""
    return bool(argv) and (argv[0] == "spamd child" or _script(argv) >= 0)


def ppid_of(stat: str) -> int:
    """The parent pid from /proc/PID/stat (the name may hold spaces)."""
    return int(stat.rpartition(")")[2].split()[1])


def parse_options(argv: list[str]) -> SpamdOptions:
    """spamd's children and -L from its command line.

    Raises UnknownError when spamd renamed itself to a bare "spamd" (it
    does with -d), which hides the options.
    """
    start = _script(argv)
    if start < 0 or argv == ["spamd"]:
        raise UnknownError(
            "spamd's options are not on its command line (started with -d?)"
        )
    children = 0
    local = False
    args = iter(argv[start + 1 :])
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            # Getopt::Long accepts unique abbreviations; in spamd's
            # option table "max-ch" and "loc" are the shortest.
            if len(name) >= 6 and "max-children".startswith(name):
                children = int(value if eq else next(args, "0"))
            elif len(name) >= 3 and "local".startswith(name):
                local = True
            elif name in {"nolocal", "no-local"}:
                local = False
            continue
        if not arg.startswith("-"):
            continue
        bundle = arg[1:]
        for i, char in enumerate(bundle):
            rest = bundle[i + 1 :]
            if char == "L":
                local = True
            elif char == "m":
                children = int(rest or next(args, "0"))
                break
            elif char in _VALUE:
                if not rest:
                    next(args, None)
                break
            elif char in _OPTIONAL_VALUE:
                break
    return SpamdOptions(children if children >= 1 else DEFAULT_CHILDREN, local)


def find(host: str, port: int, proc: Path = Path("/proc")) -> Found:
    """The spamd listening on HOST:PORT; UnknownError says why not."""
    wanted = loopback(host)
    if not wanted:
        raise UnknownError(f"spamd at {host} is not on loopback")
    inodes: list[int] = []
    for name in ("tcp", "tcp6"):
        try:
            text = (proc / "net" / name).read_text()
        except OSError:
            continue
        inodes += listen_inodes(text, port, wanted)
    if not inodes:
        raise UnknownError(f"nothing listens on {host}:{port} here")
    pid = top_spamd(_holder({f"socket:[{i}]" for i in inodes}, proc), proc)
    try:
        return Found(pid, parse_options(_argv(pid, proc)))
    except ValueError as exc:
        raise UnknownError(f"spamd's command line: {exc}") from exc


def top_spamd(pid: int, proc: Path = Path("/proc")) -> int:
    """The spamd master above `pid` (a child, or the master itself)."""
    argv = _argv(pid, proc)
    if not is_spamd(argv):
        what = Path(argv[0]).name if argv else f"pid {pid}"
        raise UnknownError(f"{what} holds spamd's port, not spamd")
    while True:
        try:
            parent = ppid_of((proc / str(pid) / "stat").read_text())
            above = _argv(parent, proc) if parent > 1 else []
        except (OSError, ValueError, IndexError, UnknownError):
            return pid
        if not is_spamd(above):
            return pid
        pid = parent


def _holder(links: set[str], proc: Path) -> int:
    """The first pid with an open fd on one of the sockets."""
    denied = False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except PermissionError:
            denied = True
            continue
        except OSError:  # gone meanwhile
            continue
        for fd in fds:
            try:
                if str(fd.readlink()) in links:
                    return int(entry.name)
            except OSError:
                continue
    if denied:
        raise UnknownError("the port's process is not readable: not root")
    raise UnknownError("no process holds the listening socket")


def _argv(pid: int, proc: Path) -> list[str]:
    try:
        return argv_of((proc / str(pid) / "cmdline").read_bytes())
    except OSError as exc:
        raise UnknownError(f"pid {pid}: {exc.strerror}") from exc
