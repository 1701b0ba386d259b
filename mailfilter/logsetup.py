"""Logging: amavis-format lines to syslog (facility mail) or to stderr.

Loggers are `mailfilter.<concern>`. The syslog ident defaults to `amavis`
so that mailgraph and amavis-logwatch, which select lines by program name,
keep counting (amavis-compat.md §5.3-§5.4). aiosmtpd's own `mail.log`
logger repeats every sender and recipient at INFO, so it is quietened.
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
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s {ident}[{os.getpid()}]: %(message)s"
            )
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("mail.log").setLevel(logging.WARNING)
