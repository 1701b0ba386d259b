"""`mailfilter probe` end to end: aiosmtpd "delivers" into a Maildir that a
real Dovecot serves over IMAP; the SMTP server is stopped for a few seconds
mid-run and the probe must report one outage of about that length.

Dovecot runs from a temporary config on a free loopback port, as root with
mail owned by `nobody` (Dovecot refuses mail uid 0), or as the current user
otherwise.
"""

from __future__ import annotations

import getpass
import json
import mailbox
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiosmtpd.controller import Controller

from mailfilter.ops import availability_report, probe_cli, probe_report
from tests.support.ports import free_port, wait_port

if TYPE_CHECKING:
    from collections.abc import Iterator

DOVECOT = Path("/usr/sbin/dovecot")
INTERVAL = 0.5
OUTAGE = 3.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not DOVECOT.exists(),
        reason="dovecot not installed (Debian dovecot-imapd)",
    ),
]


@dataclass
class Imap:
    """A running Dovecot and the Maildir it serves."""

    port: int
    maildir: Path


def dovecot_conf(root: Path, port: int, uid: int, gid: int) -> str:
    """A minimal IMAP-only config: static password, one Maildir, no TLS."""
    users = ""
    if os.geteuid() != 0:  # rootless Dovecot runs everything as us
        me = getpass.getuser()
        users = f"default_internal_user = {me}\ndefault_login_user = {me}\n"
    return f"""{users}base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/Maildir
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/Maildir
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@pytest.fixture
def imap() -> Iterator[Imap]:
    """Dovecot on a free port, serving a fresh Maildir."""
    # Not tmp_path: pytest's base dir is 0700, and Dovecot's mail
    # processes run as `nobody`, who must reach the Maildir.
    root = Path(tempfile.mkdtemp(prefix="probe-dovecot-"))
    os.chmod(root, 0o755)
    maildir = root / "Maildir"
    mailbox.Maildir(maildir, create=True)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        for path in [maildir, *maildir.iterdir()]:
            os.chown(path, uid, gid)
    else:
        uid, gid = os.getuid(), os.getgid()
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(dovecot_conf(root, port, uid, gid))
    with (root / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_port(port, timeout=20)
        yield Imap(port, maildir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


class MaildirHandler:
    """An SMTP server that delivers every message into one Maildir."""

    def __init__(self, maildir: Path) -> None:
        self.box = mailbox.Maildir(maildir, create=False)

    async def handle_DATA(self, server, session, envelope):
        """Deliver (tmp/ then new/, as Maildir wants) and say so."""
        self.box.add(envelope.content)
        return "250 2.0.0 Ok: delivered"


class SwitchableSmtp:
    """The SMTP side, which the test switches off and on by port."""

    def __init__(self, maildir: Path) -> None:
        self.port = free_port()
        self.handler = MaildirHandler(maildir)
        self.controller: Controller | None = None
        self.down_from = self.down_to = 0.0

    def start(self) -> None:
        """Listen (again) on the same port."""
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port
        )
        self.controller.start()

    def stop(self) -> None:
        """Stop listening."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def outage(self, seconds: float) -> None:
        """Down for `seconds`, recording when it really was down."""
        self.down_from = time.time()
        self.stop()
        time.sleep(seconds)
        self.start()
        self.down_to = time.time()


def test_probe_measures_an_smtp_outage(
    imap: Imap, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 3 s SMTP outage shows as one outage of 3 s +- one interval, MTFO alike."""
    smtp = SwitchableSmtp(imap.maildir)
    smtp.start()
    csv_path, json_path = tmp_path / "probe.csv", tmp_path / "probe.json"
    timer = threading.Timer(2.5, smtp.outage, args=(OUTAGE,))
    timer.start()
    try:
        rc = probe_cli.main(
            [
                "--smtp",
                f"127.0.0.1:{smtp.port}",
                "--to",
                "u@example.com",
                "--imap",
                f"127.0.0.1:{imap.port}",
                "--imap-user",
                "probe",
                "--imap-password",
                "secret",
                "--interval",
                str(INTERVAL),
                "--duration",
                "9",
                "--timeout",
                "5",
                "--csv",
                str(csv_path),
                "--json",
                str(json_path),
            ]
        )
    finally:
        timer.join()
        smtp.stop()
    out = capsys.readouterr().out
    samples = probe_report.read_csv(csv_path)
    outages = probe_report.compute_outages(samples)
    assert 0 == rc, out
    assert 1 == len(outages), out
    (outage,) = outages
    # The first failed send falls in the first interval after the stop, the
    # first success in the first interval after the restart (plus slack for
    # a send already under way, and for scheduling).
    assert (
        smtp.down_from - 0.5 <= outage.start <= smtp.down_from + INTERVAL + 1.0
    ), out
    assert outage.end is not None
    assert smtp.down_to - 0.5 <= outage.end <= smtp.down_to + INTERVAL + 1.0, (
        out
    )
    assert OUTAGE - 1.0 <= outage.duration <= OUTAGE + INTERVAL + 1.5, out
    # Outside the outage every message was delivered, and quickly (IDLE).
    ok = [s for s in samples if s.ok]
    assert len(samples) - outage.failed == len(ok), out
    assert all(s.latency is not None and s.latency < 2.0 for s in ok), out
    summary = json.loads(json_path.read_text())["summary"]
    assert outage.duration == pytest.approx(summary["mtfo_seconds"])
    assert f"MTFO: {outage.duration:.3f} s" in out
    # And the measurement feeds the availability model.
    assert 0 == availability_report.main(
        ["--mtfo-from", str(csv_path), "--layer", "real_servers", "--json"]
    )
    model = json.loads(capsys.readouterr().out)
    layer = {ly["name"]: ly for ly in model["layers"]}["real_servers"]
    assert outage.duration == pytest.approx(layer["mtfo_seconds"])
