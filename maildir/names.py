"""Unique Maildir file names, safe when several hosts share one directory.

`<sec>.M<usec>P<pid>Q<counter>R<128-bit random hex>.<host>`
(docs/maildir-on-shared-storage.md, "Unique names"). The clock and the pid only
make names readable and roughly sorted; uniqueness comes from the 128 random
bits, so equal hostnames, reused PIDs in PID namespaces and clocks that stand
still or step back cannot collide. The host part is escaped as DJB asks
(`/` -> `\\057`, `:` -> `\\072`) and also `,` (readers look for `,S=` in
base names) and `\\` (so the escaping is unambiguous). This module does no
file I/O; `deliver` handles EEXIST.
"""

from __future__ import annotations

import itertools
import os
import time

TYPE_CHECKING = False  # typing costs start-up time; mypy honours the name
if TYPE_CHECKING:
    from collections.abc import Callable

#: Environment variable that overrides gethostname(), like DOVECOT_HOSTNAME.
HOSTNAME_ENV = "MAILDIR_HOSTNAME"

# Bytes that stay as they are in the host part; everything else is
# written as a backslash and three octal digits.
_SAFE = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
)
# Keeps `tmp/<name>` and `new/<name>,S=..,W=..:2,` under NAME_MAX (255).
_HOST_MAX = 96

_counter = itertools.count(1)

#: Wall clock used for the readable part; tests replace it to freeze time.
clock: Callable[[], float] = time.time


def escape_host(raw: str | bytes) -> str:
    """Escape a hostname for the right-hand part of a unique name."""
    data = (
        raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    )
    out = "".join(chr(b) if b in _SAFE else f"\\{b:03o}" for b in data)
    out = out[:_HOST_MAX]
    # Names must not start with a dot, and an empty host is no host.
    return out if out.strip(".") else "localhost"


def host_part(override: str | None = None) -> str:
    """The escaped host: explicit override, $MAILDIR_HOSTNAME, uname()."""
    raw = override or os.environ.get(HOSTNAME_ENV) or os.uname().nodename
    return escape_host(raw)


def unique_name(host: str | None = None) -> str:
    """A fresh base name for tmp/ and new/ (without `,S=` or `:2,`)."""
    now = clock()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    rand = os.urandom(16).hex()
    return (
        f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}R{rand}."
        f"{host if host is not None else host_part()}"
    )


def new_name(base: str, size: int, vsize: int) -> str:
    """Name in new/: base, size (S=) and CRLF size (W=), as Dovecot does."""
    return f"{base},S={size},W={vsize}"
