"""A wheel built from the checkout runs on its own, as after `pip install`.

No policy file, no settings file, no checkout on the path: the default
policy that ships inside the package is in force, the start-up log says
so, and a message goes through to the next hop.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.support.ports import free_port, wait_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


class _Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 2.0.0 Ok: queued as SINK1"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with only the wheel (and its dependencies) in it."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(dist), str(REPO)],
        check=True,
        cwd=root,
    )
    (wheel,) = dist.glob("*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", str(wheel)],
        check=True,
        cwd=root,
    )
    return venv


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HOME"] = str(home)
    return env


def test_wheel_runs_with_no_other_file(installed, tmp_path):
    """`mailfilter --listen --forward --clamd off --spamd off` just works."""
    if Path("/etc/mailfilter/policy.toml").exists():
        pytest.skip("a policy is installed on this machine")
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    port = free_port()
    log = tmp_path / "stderr.log"
    empty = tmp_path / "cwd"
    empty.mkdir()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                str(installed / "bin/mailfilter"),
                "--listen", f"127.0.0.1:{port}",
                # The ORIGINATING listener (10026 by default) on a free
                # port: other tests may run beside this one.
                "--listen-originating", f"127.0.0.1:{free_port()}",
                "--forward", f"127.0.0.1:{controller.port}",
                "--clamd", "off",
                "--spamd", "off",
                "--log-to", "stderr",
            ],
            cwd=empty,
            env=_clean_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        try:
            wait_port(port, timeout=30)
        except TimeoutError:
            pytest.fail(f"mailfilter did not start:\n{log.read_text()}")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@b.test", "c@d.test", "hi"
        msg.set_content("hello\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            reply = client.send_message(msg)
        assert reply == {}
        assert len(sink.messages) == 1
        assert b"hello" in sink.messages[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        controller.stop()
    text = log.read_text()
    assert "policy in force:" in text
    assert "(the built-in default)" in text
    assert "site-packages/mailfilter/data/default-policy.toml" in text


def test_wheel_show_policy_prints_the_builtin_default(installed, tmp_path):
    """`show-policy` prints the shipped default, byte for byte."""
    if Path("/etc/mailfilter/policy.toml").exists():
        pytest.skip("a policy is installed on this machine")
    done = subprocess.run(
        [str(installed / "bin/mailfilter"), "show-policy"],
        capture_output=True,
        check=True,
        cwd=tmp_path,
        env=_clean_env(tmp_path),
    )
    assert done.stdout == (REPO / "policy/default.toml").read_bytes()
