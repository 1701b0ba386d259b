"""Reading the Postfix recipe from postconf output."""

from __future__ import annotations

from mailfilter.ops import postfixcheck

MASTER = """\
smtp       inet  n       -       y       -       -       smtpd
scan       unix  -       -       n       -       10      smtp
127.0.0.1:10025 inet n   -       n       -       20      smtpd
lmtpfeed   unix  -       -       n       -       -       lmtp
"""
OVERRIDES = """\
scan/unix/smtp_data_done_timeout = 1200
scan/unix/smtp_send_xforward_command = yes
"""


def test_recipe_finds_transport_listener_and_override():
    """The transport named in content_filter, the 10025 listener and the -o timeout."""
    main = {
        "content_filter": "scan:[127.0.0.1]:10024",
        "smtp_data_done_timeout": "600s",
        "default_process_limit": "100",
    }
    r = postfixcheck.recipe(main, MASTER, OVERRIDES, 10025)
    assert postfixcheck.Service("scan", "unix", 10, "smtp") == r.transport
    assert 20 == r.listener.maxproc
    assert 1200 == r.data_done_timeout


def test_recipe_defaults():
    """'-' maxproc is default_process_limit; no override keeps main.cf's timeout."""
    main = {
        "content_filter": "lmtpfeed:[127.0.0.1]:10024",
        "smtp_data_done_timeout": "10m",
        "default_process_limit": "50",
    }
    r = postfixcheck.recipe(main, MASTER, "", 10026)
    assert 50 == r.transport.maxproc
    assert r.listener is None
    assert 600 == r.data_done_timeout
