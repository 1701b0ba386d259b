"""Recipient domains in the LMTP delivery server: strict and linear.

The domain ends up in a path, so only plain DNS labels pass. The check
must take time in proportion to the address: a pattern that backtracks
on a hostile name would block the event loop, and with it every other
delivery. The hostile names run in a subprocess under a generous
ceiling, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mailfilter.delivery import replies as rp
from mailfilter.delivery import routing
from tests.support.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[3]
# Seconds; a linear check needs microseconds, a backtracking one on the
# 40-character name alone needs about 2**40 steps.
CEILING = 60

HOSTILE = [
    "a" * 40 + "!",
    "a" * 10_000 + "!",
    "a-" * 30 + "!",
    "a." * 5_000 + "!",
    "a" * 62 + "." + "b" * 62 + "!",
    "a" * 10_000,
    "example.org" + "." * 5_000,
]


def test_hostile_domains_are_refused_within_a_ceiling():
    """Each hostile name is refused; all of them within CEILING seconds."""
    script = textwrap.dedent(
        """
        import sys
        from mailfilter.delivery import routing
        config = routing.Config(root_template="/srv/{domain}/{user}")
        for domain in sys.stdin.read().split("\\n"):
            print(routing.resolve(config, "user@" + domain) is None)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input="\n".join(HOSTILE),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=CEILING,
        check=True,
    )
    assert ["True"] * len(HOSTILE) == done.stdout.split()


@pytest.mark.parametrize(
    "domain",
    [
        "example.org",
        "mail.sub.example.co.uk",
        "xn--bcher-kva.example",
        "1-2.example",
        "a.b",
        "x" * 63 + ".example",
        ".".join(["a" * 61] * 4),  # 247 characters
    ],
)
def test_ordinary_domains_pass(domain):
    config = routing.Config(root_template="/srv/{domain}/{user}")
    target = routing.resolve(config, f"User@{domain.upper()}")
    assert target is not None
    assert f"/srv/{domain}/user" == target.root


@pytest.mark.parametrize(
    "domain",
    [
        "",
        ".",
        "a..b",
        ".example.org",
        "example.org.",
        "-a.example",
        "a-.example",
        "a_b.example",
        "x" * 64 + ".example",
        ".".join(["a" * 63] * 4),  # 255 characters
        "a b.example",
        "[127.0.0.1]",
        "exa%mple.org",
        "ex\u0430mple.org",
    ],
)
def test_unusual_domains_are_refused(domain):
    config = routing.Config(root_template="/srv/{domain}/{user}")
    assert routing.resolve(config, f"user@{domain}") is None


async def test_server_stays_responsive_after_a_hostile_rcpt(tmp_path):
    """Through the real command: the hostile RCPT gets 550 5.1.3 and the
    same session then accepts a real recipient."""
    (tmp_path / "example.org" / "alice").mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [
            sys.executable,
            "-m",
            "mailfilter",
            "lmtp-deliver",
            "--listen",
            f"127.0.0.1:{port}",
            "--root-template",
            str(tmp_path / "{domain}" / "{user}" / "Maildir"),
            "--auto-create",
        ],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_port, port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def cmd(line: str) -> str:
            if line:
                writer.write(line.encode() + b"\r\n")
            reply = await asyncio.wait_for(reader.readline(), CEILING)
            while reply[3:4] == b"-":
                reply = await asyncio.wait_for(reader.readline(), CEILING)
            return reply.decode().rstrip("\r\n")

        assert (await cmd("")).startswith("220")
        assert (await cmd("LHLO test")).startswith("250")
        assert (await cmd("MAIL FROM:<s@x.org>")).startswith("250")
        assert rp.R550_BAD_ADDRESS == await cmd(
            "RCPT TO:<alice@" + "a" * 60 + "!>"
        )
        assert rp.R250_RCPT == await cmd("RCPT TO:<alice@example.org>")
        writer.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # A loop stuck in a pattern never runs its SIGTERM handler.
            proc.kill()
            proc.wait()
