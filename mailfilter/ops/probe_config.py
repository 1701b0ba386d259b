"""What one probe run is told: endpoints, mailbox, pacing, and its errors."""

from __future__ import annotations

from dataclasses import dataclass

TAG_HEADER = "X-Mailfilter-Probe"


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Where to send and where to look."""

    smtp: tuple[str, int]
    sender: str
    rcpt: str
    imap: tuple[str, int]
    imap_user: str
    imap_password: str
    imap_ssl: bool = False
    interval: float = 1.0
    count: int | None = None
    duration: float | None = None
    # Until the message must be seen over IMAP (SMTP time included).
    timeout: float = 30.0
    # The SMTP transaction alone: a session hung on a dead path (a cut
    # director) fails after this, not after the whole delivery timeout.
    # None: the same as `timeout`.
    smtp_timeout: float | None = None


class ProbeError(Exception):
    """The probe cannot run at all (e.g. IMAP login fails at start)."""
