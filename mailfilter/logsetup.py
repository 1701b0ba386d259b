"""Logging: amavis-format lines to syslog (facility mail) or to stderr.

Loggers are `mailfilter.<concern>`. The syslog ident defaults to `amavis`
so that mailgraph and amavis-logwatch, which select lines by program name,
keep counting (docs/amavis-compat.md, "What mailgraph matches", "What
amavis-logwatch matches"). aiosmtpd's own `mail.log` logger repeats every
sender and recipient at INFO, so it is quietened.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path


def setup(*, to: str, ident: str, level: str) -> None:
    """Install one handler on the `mailfilter` logger."""
    root = logging.getLogger("mailfilter")
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if to == "syslog" and Path("/dev/log").exists():
        syslog = logging.handlers.SysLogHandler(
            address="/dev/log",
            facility=logging.handlers.SysLogHandler.LOG_MAIL,
        )
        syslog.ident = f"{ident}[{os.getpid()}]: "
        handler = syslog
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        if to == "syslog":
            sys.stderr.write("mailfilter: no /dev/log; logging to stderr\n")
        handler = logging.StreamHandler(sys.stderr)
        # Under systemd, journald adds time and SyslogIdentifier itself;
        # lines must then start with "(<log id>)" as amavis parsers expect.
        fmt = (
            "%(message)s"
            if os.environ.get("JOURNAL_STREAM")
            else f"%(asctime)s {ident}[{os.getpid()}]: %(message)s"
        )
        handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("mail.log").setLevel(logging.WARNING)
