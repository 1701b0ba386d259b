"""aiosmtpd's own reply texts, translated into ours.

aiosmtpd answers a few things itself, before any of our command methods
run: unknown commands, over-long or undecodable command lines, commands
before HELO/EHLO, too many unknown commands. Every reply Postfix sees must
be one of ours (docs/engineering-rules.md, Rule 3; docs/amavis-compat.md,
"Fixed replies"), so `FilterSMTP.push` passes each of aiosmtpd's texts
through `ours()`.

Texts aiosmtpd 1.4 can send only with features we never switch on (TLS,
AUTH, strict ASCII, a command call limit) are mapped too, to the nearest
of ours, so that turning one on by mistake cannot leak a foreign text. A
text not listed here is passed on and logged: it means aiosmtpd grew a new
reply that needs a name (tests/unit/smtp/test_foreign_replies.py reads
aiosmtpd's source to catch that).
"""

from __future__ import annotations

import logging
import re

from mailfilter.smtp import replies

log = logging.getLogger("mailfilter.smtp")

_FIXED = {
    "500 Command line too long": replies.LINE_TOO_LONG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": replies.LINE_TOO_LONG,
    "500 Error: bad syntax": replies.BAD_SYNTAX,
    "500 Error: strict ASCII mode": replies.BAD_SYNTAX,
    "502 5.5.1 Too many unrecognized commands, goodbye.": (
        replies.TOO_MANY_UNKNOWN
    ),
    "500 Error: command 'AUTH' not recognized": (
        replies.UNKNOWN_COMMAND.format(command="AUTH")
    ),
    "554 Command refused due to lack of security": (
        replies.UNKNOWN_COMMAND.format(command="STARTTLS")
    ),
    "530 Must issue a STARTTLS command first": (
        replies.UNKNOWN_COMMAND.format(command="STARTTLS")
    ),
    "530 5.7.0 Authentication required": (
        replies.UNKNOWN_COMMAND.format(command="AUTH")
    ),
    "454 TLS not available": replies.UNKNOWN_COMMAND.format(
        command="STARTTLS"
    ),
}
_PATTERNS = (
    (
        re.compile(r'500 Error: command "(?P<command>[^"]*)" not recognized'),
        replies.UNKNOWN_COMMAND,
    ),
    (
        re.compile(r"503 Error: send (?P<verb>\S+) first"),
        replies.NEED_HELO,
    ),
    (
        re.compile(r"421 4\.7\.0 (?P<command>\S+) sent too many times"),
        replies.TOO_MANY_COMMANDS,
    ),
)
# Ours carry an enhanced status code; the greeting is the one exception.
_OURS = re.compile(r"\d{3}[ -][245]\.\d|220 ")


def ours(text: str) -> str:
    """Our reply for one of aiosmtpd's texts (ours are passed unchanged)."""
    fixed = _FIXED.get(text)
    if fixed is not None:
        return fixed
    for pattern, template in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            fields = {k: _clean(v) for k, v in match.groupdict().items()}
            return template.format(**fields)
    if not _OURS.match(text):
        log.warning("(!)unnamed aiosmtpd reply passed on: %.80r", text)
    return text


def _clean(value: str) -> str:
    """A command name from the client, safe inside one reply line."""
    return re.sub(r"[^\x21-\x7e]", "?", value)[:64]
