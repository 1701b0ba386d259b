"""Every reply aiosmtpd can send on its own is translated into ours.

The texts are read from aiosmtpd's source, so a new release that adds or
rewords one fails here instead of reaching Postfix.
"""

from __future__ import annotations

import ast
import inspect

import aiosmtpd.smtp
import pytest

from mailfilter.smtp import foreign, replies
from mailfilter.smtp.server import FilterSMTP

# aiosmtpd functions whose replies cannot be sent: FilterSMTP overrides
# the command (checked below), or the function only serves AUTH, which
# FilterSMTP answers itself.
_AUTH_ONLY = ("_auth_interact", "challenge_auth", "auth_LOGIN", "auth_PLAIN")


def _push_texts() -> list[tuple[str, str]]:
    """(enclosing function, reply text) for each push() in aiosmtpd."""
    tree = ast.parse(inspect.getsource(aiosmtpd.smtp))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "push"
                and node.args
            ):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((func.name, arg.value))
            elif isinstance(arg, ast.JoinedStr):
                text = "".join(
                    v.value if isinstance(v, ast.Constant) else "FOO"
                    for v in arg.values
                )
                found.append((func.name, text))
    return found


def _reachable(function: str) -> bool:
    if function in _AUTH_ONLY:
        return False
    ours = getattr(FilterSMTP, function, None)
    theirs = getattr(aiosmtpd.smtp.SMTP, function, None)
    return ours is theirs


PUSHES = _push_texts()


def test_the_source_was_read():
    """The scan finds aiosmtpd's replies (guards the test itself)."""
    assert len(PUSHES) > 30
    assert ("_handle_client", "500 Command line too long") in PUSHES


@pytest.mark.parametrize(
    "text", sorted({t for f, t in PUSHES if _reachable(f)})
)
def test_reachable_aiosmtpd_text_becomes_ours(text):
    """A reply aiosmtpd sends itself comes out as one of ours."""
    translated = foreign.ours(text)
    assert translated != text
    assert foreign._OURS.match(translated)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '500 Error: command "X\x01Y" not recognized',
            replies.UNKNOWN_COMMAND.format(command="X?Y"),
        ),
        (
            '500 Error: command "FOO" not recognized',
            replies.UNKNOWN_COMMAND.format(command="FOO"),
        ),
        ("503 Error: send EHLO first", replies.NEED_HELO.format(verb="EHLO")),
        ("500 Command line too long", replies.LINE_TOO_LONG),
    ],
)
def test_translations(text, expected):
    """The named replies, with the command name kept printable."""
    assert expected == foreign.ours(text)


def test_our_own_replies_pass_unchanged():
    """Replies that are ours already are never rewritten."""
    for text in (
        replies.NOOP,
        replies.TEMPFAIL_INTERNAL,
        "220 [127.0.0.1] ESMTP amavis service ready",
    ):
        assert text == foreign.ours(text)
