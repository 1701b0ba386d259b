"""Delivery failures and how they map to DSN codes and sysexits.

`DeliveryError` is the one exception the library raises for a failed
delivery. It carries `temporary` (retry later) and an RFC 3463 enhanced
status code (`dsn`), plus the sysexits(3) value a mailbox_command must exit
with. The errno mapping follows Postfix `mbox_dsn()` and qmail
`error_temp()` (docs/maildir-on-shared-storage.md, "Error classification"),
with two deliberate changes: an errno we do not know is *temporary*, because
a misconfigured or missing cluster mount must defer mail, never bounce it;
and EDQUOT is temporary (4.2.2, as qmail has it, not Postfix's 5.2.2): on
shared storage it is the filesystem's user, group or project quota, often
covering many mailboxes, and it clears when an admin raises it or mail is
expunged, so a bounce would return every message of the outage to its
sender. Whether the Maildir++ quota is temporary is the caller's policy
(`over_quota`); this module only names the codes.
"""

from __future__ import annotations

import errno

# sysexits.h values Postfix understands (local(8), pipe(8)).
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77

# Temporary: storage or network trouble that a later retry can fix.
# ENOSPC/EIO must never become EX_IOERR (74), which Postfix bounces.
_TEMPORARY = {
    errno.EAGAIN: "4.2.0",
    errno.ESTALE: "4.2.0",
    errno.EACCES: "4.2.0",  # misconfiguration should not bounce mail
    errno.EPERM: "4.2.0",
    errno.ENOENT: "4.2.0",  # mount or maildir missing
    errno.ENOTDIR: "4.2.0",
    errno.EROFS: "4.3.0",
    errno.ENOSPC: "4.3.0",
    errno.EDQUOT: "4.2.2",  # mailbox (filesystem quota) full, for now
    errno.EIO: "4.3.0",
    errno.EINTR: "4.3.0",
    errno.ETIMEDOUT: "4.3.0",
    errno.ENOLCK: "4.3.0",
    errno.ENFILE: "4.3.0",
    errno.EMFILE: "4.3.0",
    errno.ENOMEM: "4.3.0",
    errno.EBUSY: "4.3.0",
}

# Permanent: the mailbox refuses this very message, whatever the fill
# level (file larger than the filesystem allows; Postfix: 5.2.2).
_PERMANENT = {
    errno.EFBIG: "5.2.2",
}


class DeliveryError(Exception):
    """A delivery that did not happen; nothing is left in new/."""

    def __init__(
        self,
        message: str,
        *,
        temporary: bool,
        dsn: str,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.dsn = dsn
        if exit_code is None:
            exit_code = EX_TEMPFAIL if temporary else EX_CANTCREAT
        self.exit_code = exit_code

    def __repr__(self) -> str:
        return (
            f"DeliveryError({str(self)!r}, temporary={self.temporary}, "
            f"dsn={self.dsn!r})"
        )


def from_oserror(exc: OSError, what: str) -> DeliveryError:
    """Classify an OSError raised while doing `what`."""
    code = exc.errno if exc.errno is not None else 0
    reason = f"{what}: {exc.strerror or exc}"
    if code in _PERMANENT:
        return DeliveryError(
            reason, temporary=False, dsn=_PERMANENT[code], exit_code=EX_NOPERM
        )
    return DeliveryError(
        reason, temporary=True, dsn=_TEMPORARY.get(code, "4.3.0")
    )


def over_quota(reason: str, *, temporary: bool) -> DeliveryError:
    """The Maildir++ quota refuses the message (deliverquota: 77 or 75)."""
    if temporary:
        return DeliveryError(reason, temporary=True, dsn="4.2.2")
    return DeliveryError(
        reason, temporary=False, dsn="5.2.2", exit_code=EX_NOPERM
    )
