"""Endpoint strings: `HOST:PORT`, `[v6]:PORT`, `lmtp:HOST:PORT`, `unix:/p`.

A listener may name its front door first: `milter:HOST:PORT`,
`milter:unix:/path` (Postfix smtpd_milters) or `proxy:HOST:PORT` (Postfix
smtpd_proxy_filter); without one it is the after-queue content filter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect or listen."""

    proto: str  # "smtp", "lmtp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""
    # "" (after-queue content_filter), "milter" or "proxy".
    door: str = ""

    def __str__(self) -> str:
        door = f"{self.door}:" if self.door else ""
        if self.proto == "unix":
            return f"{door}unix:{self.path}"
        prefix = door + ("lmtp:" if self.proto == "lmtp" else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{prefix}{host}:{self.port}"


DOORS = ("milter", "proxy")


def parse_endpoint(text: str, *, unix_ok: bool = False) -> Endpoint:
    """Parse an endpoint; ValueError says what is wrong."""
    door, sep, rest = text.partition(":")
    if sep and door in DOORS:
        # A milter socket may be a unix socket (Postfix `unix:/path`).
        found = parse_endpoint(rest, unix_ok=door == "milter")
        if found.proto == "lmtp":
            raise ValueError(f"{text!r}: the {door} door speaks no LMTP")
        return replace(found, door=door)
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
