"""Endpoint strings: `HOST:PORT`, `[v6]:PORT`, `lmtp:HOST:PORT`, `unix:/p`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect or listen."""

    proto: str  # "smtp", "lmtp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.proto == "unix":
            return f"unix:{self.path}"
        prefix = "lmtp:" if self.proto == "lmtp" else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{prefix}{host}:{self.port}"


def parse_endpoint(text: str, *, unix_ok: bool = False) -> Endpoint:
    """Parse an endpoint; ValueError says what is wrong."""
    proto = "smtp"
    rest = text
    for prefix in ("smtp:", "lmtp:", "inet:"):
        if rest.startswith(prefix):
            proto = "lmtp" if prefix == "lmtp:" else "smtp"
            rest = rest[len(prefix) :]
    if rest.startswith("unix:"):
        if not unix_ok:
            raise ValueError(f"{text!r}: a unix socket is not allowed here")
        path = rest[5:]
        if not path.startswith("/"):
            raise ValueError(f"{text!r}: unix socket path must be absolute")
        return Endpoint("unix", path=path)
    if rest.startswith("/") and unix_ok:
        return Endpoint("unix", path=rest)
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError(f"{text!r}: empty host")
    return Endpoint(proto, host, int(port))
