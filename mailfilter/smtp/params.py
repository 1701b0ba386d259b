"""Parse MAIL FROM and RCPT TO parameters the way amavis does.

See docs/amavis-compat.md, "MAIL FROM parameters" and "RCPT TO
parameters".

Pure functions: they return the parsed value or the reply to send, so the
SMTP glue stays thin and the rules are unit-tested without sockets.
"""

from __future__ import annotations

import re

from mailfilter.smtp import replies, xtext
from mailfilter.smtp.envelope import MailParams, Recipient

_SIZE = re.compile(r"[0-9]{1,20}")
_NOTIFY_WORDS = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})
# Envelope addresses must never carry bytes that could end a command line
# downstream (aiosmtplib PYSEC-2026-2338, see
# docs/performance-and-reliability.md, "aiosmtplib";
# docs/engineering-rules.md, Rule 6).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class ParamError(ValueError):
    """A parameter is wrong; `reply` is the SMTP reply to send."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def split_address(arg: str, keyword: str) -> tuple[str, list[str]]:
    """Split `FROM:<a@b> PARAMS` into the bare address and its parameters.

    The null sender `<>` gives "". Quoted local parts may contain spaces,
    so the address ends at the first `>` outside quotes.
    """
    if arg[: len(keyword)].upper() != keyword:
        raise ParamError(replies.BAD_SYNTAX)
    rest = arg[len(keyword) :].lstrip()
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        address, tail = rest[1:end], rest[end + 1 :]
    else:
        address, _, tail = rest.partition(" ")
    if _UNSAFE.search(address) or "<" in address or ">" in address:
        raise ParamError(replies.BAD_ADDRESS)
    return address, tail.split()


def _closing_bracket(text: str) -> int:
    quoted = False
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return i
    raise ParamError(replies.BAD_ADDRESS)


def parse_mail(params: list[str]) -> MailParams:
    """MAIL FROM parameters: SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH."""
    size: int | None = None
    body = ret = envid = None
    smtputf8 = False
    for param in params:
        name, eq, value = param.partition("=")
        key = name.upper()
        if key == "SIZE":
            if not _SIZE.fullmatch(value):
                raise ParamError(replies.SIZE_SYNTAX)
            size = int(value)
        elif key == "BODY":
            if value.upper() not in ("7BIT", "8BITMIME"):
                raise ParamError(replies.BODY_SYNTAX)
            body = value.upper()
        elif key == "SMTPUTF8":
            if eq:
                raise ParamError(replies.SMTPUTF8_SYNTAX)
            smtputf8 = True
        elif key == "RET":
            if value.upper() not in ("FULL", "HDRS"):
                raise ParamError(replies.RET_SYNTAX.format(value=value))
            ret = value.upper()
        elif key == "ENVID" and value:
            envid = value
        elif key == "AUTH":
            continue  # AUTH is not offered: ignored, as amavis does
        else:
            raise ParamError(replies.MAIL_PARAM_UNKNOWN.format(param=param))
    return MailParams(size, body, smtputf8, ret, envid)


def parse_rcpt(address: str, params: list[str]) -> Recipient:
    """RCPT TO parameters: NOTIFY and ORCPT (RFC 3461)."""
    notify = orcpt = None
    for param in params:
        name, _, value = param.partition("=")
        key = name.upper()
        if key == "NOTIFY":
            words = value.upper().split(",")
            bad = not value or any(w not in _NOTIFY_WORDS for w in words)
            if bad or ("NEVER" in words and len(words) > 1):
                raise ParamError(replies.NOTIFY_SYNTAX.format(value=value))
            notify = value.upper()
        elif key == "ORCPT" and ";" in value:
            orcpt = value
        else:
            raise ParamError(replies.RCPT_PARAM_UNKNOWN.format(param=name))
    return Recipient(address, notify, orcpt)


def parse_xforward(arg: str) -> dict[str, str | None]:
    """XFORWARD attributes; `[UNAVAILABLE]` becomes None (XFORWARD_README)."""
    result: dict[str, str | None] = {}
    for token in arg.split():
        name, eq, value = token.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", name):
            raise ParamError(replies.XFORWARD_SYNTAX)
        key = name.upper()
        if key not in XFORWARD_ATTRS:
            raise ParamError(replies.XFORWARD_BAD_ATTR.format(attr=token))
        if len(value) > 255:
            raise ParamError(replies.XFORWARD_SYNTAX)
        decoded = xtext.decode(value)
        result[key] = None if decoded == "[UNAVAILABLE]" else decoded
    return result


XFORWARD_ATTRS = frozenset(
    {"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE", "LOGIN"}
)
