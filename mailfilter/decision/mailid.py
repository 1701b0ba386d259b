"""Identifiers in amavis's forms.

See docs/amavis-compat.md, "The syslog frame and log ids" and
"Quarantine and release".

- log id `PPPPP-NN`: process id and a per-process message counter; the
  tag that log parsers expect in `(...)` at the start of each line;
- mail_id: 12 characters of base64url from 72 random bits, first and last
  alphanumeric, used in the log, Received, X-Quarantine-ID and file names.
"""

from __future__ import annotations

import base64
import itertools
import os
import secrets

_counter = itertools.count(1)


def log_id() -> str:
    """The next `PPPPP-NN` id of this process."""
    return f"{os.getpid() % 100000:05d}-{next(_counter):02d}"


def mail_id() -> str:
    """A fresh 12-character mail_id."""
    while True:
        text = base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
        if text[0].isalnum() and text[-1].isalnum():
            return text
