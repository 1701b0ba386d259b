"""Which Maildir a recipient address goes to, and whether it may.

`resolve()` maps an address through a root template such as
`/srv/mail/{domain}/{user}/Maildir`; the user and domain must be boring
ASCII, because they end up in a path. `rcpt_refusal()` says why a
recipient cannot be accepted now (store not mounted: 451, never "unknown
user"; no such user when auto-create is off: 550).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mailfilter.delivery.replies import (
    R451_MOUNT,
    R550_NO_USER,
)

# Conservative: whatever ends up in a path must be boring ASCII.
_USER = re.compile(r"[a-z0-9_][a-z0-9._=-]{0,63}")
# One DNS label (RFC 1035 2.3.1, digits first allowed by RFC 1123 2.1).
# The domain is checked label by label: a single pattern for the whole
# name with a repeated optional dot backtracks exponentially on a name
# that fails at its end ("a" * 40 + "!"), blocking the event loop.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOMAIN_MAX = 253  # RFC 1035 2.3.4, without the root's trailing dot


@dataclass(frozen=True)
class Config:
    """Settings of one LMTP delivery listener."""

    root_template: str
    recipient_delimiter: str = "+"
    spam_folder: str | None = None
    auto_create: bool = False
    create_extension_folders: bool = False
    mount_check: str | None = None
    quota_tempfail: bool = False
    max_message_size: int | None = None
    maildir_hostname: str | None = None


@dataclass(frozen=True)
class Target:
    """Where one recipient's mail goes."""

    address: str
    root: str
    extension: str | None


def resolve(config: Config, address: str) -> Target | None:
    """Map `user+ext@domain` to its Maildir root; None if unusable."""
    if any(ch in address for ch in "\r\n\0/") or address.count("@") != 1:
        return None
    local, _, domain = address.lower().rpartition("@")
    user, sep, ext = local.partition(config.recipient_delimiter or "\0")
    if not _USER.fullmatch(user) or ".." in user or not domain_ok(domain):
        return None
    root = config.root_template.format(
        user=user, domain=domain, address=f"{user}@{domain}"
    )
    # Extension case matters for folder names; take it from the original.
    raw_ext = address.rpartition("@")[0][len(user) + len(sep) :]
    return Target(address, root, raw_ext if sep and ext else None)


def domain_ok(domain: str) -> bool:
    """A lower-case host name fit for a path: labels of [a-z0-9-]."""
    if not 0 < len(domain) <= _DOMAIN_MAX:
        return False
    return all(_LABEL.fullmatch(label) for label in domain.split("."))


def make_parents(config: Config, root: str) -> None:
    """Create the user's directories below the template's fixed part.

    The fixed part (before the first `{`) is the mail store itself - on
    the cluster, the Lustre mount. It is never created: if it is missing,
    the mount is, and maildir.deliver then defers (4.2.0) instead of
    writing mail onto the local disk.
    """
    # dirname, not Path.parent: "/srv/mail/" must give "/srv/mail".
    base = Path(os.path.dirname(config.root_template.split("{", 1)[0]))  # noqa: PTH120
    parent = Path(root).parent
    if base.is_dir() and not parent.is_dir():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def store_ok(config: Config) -> bool:
    return config.mount_check is None or os.path.ismount(config.mount_check)


def rcpt_refusal(config: Config, root: str) -> str | None:
    """The RCPT reply when the mount or the user's Maildir is missing."""
    if not store_ok(config):
        return R451_MOUNT
    if not config.auto_create and not exists(root):
        return R550_NO_USER
    return None


def exists(path: str) -> bool:
    return os.path.isdir(path)  # noqa: PTH112 - str paths from the template
